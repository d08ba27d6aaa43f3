"""The call graph as networkx, and the path a fault takes from its root up to the symptoms."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import networkx as nx

from core.rca import PropagationStep, Signal
from core.telemetry import CallEdge


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


def propagation_path(
    graph: nx.DiGraph,
    root: str,
    evidence: Mapping[str, float],
    signals: Mapping[str, list[Signal]],
    *,
    min_evidence: float = 0.05,
    max_evidence_ids: int = 6,
) -> list[PropagationStep]:
    """Steps from `root` up through anomalous callers to the highest anomalous caller it reaches.

    Each hop goes from a service to one of its callers that itself shows anomalies; the walk ends at
    the anomalous ancestor furthest up (fewest callers above it), preferring stronger evidence.
    """
    if root not in graph:
        return []
    anomalous = {s for s, e in evidence.items() if e >= min_evidence and s in graph}
    sub = graph.subgraph(anomalous | {root}).reverse(copy=True)
    for a, b in sub.edges:
        sub.edges[a, b]["cost"] = -math.log(max(evidence.get(b, 0.0), 1e-6))
    reach = nx.single_source_dijkstra_path(sub, root, weight="cost")
    if len(reach) <= 1:
        return []

    def height(s: str) -> tuple[int, float]:
        return (len(reach[s]), evidence.get(s, 0.0))

    top = max((s for s in reach if s != root), key=height)
    nodes = reach[top]
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
        desc = f"{dst} calls {src}" + (f"; {head[0].description}" if head else "")
        steps.append(PropagationStep(source=src, target=dst, description=desc[:300], evidence_ids=ids))
    return steps
