"""Replay protection: a signed request is accepted once, across restarts.

Slack's signature covers the timestamp and the body, and `slack_sdk`'s verifier accepts a timestamp
within five minutes of now. A captured request could be sent again inside that window with a valid
signature; `ReplayGuard` remembers each accepted signature until its timestamp leaves the window,
and the bolt middleware `RejectReplays` answers a second sighting with 401. Given a path (the server
keeps `slack_replay.sqlite` in the DevMesh home) the signatures are kept in SQLite, so a request
replayed after a restart, or to a second server on the same home, is refused too; `SeenKeys` is the
in-memory form (also used for Slack event ids and alert fingerprints).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

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


class DurableKeys:
    """`SeenKeys` kept in a SQLite file: shared by the processes on one home and kept over restarts."""

    def __init__(self, path: Path, *, max_keys: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a key acknowledged is a key kept
        self._db.execute(_SCHEMA)

    def add(self, key: str, *, expires_at: float) -> bool | None:
        """True if new (now remembered), False if already seen, None if full of live keys (refused)."""
        now = self.clock()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")  # one writer at a time across processes: check and insert together
            try:
                db.execute("DELETE FROM seen WHERE expires_at <= ?", (now,))
                if db.execute("SELECT 1 FROM seen WHERE key = ?", (key,)).fetchone() is not None:
                    verdict: bool | None = False
                elif db.execute("SELECT count(*) FROM seen").fetchone()[0] >= self.max_keys:
                    verdict = None
                else:
                    db.execute("INSERT INTO seen (key, expires_at) VALUES (?, ?)", (key, expires_at))
                    verdict = True
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return verdict

    def __len__(self) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT count(*) FROM seen WHERE expires_at > ?", (self.clock(),)).fetchone()[0]
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


_SCHEMA = "CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID"


class ReplayGuard:
    """Remembers request signatures for as long as their timestamps would pass verification: in memory, or in
    the SQLite file `path` (kept over restarts)."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        window_s: int = WINDOW_S,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_s = window_s
        self.seen: SeenKeys | DurableKeys = (
            SeenKeys(max_keys=max_keys, clock=clock)
            if path is None
            else DurableKeys(path, max_keys=max_keys, clock=clock)
        )

    def accept(self, timestamp: str, signature: str) -> bool | None:
        """True the first time, False for a replay, None when the guard is full (refuse: fail closed)."""
        if not is_slack_timestamp(timestamp):
            return False
        ts = int(timestamp)
        return self.seen.add(f"{ts}:{signature}", expires_at=ts + self.window_s + 1)

    def close(self) -> None:
        if isinstance(self.seen, DurableKeys):
            self.seen.close()


def is_slack_timestamp(value: str) -> bool:
    """Whether `value` is what Slack sends as X-Slack-Request-Timestamp: epoch seconds, digits only."""
    return value.isascii() and value.isdigit() and len(value) <= 12


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
