"""Topology writes: Service nodes, Pods (INSTANCE_OF, RUNS_ON) and CALLS edges with their figures.

CALLS figures: by default `upsert_topology` *replaces* calls, errors, mean_ms and p95_ms on each
edge it names, so a Topology is the figure of record for its window and loading it twice changes
nothing. `calls_mode="accumulate"` adds calls and errors, keeps a call-weighted mean_ms and the
larger p95_ms (an upper bound: percentiles do not add), for callers that stream disjoint batches.
Edges not named in the Topology are left as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from falkordb import Graph

from core.errors import InvalidInput
from core.telemetry import CallEdge, PodPlacement, Topology
from graph.access import unwind
from graph.values import clean_key, clean_number

logger = logging.getLogger(__name__)

_Q_SERVICES = "UNWIND $rows AS name MERGE (:Service {name: name})"
_Q_PODS = """
UNWIND $rows AS r
MERGE (p:Pod {name: r.pod})
WITH p, r WHERE r.service <> ''
MERGE (s:Service {name: r.service})
MERGE (p)-[:INSTANCE_OF]->(s)
"""
_Q_POD_STALE_SERVICE = """
UNWIND $rows AS r
MATCH (p:Pod {name: r.pod})-[e:INSTANCE_OF]->(s:Service)
WHERE r.service <> '' AND s.name <> r.service
DELETE e
"""
_Q_POD_HOSTS = """
UNWIND $rows AS r
MATCH (p:Pod {name: r.pod})
MERGE (n:Node {name: r.host})
MERGE (p)-[:RUNS_ON]->(n)
"""
_Q_POD_STALE_HOST = """
UNWIND $rows AS r
MATCH (p:Pod {name: r.pod})-[e:RUNS_ON]->(n:Node)
WHERE n.name <> r.host
DELETE e
"""
_Q_CALLS_REPLACE = """
UNWIND $rows AS r
MERGE (a:Service {name: r.caller})
MERGE (b:Service {name: r.callee})
MERGE (a)-[c:CALLS]->(b)
SET c.calls = r.calls, c.errors = r.errors, c.mean_ms = r.mean_ms, c.p95_ms = r.p95_ms
"""
_Q_CALLS_ACCUMULATE = """
UNWIND $rows AS r
MERGE (a:Service {name: r.caller})
MERGE (b:Service {name: r.callee})
MERGE (a)-[c:CALLS]->(b)
WITH c, r, coalesce(c.calls, 0) AS old_calls, coalesce(c.mean_ms, 0.0) AS old_mean,
     coalesce(c.errors, 0) AS old_errors, coalesce(c.p95_ms, 0.0) AS old_p95
WITH c, r, old_calls, old_errors, old_p95, old_calls + r.calls AS total,
     old_mean * old_calls + r.mean_ms * r.calls AS weighted
SET c.calls = total,
    c.errors = old_errors + r.errors,
    c.mean_ms = CASE WHEN total > 0 THEN weighted / total ELSE r.mean_ms END,
    c.p95_ms = CASE WHEN r.p95_ms > old_p95 THEN r.p95_ms ELSE old_p95 END
"""


def merge_call_edges(calls: Iterable[CallEdge]) -> list[dict[str, Any]]:
    """One row per (caller, callee): duplicates are combined (sums, call-weighted mean, max p95)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for i, c in enumerate(calls):
        caller = clean_key(c.caller, f"calls[{i}].caller")
        callee = clean_key(c.callee, f"calls[{i}].callee")
        if not caller or not callee:
            continue
        row: dict[str, Any] = {
            "caller": caller,
            "callee": callee,
            "calls": clean_number(c.calls, f"calls[{i}].calls", integer=True),
            "errors": clean_number(c.errors, f"calls[{i}].errors", integer=True),
            "mean_ms": clean_number(c.mean_ms, f"calls[{i}].mean_ms"),
            "p95_ms": clean_number(c.p95_ms, f"calls[{i}].p95_ms"),
        }
        old = merged.get((caller, callee))
        if old is None:
            merged[(caller, callee)] = row
            continue
        total = old["calls"] + row["calls"]
        if total > 0:
            old["mean_ms"] = (old["mean_ms"] * old["calls"] + row["mean_ms"] * row["calls"]) / total
        old["calls"] = total
        old["errors"] += row["errors"]
        old["p95_ms"] = max(old["p95_ms"], row["p95_ms"])
    return list(merged.values())


def upsert_topology(
    graph: Graph, topology: Topology, *, calls_mode: Literal["replace", "accumulate"] = "replace"
) -> dict[str, int]:
    """MERGE services, pods (INSTANCE_OF, RUNS_ON) and CALLS edges. Returns the rows written.

    A pod named again with another service or host is moved (its old edge is removed); a pod
    row with an empty host keeps the host it had. Rows with an empty name are skipped.
    """
    if calls_mode not in ("replace", "accumulate"):
        raise InvalidInput("calls_mode must be 'replace' or 'accumulate'", field="calls_mode")
    services = sorted({clean_key(s, "services[]") for s in topology.services} - {""})
    pods = _pod_rows(topology.pods)
    calls = merge_call_edges(topology.calls)
    unwind(graph, _Q_SERVICES, services)
    unwind(graph, _Q_PODS, pods)
    unwind(graph, _Q_POD_STALE_SERVICE, pods)
    hosted = [p for p in pods if p["host"]]
    unwind(graph, _Q_POD_HOSTS, hosted)
    unwind(graph, _Q_POD_STALE_HOST, hosted)
    unwind(graph, _Q_CALLS_REPLACE if calls_mode == "replace" else _Q_CALLS_ACCUMULATE, calls)
    skipped = len(topology.pods) - len(pods) + len(topology.calls) - len(calls)
    logger.info(
        "topology upserted",
        extra={"services": len(services), "pods": len(pods), "calls": len(calls), "mode": calls_mode},
    )
    return {"services": len(services), "pods": len(pods), "calls": len(calls), "merged_or_skipped": skipped}


def _pod_rows(pods: Sequence[PodPlacement]) -> list[dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    for i, p in enumerate(pods):
        name = clean_key(p.pod, f"pods[{i}].pod")
        if name:
            rows[name] = {
                "pod": name,
                "service": clean_key(p.service, f"pods[{i}].service"),
                "host": clean_key(p.host, f"pods[{i}].host"),
            }
    return list(rows.values())
