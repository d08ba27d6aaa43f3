"""The one call graph the ranking walks, and the path a fault takes from its root up to the symptoms.

The call graph is built from every source of "who calls whom" there is: the CALLS edges of the declared
topology and of earlier spans (kept in the graph store, passed in as `CallEdge` items or pairs) and the
caller -> callee pairs seen in the spans of the incident window and its history (`span_edges`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping

import networkx as nx
import pyarrow as pa

from core.errors import DevMeshError
from core.rca import PropagationStep, Signal
from core.telemetry import CallEdge
from graph.store import GraphStore

log = logging.getLogger(__name__)


def stored_call_edges(graph: GraphStore | None) -> list[CallEdge]:
    """The CALLS edges the graph store holds (declared topology and edges from earlier spans); [] without a
    graph store or when it cannot be read (logged: the ranking then walks the spans' own pairs)."""
    if graph is None:
        return []
    try:
        return graph.call_edges()
    except DevMeshError as exc:
        log.warning("call graph unavailable; ranking from spans alone", extra={"error": exc.message})
        return []


def call_graph(
    edges: Iterable[CallEdge | tuple[str, str]] | nx.DiGraph | None,
    extra: Iterable[tuple[str, str]] = (),
) -> nx.DiGraph:
    """Service CALLS graph (caller -> callee) from CallEdge items, (caller, callee) pairs or a DiGraph."""
    g = nx.DiGraph()
    if isinstance(edges, nx.DiGraph):
        g.add_nodes_from(edges.nodes)
        g.add_edges_from((a, b) for a, b in edges.edges if a != b)
    elif edges is not None:
        for e in edges:
            a, b = (e.caller, e.callee) if isinstance(e, CallEdge) else e
            if a and b and a != b:
                g.add_edge(a, b)
    for a, b in extra:
        if a and b and a != b:
            g.add_edge(a, b)
    return g


def span_edges(*tables: pa.Table | None) -> set[tuple[str, str]]:
    """(caller, callee) service pairs of parent -> child spans in Arrow span tables (span_id, parent_id,
    service columns); tables without those columns, or empty, add nothing."""
    out: set[tuple[str, str]] = set()
    for t in tables:
        if t is None or t.num_rows == 0 or not {"span_id", "parent_id", "service"} <= set(t.column_names):
            continue
        services = t.column("service").to_pylist()
        owner = dict(zip(t.column("span_id").to_pylist(), services, strict=True))
        for parent, svc in zip(t.column("parent_id").to_pylist(), services, strict=True):
            caller = owner.get(parent)
            if caller and svc and caller != svc:
                out.add((caller, svc))
    return out


def reach_of(graph: nx.DiGraph, service: str) -> set[str]:
    """`service` and every service it reaches through calls; just `service` when it is not in the graph."""
    if service not in graph:
        return {service}
    return nx.descendants(graph, service) | {service}


def propagation_path(
    graph: nx.DiGraph,
    root: str,
    evidence: Mapping[str, float],
    signals: Mapping[str, list[Signal]],
    *,
    min_evidence: float = 0.05,
    quiet_evidence: float = 1e-3,
    max_evidence_ids: int = 6,
) -> list[PropagationStep]:
    """Steps from `root` up through its callers to the highest anomalous caller it reaches.

    Each hop goes from a service to one of its callers. The walk prefers callers that show anomalies
    themselves (a hop into a service costs -log of its evidence; a service without evidence counts as
    `quiet_evidence`, so it is crossed only to reach an anomalous caller above it: a service that passed
    the failure on without a signal of its own). It ends at the anomalous caller furthest up (most hops),
    preferring stronger evidence; with no anomalous caller above the root, there is no path.
    """
    if root not in graph:
        return []
    anomalous = {s for s, e in evidence.items() if e >= min_evidence and s in graph}
    up = graph.reverse(copy=True)
    for a, b in up.edges:
        up.edges[a, b]["cost"] = -math.log(max(evidence.get(b, 0.0), quiet_evidence))
    reach = nx.single_source_dijkstra_path(up, root, weight="cost")
    ends = [s for s in reach if s != root and s in anomalous]
    if not ends:
        return []

    def height(s: str) -> tuple[int, float]:
        return (len(reach[s]), evidence.get(s, 0.0))

    nodes = reach[max(ends, key=height)]
    steps: list[PropagationStep] = []
    for src, dst in zip(nodes, nodes[1:], strict=False):
        ids = [f"edge:{dst}->{src}"]
        for sig in signals.get(dst, [])[:3]:
            for ev in sig.evidence_ids:
                if len(ids) >= max_evidence_ids:
                    break
                if ev not in ids:
                    ids.append(ev)
        head = signals.get(dst, [])
        desc = f"{dst} calls {src}" + (f"; {head[0].description}" if head else "; no signal of its own (passed it on)")
        steps.append(PropagationStep(source=src, target=dst, description=desc[:300], evidence_ids=ids))
    return steps
