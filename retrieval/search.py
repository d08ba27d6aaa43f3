"""Semantic search over log templates: vector neighbours of the query, kept only where the filters hold.

Lines are not embedded one by one: each distinct template is (ENGINE-NOTES), and counts and examples come
from the event store under the same filters as a log query.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from core.errors import EmbedderUnavailable
from retrieval.collections import TEMPLATES
from retrieval.events import LogQuery, matches

if TYPE_CHECKING:
    from retrieval.embedders import Embedder
    from retrieval.events import EventStore
    from retrieval.vectors import VectorStore

_OVERFETCH = 5


class TemplateHit(BaseModel):
    template_id: str
    text: str = Field(description="Template text, variables as <*>.")
    score: float = Field(description="Cosine similarity of the template to the query.")
    count: int = Field(description="Lines of this template that match the filters.")
    level: str = ""
    examples: list[dict[str, Any]] = Field(default_factory=list, description="Newest matching lines.")


class SearchResult(BaseModel):
    query: str
    filters: dict[str, Any]
    hits: list[TemplateHit]
    took_ms: float


def search_logs(
    text: str,
    filters: LogQuery,
    *,
    events: EventStore,
    vectors: VectorStore | None,
    embedder: Embedder | None,
    limit: int = 10,
    examples: int = 3,
) -> SearchResult:
    t0 = time.perf_counter()
    if vectors is None or embedder is None:
        raise EmbedderUnavailable("semantic search needs an embedder: set DEVMESH_EMBEDDER=minilm (the default)")
    vector = embedder.embed([text])[0]
    if TEMPLATES not in vectors.collections():
        neighbours = []
    else:
        neighbours = vectors.search(TEMPLATES, vector, limit=max(limit * _OVERFETCH, 50))
    base = filters.model_copy(update={"cursor": None, "template_id": None})
    ids = [h.id for h in neighbours]
    counts: dict[str, int] = {}
    if ids and base == LogQuery():
        counts = {t.template_id: t.count for t in events.templates(ids)}  # no filter: the running totals
    elif ids:
        where = base.model_copy(update={"template_id": ids})
        for row in events.count_by("logs", ["template_id"], where=where, limit=len(ids)):
            counts[row["template_id"]] = int(row["count"])
    hits: list[TemplateHit] = []
    for h in neighbours:
        n = counts.get(h.id, 0)
        if not n:
            continue
        hits.append(
            TemplateHit(
                template_id=h.id,
                text=str(h.payload.get("text", "")),
                score=round(float(h.score), 4),
                count=n,
                level=str(h.payload.get("level", "")),
            )
        )
        if len(hits) >= limit:
            break
    if hits and examples:
        cached = events.cached_examples([h.template_id for h in hits])
        for hit in hits:
            hit.examples = [e for e in cached.get(hit.template_id, []) if matches(base, e)][:examples]
        short = [h.template_id for h in hits if len(h.examples) < min(examples, h.count)]
        if short:  # the kept examples do not pass the filters: look them up
            found = events.latest_examples(base, short, per_template=examples)
            for hit in hits:
                if hit.template_id in found:
                    hit.examples = found[hit.template_id]
    return SearchResult(
        query=text,
        filters=filters.model_dump(exclude_none=True, exclude={"order", "limit", "cursor"}),
        hits=hits,
        took_ms=round((time.perf_counter() - t0) * 1000, 2),
    )
