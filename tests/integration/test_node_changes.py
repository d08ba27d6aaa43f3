"""What changed on a node around an incident: metric shifts of its pods against the baseline before it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from core.incident import Incident
from detect.node_changes import MetricShift, node_metric_shifts
from retrieval.events import EventStore

NS = 10**9
T = 1_760_000_000 * NS


def metrics(rows: list[tuple[int, str, float, str, str]]) -> pa.Table:
    """(ts_ns, name, value, pod, host) rows as a metrics batch."""
    ts, names, values, pods, hosts = (list(c) for c in zip(*rows, strict=True))
    return pa.table(
        {
            "ts_ns": ts,
            "name": names,
            "value": values,
            "service": ["order"] * len(rows),
            "pod": pods,
            "host": hosts,
            "attributes": [""] * len(rows),
        }
    )


def test_shifts_of_the_pods_on_the_node_largest_first(tmp_path: Path) -> None:
    events = EventStore(tmp_path / "events.duckdb")
    rows = []
    for minute in range(-20, 0):  # the baseline, before the incident
        t = T + minute * 60 * NS
        rows += [(t, "cpu", 0.25, "order-1", "node-a"), (t, "mem", 100.0, "order-1", "node-a")]
        rows += [(t, "threads", 40.0, "order-1", "node-a"), (t, "cpu", 0.2, "cart-1", "node-b")]
    for minute in range(0, 5):  # the incident
        t = T + minute * 60 * NS
        rows += [(t, "cpu", 1.0, "order-1", "node-a"), (t, "mem", 120.0, "order-1", "node-a")]
        rows += [(t, "threads", 10.0, "order-1", "node-a"), (t, "cpu", 0.9, "cart-1", "node-b")]
    events.append_metrics(metrics(rows))
    incident = Incident(id="inc-1", alert_ns=T, start_ns=T - 600 * NS, end_ns=T + 300 * NS)
    try:
        shifts = node_metric_shifts(events, None, incident, "node-a")
        assert shifts == [
            MetricShift(pod="order-1", metric="cpu", before=0.25, during=1.0, change=3.0),
            MetricShift(pod="order-1", metric="threads", before=40.0, during=10.0, change=-0.75),
        ]  # mem moved 20%: under the 50% threshold; cart-1 runs on another node
        assert [s.metric for s in node_metric_shifts(events, None, incident, "node-a", min_change=0.1)] == [
            "cpu",
            "threads",
            "mem",
        ]
        assert node_metric_shifts(events, None, incident, "node-c") == []
    finally:
        events.close()
