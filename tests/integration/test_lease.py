"""The detection lease on the real embedded FalkorDB (a Redis key): one holder, hand-over on expiry, and the
schedule in `devmesh serve` running detection on the holder only."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.detect_schedule import keep_lease, leased_loop, scheduled_lease
from api.http.app import create_app
from api.wiring import Services
from core.settings import Settings
from detect.runner import MARK
from graph.lease import Lease

WAIT_S = 30.0
"""Bound on any wait below (the lease expires in a fraction of it)."""


@pytest.fixture
def client(falkordb_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(falkordb_url, decode_responses=True)
    yield c
    c.close()


@pytest.fixture
def key(client: redis.Redis) -> Iterator[str]:
    k = f"test:lease:{uuid.uuid4().hex}"
    yield k
    client.delete(k)


def wait_until(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_two_contenders_one_wins(client: redis.Redis, key: str) -> None:
    a = Lease(client, key, ttl_ms=30_000, token="a")
    b = Lease(client, key, ttl_ms=30_000, token="b")
    assert a.keep() is True
    assert b.keep() is False
    assert [a.held, b.held] == [True, False]
    assert a.holder() == b.holder() == "a"
    for _ in range(5):  # the holder renews, the loser keeps standing by
        assert a.keep() is True
        assert b.keep() is False
    assert b.renew() is False and b.release() is False  # the loser can neither extend nor drop a's lease
    assert client.get(key) == "a"


def test_release_hands_over_at_once(client: redis.Redis, key: str) -> None:
    a = Lease(client, key, ttl_ms=30_000, token="a")
    b = Lease(client, key, ttl_ms=30_000, token="b")
    assert a.acquire() and not b.acquire()
    assert a.release() is True
    assert a.held is False
    assert b.keep() is True
    assert a.keep() is False
    assert a.holder() == "b"


def test_expiry_hands_over_and_the_former_holder_stops(client: redis.Redis, key: str) -> None:
    a = Lease(client, key, ttl_ms=200, token="a")
    b = Lease(client, key, ttl_ms=200, token="b")
    assert a.keep() is True
    assert b.keep() is False
    # a stops renewing (it hangs, or cannot reach the server): the key expires and b takes it
    assert wait_until(b.keep)
    assert b.holder() == "b"
    # a's next renewal fails: it no longer holds the lease, and cannot extend or delete b's
    assert a.held is True
    assert a.keep() is False
    assert a.held is False
    assert a.release() is False
    assert client.get(key) == "b"
    assert b.keep() is True


def test_unreachable_server_counts_as_not_held(client: redis.Redis, key: str) -> None:
    a = Lease(client, key, ttl_ms=30_000, token="a")
    assert a.keep() is True
    a.client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)  # nothing listens on port 1
    a._renew = a.client.register_script("return 1")
    assert a.keep() is False
    assert a.held is False


def test_schedule_runs_detection_on_the_holder_only(client: redis.Redis, key: str) -> None:
    runs = {"a": 0, "b": 0}
    leases = {name: Lease(client, key, ttl_ms=300, token=name) for name in runs}

    def counter(name: str) -> Callable[[], object]:
        def run() -> object:
            runs[name] += 1
            return None

        return run

    async def scenario() -> tuple[dict[str, int], dict[str, int]]:
        tasks = {name: [asyncio.create_task(keep_lease(lease))] for name, lease in leases.items()}
        for name, lease in leases.items():
            tasks[name].append(asyncio.create_task(leased_loop(counter(name), 0.01, lease)))

        async def until(check: Callable[[], bool]) -> None:
            deadline = time.monotonic() + WAIT_S
            while not check() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)

        await until(lambda: sum(runs.values()) >= 20)
        first = dict(runs)
        holder = next(n for n, lease in leases.items() if lease.held)
        for t in tasks[holder]:  # the holder's server stops: its lease is released on the way out
            t.cancel()
        await asyncio.gather(*tasks[holder], return_exceptions=True)
        other = "b" if holder == "a" else "a"
        before = runs[other]
        await until(lambda: runs[other] >= before + 5)
        for t in tasks[other]:
            t.cancel()
        await asyncio.gather(*tasks[other], return_exceptions=True)
        return first, dict(runs)

    first, after = asyncio.run(scenario())
    assert sorted(first.values())[0] == 0, first  # while both ran, one replica ran every detection
    assert min(after.values()) >= 5, after  # then the other took over
    assert client.get(key) is None  # and released it when stopped


def test_replicas_of_one_deployment_contend_and_two_deployments_do_not(falkordb_url: str, tmp_path: Path) -> None:
    def replica(namespace: str | None) -> Lease:
        settings = Settings(home=tmp_path, graph_name=f"g{uuid.uuid4().hex[:6]}", namespace=namespace)
        lease = scheduled_lease(settings.model_copy(update={"graph_name": "leasegraph"}), falkordb_url)
        assert lease is not None
        return lease

    blue_1, blue_2, green = replica("blue"), replica("blue"), replica("green")
    try:
        assert blue_1.key == blue_2.key == "blue_devmesh:lease:detect:leasegraph"
        assert green.key == "green_devmesh:lease:detect:leasegraph"
        assert [blue_1.keep(), blue_2.keep(), green.keep()] == [True, False, True]
        assert scheduled_lease(Settings(home=tmp_path), None) is None  # no graph server: no lease, detection runs
    finally:
        for lease in (blue_1, green):
            lease.release()
        for lease in (blue_1, blue_2, green):
            lease.client.close()


def test_two_servers_on_one_graph_detect_one_at_a_time(
    settings: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    """Two `devmesh serve` apps on one graph server with scheduled detection: only the lease holder's run marker
    moves; when it stops (releasing the lease) the other takes over."""
    scheduled = {"detect_every": "1s", "detect_lease_s": 1.0, "prune_every": "none"}
    a = settings.model_copy(update={**scheduled, "home": settings.home / "a"})
    b = settings.model_copy(update={**scheduled, "home": settings.home / "b"})

    def marker(client: TestClient) -> object:
        return client.app.state.services.events.kv.get(MARK)  # type: ignore[attr-defined]

    first = TestClient(create_app(a, open_fn=open_fn))
    first.__enter__()  # the holder's server, stopped on purpose below
    running = True
    try:
        assert wait_until(lambda: marker(first) is not None)
        with TestClient(create_app(b, open_fn=open_fn)) as second:
            for _ in range(3):  # several of its ticks: standing by, its marker untouched
                time.sleep(1.0)
                assert marker(second) is None
            first.__exit__(None, None, None)  # the holder stops and releases the lease
            running = False
            assert wait_until(lambda: marker(second) is not None)
    finally:
        if running:
            first.__exit__(None, None, None)
