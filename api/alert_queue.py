"""The bounded queue of background alert explanations: capacity, de-duplication and a time limit per job.

`ExplainQueue.submit(jobs)` takes a notification's explanations all or none: when they do not fit in the
free capacity (`capacity` counts jobs waiting, running, and timed-out ones still finishing) it raises
`core.errors.Overloaded` (503 with Retry-After; Alertmanager re-sends on 5xx), and jobs whose key is
already waiting or running are skipped. One worker thread at a time runs the jobs, each in a thread of its
own that it waits on for at most `timeout_s`: a job over time is given up (its slot stays taken until its
thread ends, so timed-out work cannot pile up) and reported through `on_timeout`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from core.errors import Overloaded

log = logging.getLogger(__name__)

J = TypeVar("J")


class ExplainQueue(Generic[J]):
    """Jobs of type J keyed by `key_of`, run one at a time by `run`, at most `capacity` in the house."""

    def __init__(
        self,
        run: Callable[[J], None],
        *,
        key_of: Callable[[J], str],
        capacity: int,
        timeout_s: float,
        on_timeout: Callable[[J], None] | None = None,
    ) -> None:
        self.run = run
        self.key_of = key_of
        self.capacity = capacity
        self.timeout_s = timeout_s
        self.on_timeout = on_timeout
        self._lock = threading.Lock()
        self._waiting: deque[J] = deque()
        self._keys: set[str] = set()  # waiting or running
        self._busy = 0  # running, or timed out and still finishing
        self._worker: threading.Thread | None = None

    def load(self) -> int:
        """Jobs waiting, running, or timed out and still finishing."""
        with self._lock:
            return len(self._waiting) + self._busy

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is waiting or running (True), or `timeout_s` passed (False)."""
        deadline = time.monotonic() + timeout_s
        while self.load() or self._keys:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def retry_after(self, load: int) -> int:
        """Seconds after which a refused sender may find room: the time the work ahead may take."""
        return max(1, min(3600, math.ceil(self.timeout_s * max(1, load - self.capacity + 1))))

    def submit(self, jobs: Iterable[J]) -> tuple[list[J], int]:
        """(the jobs queued, how many were skipped as already waiting or running); Overloaded if they do
        not all fit."""
        asked = list(jobs)
        with self._lock:
            fresh: list[J] = []
            seen = set(self._keys)
            for job in asked:
                key = self.key_of(job)
                if key not in seen:
                    seen.add(key)
                    fresh.append(job)
            skipped = len(asked) - len(fresh)
            load = len(self._waiting) + self._busy
            if fresh and load + len(fresh) > self.capacity:
                raise Overloaded(
                    f"the alert explanation queue is full ({load} of {self.capacity} queued or running, "
                    f"{len(fresh)} more asked; DEVMESH_ALERT_QUEUE_SIZE); re-send later",
                    retry_after=self.retry_after(load + len(fresh)),
                    field="alerts",
                )
            for job in fresh:
                self._waiting.append(job)
                self._keys.add(self.key_of(job))
            if fresh and (self._worker is None or not self._worker.is_alive()):
                self._worker = threading.Thread(target=self._work, name="alert-explanations", daemon=True)
                self._worker.start()
            return fresh, skipped

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._waiting:
                    self._worker = None
                    return
                job = self._waiting.popleft()
                self._busy += 1
            done = threading.Event()
            runner = threading.Thread(target=self._run_one, args=(job, done), name="alert-explanation", daemon=True)
            runner.start()
            if not done.wait(self.timeout_s):
                log.warning("an alert explanation ran over its time limit; given up", extra={"key": self.key_of(job)})
                with self._lock:
                    self._keys.discard(self.key_of(job))
                if self.on_timeout is not None:
                    self.on_timeout(job)

    def _run_one(self, job: J, done: threading.Event) -> None:
        try:
            self.run(job)
        except Exception:  # the worker must go on with the other jobs
            log.exception("an alert explanation failed", extra={"key": self.key_of(job)})
        finally:
            done.set()
            with self._lock:
                self._busy -= 1
                self._keys.discard(self.key_of(job))
