"""DEVMESH_RATE_SHARED: per-caller rate limits kept on the FalkorDB server (real, embedded), so that replicas
behind a balancer share one limit per caller; each replica falls back to its own while the server is gone."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.http.ratelimit import FallbackBuckets, TokenBuckets
from api.wiring import Services
from core.settings import Settings
from graph.buckets import SharedTokenBuckets


@pytest.fixture
def client(falkordb_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(falkordb_url)
    yield c
    c.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    p = f"test:rate:{uuid.uuid4().hex}"
    yield p
    for key in client.scan_iter(f"{p}*"):
        client.delete(key)


def test_two_replicas_share_a_callers_bucket(client: redis.Redis, prefix: str) -> None:
    a = SharedTokenBuckets(client, prefix, 3)
    b = SharedTokenBuckets(client, prefix, 3)
    assert [a.take("key:1"), b.take("key:1"), a.take("key:1")] == [0.0, 0.0, 0.0]
    waits = [b.take("key:1"), a.take("key:1")]
    assert all(0 < w <= 20.0 for w in waits), waits  # a token every 20 s at 3 a minute
    assert a.take("key:2") == 0.0  # another caller has its own bucket
    other = SharedTokenBuckets(client, prefix + ":other", 3)  # another deployment (namespace) too
    assert other.take("key:1") == 0.0
    assert client.pttl(f"{prefix}:key:1") > 0  # kept only as long as the bucket needs to refill


def test_a_lost_server_falls_back_to_the_replicas_own_limit(prefix: str) -> None:
    gone = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)  # nothing listens on port 1
    now = [0.0]
    buckets = FallbackBuckets(
        SharedTokenBuckets(gone, prefix, 2), TokenBuckets(2, clock=lambda: now[0]), lambda: now[0]
    )
    assert [buckets.take("addr:x"), buckets.take("addr:x")] == [0.0, 0.0]
    assert buckets.take("addr:x") == pytest.approx(30.0)  # the local bucket: 2 a minute


def test_two_servers_with_shared_limits_refuse_the_third_request(
    settings: Settings, open_fn: Callable[[Settings], Services], client: redis.Redis
) -> None:
    shared = {"rate_shared": True, "rate_ingest_per_min": 2}
    a = settings.model_copy(update={**shared, "home": settings.home / "a"})
    b = settings.model_copy(update={**shared, "home": settings.home / "b"})
    line = {"events": [{"timestamp": 1_700_000_000, "message": "hello", "service": "s"}]}
    try:
        with TestClient(create_app(a, open_fn=open_fn)) as first, TestClient(create_app(b, open_fn=open_fn)) as second:
            assert first.post("/ingest/logs", json=line).status_code == 200
            assert second.post("/ingest/logs", json=line).status_code == 200
            refused = first.post("/ingest/logs", json=line)
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            assert second.post("/ingest/logs", json=line).status_code == 429
    finally:
        for key in client.scan_iter(f"devmesh:rate:{settings.graph_name}:*"):
            client.delete(key)
