"""Neighborhoods (graph.neighborhood): the exact nodes and edges within some hops of seed nodes, their
options and checks, and the networkx view, against one real embedded FalkorDB per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.errors import InvalidInput
from graph.neighborhood import Subgraph, neighborhood, to_networkx
from graph.schema import ensure_schema
from graph.store import GraphStore
from tests.graphs import own_graph, small_topology


@pytest.fixture
def store(falkordb_url: str, request: pytest.FixtureRequest) -> Iterator[GraphStore]:
    for _, graph in own_graph(falkordb_url, request):
        ensure_schema(graph)
        yield GraphStore(graph)


def keyed(sub: Subgraph) -> tuple[dict[tuple[str, str], int], set[tuple[str, str, str]]]:
    names = {n.id: f"{n.label}:{n.key}" for n in sub.nodes}
    nodes = {(n.label, n.key): n.hop for n in sub.nodes}
    edges = {(names[e.source], e.type, names[e.target]) for e in sub.edges}
    assert len(edges) == len(sub.edges)
    return nodes, edges


def test_neighborhood_contents_are_exact(store: GraphStore) -> None:
    store.upsert_topology(small_topology())
    one = neighborhood(store.graph, [("Service", "A")], hops=1)
    assert keyed(one) == (
        {("Service", "A"): 0, ("Service", "B"): 1, ("Service", "E"): 1, ("Pod", "a1"): 1},
        {
            ("Service:A", "CALLS", "Service:B"),
            ("Service:E", "CALLS", "Service:A"),
            ("Pod:a1", "INSTANCE_OF", "Service:A"),
        },
    )
    assert not one.truncated and one.missing_seeds == []

    two = neighborhood(store.graph, [("Service", "A")], hops=2)
    nodes, edges = keyed(two)
    assert nodes == {
        ("Service", "A"): 0,
        ("Service", "B"): 1,
        ("Service", "E"): 1,
        ("Pod", "a1"): 1,
        ("Service", "C"): 2,
        ("Pod", "b1"): 2,
        ("Node", "h1"): 2,
    }
    # b1 -> h1 joins two outer-ring nodes: not walked, not returned
    assert edges == {
        ("Service:A", "CALLS", "Service:B"),
        ("Service:E", "CALLS", "Service:A"),
        ("Pod:a1", "INSTANCE_OF", "Service:A"),
        ("Service:B", "CALLS", "Service:C"),
        ("Pod:b1", "INSTANCE_OF", "Service:B"),
        ("Pod:a1", "RUNS_ON", "Node:h1"),
    }
    calls = {e.properties.get("calls") for e in two.edges if e.type == "CALLS"}
    assert calls == {100, 80, 7}
    a = two.node_by_key("Service", "A")
    assert a is not None and a.properties == {"name": "A"}


def test_neighborhood_options(store: GraphStore) -> None:
    store.upsert_topology(small_topology())
    only_calls = neighborhood(store.graph, [("Service", "A")], hops=2, edge_types=["CALLS"])
    assert keyed(only_calls) == (
        {("Service", "A"): 0, ("Service", "B"): 1, ("Service", "E"): 1, ("Service", "C"): 2},
        {
            ("Service:A", "CALLS", "Service:B"),
            ("Service:E", "CALLS", "Service:A"),
            ("Service:B", "CALLS", "Service:C"),
        },
    )
    seeds_only = neighborhood(store.graph, [("Service", "A"), ("Node", "h2"), ("Pod", "ghost")], hops=0)
    assert keyed(seeds_only) == ({("Service", "A"): 0, ("Node", "h2"): 0}, set())
    assert seeds_only.missing_seeds == [("Pod", "ghost")]

    capped = neighborhood(store.graph, [("Service", "A")], hops=2, limit=3)
    nodes, edges = keyed(capped)
    assert capped.truncated and len(nodes) == 3 and nodes[("Service", "A")] == 0
    assert set(nodes) <= {("Service", "A"), ("Service", "B"), ("Service", "E"), ("Pod", "a1")}
    assert all(src in {f"{lab}:{k}" for lab, k in nodes} for src, _, _ in edges)

    two_seeds = neighborhood(store.graph, [("Service", "A"), ("Service", "D")], hops=1)
    assert set(keyed(two_seeds)[0]) == {
        ("Service", "A"),
        ("Service", "B"),
        ("Service", "E"),
        ("Pod", "a1"),
        ("Service", "D"),
        ("Service", "C"),
        ("Pod", "d1"),
    }


def test_neighborhood_rejects_bad_arguments(store: GraphStore) -> None:
    with pytest.raises(InvalidInput, match="unknown label"):
        neighborhood(store.graph, [("Service) DETACH DELETE (n", "A")])
    with pytest.raises(InvalidInput, match="hops"):
        neighborhood(store.graph, [("Service", "A")], hops=9)
    with pytest.raises(InvalidInput, match="edge_types"):
        neighborhood(store.graph, [("Service", "A")], edge_types=["CALLS]->() DELETE x //"])
    with pytest.raises(InvalidInput, match="limit"):
        neighborhood(store.graph, [("Service", "A")], limit=0)


def test_to_networkx_keeps_labels_keys_and_figures(store: GraphStore) -> None:
    store.upsert_topology(small_topology())
    g = to_networkx(neighborhood(store.graph, [("Service", "A")], hops=2))
    assert set(g.nodes) == {"Service:A", "Service:B", "Service:E", "Pod:a1", "Service:C", "Pod:b1", "Node:h1"}
    assert g.number_of_edges() == 6
    assert g.nodes["Pod:a1"]["label"] == "Pod" and g.nodes["Pod:a1"]["hop"] == 1
    assert g.edges["Service:A", "Service:B", "CALLS"]["calls"] == 100
    assert g.edges["Service:A", "Service:B", "CALLS"]["p95_ms"] == 40.0
