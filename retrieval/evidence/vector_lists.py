"""The vector lists: neighbours of the symptom text, one list per collection.

Log templates (only templates with lines in the window), runbook sections and their runbooks
(`runbook_lists`), span summaries of the window (`span_summaries`, embedded on first use) and past
incidents (`retrieval.incident_search`, only incidents before the window). Each list also gives the
similarity to the symptoms of every item it saw, kept or not, for the rerank.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.explanation import EvidenceSource
from retrieval.collections import INCIDENTS, SPANS, TEMPLATES
from retrieval.evidence.context import Gathering, as_int, keep_max, pick
from retrieval.evidence.fusion import Hit, RankedList
from retrieval.evidence.graph_list import GraphFindings
from retrieval.evidence.runbook_lists import runbook_lists
from retrieval.evidence.span_summaries import SpanSummary, index_summaries, search_summaries, window_filter
from retrieval.evidence.vector_query import VectorQuery, search, vector_params
from retrieval.evidence.window import WindowTemplate
from retrieval.incident_search import IncidentHit, fetch_limit, incident_filter, search_incidents
from retrieval.vectors import VectorFilter, VectorHit

MAX_FILTER_IDS = 4096
"""Most template ids a search filters on; with more, it over-fetches and keeps the active ones."""


@dataclass(frozen=True)
class VectorFindings:
    lists: list[RankedList]
    """`vector:templates`, `vector:sections`, `vector:runbooks`, `vector:spans`, `vector:incidents`."""
    sims: dict[str, float]
    """Similarity to the symptoms of every item the searches saw, by item id."""


def vector_lists(
    ctx: Gathering,
    q: VectorQuery,
    active: Mapping[str, WindowTemplate],
    near: GraphFindings,
    summaries: list[SpanSummary],
    exclude_incident: str | None,
) -> VectorFindings:
    """The five vector lists (module doc), in that order."""
    sims: dict[str, float] = {}
    templates, seen = template_list(ctx, q, active)
    sims |= seen
    sections, books, seen = runbook_lists(ctx, q, near)
    sims |= seen
    spans, seen = span_list(ctx, q, summaries)
    sims |= seen
    incidents, seen = incident_list(ctx, q, near, exclude_incident)
    sims |= seen
    lists = [
        ctx.ranked("vector:templates", EvidenceSource.VECTOR, templates),
        ctx.ranked("vector:sections", EvidenceSource.VECTOR, sections),
        ctx.ranked("vector:runbooks", EvidenceSource.VECTOR, books),
        ctx.ranked("vector:spans", EvidenceSource.VECTOR, spans),
        ctx.ranked("vector:incidents", EvidenceSource.VECTOR, incidents),
    ]
    return VectorFindings(lists=lists, sims=sims)


def template_list(
    ctx: Gathering, q: VectorQuery, active: Mapping[str, WindowTemplate]
) -> tuple[list[Hit], dict[str, float]]:
    """Templates with lines in the window, nearest to the symptoms."""
    k = ctx.opt.vector_limit
    ids = sorted(active)
    if not ids:
        ctx.log.skip("vectors.search", q.text, vector_params(TEMPLATES, k, None), "no template has lines in the window")
        return [], {}
    if len(ids) <= MAX_FILTER_IDS:
        found = search(ctx, q, TEMPLATES, k, VectorFilter(match={"template_id": ids}))
    else:  # too many ids to filter on: over-fetch and keep the active ones
        found = [h for h in search(ctx, q, TEMPLATES, k * 20) if h.id in active][:k]
    sims: dict[str, float] = {}
    hits = []
    for h in found:
        keep_max(sims, f"template:{h.id}", h.score)
        if h.score < ctx.opt.min_similarity:
            continue
        services = frozenset(active[h.id].services) if h.id in active else frozenset()
        hits.append(
            Hit(
                id=f"template:{h.id}",
                kind="template",
                text=str(h.payload.get("text", "")),
                service=pick(services, ctx.cand_w),
                services=services,
                level=str(h.payload.get("level", "")),
                in_window=True,
                similarity=h.score,
                score=round(h.score, 4),
                detail="template with lines in the window, near the symptoms",
            )
        )
    return hits, sims


def span_list(ctx: Gathering, q: VectorQuery, summaries: list[SpanSummary]) -> tuple[list[Hit], dict[str, float]]:
    """The window's span summaries, stored (embedding only new texts) and searched within the window."""
    if not summaries:
        ctx.notes.append("no spans in the window: no span summaries")
        return [], {}
    stored: tuple[int, int] | None = ctx.log.run(
        "vectors.upsert",
        "store the window's span summaries in 'spans' (embedding only texts not stored yet)",
        {"collection": SPANS, "summaries": len(summaries), "model": q.embedder.name},
        lambda: index_summaries(q.vectors, q.embedder, summaries),
        default=None,
        count=lambda r: len(summaries) if r is not None else 0,
        describe=lambda r: f"embedded {r[0]}, written {r[1]}" if r is not None else "",
    )
    if stored is None:
        return [], {}
    found: list[VectorHit] = ctx.log.run(
        "vectors.search",
        q.text,
        vector_params(SPANS, len(summaries), window_filter(ctx.window)),
        lambda: search_summaries(q.vectors, q.vector, ctx.window, limit=len(summaries)),
        default=[],
    )
    sims: dict[str, float] = {}
    hits: list[Hit] = []
    for h in found:  # every summary of the window: the similarity of each, the nearest as hits
        sid = str(h.payload.get("summary_id", ""))
        keep_max(sims, sid, h.score)
        if h.score < ctx.opt.min_similarity or len(hits) >= ctx.opt.vector_limit:
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
    return hits, sims


def incident_list(
    ctx: Gathering, q: VectorQuery, near: GraphFindings, exclude: str | None
) -> tuple[list[Hit], dict[str, float]]:
    """Past incidents before the window near the symptoms; and how near the graph's incidents are."""
    k, before = ctx.opt.vector_limit, ctx.window[0] - 1
    params = vector_params(INCIDENTS, fetch_limit(k, exclude), incident_filter(before_ns=before))
    if INCIDENTS not in q.present:
        ctx.log.skip("vectors.search", q.text, params, f"collection {INCIDENTS!r} does not exist")
        return [], {}
    found: list[IncidentHit] = ctx.log.run(
        "vectors.search",
        q.text,
        params,
        lambda: search_incidents(
            q.vectors,
            q.embedder,
            q.text,
            vector=q.vector,
            limit=k,
            min_similarity=ctx.opt.min_similarity,
            exclude=exclude,
            before_ns=before,
        ),
        default=[],
    )
    sims: dict[str, float] = {}
    hits: list[Hit] = []
    for h in found:
        keep_max(sims, f"incident:{h.incident_id}", h.similarity)
        root = str(h.payload.get("confirmed_root_cause") or h.payload.get("root_cause") or "")
        hits.append(
            Hit(
                id=f"incident:{h.incident_id}",
                kind="incident",
                text=str(h.payload.get("summary", ""))[:800] + (f"; root cause {root}" if root else ""),
                service=root,
                time_ns=as_int(h.payload.get("time_ns")),
                similarity=h.similarity,
                score=round(h.similarity, 4),
                detail="past incident near the symptoms",
            )
        )
    in_graph = [h.id.removeprefix("incident:") for h in near.hits if h.kind == "incident"]
    missing = [i for i in in_graph if f"incident:{i}" not in sims]
    if missing:  # the graph's incidents the search did not return: their similarity, by id
        more: list[IncidentHit] = ctx.log.run(
            "vectors.search",
            q.text,
            vector_params(INCIDENTS, len(missing), incident_filter(ids=missing)),
            lambda: search_incidents(q.vectors, q.embedder, q.text, vector=q.vector, limit=len(missing), ids=missing),
            default=[],
        )
        for h in more:
            keep_max(sims, f"incident:{h.incident_id}", h.similarity)
    return hits, sims
