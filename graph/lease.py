"""A lease with expiry on a Redis key of the FalkorDB server: one holder at a time among API replicas.

FalkorDB is a Redis module, so the server that holds the graph also holds the lease, as Redis documents
for a single instance: `SET key token NX PX ttl` takes it, and a Lua script that compares the stored token
with ours renews (PEXPIRE) or releases (DEL) it, so that a holder whose lease expired and was taken by
another can neither extend nor delete the new holder's lease. No election of our own: the key's expiry
hands the lease over when a holder stops renewing (it died, or cannot reach the server).

Used by `devmesh serve` so that scheduled detection, and retention on a shared event store, run on one replica
at a time (`api.detect_schedule`).
"""

from __future__ import annotations

import logging
import secrets
import threading

import redis

log = logging.getLogger(__name__)

DETECT_LEASE = "devmesh:lease:detect"
"""The key of the scheduled-detection lease (the graph's name after it, the deployment's namespace before it:
`api.detect_schedule.lease_key`)."""
PRUNE_LEASE = "devmesh:lease:prune"
"""The key of the retention lease, when the replicas share one event store."""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """One contender for the lease `key`; `ttl_ms` is how long it lasts without a renewal.

    `keep()` is the one call a scheduler needs: it renews the lease if held, else tries to take it, and
    says whether this contender holds it now. A renewal that fails (the key expired and another took it,
    or the server is unreachable) means this contender no longer holds it and must stop its work.
    """

    def __init__(self, client: redis.Redis, key: str, *, ttl_ms: int, token: str | None = None) -> None:
        if ttl_ms <= 0:
            raise ValueError("a lease needs a positive ttl_ms")
        self.client = client
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = token or secrets.token_hex(16)
        self._held = False
        self._lock = threading.Lock()
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @property
    def held(self) -> bool:
        """Whether the last acquire or renewal succeeded (the lease may have expired since, if not renewed)."""
        return self._held

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this contender holds it now."""
        with self._lock:
            self._held = bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
            return self._held

    def renew(self) -> bool:
        """Extend the lease by `ttl_ms` if this contender still holds it; False (and no longer held) if not."""
        with self._lock:
            self._held = bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
            return self._held

    def release(self) -> bool:
        """Give the lease up if held (another contender can take it at once); True if it was ours."""
        with self._lock:
            self._held = False
            return bool(self._release(keys=[self.key], args=[self.token]))

    def holder(self) -> str | None:
        """The token of the current holder, or None."""
        value = self.client.get(self.key)
        if isinstance(value, bytes):
            return value.decode()
        return value if isinstance(value, str) else None

    def keep(self) -> bool:
        """Renew if held, else try to take it; whether held now. An unreachable server counts as not held."""
        try:
            was = self._held
            now = self.renew() if was else self.acquire()
            if was and not now:
                log.warning("lease lost; standing by", extra={"key": self.key})
            elif now and not was:
                log.info("lease taken", extra={"key": self.key})
            return now
        except redis.RedisError as exc:
            if self._held:
                log.warning("lease not renewed (server unreachable); standing by", extra={"error": str(exc)})
            self._held = False
            return False
