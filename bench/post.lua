-- wrk script: POST one JSON body, read from a file once per thread, with an API key.
-- Usage: wrk ... -s bench/post.lua URL -- BODY_FILE API_KEY [FIRST_SEQ]
-- The body is built in Python (bench/bodies.py) so every target gets the same bytes.
--
-- Where the body holds the marker @@SEQ@@@@@ (in its last tool result), every request
-- carries a fresh 10-digit number there instead, starting at FIRST_SEQ: each request
-- is then a new turn of the conversation (the history as before, the newest tool
-- output not seen yet), so caches of earlier turns (the guards' scan memo, the audit's
-- parts memo) work as they would for a real agent, not on one body resent verbatim.
-- The request is formatted once; each one costs a single copy of it.
--
-- At the end it prints "statuses: CODE=N ..." for every answer that was not a 200,
-- so a proxy that answers fast with errors cannot pass for a fast proxy, and the
-- latency's 99.9th percentile ("p99.9: Nus").
local threads = {}
local MARK = "@@SEQ@@@@@"

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local f = assert(io.open(args[1], "rb"))
   wrk.body = f:read("*a")
   f:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["anthropic-version"] = "2023-06-01"
   wrk.headers["x-api-key"] = args[2]
   statuses = {}
   seq = tonumber(args[3] or "0")
   req = wrk.format()
   local i = req:find(MARK, 1, true)
   if i then
      req_head = req:sub(1, i - 1)
      req_tail = req:sub(i + #MARK)
   end
end

function request()
   if not req_head then
      return req
   end
   seq = seq + 1
   return req_head .. string.format("%010d", seq) .. req_tail
end

function response(status, headers, body)
   if status ~= 200 then
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local total = {}
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         total[status] = (total[status] or 0) + n
      end
   end
   local parts = {}
   for status, n in pairs(total) do
      table.insert(parts, status .. "=" .. n)
   end
   io.write("statuses: " .. table.concat(parts, " ") .. "\n")
   -- wrk's --latency report stops at the 99th percentile.
   io.write(string.format("p99.9: %dus\n", latency:percentile(99.9)))
end
