"""The detection lease on the real embedded FalkorDB (a Redis key): one holder, hand-over on expiry, and the
schedule in `devmesh serve` running detection on the holder only."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from api.detect_schedule import detect_loop, keep_lease
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
            tasks[name].append(asyncio.create_task(detect_loop(counter(name), 0.01, lease)))

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
