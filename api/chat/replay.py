"""Replay protection: a signed request is accepted once.

Slack's signature covers the timestamp and the body, and `slack_sdk`'s verifier accepts a timestamp
within five minutes of now. A captured request could be sent again inside that window with a valid
signature; `ReplayGuard` remembers each accepted signature until its timestamp leaves the window,
and the bolt middleware `RejectReplays` answers a second sighting with 401.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from slack_bolt.middleware.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

log = logging.getLogger(__name__)

WINDOW_S = 300
"""How far a request timestamp may be from now (slack_sdk.signature.SignatureVerifier)."""


class SeenKeys:
    """Keys with an expiry time, bounded, thread-safe. `add` says whether the key is new."""

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._keys: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, *, expires_at: float) -> bool | None:
        """True if new (now remembered), False if already seen, None if full of live keys (refused)."""
        now = self.clock()
        with self._lock:
            expiry = self._keys.get(key)
            if expiry is not None and expiry > now:
                return False
            self._purge(now)
            if len(self._keys) >= self.max_keys:
                return None
            self._keys[key] = expires_at
            self._keys.move_to_end(key)
            return True

    def discard(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            self._purge(self.clock())
            return len(self._keys)

    def _purge(self, now: float) -> None:
        # Expiries are not in insertion order (timestamps may be skewed), so purge the whole map only
        # when it has grown, and otherwise drop expired keys from the front.
        while self._keys:
            key, expiry = next(iter(self._keys.items()))
            if expiry > now:
                break
            del self._keys[key]
        if len(self._keys) >= self.max_keys:
            for key in [k for k, exp in self._keys.items() if exp <= now]:
                del self._keys[key]


class ReplayGuard:
    """Remembers request signatures for as long as their timestamps would pass verification."""

    def __init__(self, *, window_s: int = WINDOW_S, max_keys: int = 100_000, clock: Callable[[], float] = time.time):
        self.window_s = window_s
        self.seen = SeenKeys(max_keys=max_keys, clock=clock)

    def accept(self, timestamp: str, signature: str) -> bool | None:
        """True the first time, False for a replay, None when the guard is full (refuse: fail closed)."""
        try:
            ts = int(timestamp)
        except ValueError:
            return False
        return self.seen.add(f"{ts}:{signature}", expires_at=ts + self.window_s + 1)


class RejectReplays(Middleware):
    """bolt middleware (runs after signature verification): 401 for a signature already seen."""

    def __init__(self, guard: ReplayGuard) -> None:
        self.guard = guard

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse | None:
        if req.mode == "socket_mode":  # no HTTP signature: the websocket is authenticated by the app token
            return next()
        timestamp = (req.headers.get("x-slack-request-timestamp") or [""])[0]
        signature = (req.headers.get("x-slack-signature") or [""])[0]
        verdict = self.guard.accept(timestamp, signature)
        if verdict is True:
            return next()
        if verdict is None:
            log.warning("replay guard full; refusing Slack requests until entries expire")
            return BoltResponse(status=429, body={"error": "too many requests"})
        log.warning("replayed Slack request rejected", extra={"slack_timestamp": timestamp})
        return BoltResponse(status=401, body={"error": "invalid request"})
