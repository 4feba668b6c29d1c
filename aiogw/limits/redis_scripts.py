"""The limits' scripts in Redis: each check-and-take runs whole, atomically, in Redis.

A user's keys carry one hash tag, `{aiogw:USER}` (so a Redis Cluster would keep them
in one slot, and one script only ever touches one user):

    {aiogw:U}:rate       hash: rl/ra/rc the request bucket's level, time and capacity;
                         tl/ta/tc the token bucket's (the same buckets as
                         aiogw.limits.buckets, kept here); gone after 2 idle minutes
                         (a bucket idle that long is full)
    {aiogw:U}:flight     sorted set: a reservation per admitted request, scored by
                         when it expires unless its process renews it
    {aiogw:U}:held       hash: reservation -> its estimated input cost in USD
    {aiogw:U}:d:DAY      the user's spend that UTC day (a float, kept 2 days)
    {aiogw:U}:m:MONTH    and that month (kept 35 days); its absence means Redis has not
                         seen this user's month: the gateway seeds both from the state
                         store before it admits (ADMIT answers "seed")

Times are Redis's own clock (TIME), so instances with different clocks agree.
Amounts go in and out as strings: Lua numbers would come back as integers.
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
  if level == nil then return want end
  if cap ~= want then level = math.max(0, math.min(want, want - (cap - level))) end
  if now > at then level = math.min(want, level + (now - at) * want / 60) end
  return level
end
"""

# KEYS: rate, flight, held, day, month
# ARGV: reservation, tokens, usd, rpm, tpm, max_concurrent, daily, monthly (0 / "" = none), ttl
# Returns {"ok"} | {"seed"} | {"daily"|"monthly", spent, held} | {"concurrent", n}
#       | {"rpm"|"tpm", seconds to wait}
ADMIT = Script(_TIME + _BUCKET + """
local id, tokens, usd = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local rpm, tpm, most = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local daily, monthly, ttl = ARGV[7], ARGV[8], tonumber(ARGV[9])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('HDEL', KEYS[3], unpack(gone))
end
if daily ~= '' or monthly ~= '' then
  local month = redis.call('GET', KEYS[5])
  if not month then return {'seed'} end
  local held = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[3])) do held = held + tonumber(v) end
  local day = tonumber(redis.call('GET', KEYS[4]) or '0')
  if daily ~= '' and day + held >= tonumber(daily) then
    return {'daily', tostring(day), tostring(held)}
  end
  if monthly ~= '' and tonumber(month) + held >= tonumber(monthly) then
    return {'monthly', month, tostring(held)}
  end
end
if most > 0 then
  local n = redis.call('ZCARD', KEYS[2])
  if n >= most then return {'concurrent', tostring(n)} end
end
local r = redis.call('HMGET', KEYS[1], 'rl', 'ra', 'rc', 'tl', 'ta', 'tc')
local rl, tl
if rpm > 0 then
  rl = bucket(r[1], r[2], r[3], rpm)
  if rl < 1 then return {'rpm', tostring((1 - rl) * 60 / rpm)} end
end
if tpm > 0 then
  tl = bucket(r[4], r[5], r[6], tpm)
  local need = math.min(tokens, tpm)
  if tl < need then return {'tpm', tostring((need - tl) * 60 / tpm)} end
  redis.call('HSET', KEYS[1], 'tl', tostring(math.max(-tpm, tl - tokens)), 'ta', tostring(now), 'tc', tpm)
end
if rpm > 0 then
  redis.call('HSET', KEYS[1], 'rl', tostring(rl - 1), 'ra', tostring(now), 'rc', rpm)
end
if rpm > 0 or tpm > 0 then redis.call('EXPIRE', KEYS[1], 120) end
redis.call('ZADD', KEYS[2], now + ttl, id)
redis.call('HSET', KEYS[3], id, usd)
redis.call('EXPIRE', KEYS[2], ttl * 2)
redis.call('EXPIRE', KEYS[3], ttl * 2)
return {'ok'}
""")

# KEYS: rate, flight, held, day, month
# ARGV: reservation ("" for none), tokens beyond the estimate (may be negative), usd, tpm (0 = none)
# The reservation ends (its slot and held cost freed), the token bucket is corrected
# by what the request used beyond its estimate, and the cost is added to the day and
# the month — if Redis has the month (else the state store has it, and a seed reads it).
SETTLE = Script("""
local id, extra, usd, tpm = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if id ~= '' then
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
if tpm > 0 and extra ~= 0 then
  local tl = tonumber(redis.call('HGET', KEYS[1], 'tl'))
  if tl then redis.call('HSET', KEYS[1], 'tl', tostring(math.max(-tpm, math.min(tpm, tl - extra)))) end
end
if usd > 0 and redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('INCRBYFLOAT', KEYS[5], usd)
  redis.call('INCRBYFLOAT', KEYS[4], usd)
  redis.call('EXPIRE', KEYS[4], 172800)
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

# KEYS: flight, held   ARGV: ttl, reservations...
# A process renews the reservations it still holds; one that died renews none, and
# its reservations expire `ttl` after their last renewal.
RENEW = Script(_TIME + """
local until_ = now + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_, ARGV[i]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]) * 2)
return 1
""")

SCRIPTS = (ADMIT, SETTLE, SEED, RENEW)
