"""Span summaries: the slowest and the erroring operations of each service in a time window, as text.

Built on the fly, per incident window, not at ingest: the figures (spans, errors, p50/p95) belong to a
window, and one aggregation in the event store computes them in milliseconds. They are few (at most
`limit`, 60 by default, a window), which is what an HNSW index should hold (ENGINE-NOTES), so they are
embedded into the "spans" collection the first time a window is summarized:

- one point per (window, service, operation), point id `<start_ns>-<end_ns>|<service>|<operation>`,
  payload {summary_id, service, operation, text, embed_text, window_start_ns, window_end_ns, spans,
  errors, p50_ms, p95_ms}; searches filter on the window's two bounds;
- what is embedded is `embed_text`, the service, the operation and whether it erred, without the
  figures, so it is stable: a window summarized again embeds only operations it did not have, and an
  embedding cache shared with other windows finds the rest;
- points of old windows stay (a few dozen a window); delete them with `vectors.delete` if that matters.

The evidence id of a summary is the ranking's own `operation:<service>:<operation>`, so citations line up.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import InvalidInput
from retrieval.collections import SPANS
from retrieval.vectors import VectorFilter, VectorHit, VectorPoint

if TYPE_CHECKING:
    from retrieval.embedders import Embedder
    from retrieval.events import EventStore
    from retrieval.vectors import VectorStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpanSummary:
    service: str
    operation: str
    spans: int
    errors: int
    p50_ms: float
    p95_ms: float
    window: tuple[int, int]

    @property
    def id(self) -> str:
        """The evidence id (the ranking's operation id)."""
        return f"operation:{self.service}:{self.operation}"

    @property
    def point_id(self) -> str:
        return f"{self.window[0]}-{self.window[1]}|{self.service}|{self.operation}"

    @property
    def text(self) -> str:
        """What a person reads: the figures of the window."""
        errors = ""
        if self.errors and self.spans:
            errors = f", {self.errors} error{'s' if self.errors != 1 else ''} ({self.errors / self.spans:.0%})"
        return (
            f"{self.service} {self.operation}: {self.spans} spans{errors}, "
            f"p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms in the window"
        )

    @property
    def embed_text(self) -> str:
        """What is embedded: stable across windows (no figures)."""
        state = "failing with errors" if self.errors else "slowest operation latency"
        return f"{self.service} {self.operation} {state}"


def summarize_window(
    events: EventStore,
    window: tuple[int, int],
    *,
    services: Sequence[str] | None = None,
    per_service: int = 2,
    limit: int = 60,
) -> list[SpanSummary]:
    """Per service, its `per_service` operations with the most errors and its `per_service` slowest (p95),
    from the spans starting in the window; the worst first (most errors, then slowest), at most `limit`."""
    start, end = window
    if per_service < 1 or limit < 1:
        raise InvalidInput("per_service and limit must be at least 1", field="limit")
    by_service: dict[str, list[SpanSummary]] = defaultdict(list)
    for st in events.span_stats(start, end, services=services):
        if not st.service or not st.operation:
            continue
        by_service[st.service].append(
            SpanSummary(
                service=st.service,
                operation=st.operation,
                spans=int(st.count),
                errors=int(st.errors),
                p50_ms=float(st.p50_ms or 0.0),
                p95_ms=float(st.p95_ms or 0.0),
                window=(start, end),
            )
        )
    chosen: dict[str, SpanSummary] = {}
    for ops in by_service.values():
        erring = sorted((o for o in ops if o.errors), key=lambda o: (-o.errors, -o.p95_ms, o.operation))
        slowest = sorted(ops, key=lambda o: (-o.p95_ms, o.operation))
        for o in [*erring[:per_service], *slowest[:per_service]]:
            chosen.setdefault(o.point_id, o)
    ordered = sorted(chosen.values(), key=lambda o: (-o.errors, -o.p95_ms, o.service, o.operation))
    return ordered[:limit]


def window_filter(window: tuple[int, int]) -> VectorFilter:
    return VectorFilter(match={"window_start_ns": window[0], "window_end_ns": window[1]})


def payload_of(s: SpanSummary) -> dict[str, Any]:
    return {
        "summary_id": s.id,
        "service": s.service,
        "operation": s.operation,
        "text": s.text,
        "embed_text": s.embed_text,
        "window_start_ns": s.window[0],
        "window_end_ns": s.window[1],
        "spans": s.spans,
        "errors": s.errors,
        "p50_ms": round(s.p50_ms, 3),
        "p95_ms": round(s.p95_ms, 3),
    }


def index_summaries(vectors: VectorStore, embedder: Embedder, summaries: Sequence[SpanSummary]) -> tuple[int, int]:
    """Store the summaries in the "spans" collection; returns (texts embedded, points written). A summary
    stored with the same `embed_text` keeps its vector, and one stored exactly as it is is not written."""
    if not summaries:
        return 0, 0
    vectors.ensure_collection(SPANS, embedder.dim)
    stored = {p.id: p for p in vectors.get(SPANS, [s.point_id for s in summaries])}
    todo = [
        s for s in summaries if s.point_id not in stored or stored[s.point_id].payload.get("embed_text") != s.embed_text
    ]
    fresh = (
        dict(zip([s.point_id for s in todo], embedder.embed([s.embed_text for s in todo]), strict=True)) if todo else {}
    )
    points = []
    for s in summaries:
        payload = payload_of(s)
        old = stored.get(s.point_id)
        if s.point_id not in fresh and old is not None and old.payload == payload:
            continue
        vector = fresh[s.point_id] if s.point_id in fresh else stored[s.point_id].vector
        points.append(VectorPoint(id=s.point_id, vector=vector, payload=payload))
    if points:
        vectors.upsert(SPANS, points)
    logger.debug("span summaries indexed", extra={"written": len(points), "embedded": len(todo)})
    return len(todo), len(points)


def search_summaries(
    vectors: VectorStore, vector: np.ndarray, window: tuple[int, int], *, limit: int
) -> list[VectorHit]:
    """The window's summaries nearest to `vector`, best first ([] when the collection does not exist)."""
    if SPANS not in vectors.collections():
        return []
    return vectors.search(SPANS, vector, limit=limit, filter=window_filter(window))
