"""The runbook lists: runbook sections near the symptoms, and the runbooks they belong to.

A runbook's services are those it COVERS in the graph: known from the graph list for runbooks in the
neighborhood, looked up (one Cypher query) for runbooks found by meaning alone. Runbooks of the graph
list get their similarity from their best section.
"""

from __future__ import annotations

from typing import Any

from retrieval.collections import RUNBOOKS
from retrieval.evidence.context import Gathering, keep_max, pick
from retrieval.evidence.fusion import Hit
from retrieval.evidence.graph_list import GraphFindings
from retrieval.evidence.vector_query import VectorQuery, search
from retrieval.vectors import VectorFilter

COVERS_QUERY = (
    "UNWIND $ids AS rid MATCH (r:Runbook {id: rid})-[:COVERS]->(s:Service) RETURN rid, collect(DISTINCT s.name)"
)


def runbook_lists(ctx: Gathering, q: VectorQuery, near: GraphFindings) -> tuple[list[Hit], list[Hit], dict[str, float]]:
    """The `vector:sections` and `vector:runbooks` hits, and the similarity of every section and runbook seen."""
    found = search(ctx, q, RUNBOOKS, ctx.opt.vector_limit)
    sims: dict[str, float] = {}
    graph_books = [h.id.removeprefix("runbook:") for h in near.hits if h.kind == "runbook"]
    if graph_books and RUNBOOKS in q.present:  # how near the graph's runbooks are, by their best section
        flt = VectorFilter(match={"runbook_id": graph_books})
        for h in search(ctx, q, RUNBOOKS, min(8 * len(graph_books), 200), flt):
            keep_max(sims, f"runbook:{h.payload.get('runbook_id', '')}", h.score)
    kept = [h for h in found if h.score >= ctx.opt.min_similarity]
    unknown = sorted({str(h.payload.get("runbook_id", "")) for h in kept} - set(near.covers) - {""})
    covers = {**near.covers, **learn_covers(ctx, unknown)}
    sections: list[Hit] = []
    books: list[Hit] = []
    for h in found:
        rid = str(h.payload.get("runbook_id", ""))
        keep_max(sims, f"section:{h.id}", h.score)
        keep_max(sims, f"runbook:{rid}", h.score)
        if h.score < ctx.opt.min_similarity:
            continue
        services = frozenset(covers.get(rid, set()))
        title = str(h.payload.get("title", ""))
        url = str(h.payload.get("url", "") or "")
        sections.append(
            Hit(
                id=f"section:{h.id}",
                kind="section",
                text=f"{title} / {h.payload.get('heading', '')}: {str(h.payload.get('text', ''))[:800]}",
                service=pick(services, ctx.cand_w),
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
                    service=pick(services, ctx.cand_w),
                    services=services,
                    similarity=h.score,
                    score=round(h.score, 4),
                    detail=f"via section:{h.id}" + (f"; {url}" if url else ""),
                )
            )
    return sections, books, sims


def learn_covers(ctx: Gathering, runbook_ids: list[str]) -> dict[str, set[str]]:
    """Services covered by runbooks the vectors found outside the neighborhood (one Cypher query)."""
    graph = ctx.graph
    if not runbook_ids or graph is None:
        return {}
    rows: list[list[Any]] = ctx.log.run(
        "graph.query",
        COVERS_QUERY,
        {"ids": runbook_ids},
        lambda: graph.graph.ro_query(COVERS_QUERY, {"ids": runbook_ids}).result_set,
        default=[],
    )
    return {str(rid): {str(n) for n in names} for rid, names in rows}
