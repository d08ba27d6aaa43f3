"""The engines' health, breaker and supervisor (core.breaker, core.supervisor) on hand-made engines: a probe
and a restart that the test switches, a clock the test moves; and an LLM server (the Ollama fake on
loopback) that goes away and comes back. No engine, no supervisor thread."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from agents.llm import BreakerState, ChatMessage, OllamaLLM
from core.breaker import CircuitBreaker, EngineHealth, EngineState, backoff_delays
from core.errors import EngineUnavailable, LLMUnavailable
from core.supervisor import Supervisor, Watch
from tests.fakes.ollama_server import FakeOllama
from tests.fakes.serve_fake import _FixedPortServer


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeEngine:
    """An engine that is alive or not; a restart brings it back unless it is told to fail."""

    alive: bool = True
    restart_fails: bool = False
    restarts: int = 0
    calls: list[str] = field(default_factory=list)

    def probe(self) -> bool:
        return self.alive

    def revive(self) -> None:
        self.restarts += 1
        if self.restart_fails:
            raise OSError("cannot start")
        self.alive = True

    def request(self) -> str:
        self.calls.append("request")
        if not self.alive:
            raise ConnectionError("refused")
        return "answer"


def health(clock: Clock, cooldown_s: float = 2.0) -> EngineHealth:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=cooldown_s, clock=clock)
    return EngineHealth("graph", failures=(ConnectionError,), breaker=breaker, clock=clock)


def test_a_lost_engine_is_refused_at_once_until_a_trial_call_finds_it_back() -> None:
    clock, engine = Clock(), FakeEngine()
    h = health(clock)
    assert h.call(engine.request) == "answer"
    engine.alive = False
    with pytest.raises(ConnectionError):
        h.call(engine.request)
    assert h.snapshot()["state"] == "down" and h.snapshot()["error"] == "ConnectionError: refused"
    with pytest.raises(EngineUnavailable, match="graph is down"):
        h.call(engine.request)  # refused without calling
    assert engine.calls == ["request", "request"]
    engine.alive = True
    clock.now += 2.0  # cooldown over: one trial call goes through and closes the breaker
    assert h.call(engine.request) == "answer"
    assert h.snapshot() == {"state": "up", "since": 1002.0, "outages": 1, "restarts": 0}


def test_an_error_reply_proves_the_engine_is_there() -> None:
    clock = Clock()
    h = health(clock)

    def bad_query() -> None:
        raise ValueError("syntax error")

    for _ in range(3):
        with pytest.raises(ValueError):
            h.call(bad_query)
    assert h.state is EngineState.UP


def test_supervisor_restarts_with_growing_jittered_backoff_and_replays_once_back() -> None:
    clock, engine = Clock(), FakeEngine()
    h = health(clock)
    back: list[str] = []
    delays = backoff_delays(1.0, 8.0, rng=random.Random(7))
    watch = Watch(health=h, probe=engine.probe, revive=engine.revive, on_back=[lambda: back.append("replayed")])
    watch.delays = delays
    sup = Supervisor([watch], clock=clock)
    sup.check()
    assert (engine.restarts, back) == (0, [])  # alive: nothing to do

    engine.alive, engine.restart_fails = False, True
    sup.check()  # seen dead, first restart at once; it fails
    assert engine.restarts == 1 and h.state is EngineState.DOWN
    assert "restart failed: cannot start" in str(h.snapshot()["error"])
    sup.check()  # within the backoff delay: no new attempt
    assert engine.restarts == 1
    waits = []
    for _ in range(4):
        wait = watch.next_try - clock.now
        waits.append(wait)
        clock.now = watch.next_try
        sup.check()
    assert engine.restarts == 5 and back == []
    assert 0.5 <= waits[0] <= 1.0 and all(later > 0 for later in waits)
    assert waits[-1] <= 8.0  # capped
    with pytest.raises(EngineUnavailable):
        h.call(engine.request)  # callers fail fast meanwhile

    engine.restart_fails = False
    clock.now = watch.next_try
    sup.check()
    assert engine.alive and h.state is EngineState.UP and back == ["replayed"]
    assert h.snapshot()["restarts"] == 6 and h.snapshot()["outages"] == 1
    assert h.call(engine.request) == "answer"
    sup.check()
    assert back == ["replayed"]  # once an outage


def test_a_remote_engine_is_waited_for_and_the_replay_runs_when_it_answers() -> None:
    clock, engine = Clock(), FakeEngine()
    h = health(clock)
    back: list[str] = []
    sup = Supervisor([Watch(health=h, probe=engine.probe, on_back=[lambda: back.append("replayed")])], clock=clock)
    engine.alive = False
    sup.check()
    sup.check()
    assert h.state is EngineState.DOWN and back == []
    engine.alive = True
    sup.check()
    assert h.state is EngineState.UP and back == ["replayed"]


def test_a_failing_replay_does_not_stop_supervision() -> None:
    clock, engine = Clock(), FakeEngine(alive=False)
    h = health(clock)

    def broken() -> None:
        raise RuntimeError("repair crashed")

    done: list[str] = []
    sup = Supervisor([Watch(health=h, probe=engine.probe, on_back=[broken, lambda: done.append("next")])], clock=clock)
    sup.check()
    engine.alive = True
    sup.check()
    assert done == ["next"] and h.state is EngineState.UP


def test_backoff_is_bounded_and_jittered() -> None:
    delays = backoff_delays(0.5, 30.0, rng=random.Random(1))
    got = [next(delays) for _ in range(12)]
    assert all(0.25 <= d <= 30.0 for d in got)
    assert max(got[-4:]) > 14.0  # reached the cap's range
    assert len(set(got)) == len(got)  # drawn, not fixed


@contextmanager
def ollama_on(port: int, models: list[str]) -> Iterator[FakeOllama]:
    """The Ollama fake on a fixed loopback port (so that it can come back where it was)."""
    fake = FakeOllama(models=models)
    server = _FixedPortServer(fake, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_an_llm_server_that_goes_away_fails_fast_and_is_used_again_when_back() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = OllamaLLM(f"http://127.0.0.1:{port}", "llama3.1:8b", retries=0, sleep=lambda s: None)
    h = EngineHealth("llm", breaker=llm.breaker)
    sup = Supervisor([Watch(health=h, probe=llm.reachable)])
    try:
        with ollama_on(port, ["llama3.1:8b"]):
            sup.check()
            assert h.state is EngineState.UP
        sup.check()  # gone: seen down, the model's breaker opened
        assert h.state is EngineState.DOWN and llm.breaker.state is BreakerState.OPEN
        with pytest.raises(LLMUnavailable, match="circuit breaker open"):
            llm.chat([ChatMessage(role="user", content="hi")])
        with ollama_on(port, ["other:7b"]) as fake:  # back, but without the model: still not an outage
            sup.check()
            assert h.state is EngineState.UP and llm.breaker.state is BreakerState.CLOSED
            assert llm.available() is False  # what the explainer asks: the model is missing
            fake.models.append("llama3.1:8b")
            assert llm.chat([ChatMessage(role="user", content="hi")]).content == "{}"
    finally:
        llm.close()
