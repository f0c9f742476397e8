-- GCRA token bucket for authd's shared rate limit. One call per request.
-- KEYS[1]: the client's bucket; its value is the time (µs, Redis clock) at
--          which the bucket is full again ("tat").
-- ARGV[1]: emission interval in µs (1 s / RPS); ARGV[2]: burst.
-- Returns {allowed (0/1), remaining, reset_us, retry_after_us}.
-- Redis's own clock (TIME) is used so that instance clocks never matter.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local capacity = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local ahead = tat + interval - now
if ahead > capacity then
  local wait = ahead - capacity
  return {0, 0, wait, wait}
end
-- The key expires when the bucket is full again: an absent key is a full bucket.
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(ahead / 1000))
return {1, math.floor((capacity - ahead) / interval), ahead, 0}
