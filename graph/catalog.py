"""Catalog writes: what services emit, expose and are covered by. LogTemplate nodes (EMITS counts),
Operation nodes (HAS_OPERATION) and Runbook nodes with their COVERS edges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from falkordb import Graph

from core.errors import InvalidInput
from graph.access import batches, unwind, write
from graph.schema import operation_key
from graph.values import clean_key, clean_number, clean_props, clean_str

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


def upsert_templates(graph: Graph, rows: Sequence[dict[str, Any]]) -> int:
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
            "text": clean_str(row.get("text", ""), f"{where}.text"),
            "level": clean_str(str(row.get("level") or "INFO"), f"{where}.level"),
            "count": clean_number(row.get("count", 0), f"{where}.count", integer=True),
        }
    data = list(clean.values())
    unwind(graph, _Q_TEMPLATES, data)
    with_service = sorted({r["id"] for r in data if r["service"]})
    for chunk in batches(with_service):
        write(graph, _Q_TEMPLATE_TOTALS, {"ids": list(chunk)})
    return len(data)


def upsert_operations(graph: Graph, rows: Sequence[dict[str, Any]]) -> int:
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
    unwind(graph, _Q_OPERATIONS, data)
    return len(data)


def upsert_runbook(
    graph: Graph,
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
    write(
        graph,
        _Q_RUNBOOK,
        {
            "id": rid,
            "title": clean_str(title, "title"),
            "path": clean_str(path, "path"),
            "url": clean_str(url, "url"),
            "services": sorted({clean_key(s, "covers_services[]") for s in covers_services} - {""}),
            "alerts": sorted({clean_key(a, "covers_alerts[]") for a in covers_alerts} - {""}),
            "templates": sorted({clean_key(t, "covers_templates[]") for t in covers_templates} - {""}),
        },
    )
