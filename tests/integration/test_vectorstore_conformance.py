"""One conformance suite for every VectorStore backend that runs here.

"edge" is Qdrant Edge in-process; "client-local" is qdrant-client's local mode (path-backed), which stands
in for a Qdrant server.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from core.errors import EngineUnavailable, InvalidInput, NotFound
from core.settings import Settings
from retrieval.qdrant_edge import EdgeVectorStore
from retrieval.qdrant_server import ServerVectorStore
from retrieval.vector_factory import open_vector_store
from retrieval.vectors import VectorFilter, VectorPoint, VectorStore

DIM = 4
E1, E2, E3, E4 = (np.eye(DIM, dtype=np.float32)[i] for i in range(DIM))
HALF = float(1 / math.sqrt(2))

Opener = Callable[[], VectorStore]


@pytest.fixture(params=["edge", "client-local"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """A function that opens the backend on the same directory each time it is called."""
    opened: list[VectorStore] = []

    def opener() -> VectorStore:
        store: VectorStore
        if request.param == "edge":
            store = EdgeVectorStore(tmp_path / "qdrant")
        else:
            store = ServerVectorStore(QdrantClient(path=str(tmp_path / "qdrant-local")))
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Opener) -> VectorStore:
    return open_store()


def _unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def _services(store: VectorStore) -> None:
    """Five points with payloads to filter on; their cosines with E1 are 1, 0.707, 0, -0.0995, -1."""
    store.ensure_collection("logs", DIM)
    rows = [
        ("a", E1, {"service": "api", "ts": 10, "errors": 0, "error": False, "score": 0.5}),
        ("b", _unit(1, 1, 0, 0), {"service": "db", "ts": 20, "errors": 3, "error": True, "score": 1.5}),
        ("c", E2, {"service": "web", "ts": 30, "errors": 5, "error": True, "score": 2.5}),
        ("d", _unit(-0.1, 0, 1, 0), {"service": "api", "ts": 40, "errors": 1, "error": False, "score": 3.5}),
        ("e", -E1, {"service": "db", "ts": 50, "errors": 3, "error": True, "score": 4.5}),
    ]
    store.upsert("logs", [VectorPoint(id=i, vector=v, payload=p) for i, v, p in rows])


def _ids(store: VectorStore, flt: VectorFilter, limit: int = 10) -> list[str]:
    return [h.id for h in store.search("logs", E1, limit=limit, filter=flt)]


def test_ensure_collection_is_idempotent(store: VectorStore) -> None:
    assert store.collections() == []
    store.ensure_collection("alpha", DIM)
    store.upsert("alpha", [VectorPoint(id="x", vector=E1)])
    store.ensure_collection("alpha", DIM)
    store.ensure_collection("beta", 8)
    assert store.collections() == ["alpha", "beta"]
    assert store.count("alpha") == 1
    assert store.count("beta") == 0


def test_ensure_collection_with_other_dimension_is_refused(store: VectorStore) -> None:
    store.ensure_collection("alpha", DIM)
    with pytest.raises(InvalidInput, match="4-d"):
        store.ensure_collection("alpha", 8)


def test_bad_collection_name_and_missing_collection(store: VectorStore) -> None:
    with pytest.raises(InvalidInput):
        store.ensure_collection("../escape", DIM)
    with pytest.raises(NotFound):
        store.count("nothing")
    with pytest.raises(NotFound):
        store.search("nothing", E1)


def test_upsert_get_count_delete(store: VectorStore) -> None:
    store.ensure_collection("c", DIM)
    store.upsert("c", [VectorPoint(id=f"p{i}", vector=np.eye(DIM)[i], payload={"i": i}) for i in range(DIM)])
    assert store.count("c") == 4

    got = store.get("c", ["p2", "missing", "p0"])
    assert [p.id for p in got] == ["p2", "p0"]
    assert got[0].payload == {"i": 2}
    assert got[0].vector.dtype == np.float32
    np.testing.assert_allclose(got[0].vector, E3, atol=1e-6)

    store.delete("c", ["p0", "p3", "never-there"])
    assert store.count("c") == 2
    assert [p.id for p in store.get("c", ["p0", "p1", "p2", "p3"])] == ["p1", "p2"]
    assert {h.id for h in store.search("c", E1, limit=10)} == {"p1", "p2"}


def test_stored_vectors_are_normalized_for_cosine(store: VectorStore) -> None:
    store.ensure_collection("c", DIM)
    store.upsert("c", [VectorPoint(id="long", vector=np.array([3, 4, 0, 0], dtype=np.float32))])
    (point,) = store.get("c", ["long"])
    np.testing.assert_allclose(point.vector, [0.6, 0.8, 0, 0], atol=1e-6)


def test_search_order_and_scores_are_exact(store: VectorStore) -> None:
    _services(store)
    hits = store.search("logs", E1, limit=10)
    assert [h.id for h in hits] == ["a", "b", "c", "d", "e"]
    expected = [1.0, HALF, 0.0, -0.1 / math.sqrt(1.01), -1.0]
    assert [h.score for h in hits] == pytest.approx(expected, abs=1e-6)
    assert [h.id for h in store.search("logs", E1, limit=2)] == ["a", "b"]
    top = store.search("logs", _unit(0, 1, 0, 0.1), limit=2)
    assert [h.id for h in top] == ["c", "b"]
    assert top[0].score == pytest.approx(float(1 / math.sqrt(1.01)), abs=1e-6)
    assert top[1].score == pytest.approx(float(HALF / math.sqrt(1.01)), abs=1e-6)
    assert top[0].payload == {"service": "web", "ts": 30, "errors": 5, "error": True, "score": 2.5}


def test_search_rejects_wrong_dimension(store: VectorStore) -> None:
    store.ensure_collection("c", DIM)
    with pytest.raises(InvalidInput):
        store.search("c", np.ones(3, dtype=np.float32))
    with pytest.raises(InvalidInput):
        store.upsert("c", [VectorPoint(id="x", vector=np.ones(5, dtype=np.float32))])
    with pytest.raises(InvalidInput):
        store.upsert("c", [VectorPoint(id="x", vector=np.array([1, np.nan, 0, 0], dtype=np.float32))])
    assert store.count("c") == 0


def test_match_filters(store: VectorStore) -> None:
    _services(store)
    assert _ids(store, VectorFilter(match={"service": "api"})) == ["a", "d"]
    assert _ids(store, VectorFilter(match={"service": ["db", "web"]})) == ["b", "c", "e"]
    assert _ids(store, VectorFilter(match={"errors": 3})) == ["b", "e"]
    assert _ids(store, VectorFilter(match={"errors": [0, 5]})) == ["a", "c"]
    assert _ids(store, VectorFilter(match={"error": True})) == ["b", "c", "e"]
    assert _ids(store, VectorFilter(match={"error": False})) == ["a", "d"]
    assert _ids(store, VectorFilter(match={"service": "db", "errors": 3})) == ["b", "e"]
    assert _ids(store, VectorFilter(match={"service": "db"}), limit=1) == ["b"]
    assert _ids(store, VectorFilter(match={"service": "nope"})) == []
    assert _ids(store, VectorFilter(match={"service": []})) == []
    assert _ids(store, VectorFilter(match={"no_such_field": "x"})) == []
    with pytest.raises(InvalidInput):
        _ids(store, VectorFilter(match={"error": [True, False]}))  # type: ignore[dict-item]


def test_range_filters(store: VectorStore) -> None:
    _services(store)
    assert _ids(store, VectorFilter(ranges={"ts": (20, 40)})) == ["b", "c", "d"]
    assert _ids(store, VectorFilter(ranges={"ts": (35, None)})) == ["d", "e"]
    assert _ids(store, VectorFilter(ranges={"ts": (None, 20)})) == ["a", "b"]
    assert _ids(store, VectorFilter(ranges={"score": (1.5, 2.5)})) == ["b", "c"]
    assert _ids(store, VectorFilter(ranges={"ts": (None, None)})) == ["a", "b", "c", "d", "e"]
    assert _ids(store, VectorFilter(match={"service": "db"}, ranges={"ts": (30, None)})) == ["e"]
    assert _ids(store, VectorFilter(ranges={"ts": (41, 49)})) == []


def test_string_ids_round_trip(store: VectorStore) -> None:
    store.ensure_collection("c", DIM)
    ids = ["tmpl:3f9a", "runbook/db-failover.md#2", "incident 2024-01-01T00:00:00Z", "ñandú-ü", "1"]
    store.upsert("c", [VectorPoint(id=i, vector=np.eye(DIM)[n % DIM]) for n, i in enumerate(ids)])
    assert [p.id for p in store.get("c", ids)] == ids
    assert {h.id for h in store.search("c", E1, limit=10)} == set(ids)
    assert store.search("c", E2, limit=1)[0].id == "runbook/db-failover.md#2"


def test_payload_round_trip(store: VectorStore) -> None:
    store.ensure_collection("c", DIM)
    payload = {
        "text": "Connection refused to <*>:5432 — retry ✓",
        "count": 123456789012,
        "ratio": 0.125,
        "flag": True,
        "services": ["api", "db"],
        "nested": {"k": [1, 2, 3], "m": {"deep": "yes"}},
        "empty": "",
        "missing": None,
    }
    store.upsert("c", [VectorPoint(id="p", vector=E1, payload=payload)])
    assert store.get("c", ["p"])[0].payload == payload
    assert store.search("c", E1, limit=1)[0].payload == payload


def test_upsert_of_existing_id_replaces_it(store: VectorStore) -> None:
    store.ensure_collection("c", DIM)
    store.upsert("c", [VectorPoint(id="p", vector=E1, payload={"v": 1, "old": "x"})])
    store.upsert("c", [VectorPoint(id="p", vector=E2, payload={"v": 2})])
    assert store.count("c") == 1
    (point,) = store.get("c", ["p"])
    assert point.payload == {"v": 2}
    np.testing.assert_allclose(point.vector, E2, atol=1e-6)
    assert store.search("c", E2, limit=1)[0].score == pytest.approx(1.0, abs=1e-6)


def test_data_persists_across_close_and_reopen(open_store: Opener) -> None:
    first = open_store()
    _services(first)
    assert _ids(first, VectorFilter(match={"service": "api"})) == ["a", "d"]
    first.delete("logs", ["c"])
    first.close()

    second = open_store()
    assert second.collections() == ["logs"]
    assert second.count("logs") == 4
    assert [p.payload["ts"] for p in second.get("logs", ["a", "e"])] == [10, 50]
    assert _ids(second, VectorFilter(match={"service": "api"})) == ["a", "d"]
    assert _ids(second, VectorFilter(ranges={"ts": (15, 45)})) == ["b", "d"]
    hits = second.search("logs", E1, limit=2)
    assert [h.id for h in hits] == ["a", "b"]
    assert hits[1].score == pytest.approx(HALF, abs=1e-6)
    with pytest.raises(InvalidInput):
        second.ensure_collection("logs", 8)


def test_optimize_keeps_results(store: VectorStore) -> None:
    _services(store)
    store.optimize()  # type: ignore[attr-defined]
    assert [h.id for h in store.search("logs", E1, limit=2)] == ["a", "b"]
    assert store.count("logs") == 5


def test_open_vector_store_picks_backend(tmp_path: Path) -> None:
    edge = open_vector_store(Settings(home=tmp_path, _env_file=None))
    assert isinstance(edge, EdgeVectorStore)
    assert edge.path == tmp_path / "qdrant"
    edge.close()
    server = open_vector_store(Settings(home=tmp_path, qdrant_url="http://127.0.0.1:1", _env_file=None))
    assert isinstance(server, ServerVectorStore)
    with pytest.raises(EngineUnavailable, match="DEVMESH_QDRANT_URL"):
        server.count("logs")
    server.close()


# -- Qdrant Edge specifics ------------------------------------------------------------------------


def test_edge_indexes_filtered_fields_once_and_keeps_them(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path)
    _services(store)
    assert store.payload_indexes("logs") == []
    _ids(store, VectorFilter(match={"service": "api"}, ranges={"ts": (0, 100)}))
    assert store.payload_indexes("logs") == ["service", "ts"]
    store.upsert("logs", [VectorPoint(id="f", vector=E4, payload={"service": "api", "ts": 60})])
    store.close()
    reopened = EdgeVectorStore(tmp_path)
    assert reopened.payload_indexes("logs") == ["service", "ts"]
    assert _ids(reopened, VectorFilter(match={"service": "api"})) == ["a", "f", "d"]
    assert _ids(reopened, VectorFilter(ranges={"ts": (45, 70)})) == ["f", "e"]
    reopened.close()


def test_edge_shard_in_use_elsewhere_is_engine_unavailable(tmp_path: Path) -> None:
    first = EdgeVectorStore(tmp_path)
    first.ensure_collection("c", DIM)
    second = EdgeVectorStore(tmp_path)
    with pytest.raises(EngineUnavailable, match="another DevMesh process"):
        second.count("c")
    first.close()
    assert second.count("c") == 0
    second.close()


@pytest.mark.slow
def test_edge_bulk_upsert_builds_hnsw(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((7000, 384)).astype(np.float32)
    points = [VectorPoint(id=f"p{i}", vector=v, payload={"i": i}) for i, v in enumerate(vectors)]

    lazy = EdgeVectorStore(tmp_path / "lazy", optimize_after=None)
    lazy.ensure_collection("big", 384)
    lazy.upsert("big", points)
    assert lazy.indexed_vectors("big") == 0  # searched exactly until optimized
    lazy.close()

    bulk = EdgeVectorStore(tmp_path / "bulk", optimize_after=5000)
    bulk.ensure_collection("big", 384)
    bulk.upsert("big", points)
    assert bulk.indexed_vectors("big") == 7000
    for i in (0, 4321, 6999):
        top = bulk.search("big", vectors[i], limit=1)
        assert top[0].id == f"p{i}"
        assert top[0].score == pytest.approx(1.0, abs=1e-5)
    assert bulk.count("big") == 7000
    bulk.close()


def test_export_points_reads_every_point_whole_page_by_page(store: VectorStore) -> None:
    _services(store)
    assert store.dimension("logs") == DIM
    with pytest.raises(NotFound):
        store.dimension("missing")
    got = {p.id: p for p in store.export_points("logs", page=2)}  # three pages
    assert sorted(got) == ["a", "b", "c", "d", "e"]
    assert got["b"].payload == {"service": "db", "ts": 20, "errors": 3, "error": True, "score": 1.5}
    assert np.allclose(got["b"].vector, _unit(1, 1, 0, 0), atol=1e-6)
    with pytest.raises(NotFound):
        list(store.export_points("missing"))
