"""Per-caller rate limits: token buckets in memory, one per (route class, caller), checked before the body is read.

A route class is ingest (`/ingest/*`, `/v1/*`), explain (`POST /explain`) or alerts (`/alerts/*`), each
with its requests per minute in the settings (`DEVMESH_RATE_*_PER_MIN`, 0: no limit); a bucket holds a
minute's worth and refills continuously, so bursts up to that are fine. The caller is a short hash of the
`Authorization: Bearer` token when there is one (each API key has its own bucket), else the client
address; this runs before, and apart from, the access check. Over the limit the answer is 429 with
`Retry-After` (whole seconds until a token is back) and the JSON error body of `core.errors.RateLimited`.

With `DEVMESH_RATE_SHARED` the buckets live on the FalkorDB server (`graph.buckets`), so replicas behind a
balancer share each caller's limit; while that server does not answer, each replica applies its own.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import redis

from api.http.errors import error_response
from core.errors import RateLimited
from core.settings import Settings

log = logging.getLogger(__name__)

MAX_CALLERS = 10_000
"""Buckets kept per route class; the least recently seen caller is forgotten beyond that."""


def route_class(method: str, path: str) -> str | None:
    """'ingest', 'explain', 'alerts', or None for routes without a rate limit."""
    if method != "POST":
        return None
    if path.startswith(("/ingest/", "/v1/")):
        return "ingest"
    if path == "/explain":
        return "explain"
    if path.startswith("/alerts/"):
        return "alerts"
    return None


def rates_of(s: Settings) -> dict[str, int]:
    """Requests per minute by route class (0: no limit)."""
    return {"ingest": s.rate_ingest_per_min, "explain": s.rate_explain_per_min, "alerts": s.rate_alerts_per_min}


def caller_of(headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None) -> str:
    """'key:<12 hex of sha256(token)>' for a bearer token, else 'addr:<client host>'."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return "key:" + hashlib.sha256(token.strip()).hexdigest()[:12]
    return "addr:" + (client[0] if client else "unknown")


class TokenBuckets:
    """Buckets of `per_min` tokens refilled at `per_min`/60 a second, one per caller (at most `max_callers`)."""

    def __init__(self, per_min: int, *, max_callers: int = MAX_CALLERS, clock: Callable[[], float] = time.monotonic):
        self.capacity = float(per_min)
        self.rate = per_min / 60.0
        self.max_callers = max_callers
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # caller -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """0.0 when the caller may go on (a token is taken), else the seconds until a token is back."""
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.pop(caller, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.rate)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
            self._buckets[caller] = (tokens - 1.0 if wait == 0.0 else tokens, now)
            if len(self._buckets) > self.max_callers:
                self._buckets.popitem(last=False)
            return wait


class Buckets(Protocol):
    capacity: float

    def take(self, caller: str) -> float: ...


class FallbackBuckets:
    """Shared buckets (`graph.buckets`, on the FalkorDB server) while the server answers, this process's own
    buckets while it does not: a limit per replica beats none, and a request never waits for a lost server."""

    RETRY_S = 5.0
    """After the server failed to answer, this long on the local buckets before asking it again."""

    def __init__(self, shared: Buckets, local: TokenBuckets, clock: Callable[[], float] = time.monotonic) -> None:
        self.shared, self.local, self.clock = shared, local, clock
        self.capacity = local.capacity
        self._retry_at = 0.0

    def take(self, caller: str) -> float:
        if self.clock() >= self._retry_at:
            try:
                return self.shared.take(caller)
            except redis.RedisError as exc:
                self._retry_at = self.clock() + self.RETRY_S
                log.warning("shared rate limit unavailable; this replica's own applies", extra={"error": str(exc)})
        return self.local.take(caller)


class RateLimitMiddleware:
    """ASGI middleware answering 429 (Retry-After) to callers over their route class's rate. With `shared`
    (route class, per minute -> buckets on a server), the replicas behind a balancer share each caller's limit."""

    def __init__(
        self,
        app: Any,
        rates: dict[str, int],
        clock: Callable[[], float] = time.monotonic,
        shared: Callable[[str, int], Buckets] | None = None,
    ) -> None:
        self.app = app
        self.buckets: dict[str, Buckets] = {}
        for name, n in rates.items():
            if n > 0:
                local = TokenBuckets(n, clock=clock)
                self.buckets[name] = local if shared is None else FallbackBuckets(shared(name, n), local, clock)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            name = route_class(scope.get("method", ""), scope.get("path", ""))
            buckets = self.buckets.get(name) if name else None
            if buckets is not None:
                wait = buckets.take(caller_of(scope.get("headers", []), scope.get("client")))
                if wait > 0:
                    per_min = int(buckets.capacity)
                    exc = RateLimited(
                        f"more than {per_min} {name} requests a minute from this caller"
                        f" (DEVMESH_RATE_{str(name).upper()}_PER_MIN); retry after the Retry-After seconds",
                        retry_after=math.ceil(wait),
                    )
                    await error_response(exc)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
