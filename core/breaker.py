"""Engines that fail: the one circuit breaker (after `failure_threshold` failed calls in a row it stops
calling for `cooldown_s`, then lets one trial call through, half-open), an engine's health as `/health`
shows it (`EngineHealth`: up, down since T, restarting; its calls go through its breaker), and the
jittered backoff of restarts. Used by the graph store, the Qdrant server client and the LLM clients."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TypeVar

from core.errors import EngineUnavailable

T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failed calls; half-open after `cooldown_s`."""

    def __init__(
        self, failure_threshold: int = 3, cooldown_s: float = 30.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """True if a call may go out now (closed, or the one trial call of half-open)."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def retry_in_s(self) -> float:
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def trip(self) -> None:
        """Open now (the engine was seen dead), whatever the count."""
        with self._lock:
            self._failures = max(self._failures, self.failure_threshold)
            self._opened_at = self._clock()
            self._trial_running = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial_running or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._trial_running = False


class EngineState(StrEnum):
    """What `/health` says of one engine."""

    UP = "up"
    DOWN = "down"
    RESTARTING = "restarting"


class EngineHealth:
    """One engine's state as its calls and its supervisor see it, with the breaker its calls go through.

    Calls go through `call`: refused at once (`EngineUnavailable`) while the breaker is open, so a dead
    engine costs a caller nothing; a failure of one of `failures` counts towards opening it, any other
    answer (even an error reply) proves the engine is there. The supervisor marks restarts and recoveries.
    """

    def __init__(
        self,
        name: str,
        *,
        failures: tuple[type[BaseException], ...] = (ConnectionError, OSError),
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
        where: str = "",
    ) -> None:
        self.name = name
        self.where = where
        """Where the engine is (a URL with its credentials redacted), for the messages; may be empty."""
        self.failures = failures
        self.breaker = breaker or CircuitBreaker(failure_threshold=1, cooldown_s=2.0)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = EngineState.UP
        self._since = clock()
        self._error = ""
        self.restarts = 0
        self.outages = 0

    @property
    def state(self) -> EngineState:
        with self._lock:
            return self._state

    def _set(self, state: EngineState, error: str = "") -> None:
        with self._lock:
            if state is not self._state:
                if self._state is EngineState.UP:
                    self.outages += 1
                self._state, self._since = state, self._clock()
            if error:
                self._error = error

    def mark_down(self, error: str) -> None:
        """Seen dead: calls are refused until it answers again."""
        self._set(EngineState.DOWN, error)
        self.breaker.trip()

    def mark_restarting(self) -> None:
        if self.state is not EngineState.UP:
            self._set(EngineState.RESTARTING)
        self.restarts += 1

    def mark_up(self) -> None:
        """Answers again: calls go through."""
        self.breaker.record_success()
        self._set(EngineState.UP)

    def snapshot(self) -> dict[str, object]:
        """`{"state", "since"}` (epoch seconds), with the last error while not up and the counts of outages
        and restarts so far."""
        with self._lock:
            out: dict[str, object] = {"state": self._state.value, "since": round(self._since, 3)}
            if self._state is not EngineState.UP and self._error:
                out["error"] = self._error
            out["outages"] = self.outages
            out["restarts"] = self.restarts
            return out

    @contextmanager
    def guarded(self) -> Iterator[None]:
        """The block is one call through the breaker (class doc)."""
        if not self.breaker.allow():
            at = f" at {self.where}" if self.where else ""
            why = f" ({self._error})" if self._error and self.state is not EngineState.UP else ""
            raise EngineUnavailable(
                f"{self.name}{at} is {self.state.value} since {_clock_text(self._since)}{why}; not calling it for "
                f"another {self.breaker.retry_in_s():.0f} s while it recovers"
            )
        try:
            yield
        except self.failures as exc:
            self.breaker.record_failure()
            if self.breaker.state is not BreakerState.CLOSED:
                self._set(EngineState.DOWN, f"{type(exc).__name__}: {exc}")
            raise
        except BaseException:
            self._answered()
            raise
        self._answered()

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """`fn(*args, **kwargs)` through the breaker (class doc)."""
        with self.guarded():
            return fn(*args, **kwargs)

    def _answered(self) -> None:
        self.breaker.record_success()
        if self.state is not EngineState.UP:
            self._set(EngineState.UP)


def _clock_text(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def backoff_delays(base_s: float = 0.5, cap_s: float = 30.0, *, rng: random.Random | None = None) -> Iterator[float]:
    """Endless waits between restart attempts: doubling from `base_s`, capped at `cap_s`, each drawn between
    half and all of that (jitter, so that several supervisors do not retry in step)."""
    draw = rng or random.Random()
    step = base_s
    while True:
        yield step * draw.uniform(0.5, 1.0)
        step = min(cap_s, step * 2)
