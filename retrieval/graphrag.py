"""GraphRAG retrieval for one incident: graph neighborhood + vector neighbors + the window's events,
fused and reranked into one evidence list.

`gather_evidence` runs, each as a recorded tool call (exact query text, parameters, duration, status):

1. the event store, restricted to the incident window: lines per template (which templates were
   active, by which services, since when), the most frequent WARN+ templates and their first line;
2. the FalkorDB neighborhood, `hops` edges around the top candidates (their services, pods and the
   templates their signals cite), ordered by *activation*: sum over seeds of
   seed weight x 0.5^distance (seed weight 1/rank, half that for pods and templates), times a kind
   prior; the candidates' own services, pods, nodes, templates, runbooks and past incidents come out;
3. Qdrant neighbors of the symptom text: log templates (only templates with lines in the window),
   runbook sections (and, from them, their runbooks), span summaries of the window
   (`retrieval.span_summaries`, embedded on first use) and past incidents (collection "incidents",
   when it exists; only incidents before the window);
4. weighted reciprocal-rank fusion and the cross-signal rerank of `retrieval.fusion`.

Ids are those the ranking uses (`template:<id>`, `operation:<service>:<op>`, `edge:<a>-><b>`,
`log:<event_id>`), and `service:`, `pod:`, `node:`, `alert:`, `runbook:<runbook id>`,
`section:<section id>`, `incident:<id>` for the rest.

The symptom text is built from the ranking's strongest signals and the window's top error templates
(or given). It is only ever embedded, never sent to a language model as instructions; if shown to one,
render it as delimited data (`agents.evidence_text`). One store failing makes its calls `error` and the
rest goes on.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import redis
from pydantic import BaseModel, Field

from core.errors import DevMeshError, InvalidInput
from core.explanation import EvidenceItem, EvidenceSource
from core.naming import level_rank, normalize_level
from core.rca import RankingResult
from core.timeutil import now_ns
from graph.neighborhood import MAX_HOPS, Subgraph, SubgraphNode, neighborhood
from retrieval.fusion import Hit, RankedList, RerankWeights, candidate_weights, rerank, rrf_fuse, to_evidence
from retrieval.span_summaries import (
    SPANS,
    SpanSummary,
    index_summaries,
    search_summaries,
    summarize_window,
    window_filter,
)
from retrieval.vectors import VectorFilter, VectorHit, VectorPoint

if TYPE_CHECKING:
    from graph.store import GraphStore
    from retrieval.embedders import Embedder
    from retrieval.eventstore import EventStore, StoredTemplate, TemplateCount
    from retrieval.vectors import VectorStore

logger = logging.getLogger(__name__)
T = TypeVar("T")

TEMPLATES = "templates"
RUNBOOKS = "runbooks"
INCIDENTS = "incidents"

LIST_WEIGHTS: Mapping[str, float] = {
    "graph": 1.0,
    "events:templates": 1.0,
    "events:logs": 0.7,
    "vector:templates": 1.0,
    "vector:sections": 0.8,
    "vector:runbooks": 0.8,
    "vector:spans": 0.8,
    "vector:incidents": 0.8,
}
"""RRF weight of each list (a list missing here weighs 1.0)."""

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
COVERS_QUERY = (
    "UNWIND $ids AS rid MATCH (r:Runbook {id: rid})-[:COVERS]->(s:Service) RETURN rid, collect(DISTINCT s.name)"
)
MAX_FILTER_IDS = 4096
_PLACEHOLDER = re.compile(r"<\*>")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class GatherOptions:
    """Knobs of `gather_evidence`; the defaults are generic, not fitted to a data set."""

    candidates: int = 3
    """Top candidates that seed the graph and count for the rerank's service feature."""
    graph_nodes: int = 300
    """Most nodes taken from the neighborhood (nearer ones win)."""
    vector_limit: int = 10
    """Hits per vector collection."""
    min_similarity: float = 0.2
    """Vector hits less similar than this to the symptoms are left out."""
    error_templates: int = 10
    """WARN+ templates of the window listed from the event store (with their first line each)."""
    summaries: int = 60
    """Most span summaries made for the window."""
    max_per_kind: int | None = 12
    rrf_k: int = 60
    list_weights: Mapping[str, float] = field(default_factory=lambda: dict(LIST_WEIGHTS))
    rerank: RerankWeights = field(default_factory=RerankWeights)
    max_symptom_chars: int = 2000


class EvidenceBundle(BaseModel):
    """The fused evidence of one incident window, and how it was found."""

    items: list[EvidenceItem] = Field(default_factory=list, description="Best first; `score` is the rerank score.")
    queries: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Every tool call: tool, query, params, started_ns, duration_ms, status (ok|no_data|error), "
        "items, detail (the fields of core.explanation.AgentStep but `agent`).",
    )
    symptoms: str = Field(default="", description="The text the vector searches used (data, not instructions).")
    sources: dict[str, list[str]] = Field(
        default_factory=dict, description="Per item id, every source that found it (graph, vector, events)."
    )
    features: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Per item id, the rerank features (fusion, service, window, error, similarity).",
    )
    notes: list[str] = Field(default_factory=list, description="What was skipped, and why.")
    took_ms: float = 0.0

    def __len__(self) -> int:
        return len(self.items)


class _Recorder:
    """Runs tool calls and keeps one record each; a store error becomes status `error`, not an exception."""

    def __init__(self) -> None:
        self.queries: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def run(
        self,
        tool: str,
        query: str,
        params: dict[str, Any],
        fn: Callable[[], T],
        *,
        default: T,
        count: Callable[[T], int] = len,  # type: ignore[assignment]
        describe: Callable[[T], str] | None = None,
    ) -> T:
        started = now_ns()
        t0 = time.perf_counter()
        status, detail = "ok", ""
        try:
            result = fn()
        except (DevMeshError, redis.RedisError) as exc:
            detail = exc.message if isinstance(exc, DevMeshError) else f"{type(exc).__name__}: {exc}"
            logger.warning("evidence tool failed", extra={"tool": tool, "error": detail})
            result, status = default, "error"
        items = count(result) if status == "ok" else 0
        if status == "ok" and describe is not None:
            detail = describe(result)
        if status == "ok" and items == 0:
            status = "no_data"
        self.queries.append(
            {
                "tool": tool,
                "query": query,
                "params": params,
                "started_ns": started,
                "duration_ms": round((time.perf_counter() - t0) * 1000, 3),
                "status": status,
                "items": items,
                "detail": detail,
            }
        )
        return result

    def skipped(self, tool: str, query: str, params: dict[str, Any], reason: str) -> None:
        self.queries.append(
            {
                "tool": tool,
                "query": query,
                "params": params,
                "started_ns": now_ns(),
                "duration_ms": 0.0,
                "status": "no_data",
                "items": 0,
                "detail": reason,
            }
        )


@dataclass
class _WindowTemplate:
    count: int = 0
    first_ns: int = 0
    services: set[str] = field(default_factory=set)


# -- symptoms ----------------------------------------------------------------------------------------


def as_data(lines: Sequence[str], *, max_chars: int = 2000, max_line: int = 300) -> str:
    """Lines of untrusted text made plain: no control or invisible characters, one line each, capped,
    repeats dropped."""
    out: list[str] = []
    for raw in lines:
        line = _SPACES.sub(" ", _CONTROL.sub(" ", raw)).strip()[:max_line]
        if line and line not in out:
            out.append(line)
    return "\n".join(out)[:max_chars]


def build_symptoms(
    ranking: RankingResult, error_templates: Sequence[Mapping[str, Any]], *, per_part: int = 5, max_chars: int = 2000
) -> str:
    """The ranking's strongest signals in their own words, then the window's top error templates
    (ERROR and above, or WARN when there are none), placeholders removed."""
    signals = list(ranking.signals) or [s for c in ranking.candidates for s in c.signals]
    lines = [s.description or f"{s.service} {s.kind.value} {s.key}" for s in signals[:per_part]]
    errors = [t for t in error_templates if level_rank(normalize_level(str(t.get("level", "")))) >= level_rank("ERROR")]
    for t in (errors or list(error_templates))[:per_part]:
        services = ", ".join(t.get("services") or [])
        text = _PLACEHOLDER.sub(" ", str(t.get("text", "")))
        lines.append(f"{services}: {text}" if services else text)
    return as_data(lines, max_chars=max_chars)


# -- graph --------------------------------------------------------------------------------------------


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


def _pick(services: set[str] | frozenset[str], weights: Mapping[str, float]) -> str:
    """The service most tied to a candidate, else the first by name."""
    if not services:
        return ""
    return min(services, key=lambda s: (-weights.get(s, 0.0), s))


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


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
            service=_pick(services, cand_w),
            services=frozenset(services),
            detail="Node",
        )
    if kind == "template":
        emitters = set(topo.names(n.id, "EMITS", outgoing=False))
        return Hit(
            id=f"template:{n.key}",
            kind=kind,
            text=str(p.get("text", "")),
            service=_pick(emitters, cand_w),
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
            service=_pick(covered, cand_w),
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
        when = next((_int(p.get(k)) for k in ("time_ns", "alert_ns", "opened_ns", "start_ns") if _int(p.get(k))), None)
        return Hit(
            id=f"incident:{n.key}",
            kind=kind,
            text=text,
            service=_pick(set(roots) or affected, cand_w),
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


# -- vectors ------------------------------------------------------------------------------------------


def _cosines(points: Sequence[Any], query: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    qn = float(np.linalg.norm(query)) or 1.0
    for p in points:
        v = np.asarray(p.vector, dtype=np.float32)
        out[p.id] = float(np.dot(v, query) / ((float(np.linalg.norm(v)) or 1.0) * qn))
    return out


def _vector_params(collection: str, limit: int, flt: VectorFilter | None) -> dict[str, Any]:
    params: dict[str, Any] = {"collection": collection, "limit": limit}
    if flt is not None:
        match = {k: _short([str(x) for x in v]) if isinstance(v, list) else v for k, v in flt.match.items()}
        params["filter"] = {"match": match, "ranges": {k: list(v) for k, v in flt.ranges.items()}}
    return params


# -- the whole ----------------------------------------------------------------------------------------


def gather_evidence(
    *,
    ranking: RankingResult,
    window: tuple[int, int],
    events: EventStore,
    graph: GraphStore | None,
    vectors: VectorStore | None,
    embedder: Embedder | None,
    symptoms: str | None = None,
    hops: int = 2,
    limit: int = 40,
    exclude_incident: str | None = None,
    options: GatherOptions | None = None,
) -> EvidenceBundle:
    """Graph neighborhood of the top candidates + vector neighbors of the symptoms + the window's events,
    fused (weighted RRF) and reranked into at most `limit` items (module doc). `exclude_incident` keeps
    the incident being explained out of the past incidents."""
    t0 = time.perf_counter()
    start, end = _check(window, hops, limit)
    run = _Gathering(ranking, (start, end), events, graph, vectors, embedder, options or GatherOptions())
    run.window_events()
    run.symptoms = (
        as_data(symptoms.splitlines(), max_chars=run.opt.max_symptom_chars)
        if symptoms
        else build_symptoms(ranking, run.top, max_chars=run.opt.max_symptom_chars)
    )
    run.graph_list(hops, exclude_incident)
    run.span_summaries()
    run.vector_lists(exclude_incident)
    run.similarities()
    fused = rrf_fuse(run.annotated(), k=run.opt.rrf_k)
    ranked = rerank(
        fused, candidates=run.cand_w, weights=run.opt.rerank, limit=limit, max_per_kind=run.opt.max_per_kind
    )
    bundle = EvidenceBundle(
        items=[to_evidence(f) for f in ranked],
        queries=run.rec.queries,
        symptoms=run.symptoms,
        sources={f.id: [s.value for s in f.sources] for f in ranked},
        features={f.id: {k: round(v, 4) for k, v in f.features.items()} for f in ranked},
        notes=run.rec.notes,
        took_ms=round((time.perf_counter() - t0) * 1000, 2),
    )
    logger.info(
        "evidence gathered",
        extra={
            "items": len(bundle.items),
            "fused": len(fused),
            "calls": len(run.rec.queries),
            "took_ms": bundle.took_ms,
        },
    )
    return bundle


def _check(window: tuple[int, int], hops: int, limit: int) -> tuple[int, int]:
    try:
        start, end = window
    except (TypeError, ValueError):
        raise InvalidInput("window must be a (start_ns, end_ns) pair", field="window") from None
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)) or start >= end:
        raise InvalidInput("window must be two integers (ns) with start < end", field="window")
    if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= MAX_HOPS:
        raise InvalidInput(f"hops must be an integer from 0 to {MAX_HOPS}", field="hops")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput("limit must be a positive integer", field="limit")
    return start, end


def _short(ids: Sequence[str], n: int = 20) -> list[str]:
    """Ids for a query record: all of them, or the first n and how many there were."""
    return list(ids) if len(ids) <= n else [*ids[:n], f"... {len(ids)} ids"]


class _Gathering:
    """The state of one `gather_evidence` call: what each step found, for the next steps."""

    def __init__(
        self,
        ranking: RankingResult,
        window: tuple[int, int],
        events: EventStore,
        graph: GraphStore | None,
        vectors: VectorStore | None,
        embedder: Embedder | None,
        opt: GatherOptions,
    ) -> None:
        self.ranking, self.window, self.opt = ranking, window, opt
        self.events, self.graph, self.vectors, self.embedder = events, graph, vectors, embedder
        self.rec = _Recorder()
        self.cand_w = candidate_weights([c.service for c in ranking.candidates[: opt.candidates]])
        self.lists: list[RankedList] = []
        self.active: dict[str, _WindowTemplate] = defaultdict(_WindowTemplate)
        self.top: list[dict[str, Any]] = []
        self.log_templates: dict[str, str] = {}
        self.symptoms = ""
        self.g_hits: list[Hit] = []
        self.covers: dict[str, set[str]] = {}
        self.summaries: list[SpanSummary] = []
        self.query: np.ndarray | None = None
        self.present: list[str] = []
        self.sims: dict[str, float] = {}
        self.last_seen: dict[str, int] = {}

    @property
    def win(self) -> dict[str, int]:
        return {"start_ns": self.window[0], "end_ns": self.window[1]}

    def add(self, name: str, source: EvidenceSource, hits: list[Hit]) -> None:
        self.lists.append(RankedList(name, source, hits, self.opt.list_weights.get(name, 1.0)))

    # 1. the window in the event store
    def window_events(self) -> None:
        start, end = self.window
        counts: list[TemplateCount] = self.rec.run(
            "events.template_counts",
            "EventStore.template_counts(start_ns, end_ns): lines per (template, service) in [start_ns, end_ns)",
            self.win,
            lambda: self.events.template_counts(start, end),
            default=[],
        )
        for c in counts:
            a = self.active[c.template_id]
            a.first_ns = min(a.first_ns, c.first_ns) if a.count else c.first_ns
            a.count += c.count
            a.services.add(c.service)
        n = self.opt.error_templates
        self.top = self.rec.run(
            "events.top_templates",
            "EventStore.top_templates(min_level, limit, start_ns, end_ns): most frequent templates at min_level+",
            {"min_level": "WARN", "limit": n, **self.win},
            lambda: self.events.top_templates(min_level="WARN", limit=n, start_ns=start, end_ns=end),
            default=[],
        )
        ids = [str(t["template_id"]) for t in self.top]
        examples: dict[str, list[dict[str, Any]]] = {}
        if ids:
            examples = self.rec.run(
                "events.example_lines",
                "EventStore.example_lines(template_ids, start_ns, end_ns, per_template): first lines in the window",
                {"template_ids": ids, **self.win, "per_template": 1},
                lambda: self.events.example_lines(ids, start, end, per_template=1),
                default={},
                count=lambda d: sum(len(v) for v in d.values()),
            )
        templates: list[Hit] = []
        logs: list[Hit] = []
        for t in self.top:
            tid = str(t["template_id"])
            services = frozenset(t.get("services") or [])
            templates.append(
                Hit(
                    id=f"template:{tid}",
                    kind="template",
                    text=str(t.get("text", "")),
                    service=_pick(services, self.cand_w),
                    services=services,
                    level=str(t.get("level", "")),
                    in_window=True,
                    score=float(t.get("count", 0)),
                    detail="WARN+ lines in the window",
                )
            )
            for ex in examples.get(tid, [])[:1]:
                log_id = f"log:{ex['event_id']}"
                self.log_templates[log_id] = tid
                logs.append(
                    Hit(
                        id=log_id,
                        kind="log",
                        text=str(ex.get("message", "")),
                        service=str(ex.get("service", "")),
                        pod=str(ex.get("pod", "")),
                        time_ns=int(ex["ts_ns"]),
                        level=str(ex.get("level", "")),
                        in_window=True,
                        detail=f"first line of template:{tid} in the window",
                    )
                )
        self.add("events:templates", EvidenceSource.EVENTS, templates)
        self.add("events:logs", EvidenceSource.EVENTS, logs)

    # 2. the graph neighborhood
    def graph_list(self, hops: int, exclude_incident: str | None) -> None:
        graph = self.graph
        if graph is None:
            self.rec.notes.append("no graph store: graph neighborhood skipped")
            return
        seeds = seed_weights(self.ranking, self.opt.candidates)
        if not seeds:
            self.rec.notes.append("no candidates to start the graph neighborhood from")
            return
        limit = self.opt.graph_nodes
        sub = self.rec.run(
            "graph.neighborhood",
            NEIGHBORHOOD_QUERY,
            {"seeds": [f"{label}:{key}" for label, key in seeds], "hops": hops, "limit": limit},
            lambda: neighborhood(graph.graph, list(seeds), hops=hops, limit=limit),
            default=None,
            count=lambda s: len(s.nodes) if s is not None else 0,
        )
        if sub is None:
            return
        if sub.truncated:
            self.rec.notes.append(f"graph neighborhood cut at {limit} nodes (nearer nodes kept)")
        self.g_hits = graph_hits(sub, seeds, self.cand_w, hops=hops, exclude_incident=exclude_incident)
        for h in self.g_hits:
            if h.kind == "runbook":
                self.covers[h.id.removeprefix("runbook:")] = set(h.services)
        self.add("graph", EvidenceSource.GRAPH, self.g_hits)

    # 3. span summaries of the window (from the event store; embedded with the vectors)
    def span_summaries(self) -> None:
        n = self.opt.summaries
        self.summaries = self.rec.run(
            "events.span_stats",
            "EventStore.span_stats(start_ns, end_ns): spans, errors, p50/p95 per (service, operation); "
            "kept: the most erroring and the slowest operations of each service",
            {**self.win, "limit": n},
            lambda: summarize_window(self.events, self.window, limit=n),
            default=[],
        )

    # 4. vector neighbors of the symptoms
    def vector_lists(self, exclude_incident: str | None) -> None:
        vectors, embedder, text = self.vectors, self.embedder, self.symptoms
        if vectors is None or embedder is None:
            self.rec.notes.append("no embedder or vector store: vector search skipped")
            return
        if not text:
            self.rec.notes.append("no symptom text (no signals, no error lines in the window): vector search skipped")
            return
        self.query = self.rec.run(
            "embedder.embed",
            text,
            {"model": embedder.name, "texts": 1},
            lambda: np.asarray(embedder.embed([text])[0], dtype=np.float32),
            default=None,
            count=lambda v: 0 if v is None else 1,
        )
        if self.query is None:
            return
        self.present = self.rec.run("vectors.collections", "list the collections", {}, vectors.collections, default=[])
        self.add("vector:templates", EvidenceSource.VECTOR, self._templates())
        sections, books = self._runbooks()
        self.add("vector:sections", EvidenceSource.VECTOR, sections)
        self.add("vector:runbooks", EvidenceSource.VECTOR, books)
        self.add("vector:spans", EvidenceSource.VECTOR, self._spans(vectors, embedder))
        self.add("vector:incidents", EvidenceSource.VECTOR, self._incidents(exclude_incident))

    def _search(self, name: str, limit: int, flt: VectorFilter | None = None) -> list[VectorHit]:
        assert self.vectors is not None and self.query is not None
        vectors, query = self.vectors, self.query
        params = _vector_params(name, limit, flt)
        if name not in self.present:
            self.rec.skipped("vectors.search", self.symptoms, params, f"collection {name!r} does not exist")
            return []
        return self.rec.run(
            "vectors.search",
            self.symptoms,
            params,
            lambda: vectors.search(name, query, limit=limit, filter=flt),
            default=[],
        )

    def _sim(self, item_id: str, score: float) -> None:
        self.sims[item_id] = max(self.sims.get(item_id, -1.0), score)

    def _templates(self) -> list[Hit]:
        k, active = self.opt.vector_limit, self.active
        ids = sorted(active)
        if not ids:
            params = _vector_params(TEMPLATES, k, None)
            self.rec.skipped("vectors.search", self.symptoms, params, "no template has lines in the window")
            return []
        if len(ids) <= MAX_FILTER_IDS:
            found = self._search(TEMPLATES, k, VectorFilter(match={"template_id": ids}))
        else:  # too many ids to filter on: over-fetch and keep the active ones
            found = [h for h in self._search(TEMPLATES, k * 20) if h.id in active][:k]
        hits = []
        for h in found:
            self._sim(f"template:{h.id}", h.score)
            if h.score < self.opt.min_similarity:
                continue
            services = frozenset(active[h.id].services) if h.id in active else frozenset()
            hits.append(
                Hit(
                    id=f"template:{h.id}",
                    kind="template",
                    text=str(h.payload.get("text", "")),
                    service=_pick(services, self.cand_w),
                    services=services,
                    level=str(h.payload.get("level", "")),
                    in_window=True,
                    similarity=h.score,
                    score=round(h.score, 4),
                    detail="template with lines in the window, near the symptoms",
                )
            )
        return hits

    def _runbooks(self) -> tuple[list[Hit], list[Hit]]:
        found = self._search(RUNBOOKS, self.opt.vector_limit)
        graph_books = [h.id.removeprefix("runbook:") for h in self.g_hits if h.kind == "runbook"]
        if graph_books and RUNBOOKS in self.present:  # how near the graph's runbooks are, by their best section
            flt = VectorFilter(match={"runbook_id": graph_books})
            for h in self._search(RUNBOOKS, min(8 * len(graph_books), 200), flt):
                self._sim(f"runbook:{h.payload.get('runbook_id', '')}", h.score)
        kept = [h for h in found if h.score >= self.opt.min_similarity]
        self._learn_covers(sorted({str(h.payload.get("runbook_id", "")) for h in kept} - set(self.covers) - {""}))
        sections: list[Hit] = []
        books: list[Hit] = []
        for h in found:
            rid = str(h.payload.get("runbook_id", ""))
            self._sim(f"section:{h.id}", h.score)
            self._sim(f"runbook:{rid}", h.score)
            if h.score < self.opt.min_similarity:
                continue
            services = frozenset(self.covers.get(rid, set()))
            title = str(h.payload.get("title", ""))
            url = str(h.payload.get("url", "") or "")
            sections.append(
                Hit(
                    id=f"section:{h.id}",
                    kind="section",
                    text=f"{title} / {h.payload.get('heading', '')}: {str(h.payload.get('text', ''))[:800]}",
                    service=_pick(services, self.cand_w),
                    services=services,
                    similarity=h.score,
                    score=round(h.score, 4),
                    detail=f"{h.payload.get('kind', 'other')} section of runbook:{rid}",
                )
            )
            if rid and all(b.id != f"runbook:{rid}" for b in books):
                books.append(
                    Hit(
                        id=f"runbook:{rid}",
                        kind="runbook",
                        text=title or rid,
                        service=_pick(services, self.cand_w),
                        services=services,
                        similarity=h.score,
                        score=round(h.score, 4),
                        detail=f"via section:{h.id}" + (f"; {url}" if url else ""),
                    )
                )
        return sections, books

    def _learn_covers(self, runbook_ids: list[str]) -> None:
        """Services covered by runbooks the vectors found outside the neighborhood (one Cypher query)."""
        graph = self.graph
        if not runbook_ids or graph is None:
            return
        rows: list[list[Any]] = self.rec.run(
            "graph.query",
            COVERS_QUERY,
            {"ids": runbook_ids},
            lambda: graph.graph.ro_query(COVERS_QUERY, {"ids": runbook_ids}).result_set,
            default=[],
        )
        for rid, names in rows:
            self.covers[str(rid)] = {str(n) for n in names}

    def _spans(self, vectors: VectorStore, embedder: Embedder) -> list[Hit]:
        summaries = self.summaries
        if not summaries:
            self.rec.notes.append("no spans in the window: no span summaries")
            return []
        stored: tuple[int, int] | None = self.rec.run(
            "vectors.upsert",
            "store the window's span summaries in 'spans' (embedding only texts not stored yet)",
            {"collection": SPANS, "summaries": len(summaries), "model": embedder.name},
            lambda: index_summaries(vectors, embedder, summaries),
            default=None,
            count=lambda r: len(summaries) if r is not None else 0,
            describe=lambda r: f"embedded {r[0]}, written {r[1]}" if r is not None else "",
        )
        if stored is None:
            return []
        flt = window_filter(self.window)
        query = self.query
        assert query is not None
        found: list[VectorHit] = self.rec.run(
            "vectors.search",
            self.symptoms,
            _vector_params(SPANS, len(summaries), flt),
            lambda: search_summaries(vectors, query, self.window, limit=len(summaries)),
            default=[],
        )
        hits: list[Hit] = []
        for h in found:  # every summary of the window: the similarity of each, the nearest as hits
            sid = str(h.payload.get("summary_id", ""))
            self._sim(sid, h.score)
            if h.score < self.opt.min_similarity or len(hits) >= self.opt.vector_limit:
                continue
            hits.append(
                Hit(
                    id=sid,
                    kind="operation",
                    text=str(h.payload.get("text", "")),
                    service=str(h.payload.get("service", "")),
                    errors=int(h.payload.get("errors", 0) or 0),
                    in_window=True,
                    similarity=h.score,
                    score=round(h.score, 4),
                    detail="span summary of the window",
                )
            )
        return hits

    def _incidents(self, exclude_incident: str | None) -> list[Hit]:
        k = self.opt.vector_limit
        found = self._search(INCIDENTS, k + 1, VectorFilter(ranges={"time_ns": (None, self.window[0] - 1)}))
        hits: list[Hit] = []
        for h in found:
            iid = str(h.payload.get("incident_id") or h.id)
            self._sim(f"incident:{iid}", h.score)
            if iid == exclude_incident or h.score < self.opt.min_similarity or len(hits) >= k:
                continue
            root = str(h.payload.get("confirmed_root_cause") or h.payload.get("root_cause") or "")
            hits.append(
                Hit(
                    id=f"incident:{iid}",
                    kind="incident",
                    text=str(h.payload.get("summary", ""))[:800] + (f"; root cause {root}" if root else ""),
                    service=root,
                    time_ns=_int(h.payload.get("time_ns")),
                    similarity=h.score,
                    score=round(h.score, 4),
                    detail="past incident near the symptoms",
                )
            )
        in_graph = [h.id.removeprefix("incident:") for h in self.g_hits if h.kind == "incident"]
        missing = [i for i in in_graph if f"incident:{i}" not in self.sims]
        if missing and INCIDENTS in self.present:
            for h in self._search(INCIDENTS, len(missing), VectorFilter(match={"incident_id": missing})):
                self._sim(f"incident:{h.payload.get('incident_id', h.id)}", h.score)
        return hits

    # 5. what the vectors and the store know of items other lists found
    def similarities(self) -> None:
        templates = {h.id.removeprefix("template:") for lst in self.lists for h in lst.hits if h.kind == "template"}
        need = sorted(t for t in templates if f"template:{t}" not in self.sims)
        vectors, query = self.vectors, self.query
        if need and vectors is not None and query is not None and TEMPLATES in self.present:
            points: list[VectorPoint] = self.rec.run(
                "vectors.get",
                "stored vectors of templates by id (cosine to the symptoms computed here)",
                {"collection": TEMPLATES, "ids": _short(need)},
                lambda: vectors.get(TEMPLATES, need),
                default=[],
            )
            for tid, cos in _cosines(points, query).items():
                self.sims[f"template:{tid}"] = cos
        for log_id, tid in self.log_templates.items():
            if f"template:{tid}" in self.sims:
                self.sims[log_id] = self.sims[f"template:{tid}"]
        outside = sorted(templates - set(self.active))
        if outside:
            stored: list[StoredTemplate] = self.rec.run(
                "events.templates",
                "EventStore.templates(ids): stored templates with their count and first/last line time",
                {"ids": _short(outside)},
                lambda: self.events.templates(outside),
                default=[],
            )
            self.last_seen = {t.template_id: t.last_ns for t in stored if t.last_ns}

    def annotated(self) -> list[RankedList]:
        """The lists with what the window and the vectors know about each item, whichever list found it."""
        return [replace(lst, hits=[self._annotate(h) for h in lst.hits]) for lst in self.lists]

    def _annotate(self, hit: Hit) -> Hit:
        sim = self.sims.get(hit.id, hit.similarity)
        if hit.kind != "template":
            return replace(hit, similarity=sim)
        tid = hit.id.removeprefix("template:")
        a = self.active.get(tid)
        if a is None:
            return replace(hit, in_window=False, similarity=sim, time_ns=self.last_seen.get(tid, hit.time_ns))
        return replace(
            hit, in_window=True, time_ns=a.first_ns, services=hit.services | frozenset(a.services), similarity=sim
        )
