"""What changed on a node (host) around an incident: metric shifts of the pods placed on it.

A pod is on the node when its metrics carry the node as `host`, or when the graph has a
`Pod -[RUNS_ON]-> Node` edge. A shift is a metric whose mean during the incident differs from its
mean over a baseline before the incident by at least a share of the baseline.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.incident import Incident
from core.timeutil import NS
from graph.neighborhood import neighborhood
from graph.store import GraphStore
from retrieval.events import EventStore

BASELINE_S = 1800
"""The baseline: this long before the incident started."""
MIN_CHANGE = 0.5
"""A shift counts from this share of the baseline mean (0.5: half again as much, or half as much)."""
MAX_SHIFTS = 50
MAX_PODS = 1000


class MetricShift(BaseModel):
    """One metric of one pod whose mean moved between the baseline and the incident."""

    pod: str
    metric: str
    before: float = Field(description="Mean over the baseline before the incident.")
    during: float = Field(description="Mean from the incident's start to its window's end.")
    change: float = Field(description="(during - before) / |before|, rounded to 3 places.")


def pods_on_node(events: EventStore, graph: GraphStore | None, node: str) -> list[str]:
    """Pods seen on `node`: from the metrics' host column and the graph's RUNS_ON edges, sorted."""
    pods = {r["pod"] for r in events.count_by("metrics", ["pod"], where={"host": node}, limit=MAX_PODS) if r["pod"]}
    if graph is not None:
        sub = neighborhood(graph.graph, [("Node", node)], hops=1, edge_types=["RUNS_ON"])
        pods.update(n.key for n in sub.nodes if n.label == "Pod")
    return sorted(pods)


def node_metric_shifts(
    events: EventStore,
    graph: GraphStore | None,
    incident: Incident,
    node: str,
    *,
    baseline_s: int = BASELINE_S,
    min_change: float = MIN_CHANGE,
    limit: int = MAX_SHIFTS,
) -> list[MetricShift]:
    """Metric shifts of the pods on `node`, largest relative change first (at most `limit`).

    The incident's mean is taken over [alert_ns, end_ns), the baseline's over the `baseline_s` before
    alert_ns. A metric counts when |during - before| >= `min_change` * |before|; a metric with a zero
    or missing baseline is left out (no share to measure against).
    """
    out: list[MetricShift] = []
    for pod in pods_on_node(events, graph, node):
        before = _means(events, pod, incident.alert_ns - baseline_s * NS, incident.alert_ns)
        during = _means(events, pod, incident.alert_ns, incident.end_ns)
        for name, value in during.items():
            old = before.get(name)
            if old is None or old == 0:
                continue
            change = (value - old) / abs(old)
            if abs(change) >= min_change:
                out.append(MetricShift(pod=pod, metric=name, before=old, during=value, change=round(change, 3)))
    return sorted(out, key=lambda s: -abs(s.change))[:limit]


def _means(events: EventStore, pod: str, start_ns: int, end_ns: int) -> dict[str, float]:
    return {name: v for (_, name), v in events.metric_means(start_ns, end_ns, pods=[pod]).items()}
