"""Which incident a chat thread is about, so that follow-ups in the thread keep its context."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ThreadContext:
    """The incident an answer in (channel, thread_ts) explained."""

    channel: str
    thread_ts: str
    incident_id: str = ""
    service: str = ""
    start_ns: int | None = None
    end_ns: int | None = None
    root_causes: tuple[str, ...] = field(default_factory=tuple)
    """Services the answer ranked, best first (for the feedback buttons)."""


class ThreadStore:
    """Bounded, expiring map (channel, thread_ts) -> ThreadContext; thread-safe."""

    def __init__(
        self, *, max_threads: int = 5000, ttl_s: float = 7 * 86400, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_threads = max_threads
        self.ttl_s = ttl_s
        self.clock = clock
        self._items: OrderedDict[tuple[str, str], tuple[float, ThreadContext]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, ctx: ThreadContext) -> None:
        key = (ctx.channel, ctx.thread_ts)
        with self._lock:
            self._items[key] = (self.clock() + self.ttl_s, ctx)
            self._items.move_to_end(key)
            while len(self._items) > self.max_threads:
                self._items.popitem(last=False)

    def get(self, channel: str, thread_ts: str) -> ThreadContext | None:
        with self._lock:
            item = self._items.get((channel, thread_ts))
            if item is None:
                return None
            expiry, ctx = item
            if expiry <= self.clock():
                del self._items[(channel, thread_ts)]
                return None
            return ctx

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
