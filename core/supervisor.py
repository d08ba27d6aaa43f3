"""The supervisor of the engines DevMesh talks to: one background thread that probes each engine, restarts
the ones it may restart (the embedded FalkorDB) with jittered backoff, and calls `on_back` when one answers
again (the owed writes are replayed there). The probes, restarts and callbacks are passed in; no I/O here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from core.breaker import EngineHealth, EngineState, backoff_delays

log = logging.getLogger(__name__)


@dataclass
class Watch:
    """One supervised engine: `probe` says whether it answers (raising counts as no), `revive` (optional)
    restarts it, `on_back` (in order) runs once each time it answers again after an outage."""

    health: EngineHealth
    probe: Callable[[], bool]
    revive: Callable[[], object] | None = None
    on_back: list[Callable[[], object]] = field(default_factory=list)
    delays: Iterator[float] = field(default_factory=backoff_delays)
    next_try: float = 0.0
    attempts: int = 0


class Supervisor:
    """Probes every `interval_s`; `check()` is one round (tests call it directly)."""

    def __init__(self, watches: list[Watch], *, interval_s: float = 0.5, clock: Callable[[], float] = time.monotonic):
        self.watches = watches
        self.interval_s = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def health(self) -> dict[str, dict[str, object]]:
        """Each engine's `EngineHealth.snapshot()`, by name."""
        return {w.health.name: w.health.snapshot() for w in self.watches}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="devmesh-supervisor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()

    def check(self) -> None:
        for w in self.watches:
            try:
                self._check(w)
            except Exception:  # one engine's bad round must not stop the others' supervision
                log.exception("supervision round failed", extra={"engine": w.health.name})

    def _check(self, w: Watch) -> None:
        if _answers(w.probe):
            if w.health.state is not EngineState.UP or w.attempts:
                was_down = w.health.state is not EngineState.UP
                w.health.mark_up()
                w.attempts, w.next_try, w.delays = 0, 0.0, backoff_delays()
                log.warning("engine answers again", extra={"engine": w.health.name})
                if was_down:
                    _back(w)
            return
        if w.health.state is EngineState.UP:
            log.warning("engine does not answer", extra={"engine": w.health.name})
            w.health.mark_down("does not answer")
        if w.revive is None or self._clock() < w.next_try:
            return
        w.attempts += 1
        w.next_try = self._clock() + next(w.delays)
        w.health.mark_restarting()
        log.warning("restarting engine", extra={"engine": w.health.name, "attempt": w.attempts})
        try:
            w.revive()
        except Exception as exc:  # a failed restart is retried after the next backoff delay
            log.warning("restart failed", extra={"engine": w.health.name, "error": repr(exc)})
            w.health.mark_down(f"restart failed: {exc}")
            return
        if _answers(w.probe):
            w.health.mark_up()
            w.attempts, w.next_try, w.delays = 0, 0.0, backoff_delays()
            log.warning("engine restarted", extra={"engine": w.health.name})
            _back(w)


def _answers(probe: Callable[[], bool]) -> bool:
    try:
        return bool(probe())
    except Exception:  # a probe that raises is an engine that does not answer
        return False


def _back(w: Watch) -> None:
    for hook in w.on_back:
        try:
            hook()
        except Exception:  # the next hook (and the next outage's) still runs; the repair retries by itself
            log.exception("after-recovery step failed", extra={"engine": w.health.name})
