"""Incident writes: an Incident node with its scalar fields, and the edges it lists (AFFECTS,
OBSERVED_ON, HAS_LOG, RELATED_RUNBOOK, ROOT_CAUSE, HAS_METRIC, SIMILAR_TO), each replaced as a whole."""

from __future__ import annotations

import logging
from typing import Any, Final

from falkordb import Graph

from core.errors import InvalidInput
from graph.access import write
from graph.schema import NODE_KEYS
from graph.values import clean_key, clean_props

logger = logging.getLogger(__name__)

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


def upsert_incident(graph: Graph, incident: dict[str, Any]) -> dict[str, int]:
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
    props = clean_props({k: v for k, v in incident.items() if k != "id" and k not in INCIDENT_LINKS}, where="incident")
    write(graph, _Q_INCIDENT, {"id": iid, "props": props})
    written: dict[str, int] = {}
    for field, (edge, label, create) in INCIDENT_LINKS.items():
        if field not in incident:
            continue
        rows = _link_rows(iid, field, label, incident[field])
        result = write(graph, _incident_link_query(edge, label, create), {"id": iid, "rows": rows})
        written[edge] = int(result.result_set[0][0]) if result.result_set else 0
        if written[edge] < len(rows):
            logger.warning(
                "incident links to unknown nodes skipped",
                extra={"incident": iid, "edge": edge, "asked": len(rows), "linked": written[edge]},
            )
    return written


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
