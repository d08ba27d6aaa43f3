"""The neighborhood of some seed nodes: everything within `hops` edges (either direction), as
compact node and edge rows rather than paths (parsing paths in the client costs far more than the
server's work; see ENGINE-NOTES).

It is a breadth-first search run hop by hop in the server (one small query per hop returning ids),
then one query for the nodes' properties and one for the edges. The edges are those the search
walked: both ends in the result and at least one end fewer than `hops` edges from a seed. (Edges
between two nodes at the outer ring are left out: in a dense call graph they are most of the
induced subgraph and cost several times the rest to return.) When more than `limit` nodes are in
reach, nearer nodes win and, within a hop, lower internal ids (older nodes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from falkordb import Graph

from core.errors import InvalidInput
from graph.access import read
from graph.schema import EDGE_TYPES, NODE_KEYS
from graph.values import clean_key

MAX_HOPS = 4


@dataclass(frozen=True)
class SubgraphNode:
    id: int = field(metadata={"description": "FalkorDB internal id, valid within this result."})
    label: str
    key: str = field(metadata={"description": "Value of the label's key property (Service.name, ...)."})
    properties: dict[str, Any]
    hop: int = field(default=0, metadata={"description": "Edges from the nearest seed (0 for a seed)."})


@dataclass(frozen=True)
class SubgraphEdge:
    source: int
    target: int
    type: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class Subgraph:
    nodes: list[SubgraphNode]
    edges: list[SubgraphEdge]
    missing_seeds: list[tuple[str, str]] = field(default_factory=list)
    truncated: bool = field(default=False, metadata={"description": "More nodes were in reach than limit."})

    def node_by_key(self, label: str, key: str) -> SubgraphNode | None:
        for n in self.nodes:
            if n.label == label and n.key == key:
                return n
        return None


def _resolve_seeds(graph: Graph, seeds: Sequence[tuple[str, str]]) -> tuple[list[int], list[tuple[str, str]]]:
    by_label: dict[str, list[str]] = {}
    for pos, seed in enumerate(seeds):
        if not isinstance(seed, tuple | list) or len(seed) != 2:
            raise InvalidInput(f"seeds[{pos}] must be a (label, key) pair", field=f"seeds[{pos}]")
        label, key = seed
        if label not in NODE_KEYS:
            raise InvalidInput(
                f"seeds[{pos}]: unknown label {label!r}; known: {', '.join(NODE_KEYS)}", field=f"seeds[{pos}]"
            )
        if not isinstance(key, str):
            raise InvalidInput(f"seeds[{pos}]: key must be a string", field=f"seeds[{pos}]")
        by_label.setdefault(label, []).append(clean_key(key, f"seeds[{pos}]"))
    ids: list[int] = []
    missing: list[tuple[str, str]] = []
    for label, keys in by_label.items():
        prop = NODE_KEYS[label]
        # label and prop come from the schema allow-list
        rows = read(
            graph,
            f"UNWIND $keys AS k MATCH (n:{label} {{{prop}: k}}) RETURN k, ID(n)",
            {"keys": sorted(set(keys))},
        )
        found = {k for k, _ in rows}
        ids.extend(i for _, i in rows)
        missing.extend((label, k) for k in keys if k not in found)
    return sorted(set(ids)), missing


def _rel_pattern(edge_types: Sequence[str] | None) -> str:
    if edge_types is None:
        return "[]"
    bad = [t for t in edge_types if t not in EDGE_TYPES]
    if bad or not edge_types:
        raise InvalidInput(
            f"edge_types must be a non-empty subset of {', '.join(EDGE_TYPES)}; got {list(edge_types)}",
            field="edge_types",
        )
    return "[:" + "|".join(sorted(set(edge_types))) + "]"


def neighborhood(
    graph: Graph,
    seeds: Sequence[tuple[str, str]],
    hops: int = 2,
    limit: int = 500,
    *,
    edge_types: Sequence[str] | None = None,
) -> Subgraph:
    """Nodes within `hops` undirected edges of the seeds (at most `limit` nodes) and the edges
    walked to reach them (see the module docstring). Seeds are (label, key) pairs, e.g.
    ("Service", "cart"); unknown ones are listed in `missing_seeds`. `edge_types` restricts the
    edges followed and returned."""
    if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= MAX_HOPS:
        raise InvalidInput(f"hops must be an integer from 0 to {MAX_HOPS}", field="hops")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput("limit must be a positive integer", field="limit")
    rel = _rel_pattern(edge_types)
    seed_ids, missing = _resolve_seeds(graph, seeds)
    hop_of: dict[int, int] = {i: 0 for i in seed_ids[:limit]}
    truncated = len(seed_ids) > limit
    frontier = list(hop_of)
    step_query = (
        "UNWIND $frontier AS fid MATCH (a) WHERE ID(a) = fid "
        f"MATCH (a)-{rel}-(b) WITH DISTINCT ID(b) AS bid WHERE NOT bid IN $seen "
        "RETURN bid ORDER BY bid LIMIT $room"
    )
    for hop in range(1, hops + 1):
        if not frontier or truncated:
            break
        room = limit - len(hop_of)
        rows = read(graph, step_query, {"frontier": frontier, "seen": list(hop_of), "room": room + 1})
        new = [r[0] for r in rows]
        if len(new) > room:
            truncated = True
            new = new[:room]
        for nid in new:
            hop_of[nid] = hop
        frontier = new
    return _materialize(graph, hop_of, hops, rel, missing, truncated)


def _materialize(
    graph: Graph, hop_of: dict[int, int], hops: int, rel: str, missing: list[tuple[str, str]], truncated: bool
) -> Subgraph:
    ids = sorted(hop_of)
    if not ids:
        return Subgraph(nodes=[], edges=[], missing_seeds=missing, truncated=truncated)
    node_rows = read(
        graph,
        "UNWIND $ids AS nid MATCH (n) WHERE ID(n) = nid RETURN nid, labels(n)[0], properties(n)",
        {"ids": ids},
    )
    nodes = [
        SubgraphNode(
            id=nid,
            label=label,
            key=str(props.get(NODE_KEYS.get(label, ""), "")),
            properties=dict(props),
            hop=hop_of[nid],
        )
        for nid, label, props in node_rows
    ]
    inner = [i for i in ids if hop_of[i] < hops]
    edge_rows = (
        read(
            graph,
            "UNWIND $inner AS nid MATCH (a) WHERE ID(a) = nid "
            f"MATCH (a)-{rel.replace('[', '[r', 1)}-(b) WITH r, ID(b) AS bid WHERE bid IN $ids "
            "WITH DISTINCT r RETURN ID(startNode(r)) AS s, ID(endNode(r)) AS t, type(r) AS ty, properties(r) "
            "ORDER BY s, t, ty",
            {"inner": inner, "ids": ids},
        )
        if inner
        else []
    )
    edges = [SubgraphEdge(source=a, target=b, type=t, properties=dict(p)) for a, b, t, p in edge_rows]
    return Subgraph(nodes=nodes, edges=edges, missing_seeds=missing, truncated=truncated)


def node_name(node: SubgraphNode) -> str:
    """The networkx node id used by `to_networkx`: "Label:key"."""
    return f"{node.label}:{node.key}"


def to_networkx(subgraph: Subgraph) -> nx.MultiDiGraph:
    """A MultiDiGraph with nodes named "Label:key" (attributes: label, key, hop and the node's
    properties) and one edge per graph edge keyed by its type (attributes: type and its properties)."""
    g = nx.MultiDiGraph()
    names: dict[int, str] = {}
    for n in subgraph.nodes:
        names[n.id] = node_name(n)
        g.add_node(names[n.id], **{**n.properties, "label": n.label, "key": n.key, "hop": n.hop})
    for e in subgraph.edges:
        g.add_edge(names[e.source], names[e.target], key=e.type, **{**e.properties, "type": e.type})
    return g
