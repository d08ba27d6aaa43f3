"""DEVMESH_NAMESPACE: two deployments on the same servers (one FalkorDB, one ClickHouse, one Qdrant) do not see
each other's data; unset, every name is as before."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from api.detect_schedule import lease_key
from api.wiring import open_services
from core.errors import InvalidInput
from core.settings import Settings
from graph.lease import DETECT_LEASE
from graph.server import connect_url
from retrieval.collections import INCIDENTS, TEMPLATES
from retrieval.events.factory import namespaced_database, open_event_store
from retrieval.vector_factory import open_vector_store
from retrieval.vectors import VectorPoint
from tests.conftest import drop_graph
from tests.fakes.clickhouse_http import StandIn

T0 = 1_700_000_000 * 1_000_000_000


def lines(n: int, service: str) -> pa.Table:
    return pa.table(
        {
            "ts_ns": [T0 + i * 1_000_000_000 for i in range(n)],
            "service": [service] * n,
            "host": ["node-1"] * n,
            "pod": [f"{service}-abc-1"] * n,
            "level": ["INFO"] * n,
            "message": [f"{service} line {i}" for i in range(n)],
            "trace_id": [""] * n,
            "template_id": ["T1"] * n,
        }
    )


def test_unset_namespace_leaves_every_name_as_it_is(tmp_path: Path) -> None:
    s = Settings(home=tmp_path / "home", graph_name="devmesh")
    assert s.namespace is None
    assert s.graph_key == "devmesh"
    assert lease_key(s, DETECT_LEASE) == "devmesh:lease:detect:devmesh"
    assert s.namespaced(TEMPLATES) == "templates"
    assert Settings(home=tmp_path / "home", namespace="").namespace is None  # DEVMESH_NAMESPACE= in compose
    t = Settings(home=tmp_path / "home", graph_name="devmesh", namespace="prod")
    assert t.graph_key == "prod_devmesh"
    assert lease_key(t, DETECT_LEASE) == "prod_devmesh:lease:detect:devmesh"
    assert namespaced_database("clickhouse://u:p@ch:8123/devmesh", "prod") == "prod_devmesh"
    assert namespaced_database("chdb:///data/ch", "prod") == "prod_default"


@pytest.mark.parametrize("bad", ["1abc", "a-b", "a b", "x" * 41, "a;DROP"])
def test_namespace_must_be_a_plain_name(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, namespace=bad)


def test_a_database_that_cannot_be_prefixed_is_refused() -> None:
    with pytest.raises(InvalidInput, match="cannot take a namespace"):
        namespaced_database("clickhouse://ch:8123/my-db", "prod")


def test_clickhouse_database_per_namespace(tmp_path: Path) -> None:
    pytest.importorskip("chdb", reason="chdb is not installed (pip install 'devmesh[clickhouse]')")
    url = f"chdb://{tmp_path / 'ch'}"  # chDB: one session a process, so the deployments open one after the other
    for namespace, n in ((None, 3), ("blue", 5), ("green", 0)):
        store = open_event_store(tmp_path / "unused.duckdb", url, namespace=namespace)
        try:
            assert store.sql("SELECT currentDatabase()")[1] == [(f"{namespace}_default" if namespace else "default",)]
            if n:
                assert store.append_logs(lines(n, f"svc-{namespace}")).inserted == n
        finally:
            store.close()
    for namespace, n in ((None, 3), ("blue", 5), ("green", 0)):
        store = open_event_store(tmp_path / "unused.duckdb", url, namespace=namespace)
        try:
            assert store.sql("SELECT count(), groupUniqArray(service) FROM logs")[1] == [
                (n, [f"svc-{namespace}"] if n else [])
            ]
        finally:
            store.close()
    assert not (tmp_path / "unused.duckdb").exists()


def test_two_deployments_share_the_servers_and_not_their_data(tmp_path: Path, falkordb_url: str) -> None:
    pytest.importorskip("chdb", reason="chdb is not installed (pip install 'devmesh[clickhouse]')")
    shared: dict[str, Any] = {
        "falkordb_url": falkordb_url,
        "events_url": f"chdb://{tmp_path / 'ch'}",
        "graph_name": "nsgraph",
        "embedder": "none",
        "retain_logs": "none",
    }
    blue = Settings(home=tmp_path / "blue", namespace="blue", **shared)
    green = Settings(home=tmp_path / "green", namespace="green", **shared)
    try:
        with open_services(blue) as svc:
            assert svc.events.append_logs(lines(4, "blue-svc")).inserted == 4
            assert svc.graph is not None
            svc.graph.graph.query("MERGE (:Service {name: 'blue-svc'})")
        with open_services(green) as svc:
            assert svc.events.sql("SELECT count() FROM logs")[1] == [(0,)]
            assert svc.graph is not None
            assert svc.graph.services() == []
            svc.graph.graph.query("MERGE (:Service {name: 'green-svc'})")
        with open_services(blue) as svc:
            assert svc.events.sql("SELECT count() FROM logs")[1] == [(4,)]
            assert svc.graph is not None
            assert svc.graph.services() == ["blue-svc"]
        conn = connect_url(falkordb_url, "nsgraph")
        try:
            graphs = set(conn.db.list_graphs())
        finally:
            conn.close()
        assert {"blue_nsgraph", "green_nsgraph"} <= graphs
        assert "nsgraph" not in graphs
    finally:
        for name in ("blue_nsgraph", "green_nsgraph"):
            drop_graph(falkordb_url, name)


def test_vector_collections_per_namespace(tmp_path: Path) -> None:
    home = tmp_path / "home"
    vec = np.ones(4, dtype=np.float32)
    blue = open_vector_store(Settings(home=home, namespace="blue"))
    try:
        blue.ensure_collection(TEMPLATES, 4)
        blue.upsert(TEMPLATES, [VectorPoint(id="t1", vector=vec, payload={"service": "blue-svc"})])
        assert blue.collections() == [TEMPLATES]
    finally:
        blue.close()
    plain = open_vector_store(Settings(home=home))
    try:
        assert plain.collections() == ["blue_templates"]  # the server's names: the prefix is visible there only
        plain.ensure_collection(INCIDENTS, 4)
    finally:
        plain.close()
    green = open_vector_store(Settings(home=home, namespace="green"))
    try:
        assert green.collections() == []
        green.ensure_collection(TEMPLATES, 4)
        assert green.count(TEMPLATES) == 0
        assert green.search(TEMPLATES, vec, limit=5) == []
    finally:
        green.close()
    blue = open_vector_store(Settings(home=home, namespace="blue"))
    try:
        assert blue.count(TEMPLATES) == 1
        assert [h.id for h in blue.search(TEMPLATES, vec, limit=5)] == ["t1"]
    finally:
        blue.close()


def test_two_namespaces_at_once_on_one_clickhouse_server(clickhouse_http: StandIn) -> None:
    """Over ClickHouse's HTTP interface (the stand-in), two deployments open at the same time: each its own
    database, named after the URL's and created by the first open, and nothing in the URL's own."""
    base = f"ns{uuid.uuid4().hex[:8]}"
    url = clickhouse_http.database(base)  # the URL's database exists (compose's CLICKHOUSE_DB); the namespace's not
    blue = open_event_store(Path("unused.duckdb"), url, namespace="blue")
    green = open_event_store(Path("unused.duckdb"), url, namespace="green")
    try:
        assert blue.append_logs(lines(6, "blue-svc")).inserted == 6
        assert green.append_logs(lines(2, "green-svc")).inserted == 2
        assert blue.sql("SELECT currentDatabase(), count(), groupUniqArray(service) FROM logs")[1] == [
            (f"blue_{base}", 6, ["blue-svc"])
        ]
        assert green.sql("SELECT currentDatabase(), count(), groupUniqArray(service) FROM logs")[1] == [
            (f"green_{base}", 2, ["green-svc"])
        ]
        plain = open_event_store(Path("unused.duckdb"), url)
        try:
            assert plain.sql("SELECT currentDatabase(), count() FROM logs")[1] == [(base, 0)]
        finally:
            plain.close()
    finally:
        blue.close()
        green.close()
    assert not Path("unused.duckdb").exists()
