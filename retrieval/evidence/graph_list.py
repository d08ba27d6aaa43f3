"""The graph list: the FalkorDB neighborhood of the top candidates, ordered by activation.

Seeds are the top candidates' services (weight 1/rank), pods and cited templates (half that). The
neighborhood is `hops` edges around them; each node's activation is the sum over seeds of
seed weight x 0.5^distance, times a kind prior (`KIND_PRIOR`). The candidates' own services, pods,
nodes, templates, runbooks, past incidents and CALLS edges come out as hits.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, replace

from core.explanation import EvidenceSource
from core.rca import RankingResult
from graph.neighborhood import Subgraph, SubgraphNode, neighborhood
from retrieval.evidence.context import Gathering, as_int, pick
from retrieval.evidence.fusion import Hit, RankedList

KIND_PRIOR: Mapping[str, float] = {
    "runbook": 1.0,
    "incident": 1.0,
    "template": 1.0,
    "edge": 0.9,
    "operation": 0.9,
    "pod": 0.6,
    "node": 0.6,
    "service": 0.5,
    "alert": 0.5,
}
"""Orders the graph list: activation x prior (structure counts less than text that explains)."""

DECAY = 0.5
_LABEL_KIND = {
    "Service": "service",
    "Pod": "pod",
    "Node": "node",
    "LogTemplate": "template",
    "Runbook": "runbook",
    "Incident": "incident",
    "Operation": "operation",
    "Alert": "alert",
}
NEIGHBORHOOD_QUERY = (
    "graph.neighborhood: per hop `UNWIND $frontier AS fid MATCH (a) WHERE ID(a) = fid MATCH (a)-[]-(b) "
    "WITH DISTINCT ID(b) AS bid WHERE NOT bid IN $seen RETURN bid ORDER BY bid LIMIT $room`, then "
    "`UNWIND $ids AS nid MATCH (n) WHERE ID(n) = nid RETURN nid, labels(n)[0], properties(n)` and the "
    "edges walked between them"
)


@dataclass(frozen=True)
class GraphFindings:
    hits: list[Hit]
    """The graph list, best first."""
    covers: dict[str, set[str]]
    """Services each runbook of the list covers (runbook id -> service names)."""
    lists: list[RankedList]
    """The `graph` list (none when there is no graph or no seed)."""


NO_GRAPH = GraphFindings(hits=[], covers={}, lists=[])


def graph_list(ctx: Gathering, hops: int, exclude_incident: str | None) -> GraphFindings:
    """The neighborhood of the top candidates as the `graph` list (module doc)."""
    graph = ctx.graph
    if graph is None:
        ctx.notes.append("no graph store: graph neighborhood skipped")
        return NO_GRAPH
    seeds = seed_weights(ctx.ranking, ctx.opt.candidates)
    if not seeds:
        ctx.notes.append("no candidates to start the graph neighborhood from")
        return NO_GRAPH
    limit = ctx.opt.graph_nodes
    sub: Subgraph | None = ctx.log.run(
        "graph.neighborhood",
        NEIGHBORHOOD_QUERY,
        {"seeds": [f"{label}:{key}" for label, key in seeds], "hops": hops, "limit": limit},
        lambda: neighborhood(graph.graph, list(seeds), hops=hops, limit=limit),
        default=None,
        count=lambda s: len(s.nodes) if s is not None else 0,
    )
    if sub is None:
        return NO_GRAPH
    if sub.truncated:
        ctx.notes.append(f"graph neighborhood cut at {limit} nodes (nearer nodes kept)")
    hits = graph_hits(sub, seeds, ctx.cand_w, hops=hops, exclude_incident=exclude_incident)
    covers = {h.id.removeprefix("runbook:"): set(h.services) for h in hits if h.kind == "runbook"}
    return GraphFindings(hits=hits, covers=covers, lists=[ctx.ranked("graph", EvidenceSource.GRAPH, hits)])


def seed_weights(ranking: RankingResult, top_k: int) -> dict[tuple[str, str], float]:
    """Graph seeds of the top candidates: their service (1/rank), pod and cited templates (half that)."""
    seeds: dict[tuple[str, str], float] = {}

    def add(key: tuple[str, str], w: float) -> None:
        if key[1]:
            seeds[key] = max(seeds.get(key, 0.0), w)

    for pos, cand in enumerate(ranking.candidates[:top_k], start=1):
        w = 1.0 / pos
        add(("Service", cand.service), w)
        add(("Pod", cand.pod), w / 2)
        cited = [*cand.evidence_ids, *(e for s in cand.signals for e in s.evidence_ids)]
        for eid in cited:
            if eid.startswith("template:"):
                add(("LogTemplate", eid.removeprefix("template:")), w / 2)
    return seeds


class _Topology:
    """Adjacency of a subgraph, by edge type and direction."""

    def __init__(self, sub: Subgraph) -> None:
        self.nodes = {n.id: n for n in sub.nodes}
        self.adj: dict[int, set[int]] = defaultdict(set)
        self.out: dict[tuple[int, str], list[int]] = defaultdict(list)
        self.inc: dict[tuple[int, str], list[int]] = defaultdict(list)
        for e in sub.edges:
            self.adj[e.source].add(e.target)
            self.adj[e.target].add(e.source)
            self.out[(e.source, e.type)].append(e.target)
            self.inc[(e.target, e.type)].append(e.source)

    def names(self, nid: int, edge: str, *, outgoing: bool, label: str | None = None) -> list[str]:
        ids = (self.out if outgoing else self.inc).get((nid, edge), [])
        return sorted({self.nodes[i].key for i in ids if label is None or self.nodes[i].label == label})

    def distances(self, start: int, max_hops: int) -> dict[int, int]:
        dist = {start: 0}
        queue = deque([start])
        while queue:
            v = queue.popleft()
            if dist[v] >= max_hops:
                continue
            for w in self.adj.get(v, ()):
                if w not in dist:
                    dist[w] = dist[v] + 1
                    queue.append(w)
        return dist


def graph_hits(
    sub: Subgraph,
    seeds: Mapping[tuple[str, str], float],
    cand_w: Mapping[str, float],
    *,
    hops: int,
    exclude_incident: str | None = None,
) -> list[Hit]:
    """Items of the neighborhood, best first by activation x kind prior (module doc)."""
    topo = _Topology(sub)
    act: dict[int, float] = defaultdict(float)
    for (label, key), w in seeds.items():
        node = sub.node_by_key(label, key)
        if node is None:
            continue
        for nid, d in topo.distances(node.id, hops).items():
            act[nid] += w * DECAY**d
    ranked: list[tuple[float, int, Hit]] = []
    for n in sub.nodes:
        hit = _node_hit(n, topo, cand_w, exclude_incident)
        if hit is not None:
            score = act[n.id] * KIND_PRIOR.get(hit.kind, 0.5)
            ranked.append((score, n.hop, replace(hit, score=round(score, 4), detail=f"hop {n.hop}; {hit.detail}")))
    for e in sub.edges:
        if e.type != "CALLS":
            continue
        a, b = topo.nodes[e.source], topo.nodes[e.target]
        p = e.properties
        score = (act[a.id] + act[b.id]) / 2 * KIND_PRIOR["edge"]
        text = (
            f"{a.key} calls {b.key}: {p.get('calls') or 0} calls, {p.get('errors') or 0} errors, "
            f"mean {float(p.get('mean_ms') or 0):.1f} ms, p95 {float(p.get('p95_ms') or 0):.1f} ms"
        )
        hit = Hit(
            id=f"edge:{a.key}->{b.key}",
            kind="edge",
            text=text,
            service=b.key,
            services=frozenset({a.key, b.key}),
            errors=int(p.get("errors") or 0),
            score=round(score, 4),
            detail=f"hop {min(a.hop, b.hop)}; CALLS",
        )
        ranked.append((score, min(a.hop, b.hop), hit))
    ranked.sort(key=lambda r: (-r[0], r[1], r[2].id))
    return [h for _, _, h in ranked]


def _node_hit(
    n: SubgraphNode, topo: _Topology, cand_w: Mapping[str, float], exclude_incident: str | None
) -> Hit | None:
    kind = _LABEL_KIND.get(n.label)
    p = n.properties
    if kind is None or not n.key:
        return None
    if kind == "service":
        calls = topo.names(n.id, "CALLS", outgoing=True)
        callers = topo.names(n.id, "CALLS", outgoing=False)
        pods = topo.names(n.id, "INSTANCE_OF", outgoing=False)
        parts = [f"service {n.key}"]
        parts += [f"calls {', '.join(calls[:5])}"] if calls else []
        parts += [f"called by {', '.join(callers[:5])}"] if callers else []
        parts += [f"pods {', '.join(pods[:5])}"] if pods else []
        return Hit(id=f"service:{n.key}", kind=kind, text="; ".join(parts), service=n.key, detail="Service")
    if kind == "pod":
        owner = topo.names(n.id, "INSTANCE_OF", outgoing=True)
        host = topo.names(n.id, "RUNS_ON", outgoing=True)
        text = f"pod {n.key}" + (f" of service {owner[0]}" if owner else "") + (f" on node {host[0]}" if host else "")
        return Hit(id=f"pod:{n.key}", kind=kind, text=text, service=owner[0] if owner else "", pod=n.key, detail="Pod")
    if kind == "node":
        pods = topo.names(n.id, "RUNS_ON", outgoing=False)
        services = {
            s for pid in topo.inc.get((n.id, "RUNS_ON"), []) for s in topo.names(pid, "INSTANCE_OF", outgoing=True)
        }
        text = f"node {n.key}" + (f" runs pods {', '.join(pods[:8])}" if pods else "")
        return Hit(
            id=f"node:{n.key}",
            kind=kind,
            text=text,
            service=pick(services, cand_w),
            services=frozenset(services),
            detail="Node",
        )
    if kind == "template":
        emitters = set(topo.names(n.id, "EMITS", outgoing=False))
        return Hit(
            id=f"template:{n.key}",
            kind=kind,
            text=str(p.get("text", "")),
            service=pick(emitters, cand_w),
            services=frozenset(emitters),
            level=str(p.get("level", "")),
            detail="LogTemplate emitted by " + (", ".join(sorted(emitters)[:5]) or "no service in reach"),
        )
    if kind == "runbook":
        covered = set(topo.names(n.id, "COVERS", outgoing=True, label="Service"))
        alerts = topo.names(n.id, "COVERS", outgoing=True, label="Alert")
        text = str(p.get("title") or n.key) + (f" (alerts: {', '.join(alerts)})" if alerts else "")
        url = str(p.get("url") or "")
        return Hit(
            id=f"runbook:{n.key}",
            kind=kind,
            text=text,
            service=pick(covered, cand_w),
            services=frozenset(covered),
            detail="Runbook covering " + (", ".join(sorted(covered)) or "no service") + (f"; {url}" if url else ""),
        )
    if kind == "incident":
        if exclude_incident is not None and n.key == exclude_incident:
            return None
        roots = topo.names(n.id, "ROOT_CAUSE", outgoing=True)
        affected = set(topo.names(n.id, "AFFECTS", outgoing=True)) | set(roots)
        summary = str(p.get("title") or p.get("summary") or f"incident {n.key}")
        text = summary + (f"; root cause {', '.join(roots)}" if roots else "")
        when = next(
            (as_int(p.get(k)) for k in ("time_ns", "alert_ns", "opened_ns", "start_ns") if as_int(p.get(k))), None
        )
        return Hit(
            id=f"incident:{n.key}",
            kind=kind,
            text=text,
            service=pick(set(roots) or affected, cand_w),
            services=frozenset(affected),
            time_ns=when,
            detail="Incident",
        )
    if kind == "operation":
        svc, name = str(p.get("service", "")), str(p.get("name", ""))
        if not svc or not name:
            return None
        return Hit(id=f"operation:{svc}:{name}", kind=kind, text=f"{svc} {name}", service=svc, detail="Operation")
    return Hit(id=f"alert:{n.key}", kind="alert", text=f"alert {n.key}", detail="Alert")
