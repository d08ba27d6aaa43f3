"""Per-caller token buckets on the FalkorDB server's Redis, so that API replicas behind a balancer share one
rate limit per caller (`DEVMESH_RATE_SHARED`).

One hash per (route class, caller) holds the tokens left and when they were counted; a Lua script refills,
takes a token or says how long until one is back, in one atomic step on the server's clock (`TIME`), and lets
the key expire once the bucket would be full again. Same answer as `api.http.ratelimit.TokenBuckets`.
"""

from __future__ import annotations

import redis

_TAKE = """
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ms')
local tokens = tonumber(state[1]) or capacity
local then_ms = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - then_ms) * per_ms)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / per_ms
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ms', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / per_ms) + 1000)
return tostring(wait)
"""


class SharedTokenBuckets:
    """Buckets of `per_min` tokens refilled at `per_min`/60 a second, one per caller, kept under `prefix` on the
    server. `take` raises redis.RedisError when the server does not answer (the caller falls back)."""

    def __init__(self, client: redis.Redis, prefix: str, per_min: int) -> None:
        self.client = client
        self.prefix = prefix
        self.capacity = float(per_min)
        self._per_ms = per_min / 60_000.0
        self._take = client.register_script(_TAKE)

    def take(self, caller: str) -> float:
        """0.0 when the caller may go on (a token is taken), else the seconds until a token is back."""
        wait_ms = float(self._take(keys=[f"{self.prefix}:{caller}"], args=[self.capacity, self._per_ms]))
        return wait_ms / 1000.0
