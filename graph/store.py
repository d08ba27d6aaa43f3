"""Writes and simple reads on the knowledge graph. Every value is a query parameter; lists go in
batches through UNWIND.

CALLS figures: by default `upsert_topology` *replaces* calls, errors, mean_ms and p95_ms on each
edge it names, so a Topology is the figure of record for its window and loading it twice changes
nothing. `calls_mode="accumulate"` adds calls and errors, keeps a call-weighted mean_ms and the
larger p95_ms (an upper bound: percentiles do not add), for callers that stream disjoint batches.
Edges not named in the Topology are left as they are.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

import redis
from falkordb import Graph

from core.errors import EngineUnavailable, InvalidInput
from core.telemetry import CallEdge, PodPlacement, Topology
from graph.schema import EDGE_TYPES, NODE_KEYS, operation_key

logger = logging.getLogger(__name__)

BATCH: Final = 5000
# FalkorDB 4.16's range index does not find string keys that begin or end with these characters
# (MERGE then makes a duplicate every time; measured, and see FalkorDB issues #1340, #647), so key
# values are stripped of them. Other properties are stored verbatim.
KEY_STRIP: Final = " \t\n\v\f\r\x01"
_PROP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT64 = 2**63

# Incident dict key -> (edge type, target label, create missing targets?)
INCIDENT_LINKS: Final[dict[str, tuple[str, str, bool]]] = {
    "services": ("AFFECTS", "Service", True),
    "nodes": ("OBSERVED_ON", "Node", True),
    "templates": ("HAS_LOG", "LogTemplate", False),
    "runbooks": ("RELATED_RUNBOOK", "Runbook", False),
    "root_causes": ("ROOT_CAUSE", "Service", True),
    "metrics": ("HAS_METRIC", "MetricSnapshot", True),
    "similar": ("SIMILAR_TO", "Incident", False),
}


def clean_value(value: Any, *, field: str = "value") -> Any:
    """A value FalkorDB stores as given: NUL in strings becomes U+FFFD (the server cannot take NUL),
    non-finite floats become null, nested maps become JSON text."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise InvalidInput(f"{field}: integer {value} does not fit in 64 bits", field=field)
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [clean_value(v, field=field) for v in value]
    if isinstance(value, dict):
        return json.dumps(value, default=str, sort_keys=True).replace("\x00", "\ufffd")
    raise InvalidInput(f"{field}: cannot store a {type(value).__name__} in the graph", field=field)


def clean_props(props: dict[str, Any], *, where: str) -> dict[str, Any]:
    """Properties for `SET n += $props`: names must be plain identifiers."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        if not isinstance(key, str) or not _PROP_NAME.match(key):
            raise InvalidInput(
                f"{where}: property name {key!r} must be letters, digits and _ (not starting with a digit)",
                field=where,
            )
        out[key] = clean_value(value, field=f"{where}.{key}")
    return out


def _s(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, got {type(value).__name__}", field=field)
    return clean_value(value)  # type: ignore[no-any-return]


def clean_key(value: Any, field: str = "key") -> str:
    """A node key as stored and looked up: a string, NUL replaced, edge whitespace stripped."""
    return _s(value, field).strip(KEY_STRIP)


def _n(value: Any, field: str, *, integer: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{field} must be a number, got {value!r}", field=field)
    if integer:
        return int(value)
    return float(value) if math.isfinite(value) else 0.0


def _batches(rows: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


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
            "calls": _n(c.calls, f"calls[{i}].calls", integer=True),
            "errors": _n(c.errors, f"calls[{i}].errors", integer=True),
            "mean_ms": _n(c.mean_ms, f"calls[{i}].mean_ms"),
            "p95_ms": _n(c.p95_ms, f"calls[{i}].p95_ms"),
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
_Q_TEMPLATES = """
UNWIND $rows AS r
MERGE (t:LogTemplate {id: r.id})
SET t.text = r.text, t.level = r.level,
    t.count = CASE WHEN r.service = '' THEN r.count ELSE coalesce(t.count, 0) END
WITH t, r WHERE r.service <> ''
MERGE (s:Service {name: r.service})
MERGE (s)-[e:EMITS]->(t)
SET e.count = r.count
"""
_Q_TEMPLATE_TOTALS = """
UNWIND $ids AS tid
MATCH (s:Service)-[e:EMITS]->(t:LogTemplate {id: tid})
WITH t, sum(e.count) AS total
SET t.count = total
"""
_Q_OPERATIONS = """
UNWIND $rows AS r
MERGE (o:Operation {key: r.key})
SET o.service = r.service, o.name = r.name, o += r.props
MERGE (s:Service {name: r.service})
MERGE (s)-[:HAS_OPERATION]->(o)
"""
_Q_RUNBOOK = """
MERGE (rb:Runbook {id: $id})
SET rb.title = $title, rb.path = $path, rb.url = $url
WITH rb
OPTIONAL MATCH (rb)-[old:COVERS]->()
DELETE old
WITH DISTINCT rb
FOREACH (s IN $services | MERGE (x:Service {name: s}) MERGE (rb)-[:COVERS]->(x))
FOREACH (a IN $alerts | MERGE (x:Alert {name: a}) MERGE (rb)-[:COVERS]->(x))
WITH rb
UNWIND $templates AS tid
MATCH (t:LogTemplate {id: tid})
MERGE (rb)-[:COVERS]->(t)
"""
_Q_INCIDENT = "MERGE (i:Incident {id: $id}) SET i += $props"


def _incident_link_query(edge: str, label: str, create: bool) -> str:
    # edge, label and key come from INCIDENT_LINKS / NODE_KEYS, never from input
    key = NODE_KEYS[label]
    target = "MERGE" if create else "MATCH"
    return f"""
MATCH (i:Incident {{id: $id}})
OPTIONAL MATCH (i)-[old:{edge}]->()
DELETE old
WITH DISTINCT i
UNWIND $rows AS r
{target} (x:{label} {{{key}: r.key}})
SET x += r.node
MERGE (i)-[e:{edge}]->(x)
SET e += r.edge
RETURN count(e)
"""


class GraphStore:
    """DevMesh's writes and simple reads on one FalkorDB graph."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    # plumbing
    def _write(self, query: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return self.graph.query(query, params)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise EngineUnavailable(f"lost the connection to FalkorDB: {exc}") from exc

    def _read(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        try:
            return self.graph.ro_query(query, params).result_set  # type: ignore[no-any-return]
        except redis.ResponseError as exc:
            if "empty key" in str(exc):  # the graph does not exist yet: nothing in it
                return []
            raise
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise EngineUnavailable(f"lost the connection to FalkorDB: {exc}") from exc

    def _unwind(self, query: str, rows: Sequence[Any]) -> None:
        for chunk in _batches(rows):
            self._write(query, {"rows": list(chunk)})

    # writes
    def upsert_topology(
        self, topology: Topology, *, calls_mode: Literal["replace", "accumulate"] = "replace"
    ) -> dict[str, int]:
        """MERGE services, pods (INSTANCE_OF, RUNS_ON) and CALLS edges. Returns the rows written.

        A pod named again with another service or host is moved (its old edge is removed); a pod
        row with an empty host keeps the host it had. Rows with an empty name are skipped.
        """
        if calls_mode not in ("replace", "accumulate"):
            raise InvalidInput("calls_mode must be 'replace' or 'accumulate'", field="calls_mode")
        services = sorted({clean_key(s, "services[]") for s in topology.services} - {""})
        pods = self._pod_rows(topology.pods)
        calls = merge_call_edges(topology.calls)
        self._unwind(_Q_SERVICES, services)
        self._unwind(_Q_PODS, pods)
        self._unwind(_Q_POD_STALE_SERVICE, pods)
        hosted = [p for p in pods if p["host"]]
        self._unwind(_Q_POD_HOSTS, hosted)
        self._unwind(_Q_POD_STALE_HOST, hosted)
        self._unwind(_Q_CALLS_REPLACE if calls_mode == "replace" else _Q_CALLS_ACCUMULATE, calls)
        skipped = len(topology.pods) - len(pods) + len(topology.calls) - len(calls)
        logger.info(
            "topology upserted",
            extra={"services": len(services), "pods": len(pods), "calls": len(calls), "mode": calls_mode},
        )
        return {"services": len(services), "pods": len(pods), "calls": len(calls), "merged_or_skipped": skipped}

    @staticmethod
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

    def upsert_templates(self, rows: Sequence[dict[str, Any]]) -> int:
        """MERGE LogTemplate nodes and Service-[:EMITS {count}]->LogTemplate edges.

        Each row: service, template_id, text, level, count, where count is that service's lines of
        that template (replaced, not added). LogTemplate.count becomes the sum over its EMITS edges;
        a row with an empty service sets LogTemplate.count directly and makes no edge.
        """
        clean: dict[tuple[str, str], dict[str, Any]] = {}
        for i, row in enumerate(rows):
            where = f"templates[{i}]"
            tid = clean_key(row.get("template_id"), f"{where}.template_id")
            if not tid:
                raise InvalidInput(f"{where}.template_id is empty", field=f"{where}.template_id")
            service = clean_key(row.get("service", ""), f"{where}.service")
            clean[(service, tid)] = {
                "id": tid,
                "service": service,
                "text": _s(row.get("text", ""), f"{where}.text"),
                "level": _s(str(row.get("level") or "INFO"), f"{where}.level"),
                "count": _n(row.get("count", 0), f"{where}.count", integer=True),
            }
        data = list(clean.values())
        self._unwind(_Q_TEMPLATES, data)
        with_service = sorted({r["id"] for r in data if r["service"]})
        for chunk in _batches(with_service):
            self._write(_Q_TEMPLATE_TOTALS, {"ids": list(chunk)})
        return len(data)

    def upsert_operations(self, rows: Sequence[dict[str, Any]]) -> int:
        """MERGE Operation{key, service, name} and Service-[:HAS_OPERATION]->Operation.

        Each row: service, name, and optional figures (calls, errors, mean_ms, p95_ms, ...) set on
        the Operation node.
        """
        data = []
        for i, row in enumerate(rows):
            where = f"operations[{i}]"
            service = clean_key(row.get("service"), f"{where}.service")
            name = clean_key(row.get("name"), f"{where}.name")
            if not service or not name:
                raise InvalidInput(f"{where} needs a service and a name", field=where)
            extra = {k: v for k, v in row.items() if k not in ("service", "name", "key")}
            data.append(
                {
                    "key": operation_key(service, name),
                    "service": service,
                    "name": name,
                    "props": clean_props(extra, where=where),
                }
            )
        self._unwind(_Q_OPERATIONS, data)
        return len(data)

    def upsert_runbook(
        self,
        runbook_id: str,
        title: str,
        path: str,
        url: str,
        covers_services: Sequence[str],
        covers_alerts: Sequence[str],
        covers_templates: Sequence[str] = (),
    ) -> None:
        """MERGE a Runbook and replace its COVERS edges (services and alerts are created when new;
        templates must already exist)."""
        rid = clean_key(runbook_id, "runbook_id")
        if not rid:
            raise InvalidInput("runbook_id is empty", field="runbook_id")
        self._write(
            _Q_RUNBOOK,
            {
                "id": rid,
                "title": _s(title, "title"),
                "path": _s(path, "path"),
                "url": _s(url, "url"),
                "services": sorted({clean_key(s, "covers_services[]") for s in covers_services} - {""}),
                "alerts": sorted({clean_key(a, "covers_alerts[]") for a in covers_alerts} - {""}),
                "templates": sorted({clean_key(t, "covers_templates[]") for t in covers_templates} - {""}),
            },
        )

    def upsert_incident(self, incident: dict[str, Any]) -> dict[str, int]:
        """MERGE an Incident by `id`, set its scalar fields, and replace the edges it lists.

        Link keys (each replaces that edge type when present, and is left alone when absent):
        services -> AFFECTS, nodes -> OBSERVED_ON, templates -> HAS_LOG, runbooks -> RELATED_RUNBOOK,
        root_causes -> ROOT_CAUSE, metrics -> HAS_METRIC (MetricSnapshot), similar -> SIMILAR_TO.
        Items are keys (str) or dicts with the key (`service`/`name`/`id`, see below) plus edge
        properties (e.g. {"service": "cart", "score": 0.8, "rank": 1}); metrics items are dicts
        with the snapshot's properties (`id` optional: `<incident id>#m<position>`).
        Every other field (title, status, opened_ns, ...) becomes an Incident property.
        Returns the number of edges written per edge type.
        """
        iid = clean_key(incident.get("id"), "id")
        if not iid:
            raise InvalidInput("incident id is empty", field="id")
        props = clean_props(
            {k: v for k, v in incident.items() if k != "id" and k not in INCIDENT_LINKS}, where="incident"
        )
        self._write(_Q_INCIDENT, {"id": iid, "props": props})
        written: dict[str, int] = {}
        for field, (edge, label, create) in INCIDENT_LINKS.items():
            if field not in incident:
                continue
            rows = self._link_rows(iid, field, label, incident[field])
            result = self._write(_incident_link_query(edge, label, create), {"id": iid, "rows": rows})
            written[edge] = int(result.result_set[0][0]) if result.result_set else 0
            if written[edge] < len(rows):
                logger.warning(
                    "incident links to unknown nodes skipped",
                    extra={"incident": iid, "edge": edge, "asked": len(rows), "linked": written[edge]},
                )
        return written

    @staticmethod
    def _link_rows(iid: str, field: str, label: str, items: Any) -> list[dict[str, Any]]:
        if not isinstance(items, list | tuple):
            raise InvalidInput(f"{field} must be a list", field=field)
        key_names = {"Service": ("service", "name"), "Node": ("node", "name", "host")}.get(label, ("id",))
        rows: dict[str, dict[str, Any]] = {}
        for pos, item in enumerate(items):
            where = f"{field}[{pos}]"
            if isinstance(item, str):
                key, rest = item, {}
            elif isinstance(item, dict):
                if label == "MetricSnapshot":
                    key = item.get("id") or f"{iid}#m{pos}"
                    rest = {"node": {k: v for k, v in item.items() if k != "id"}}
                else:
                    found = [k for k in key_names if k in item]
                    if not found:
                        raise InvalidInput(f"{where} needs one of {', '.join(key_names)}", field=where)
                    key = item[found[0]]
                    rest = {"edge": {k: v for k, v in item.items() if k not in key_names}}
            else:
                raise InvalidInput(f"{where} must be a string or an object", field=where)
            key = clean_key(key, where)
            if not key or (label == "Incident" and key == iid):
                continue
            rows[key] = {
                "key": key,
                "node": clean_props(rest.get("node", {}), where=where),
                "edge": clean_props(rest.get("edge", {}), where=where),
            }
        return list(rows.values())

    def delete_all(self) -> None:
        """Remove every node and edge (indexes stay). For tests and `devmesh reset`."""
        self._write("MATCH (n) DETACH DELETE n")

    # reads
    def call_edges(self) -> list[CallEdge]:
        rows = self._read(
            "MATCH (a:Service)-[c:CALLS]->(b:Service) "
            "RETURN a.name, b.name, c.calls, c.errors, c.mean_ms, c.p95_ms ORDER BY a.name, b.name"
        )
        return [
            CallEdge(
                caller=a,
                callee=b,
                calls=calls or 0,
                errors=errors or 0,
                mean_ms=mean or 0.0,
                p95_ms=p95 or 0.0,
            )
            for a, b, calls, errors, mean, p95 in rows
        ]

    def services(self) -> list[str]:
        return [r[0] for r in self._read("MATCH (s:Service) RETURN s.name ORDER BY s.name")]

    def pods_of(self, service: str) -> list[PodPlacement]:
        """The pods that are instances of `service`, with their host ('' when unknown), by name."""
        service = clean_key(service, "service")
        rows = self._read(
            "MATCH (p:Pod)-[:INSTANCE_OF]->(:Service {name: $service}) "
            "OPTIONAL MATCH (p)-[:RUNS_ON]->(n:Node) "
            "RETURN p.name, n.name ORDER BY p.name",
            {"service": service},
        )
        return [PodPlacement(pod=p, service=service, host=h or "") for p, h in rows]

    def counts(self) -> dict[str, int]:
        """Nodes per label and edges per type, zero included (labels and types do not share names)."""
        out = dict.fromkeys([*NODE_KEYS, *EDGE_TYPES], 0)
        for label, n in self._read("MATCH (n) RETURN labels(n)[0], count(n)"):
            out[label] = n
        for edge, n in self._read("MATCH ()-[r]->() RETURN type(r), count(r)"):
            out[edge] = n
        return out

    def shortest_call_path(self, a: str, b: str) -> list[str]:
        """Service names along the shortest directed CALLS path from a to b; [] when there is none."""
        a, b = clean_key(a, "a"), clean_key(b, "b")
        if a == b:
            return [a] if self._read("MATCH (s:Service {name: $a}) RETURN 1", {"a": a}) else []
        rows = self._read(
            "MATCH (a:Service {name: $a}), (b:Service {name: $b}) "
            "RETURN [n IN nodes(shortestPath((a)-[:CALLS*]->(b))) | n.name]",
            {"a": a, "b": b},
        )
        return list(rows[0][0]) if rows and rows[0][0] else []
