"""Helpers for the graph tests: a graph of its own for each test on the session's FalkorDB server (the
`falkordb_url` fixture of tests/conftest.py), and a small topology to load into it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from falkordb import FalkorDB, Graph

from core.telemetry import CallEdge, PodPlacement, Topology
from graph.server import connect_url


def own_graph(falkordb_url: str, request: pytest.FixtureRequest) -> Iterator[tuple[FalkorDB, Graph]]:
    """For a fixture to `yield from`: a graph named after the test, deleted afterwards."""
    name = re.sub(r"\W", "_", request.node.name)[:60] + "_" + uuid.uuid4().hex[:8]
    db, graph = connect_url(falkordb_url, name)
    yield db, graph
    if name in db.list_graphs():
        graph.delete()


def small_topology() -> Topology:
    """E -> A -> B -> C -> D; pods a1 (A on h1), b1 (B on h1), d1 (D on h2)."""
    return Topology(
        services=["A", "B", "C", "D", "E"],
        pods=[
            PodPlacement(pod="a1", service="A", host="h1"),
            PodPlacement(pod="b1", service="B", host="h1"),
            PodPlacement(pod="d1", service="D", host="h2"),
        ],
        calls=[
            CallEdge(caller="A", callee="B", calls=100, errors=3, mean_ms=12.5, p95_ms=40.0),
            CallEdge(caller="B", callee="C", calls=80, errors=0, mean_ms=5.25, p95_ms=9.0),
            CallEdge(caller="C", callee="D", calls=10, errors=10, mean_ms=250.0, p95_ms=900.0),
            CallEdge(caller="E", callee="A", calls=7, errors=1, mean_ms=1.0, p95_ms=2.0),
        ],
    )
