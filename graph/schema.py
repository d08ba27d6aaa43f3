"""The knowledge-graph schema: node labels with their key property, edge types, and exact-match indexes.

Labels and edge types here are the allow-list: they are the only identifiers ever written into a
Cypher string; every value travels as a query parameter.
"""

from __future__ import annotations

import logging
from typing import Final

from falkordb import Graph
from redis.exceptions import ResponseError

logger = logging.getLogger(__name__)

# Node label -> the property that identifies a node of that label (MERGE key, indexed).
NODE_KEYS: Final[dict[str, str]] = {
    "Service": "name",
    "Pod": "name",
    "Node": "name",
    "Operation": "key",
    "LogTemplate": "id",
    "Incident": "id",
    "MetricSnapshot": "id",
    "Runbook": "id",
    "Alert": "name",
}

# Edge type -> (allowed source labels, allowed target labels).
EDGE_TYPES: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "CALLS": (("Service",), ("Service",)),
    "INSTANCE_OF": (("Pod",), ("Service",)),
    "RUNS_ON": (("Pod",), ("Node",)),
    "EMITS": (("Service",), ("LogTemplate",)),
    "HAS_OPERATION": (("Service",), ("Operation",)),
    "AFFECTS": (("Incident",), ("Service",)),
    "OBSERVED_ON": (("Incident",), ("Node",)),
    "HAS_LOG": (("Incident",), ("LogTemplate",)),
    "HAS_METRIC": (("Incident",), ("MetricSnapshot",)),
    "ROOT_CAUSE": (("Incident",), ("Service",)),
    "RELATED_RUNBOOK": (("Incident",), ("Runbook",)),
    "COVERS": (("Runbook",), ("Service", "Alert", "LogTemplate")),
    "SIMILAR_TO": (("Incident",), ("Incident",)),
}

# Secondary exact-match indexes beside the keys (label, property).
EXTRA_INDEXES: Final[tuple[tuple[str, str], ...]] = (("Operation", "service"),)

_SEP = "::"


def key_property(label: str) -> str:
    """The key property of `label`; ValueError for a label outside the schema."""
    try:
        return NODE_KEYS[label]
    except KeyError:
        raise ValueError(f"unknown node label {label!r}; known: {', '.join(NODE_KEYS)}") from None


def operation_key(service: str, name: str) -> str:
    """The key of an Operation node: one operation name per service."""
    return f"{service}{_SEP}{name}"


def wanted_indexes() -> list[tuple[str, str]]:
    return [*NODE_KEYS.items(), *EXTRA_INDEXES]


def existing_indexes(graph: Graph) -> set[tuple[str, str]]:
    """(label, property) pairs with a node range index; empty when the graph does not exist yet."""
    try:
        rows = graph.ro_query(
            "CALL db.indexes() YIELD label, properties, types, entitytype RETURN label, properties, types, entitytype"
        ).result_set
    except ResponseError as exc:
        if "empty key" in str(exc):
            return set()
        raise
    found: set[tuple[str, str]] = set()
    for label, props, types, entity in rows:
        if entity != "NODE":
            continue
        for prop in props:
            if "RANGE" in (types.get(prop) or []):
                found.add((label, prop))
    return found


def ensure_schema(graph: Graph) -> list[tuple[str, str]]:
    """Create the missing exact-match indexes; idempotent and safe to race. Returns those created."""
    have = existing_indexes(graph)
    created: list[tuple[str, str]] = []
    for label, prop in wanted_indexes():
        if (label, prop) in have:
            continue
        # label and prop come from the allow-list above, never from input
        try:
            graph.query(f"CREATE INDEX FOR (n:{label}) ON (n.{prop})")
        except ResponseError as exc:
            if "already indexed" not in str(exc):
                raise
            continue
        created.append((label, prop))
    if created:
        logger.info("graph indexes created", extra={"graph": graph.name, "indexes": created})
    return created
