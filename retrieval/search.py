"""Search over log templates: vector neighbours of the query, kept only where the filters hold (mode `semantic`);
while the vector store or the embedder is down (or none is configured), keyword matches from the event store
instead (mode `text_fallback`, `retrieval.text_search`), with a note that says so and why.

Lines are not embedded one by one: each distinct template is (ENGINE-NOTES), and counts and examples come
from the event store under the same filters as a log query, in both modes.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from core.errors import DevMeshError, EmbedderUnavailable, EngineUnavailable
from retrieval.collections import TEMPLATES
from retrieval.events import LogQuery, matches
from retrieval.text_search import TEXT_SCORE, keyword_matches

if TYPE_CHECKING:
    from retrieval.embedders import Embedder
    from retrieval.events import EventStore
    from retrieval.vectors import VectorStore

log = logging.getLogger(__name__)

_OVERFETCH = 5
SearchMode = Literal["semantic", "text_fallback"]
SEMANTIC: SearchMode = "semantic"
TEXT_FALLBACK: SearchMode = "text_fallback"


class TemplateHit(BaseModel):
    template_id: str
    text: str = Field(description="Template text, variables as <*>.")
    score: float = Field(
        description="Mode semantic: cosine similarity of the template to the query. Mode text_fallback: "
        + TEXT_SCORE
        + " (0 to 1)."
    )
    count: int = Field(description="Lines of this template that match the filters.")
    level: str = ""
    examples: list[dict[str, Any]] = Field(default_factory=list, description="Newest matching lines.")


class SearchResult(BaseModel):
    query: str
    filters: dict[str, Any]
    hits: list[TemplateHit]
    took_ms: float
    mode: SearchMode = Field(
        default=SEMANTIC,
        description="semantic: templates nearest in meaning (vector search). text_fallback: the vector store or the "
        "embedder is down or not configured, so the hits are keyword matches from the event store (see `note`).",
    )
    note: str | None = Field(default=None, description="Why the answer is degraded and how it was ranked; else absent.")


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
    """Templates like `text` with lines under `filters` (at most `limit`, each with up to `examples` lines):
    semantic when the vectors and the embedder answer, else keyword matches, said so in `mode` and `note`."""
    t0 = time.perf_counter()
    base = filters.model_copy(update={"cursor": None, "template_id": None})
    mode, note = SEMANTIC, None
    try:
        if vectors is None or embedder is None:
            raise EmbedderUnavailable("no embedder is configured (DEVMESH_EMBEDDER=none; minilm is the default)")
        hits = semantic_hits(text, base, events=events, vectors=vectors, embedder=embedder, limit=limit)
    except (EmbedderUnavailable, EngineUnavailable) as exc:
        if not hasattr(events, "keyword_templates"):  # an event store without keyword search: the 503 stands
            raise
        hits, note = text_hits(text, base, events=events, limit=limit), fallback_note(exc)
        mode = TEXT_FALLBACK
        log.warning("log search fell back to keywords", extra={"reason": exc.message})
    if hits and examples:
        add_examples(hits, base, events=events, examples=examples)
    return SearchResult(
        query=text,
        filters=filters.model_dump(exclude_none=True, exclude={"order", "limit", "cursor"}),
        hits=hits,
        took_ms=round((time.perf_counter() - t0) * 1000, 2),
        mode=mode,
        note=note,
    )


def fallback_note(exc: DevMeshError) -> str:
    """The note of a text_fallback answer: what is down, and how the hits were ranked."""
    what = "the embedder" if isinstance(exc, EmbedderUnavailable) else "the vector store"
    return (
        f"Semantic search is unavailable ({what}: {exc.message}); these are keyword matches from the event store, "
        f"scored by {TEXT_SCORE}."
    )


def semantic_hits(
    text: str, base: LogQuery, *, events: EventStore, vectors: VectorStore, embedder: Embedder, limit: int
) -> list[TemplateHit]:
    """Vector neighbours of `text` with lines under `base`, nearest first (EmbedderUnavailable or
    EngineUnavailable when the embedder or the vector store does not answer)."""
    vector = embedder.embed([text])[0]
    if TEMPLATES not in vectors.collections():
        neighbours = []
    else:
        neighbours = vectors.search(TEMPLATES, vector, limit=max(limit * _OVERFETCH, 50))
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
    return hits


def text_hits(text: str, base: LogQuery, *, events: EventStore, limit: int) -> list[TemplateHit]:
    """Keyword matches of `text` among the templates with lines under `base`, best first (`retrieval.text_search`)."""
    tokens, found = keyword_matches(text, base, events=events, limit=limit)
    return [
        TemplateHit(
            template_id=m.template_id,
            text=m.text,
            score=round(m.matched / len(tokens), 4),
            count=m.count,
            level=m.level,
        )
        for m in found
    ]


def add_examples(hits: list[TemplateHit], base: LogQuery, *, events: EventStore, examples: int) -> None:
    """Each hit's newest lines under `base` (at most `examples`): the cached ones when they pass the filters."""
    cached = events.cached_examples([h.template_id for h in hits])
    for hit in hits:
        hit.examples = [e for e in cached.get(hit.template_id, []) if matches(base, e)][:examples]
    short = [h.template_id for h in hits if len(h.examples) < min(examples, h.count)]
    if short:  # the kept examples do not pass the filters: look them up
        found = events.latest_examples(base, short, per_template=examples)
        for hit in hits:
            if hit.template_id in found:
                hit.examples = found[hit.template_id]
