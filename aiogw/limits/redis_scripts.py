"""The limits' scripts in Redis: each check-and-take runs whole, atomically, in Redis.

A user's keys carry one hash tag, `{aiogw:USER}` (so a Redis Cluster would keep them
in one slot, and one script only ever touches one user):

    {aiogw:U}:st         hash: rl/ra/rc the request bucket's level, time and capacity;
                         tl/ta/tc the token bucket's (the buckets of aiogw.limits.buckets,
                         kept here); ht the estimated cost the reservations hold; nx the
                         earliest a reservation may expire (a sweep before it is
                         pointless). Gone after idle minutes (a bucket idle for one is full)
    {aiogw:U}:flight     sorted set: a reservation per admitted request, `ID|USD` (the
                         cost it holds), scored by when it expires unless its process
                         renews it
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

# KEYS: st, flight, day, month
# ARGV: reservation, tokens, usd, rpm, tpm, max_concurrent, daily, monthly (0 / "" = none), ttl
# Returns {"ok"} | {"seed"} | {"daily"|"monthly", spent, held} | {"concurrent", n}
#       | {"rpm"|"tpm", seconds to wait}
ADMIT = Script(_TIME + _BUCKET + """
local id, tokens, usd = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local rpm, tpm, most = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local daily, monthly, ttl = ARGV[7], ARGV[8], tonumber(ARGV[9])
local s = redis.call('HMGET', KEYS[1], 'rl', 'ra', 'rc', 'tl', 'ta', 'tc', 'ht', 'nx')
local held, nx = tonumber(s[7]) or 0, tonumber(s[8])
if nx and nx <= now then
  -- A reservation may have expired (its process died): sweep, and hold less.
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
    held = held - (tonumber(string.match(m, '|(.*)$')) or 0)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if held < 1e-9 then held = 0 end
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  nx = first[2] and tonumber(first[2]) or nil
  redis.call('HSET', KEYS[1], 'ht', tostring(held), 'nx', tostring(nx or (now + ttl)))
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
  local n = redis.call('ZCARD', KEYS[2])
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
redis.call('EXPIRE', KEYS[1], math.max(120, ttl * 2))
redis.call('EXPIRE', KEYS[2], ttl * 2)
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
redis.call('EXPIRE', KEYS[2], ttl * 2)
redis.call('EXPIRE', KEYS[1], math.max(120, ttl * 2))
return 1
""")

SCRIPTS = (ADMIT, SETTLE, SEED, RENEW)
