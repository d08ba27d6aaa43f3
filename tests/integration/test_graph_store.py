"""GraphStore and the schema, against one real embedded FalkorDB per session (neighborhoods:
tests/integration/test_graph_neighborhood.py).

Each test works in its own graph (named after the test), so tests share the server, not state. The
session's server is the `falkordb_url` fixture of tests/conftest.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from falkordb import FalkorDB, Graph

from core.errors import InvalidInput
from core.telemetry import CallEdge, PodPlacement, Topology
from graph.neighborhood import neighborhood
from graph.schema import NODE_KEYS, ensure_schema, existing_indexes, wanted_indexes
from graph.server import connect_url
from graph.store import GraphStore
from tests.graphs import own_graph, small_topology


@pytest.fixture
def db_graph(falkordb_url: str, request: pytest.FixtureRequest) -> Iterator[tuple[FalkorDB, Graph]]:
    yield from own_graph(falkordb_url, request)


@pytest.fixture
def graph(db_graph: tuple[FalkorDB, Graph]) -> Graph:
    ensure_schema(db_graph[1])
    return db_graph[1]


@pytest.fixture
def store(graph: Graph) -> GraphStore:
    return GraphStore(graph)


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


# schema


def test_ensure_schema_creates_every_key_index_once(db_graph: tuple[FalkorDB, Graph]) -> None:
    _, graph = db_graph
    assert existing_indexes(graph) == set()
    assert sorted(ensure_schema(graph)) == sorted(wanted_indexes())
    assert ensure_schema(graph) == []
    assert existing_indexes(graph) == set(wanted_indexes())
    assert set(NODE_KEYS.items()) <= existing_indexes(graph)


def test_reads_on_a_graph_that_does_not_exist_yet_are_empty(db_graph: tuple[FalkorDB, Graph]) -> None:
    store = GraphStore(db_graph[1])
    assert store.services() == []
    assert store.call_edges() == []
    assert set(store.counts().values()) == {0}
    assert store.shortest_call_path("A", "B") == []
    assert neighborhood(db_graph[1], [("Service", "A")]).nodes == []


# topology


def test_topology_upsert_is_idempotent_with_exact_values(store: GraphStore) -> None:
    topo = small_topology()
    store.upsert_topology(topo)
    first = store.counts()
    store.upsert_topology(topo)
    assert store.counts() == first
    assert nonzero(first) == {
        "Service": 5,
        "Pod": 3,
        "Node": 2,
        "CALLS": 4,
        "INSTANCE_OF": 3,
        "RUNS_ON": 3,
    }
    assert store.services() == ["A", "B", "C", "D", "E"]
    assert store.call_edges() == sorted(topo.calls, key=lambda c: (c.caller, c.callee))
    assert store.pods_of("A") == [PodPlacement(pod="a1", service="A", host="h1")]
    assert store.pods_of("C") == []


def test_calls_are_replaced_by_default_and_accumulated_on_request(store: GraphStore) -> None:
    store.upsert_topology(small_topology())
    store.upsert_topology(
        Topology(calls=[CallEdge(caller="A", callee="B", calls=10, errors=1, mean_ms=2.0, p95_ms=5.0)])
    )
    edges = {(c.caller, c.callee): c for c in store.call_edges()}
    assert edges[("A", "B")] == CallEdge(caller="A", callee="B", calls=10, errors=1, mean_ms=2.0, p95_ms=5.0)
    assert edges[("B", "C")].calls == 80  # edges not named are left alone

    store.upsert_topology(
        Topology(calls=[CallEdge(caller="A", callee="B", calls=30, errors=2, mean_ms=6.0, p95_ms=4.0)]),
        calls_mode="accumulate",
    )
    ab = {(c.caller, c.callee): c for c in store.call_edges()}[("A", "B")]
    assert (ab.calls, ab.errors, ab.p95_ms) == (40, 3, 5.0)
    assert ab.mean_ms == pytest.approx((10 * 2.0 + 30 * 6.0) / 40)
    with pytest.raises(InvalidInput):
        store.upsert_topology(Topology(), calls_mode="sum")  # type: ignore[arg-type]


def test_duplicate_call_rows_in_one_topology_are_combined(store: GraphStore) -> None:
    store.upsert_topology(
        Topology(
            calls=[
                CallEdge(caller="x", callee="y", calls=1, errors=0, mean_ms=10.0, p95_ms=10.0),
                CallEdge(caller="x", callee="y", calls=3, errors=2, mean_ms=30.0, p95_ms=50.0),
                CallEdge(caller="", callee="y", calls=3),
            ]
        )
    )
    assert store.call_edges() == [CallEdge(caller="x", callee="y", calls=4, errors=2, mean_ms=25.0, p95_ms=50.0)]
    assert store.services() == ["x", "y"]


def test_a_pod_that_moves_keeps_one_host_and_one_service(store: GraphStore) -> None:
    store.upsert_topology(small_topology())
    store.upsert_topology(Topology(pods=[PodPlacement(pod="a1", service="B", host="h9")]))
    assert store.pods_of("A") == []
    assert store.pods_of("B") == [
        PodPlacement(pod="a1", service="B", host="h9"),
        PodPlacement(pod="b1", service="B", host="h1"),
    ]
    store.upsert_topology(Topology(pods=[PodPlacement(pod="a1", service="B", host="")]))
    assert store.pods_of("B")[0].host == "h9"  # an unknown host does not erase the known one
    assert store.counts()["RUNS_ON"] == 3


# templates, operations, runbooks, incidents


def test_templates_keep_per_service_counts_and_a_total(store: GraphStore) -> None:
    rows = [
        {"service": "A", "template_id": "t1", "text": "timeout after <*> ms", "level": "ERROR", "count": 5},
        {"service": "B", "template_id": "t1", "text": "timeout after <*> ms", "level": "ERROR", "count": 7},
        {"service": "", "template_id": "t2", "text": "orphan line <*>", "level": "WARN", "count": 3},
    ]
    assert store.upsert_templates(rows) == 3
    assert store.upsert_templates(rows) == 3
    got = store.graph.ro_query("MATCH (t:LogTemplate) RETURN t.id, t.text, t.level, t.count ORDER BY t.id").result_set
    assert got == [["t1", "timeout after <*> ms", "ERROR", 12], ["t2", "orphan line <*>", "WARN", 3]]
    emits = store.graph.ro_query(
        "MATCH (s:Service)-[e:EMITS]->(t:LogTemplate) RETURN s.name, t.id, e.count ORDER BY s.name"
    ).result_set
    assert emits == [["A", "t1", 5], ["B", "t1", 7]]
    store.upsert_templates([{"service": "A", "template_id": "t1", "text": "timeout after <*> ms", "count": 1}])
    assert store.graph.ro_query("MATCH (t:LogTemplate {id: 't1'}) RETURN t.count").result_set == [[8]]
    with pytest.raises(InvalidInput, match=r"templates\[0\].template_id"):
        store.upsert_templates([{"service": "A", "template_id": "", "text": "x"}])
    with pytest.raises(InvalidInput, match=r"templates\[0\].count"):
        store.upsert_templates([{"service": "A", "template_id": "t3", "text": "x", "count": "many"}])


def test_operations_hang_off_their_service(store: GraphStore) -> None:
    store.upsert_operations([{"service": "cart", "name": "GET /cart", "calls": 9, "p95_ms": 31.5}])
    store.upsert_operations([{"service": "cart", "name": "GET /cart", "calls": 9, "p95_ms": 31.5}])
    rows = store.graph.ro_query(
        "MATCH (s:Service)-[:HAS_OPERATION]->(o:Operation) RETURN s.name, o.key, o.name, o.calls, o.p95_ms"
    ).result_set
    assert rows == [["cart", "cart::GET /cart", "GET /cart", 9, 31.5]]


def test_runbook_covers_are_replaced_on_each_upsert(store: GraphStore) -> None:
    store.upsert_templates([{"service": "A", "template_id": "t1", "text": "oom", "count": 1}])
    store.upsert_runbook("rb-1", "Cart OOM", "runbooks/cart.md", "https://wiki/cart", ["A", "B"], ["HighMem"], ["t1"])
    store.upsert_runbook("rb-1", "Cart OOM", "runbooks/cart.md", "https://wiki/cart", ["A", "B"], ["HighMem"], ["t1"])

    def covers() -> list[list[str]]:
        return store.graph.ro_query(
            "MATCH (:Runbook {id: 'rb-1'})-[:COVERS]->(x) RETURN labels(x)[0] AS l, "
            "coalesce(x.name, x.id) AS k ORDER BY l, k"
        ).result_set

    assert covers() == [["Alert", "HighMem"], ["LogTemplate", "t1"], ["Service", "A"], ["Service", "B"]]
    store.upsert_runbook("rb-1", "Cart OOM v2", "runbooks/cart.md", "", ["B"], [], ["missing-template"])
    assert covers() == [["Service", "B"]]
    assert store.graph.ro_query("MATCH (r:Runbook) RETURN r.title, r.url").result_set == [["Cart OOM v2", ""]]
    assert nonzero(store.counts()) == {
        "Service": 2,
        "LogTemplate": 1,
        "Runbook": 1,
        "Alert": 1,
        "EMITS": 1,
        "COVERS": 1,
    }


def test_incident_upsert_sets_fields_and_replaces_listed_edges(store: GraphStore) -> None:
    store.upsert_topology(small_topology())
    store.upsert_templates([{"service": "C", "template_id": "t9", "text": "db down", "count": 4}])
    store.upsert_runbook("rb-db", "DB down", "db.md", "", ["D"], [])
    store.upsert_incident({"id": "inc-0", "title": "older"})
    written = store.upsert_incident(
        {
            "id": "inc-1",
            "title": "checkout errors",
            "status": "open",
            "opened_ns": 1_700_000_000_123_456_789,
            "score": 0.75,
            "tags": ["db", "latency"],
            "meta": {"source": "detector"},
            "services": ["B", "C"],
            "nodes": ["h1"],
            "templates": ["t9", "no-such-template"],
            "runbooks": ["rb-db"],
            "root_causes": [{"service": "D", "score": 0.9, "rank": 1}],
            "metrics": [{"name": "latency_p95_s", "value": 2.5, "service": "C"}],
            "similar": ["inc-0", "inc-1"],
        }
    )
    assert written == {
        "AFFECTS": 2,
        "OBSERVED_ON": 1,
        "HAS_LOG": 1,
        "RELATED_RUNBOOK": 1,
        "ROOT_CAUSE": 1,
        "HAS_METRIC": 1,
        "SIMILAR_TO": 1,
    }
    props = store.graph.ro_query("MATCH (i:Incident {id: 'inc-1'}) RETURN properties(i)").result_set[0][0]
    assert dict(props) == {
        "id": "inc-1",
        "title": "checkout errors",
        "status": "open",
        "opened_ns": 1_700_000_000_123_456_789,
        "score": 0.75,
        "tags": ["db", "latency"],
        "meta": '{"source": "detector"}',
    }
    rc = store.graph.ro_query(
        "MATCH (:Incident {id: 'inc-1'})-[r:ROOT_CAUSE]->(s) RETURN s.name, r.score, r.rank"
    ).result_set
    assert rc == [["D", 0.9, 1]]
    metric = store.graph.ro_query(
        "MATCH (:Incident {id: 'inc-1'})-[:HAS_METRIC]->(m:MetricSnapshot) RETURN m.id, m.name, m.value"
    ).result_set
    assert metric == [["inc-1#m0", "latency_p95_s", 2.5]]

    # a second upsert replaces the lists it names and keeps the rest
    store.upsert_incident({"id": "inc-1", "status": "resolved", "services": ["A"]})
    affects = store.graph.ro_query("MATCH (:Incident {id: 'inc-1'})-[:AFFECTS]->(s) RETURN s.name").result_set
    assert affects == [["A"]]
    status = store.graph.ro_query("MATCH (i:Incident {id: 'inc-1'}) RETURN i.status, i.title").result_set
    assert status == [["resolved", "checkout errors"]]
    assert store.counts()["ROOT_CAUSE"] == 1 and store.counts()["Incident"] == 2


def test_incident_input_is_checked(store: GraphStore) -> None:
    with pytest.raises(InvalidInput, match="id"):
        store.upsert_incident({"title": "no id"})
    with pytest.raises(InvalidInput, match="property name"):
        store.upsert_incident({"id": "i", "bad key": 1})
    with pytest.raises(InvalidInput, match="property name"):
        store.upsert_incident({"id": "i", "x`}) DETACH DELETE (n": 1})
    with pytest.raises(InvalidInput, match="services must be a list"):
        store.upsert_incident({"id": "i", "services": "A"})
    with pytest.raises(InvalidInput, match="64 bits"):
        store.upsert_incident({"id": "i", "n": 2**70})


# hostile strings

HOSTILE = [
    "'}) MATCH (n) DETACH DELETE n //",
    '"}) MATCH (n) DETACH DELETE n //',
    "back\\slash\\",
    'quote " and \\" and \'',
    "new\nline\ttab\rend",
    "$param {x} `tick` /* c */",
    "uni ✓ 日本 😀",
    "\\u0027",
]


def test_hostile_strings_are_stored_verbatim_and_harmless(store: GraphStore) -> None:
    store.upsert_topology(small_topology())
    before = store.counts()
    store.upsert_topology(
        Topology(
            services=HOSTILE,
            pods=[PodPlacement(pod=h + "-pod", service=h, host=h + "-host") for h in HOSTILE],
            calls=[CallEdge(caller=HOSTILE[0], callee=h, calls=1) for h in HOSTILE[1:]],
        )
    )
    store.upsert_templates(
        [{"service": h, "template_id": "tpl:" + h, "text": h, "level": "ERROR", "count": 1} for h in HOSTILE]
    )
    store.upsert_runbook(HOSTILE[0], HOSTILE[1], HOSTILE[2], HOSTILE[3], HOSTILE, HOSTILE)
    store.upsert_incident({"id": HOSTILE[0], "title": HOSTILE[1], "services": HOSTILE})

    n = len(HOSTILE)
    after = store.counts()
    assert after["Service"] == before["Service"] + n
    assert after["Pod"] == before["Pod"] + n and after["Node"] == before["Node"] + n
    assert after["CALLS"] == before["CALLS"] + n - 1
    assert after["LogTemplate"] == n and after["EMITS"] == n
    assert after["COVERS"] == 2 * n and after["AFFECTS"] == n
    assert set(store.services()) == {"A", "B", "C", "D", "E", *HOSTILE}
    for h in HOSTILE:
        assert store.pods_of(h) == [PodPlacement(pod=h + "-pod", service=h, host=h + "-host")]
    texts = store.graph.ro_query("MATCH (t:LogTemplate) RETURN t.id, t.text").result_set
    assert sorted(map(tuple, texts)) == sorted(("tpl:" + h, h) for h in HOSTILE)
    title = store.graph.ro_query("MATCH (i:Incident {id: $id}) RETURN i.title", {"id": HOSTILE[0]}).result_set
    assert title == [[HOSTILE[1]]]
    sub = neighborhood(store.graph, [("Service", HOSTILE[2])], hops=1)
    assert sub.node_by_key("Service", HOSTILE[2]) is not None
    assert sub.node_by_key("Pod", HOSTILE[2] + "-pod") is not None
    assert store.shortest_call_path(HOSTILE[0], HOSTILE[4]) == [HOSTILE[0], HOSTILE[4]]


def test_nul_characters_are_replaced_not_rejected(store: GraphStore) -> None:
    store.upsert_topology(Topology(services=["nul\x00name"]))
    assert store.services() == ["nul\ufffdname"]


def test_keys_are_stripped_of_edge_whitespace_so_merge_stays_idempotent(store: GraphStore) -> None:
    # FalkorDB's index cannot find such keys; unstripped, every upsert would add a duplicate
    padded = Topology(
        services=[" cart", "cart\n", "\tpay\r "],
        pods=[PodPlacement(pod="cart-1 ", service=" cart", host="h1\x01")],
        calls=[CallEdge(caller="cart ", callee=" pay", calls=2)],
    )
    store.upsert_topology(padded)
    store.upsert_topology(padded)
    store.upsert_templates([{"service": "cart ", "template_id": " t1 ", "text": " kept as is ", "count": 1}] * 2)
    assert store.services() == ["cart", "pay"]
    assert store.pods_of("cart\t") == [PodPlacement(pod="cart-1", service="cart", host="h1")]
    assert store.call_edges() == [CallEdge(caller="cart", callee="pay", calls=2)]
    assert store.graph.ro_query("MATCH (t:LogTemplate) RETURN t.id, t.text").result_set == [["t1", " kept as is "]]
    assert nonzero(store.counts()) == {
        "Service": 2,
        "Pod": 1,
        "Node": 1,
        "LogTemplate": 1,
        "CALLS": 1,
        "INSTANCE_OF": 1,
        "RUNS_ON": 1,
        "EMITS": 1,
    }
    assert neighborhood(store.graph, [("Service", " pay ")], hops=1).node_by_key("Service", "cart") is not None


# shortest path


def test_shortest_call_path_follows_call_direction(store: GraphStore) -> None:
    store.upsert_topology(small_topology())
    store.upsert_topology(Topology(calls=[CallEdge(caller="A", callee="D", calls=1)]))
    assert store.shortest_call_path("E", "D") == ["E", "A", "D"]
    assert store.shortest_call_path("B", "D") == ["B", "C", "D"]
    assert store.shortest_call_path("D", "A") == []  # calls are directed
    assert store.shortest_call_path("A", "A") == ["A"]
    assert store.shortest_call_path("A", "nobody") == []
    assert store.shortest_call_path("nobody", "nobody") == []


def test_delete_all_empties_the_graph(store: GraphStore) -> None:
    store.upsert_topology(small_topology())
    store.delete_all()
    assert set(store.counts().values()) == {0}


def test_graphs_do_not_share_state(falkordb_url: str, store: GraphStore) -> None:
    store.upsert_topology(small_topology())
    _, other = connect_url(falkordb_url, "other_" + uuid.uuid4().hex[:8])
    assert GraphStore(other).services() == []


def test_session_server_lives_under_tmp(falkordb_url: str) -> None:
    assert falkordb_url.startswith("unix://")
    assert Path(falkordb_url.removeprefix("unix://")).exists()
