"""The limits' scripts in Redis: each check-and-take runs whole, atomically, in Redis.

A user's keys carry one hash tag, `{aiogw:USER}` (so a Redis Cluster would keep them
in one slot, and one script only ever touches one user):

    {aiogw:U}:st         hash: rl/ra/rc the request bucket's level, time and capacity;
                         tl/ta/tc the token bucket's (the buckets of aiogw.limits.buckets,
                         kept here); ht the cost the reservations and leases hold; hs the
                         concurrency slots the leases hold; nx the earliest a
                         reservation or lease may expire (a sweep before it is
                         pointless). Gone after idle minutes (a bucket idle for one is full)
    {aiogw:U}:flight     sorted set: a reservation per admitted request, `ID|USD` (the
                         cost it holds), scored by when it expires unless its process
                         renews it
    {aiogw:U}:lease      sorted set: a lease per process that holds one (aiogw.limits.lease),
                         `ID|USD|SLOTS|SPENT|EXTRA` (the cost and slots it holds, the
                         running totals of spend and tokens Redis has from it), scored
                         by when it expires unless its process flushes it again
    {aiogw:U}:d:DAY      the user's spend that UTC day (a float, kept 2 days)
    {aiogw:U}:m:MONTH    and that month (kept 35 days); its absence means Redis has not
                         seen this user's month: the gateway seeds both from the state
                         store before it admits (ADMIT answers "seed")

Times are Redis's own clock (TIME), so instances with different clocks agree.
Amounts go in and out as strings: Lua numbers would come back as integers. Each
`redis.call` costs Redis a few microseconds on every request, so a script makes as
few as it can: one read and one write of the hash, the sweep of dead reservations only
when one may have expired (`python -m bench.scale` has each script's time in Redis).
"""

from __future__ import annotations

from aiogw.limits.redis_link import Script

_TIME = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
"""

# A bucket: refill from its time to now at capacity/60 a second; a new capacity (a
# reload) keeps what was used (buckets.Bucket.resize).
_BUCKET = """
local function bucket(level, at, cap, want)
  level, at, cap = tonumber(level), tonumber(at), tonumber(cap)
  if level == nil or at == nil or cap == nil then return want end
  if cap ~= want then level = math.max(0, math.min(want, want - (cap - level))) end
  if now > at then level = math.min(want, level + (now - at) * want / 60) end
  return level
end
"""

# A reservation or a lease may have expired (its process died): take them out, and
# count again what the live ones hold (cost, lease slots) and the earliest expiry
# left. Counted again, not decremented: whatever the hash's running sums missed (a key
# that expired whole, a reply lost mid-flush) is right again after a sweep.
# KEYS[2] the reservations (`ID|USD`), KEYS[5] the leases (`ID|USD|SLOTS|SPENT|EXTRA`).
_SWEEP = """
local function sweep()
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  local held, slots, nx = 0, 0, nil
  local live = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  for i = 1, #live, 2 do
    held = held + (tonumber(string.match(live[i], '|(.*)$')) or 0)
    if nx == nil or tonumber(live[i + 1]) < nx then nx = tonumber(live[i + 1]) end
  end
  live = redis.call('ZRANGE', KEYS[5], 0, -1, 'WITHSCORES')
  for i = 1, #live, 2 do
    local usd, n = string.match(live[i], '^[^|]*|([^|]*)|([^|]*)|')
    held, slots = held + (tonumber(usd) or 0), slots + (tonumber(n) or 0)
    if nx == nil or tonumber(live[i + 1]) < nx then nx = tonumber(live[i + 1]) end
  end
  return held, slots, nx
end
"""

# KEYS: st, flight, day, month, lease
# ARGV: reservation, tokens, usd, rpm, tpm, max_concurrent, daily, monthly (0 / "" = none), ttl
# Returns {"ok"} | {"seed"} | {"daily"|"monthly", spent, held} | {"concurrent", n}
#       | {"rpm"|"tpm", seconds to wait}
ADMIT = Script(_TIME + _BUCKET + _SWEEP + """
local id, tokens, usd = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local rpm, tpm, most = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local daily, monthly, ttl = ARGV[7], ARGV[8], tonumber(ARGV[9])
local s = redis.call('HMGET', KEYS[1], 'rl', 'ra', 'rc', 'tl', 'ta', 'tc', 'ht', 'nx', 'hs')
local held, nx, slots = tonumber(s[7]) or 0, tonumber(s[8]), tonumber(s[9]) or 0
if nx and nx <= now then
  held, slots, nx = sweep()
  redis.call('HSET', KEYS[1], 'ht', tostring(held), 'hs', slots, 'nx', tostring(nx or (now + ttl)))
end
if daily ~= '' or monthly ~= '' then
  local spent = redis.call('MGET', KEYS[3], KEYS[4])
  if not spent[2] then return {'seed'} end
  local day = tonumber(spent[1] or '0')
  if daily ~= '' and day + held >= tonumber(daily) then
    return {'daily', tostring(day), tostring(held)}
  end
  if monthly ~= '' and tonumber(spent[2]) + held >= tonumber(monthly) then
    return {'monthly', spent[2], tostring(held)}
  end
end
if most > 0 then
  local n = redis.call('ZCARD', KEYS[2]) + slots
  if n >= most then return {'concurrent', tostring(n)} end
end
local w = {'ht', tostring(held + tonumber(usd))}
if not nx or nx > now + ttl then table.insert(w, 'nx'); table.insert(w, tostring(now + ttl)) end
if rpm > 0 then
  local rl = bucket(s[1], s[2], s[3], rpm)
  if rl < 1 then return {'rpm', tostring((1 - rl) * 60 / rpm)} end
  table.insert(w, 'rl'); table.insert(w, tostring(rl - 1))
  table.insert(w, 'ra'); table.insert(w, tostring(now)); table.insert(w, 'rc'); table.insert(w, rpm)
end
if tpm > 0 then
  local tl = bucket(s[4], s[5], s[6], tpm)
  local need = math.min(tokens, tpm)
  if tl < need then return {'tpm', tostring((need - tl) * 60 / tpm)} end
  table.insert(w, 'tl'); table.insert(w, tostring(math.max(-tpm, tl - tokens)))
  table.insert(w, 'ta'); table.insert(w, tostring(now)); table.insert(w, 'tc'); table.insert(w, tpm)
end
redis.call('HSET', KEYS[1], unpack(w))
redis.call('ZADD', KEYS[2], now + ttl, id .. '|' .. usd)
-- The sets live as long as the hash: its sums are only right with them.
redis.call('EXPIRE', KEYS[1], math.max(120, ttl * 2))
redis.call('EXPIRE', KEYS[2], math.max(120, ttl * 2))
return {'ok'}
""")

# KEYS: st, flight, day, month
# ARGV: reservation ("" for none), the cost it holds, tokens beyond the estimate (may be
#       negative), usd, tpm (0 = none)
# The reservation ends (its slot and held cost freed), the token bucket is corrected
# by what the request used beyond its estimate, and the cost is added to the day and
# the month — if Redis has the month (else the state store has it, and a seed reads it).
SETTLE = Script("""
local id, holds, extra, usd, tpm = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local freed = id ~= '' and redis.call('ZREM', KEYS[2], id .. '|' .. holds) == 1
if freed or (tpm > 0 and extra ~= 0) then
  local s = redis.call('HMGET', KEYS[1], 'tl', 'ht')
  local w = {}
  if freed and s[2] then
    local held = tonumber(s[2]) - tonumber(holds)
    table.insert(w, 'ht'); table.insert(w, tostring(held > 1e-9 and held or 0))
  end
  if tpm > 0 and extra ~= 0 and s[1] then
    table.insert(w, 'tl'); table.insert(w, tostring(math.max(-tpm, math.min(tpm, tonumber(s[1]) - extra))))
  end
  if #w > 0 then redis.call('HSET', KEYS[1], unpack(w)) end
end
if usd > 0 and redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('INCRBYFLOAT', KEYS[4], usd)
  redis.call('INCRBYFLOAT', KEYS[3], usd)
  redis.call('EXPIRE', KEYS[3], 172800)
end
return 1
""")

# KEYS: day, month   ARGV: day's spend, month's spend (from the state store)
# The first seeder wins; one that comes later (another instance) changes nothing.
SEED = Script("""
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', 3024000)
  redis.call('SET', KEYS[1], ARGV[1], 'EX', 172800)
end
return 1
""")

# KEYS: st, flight   ARGV: ttl, reservations (`ID|USD`)...
# A process renews the reservations it still holds; one that died renews none, and
# its reservations expire `ttl` after their last renewal.
RENEW = Script(_TIME + """
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[2], 'XX', now + ttl, ARGV[i]) end
redis.call('EXPIRE', KEYS[2], math.max(120, ttl * 2))
redis.call('EXPIRE', KEYS[1], math.max(120, ttl * 2))
return 1
""")

# KEYS: st, flight, day, month, lease
# ARGV: 1 the lease's id, 2-3 all its exchanges ever spent and all their tokens beyond
#       the estimates (running totals), 4-5 the totals it knows Redis has, 6-7 the
#       requests and tokens it did not use, given back, 8-9 the slots and cost its
#       requests in flight still hold, 10-13 the requests, tokens, slots and cost it asks,
#       14-15 the least tokens and cost worth a lease (one request's), 16-20 rpm, tpm,
#       max_concurrent, daily, monthly (0 / "" = none), 21 ttl, 22 the share (32: a
#       grant takes at most 1/32 of what is left of each limit), 23 "1": its last flush
#       (no entry left)
# Returns {requests, tokens, slots, usd granted, the lease's entry ("" for none)}.
# A process's lease, flushed: its entry (`ID|USD|SLOTS|SPENT|EXTRA`) replaced by one
# holding what its requests in flight hold plus the new grant, and the running totals
# Redis has now. Spend and tokens go in as running totals, so a flush whose reply was
# lost and the next one that sends them again add them once: Redis adds what its entry
# did not have yet (the client's own count if Redis lost the entry). Every counted
# limit grants its part or none does: a lease that cannot admit one request holds
# nothing.
LEASE = Script(_TIME + _BUCKET + _SWEEP + """
local id, total, total_x, known, known_x = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
local back_r, back_t, keep_s, keep_u = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local want_r, want_t, want_s, want_u = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local min_t, min_u = tonumber(ARGV[14]), tonumber(ARGV[15])
local rpm, tpm, most, daily, monthly = tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18]), ARGV[19], ARGV[20]
local ttl, share, last = tonumber(ARGV[21]), tonumber(ARGV[22]), ARGV[23] == '1'
local s = redis.call('HMGET', KEYS[1], 'rl', 'ra', 'rc', 'tl', 'ta', 'tc', 'ht', 'nx', 'hs')
local held, nx, slots = tonumber(s[7]) or 0, tonumber(s[8]), tonumber(s[9]) or 0
if nx and nx <= now then held, slots, nx = sweep() end
-- Its entries (one, or more if a reply was lost): what they hold is freed, the totals
-- they carry are what Redis has.
local mine, newest = id .. '|', -1
for _, m in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
  if string.sub(m, 1, #mine) == mine then
    local usd, n, had, had_x = string.match(m, '^[^|]*|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
    held, slots = held - (tonumber(usd) or 0), slots - (tonumber(n) or 0)
    if (tonumber(had) or 0) > newest then
      newest = tonumber(had) or 0
      known, known_x = math.max(known, newest), tonumber(had_x) or known_x
    end
    redis.call('ZREM', KEYS[5], m)
  end
end
if held < 1e-9 then held = 0 end
if slots < 0 then slots = 0 end
local spent, extra = math.max(0, total - known), total_x - known_x
local month = redis.call('EXISTS', KEYS[4]) == 1
if spent > 0 and month then
  redis.call('INCRBYFLOAT', KEYS[4], spent)
  redis.call('INCRBYFLOAT', KEYS[3], spent)
  redis.call('EXPIRE', KEYS[3], 172800)
end
local w = {}
local rl, tl
if rpm > 0 then rl = math.min(rpm, bucket(s[1], s[2], s[3], rpm) + back_r) end
if tpm > 0 then tl = math.max(-tpm, math.min(tpm, bucket(s[4], s[5], s[6], tpm) + back_t - extra)) end
-- What each counted limit would grant: at most a share of what is left of it.
local g_r, g_t, g_s, g_u = 0, 0, 0, 0
local grant = want_r > 0 or want_t > 0 or want_s > 0 or want_u > 0
if grant and rpm > 0 then
  g_r = math.min(want_r, math.floor(rl / share))
  grant = g_r >= 2
end
if grant and tpm > 0 then
  g_t = math.min(want_t, math.floor(math.max(0, tl) / share))
  grant = g_t >= min_t
end
if grant and most > 0 then
  local room = most - redis.call('ZCARD', KEYS[2]) - slots - keep_s
  g_s = math.min(want_s, math.floor(math.max(0, room) / share))
  grant = g_s >= 2
end
if grant and (daily ~= '' or monthly ~= '') then
  local spent_now = redis.call('MGET', KEYS[3], KEYS[4])
  if not month then
    grant = false  -- not seeded: the next admission through ADMIT seeds it
  else
    local room = math.huge
    if daily ~= '' then room = tonumber(daily) - tonumber(spent_now[1] or '0') end
    if monthly ~= '' then room = math.min(room, tonumber(monthly) - tonumber(spent_now[2])) end
    g_u = math.min(want_u, math.max(0, room - held - keep_u) / share)
    grant = g_u >= min_u
  end
end
if not grant then g_r, g_t, g_s, g_u = 0, 0, 0, 0 end
if rl then
  table.insert(w, 'rl'); table.insert(w, tostring(rl - g_r))
  table.insert(w, 'ra'); table.insert(w, tostring(now)); table.insert(w, 'rc'); table.insert(w, rpm)
end
if tl then
  table.insert(w, 'tl'); table.insert(w, tostring(tl - g_t))
  table.insert(w, 'ta'); table.insert(w, tostring(now)); table.insert(w, 'tc'); table.insert(w, tpm)
end
local hold_s, hold_u = keep_s + g_s, keep_u + g_u
local member = ''
if not last then
  member = id .. '|' .. tostring(hold_u) .. '|' .. hold_s .. '|' .. ARGV[2] .. '|' .. ARGV[3]
  redis.call('ZADD', KEYS[5], now + ttl, member)
  redis.call('EXPIRE', KEYS[5], math.max(120, ttl * 2))
  if not nx or nx > now + ttl then nx = now + ttl end
end
table.insert(w, 'ht'); table.insert(w, tostring(held + hold_u))
table.insert(w, 'hs'); table.insert(w, slots + hold_s)
if nx then table.insert(w, 'nx'); table.insert(w, tostring(nx)) end
redis.call('HSET', KEYS[1], unpack(w))
redis.call('EXPIRE', KEYS[1], math.max(120, ttl * 2))
return {g_r, g_t, g_s, tostring(g_u), member}
""")

SCRIPTS = (ADMIT, SETTLE, SEED, RENEW, LEASE)
