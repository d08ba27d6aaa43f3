"""`gather_evidence`: the evidence of one incident window, gathered, fused and reranked.

The steps run in this order, each a function of the context (`context.Gathering`) and of what the
steps before it returned:

1. the event store, restricted to the window (`window.window_events`);
2. the symptom text (`symptoms`), unless the caller gives one;
3. the FalkorDB neighborhood of the top candidates (`graph_list`);
4. the window's span summaries (`window.window_summaries`);
5. the symptoms embedded once (`vector_query`), and the vector lists (`vector_lists`);
6. what the vectors and the store know of items other lists found (`similarities`);
7. weighted reciprocal-rank fusion and the cross-signal rerank (`fusion`).

Every store call is a recorded step (`core.steps`); one store failing makes its steps `error` and the
rest goes on.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from core.errors import InvalidInput
from core.explanation import AgentStep, EvidenceItem
from core.rca import RankingResult
from core.steps import StepLog
from graph.neighborhood import MAX_HOPS
from retrieval.evidence.context import STORE_ERRORS, Gathering
from retrieval.evidence.fusion import candidate_weights, rerank, rrf_fuse, to_evidence
from retrieval.evidence.graph_list import graph_list
from retrieval.evidence.options import GatherOptions
from retrieval.evidence.similarities import annotated, similarities
from retrieval.evidence.symptoms import as_data, build_symptoms
from retrieval.evidence.vector_lists import VectorFindings, vector_lists
from retrieval.evidence.vector_query import embed_symptoms
from retrieval.evidence.window import window_events, window_summaries

if TYPE_CHECKING:
    from graph.store import GraphStore
    from retrieval.embedders import Embedder
    from retrieval.events import EventStore
    from retrieval.vectors import VectorStore

logger = logging.getLogger(__name__)


class EvidenceBundle(BaseModel):
    """The fused evidence of one incident window, and how it was found."""

    items: list[EvidenceItem] = Field(default_factory=list, description="Best first; `score` is the rerank score.")
    queries: list[AgentStep] = Field(
        default_factory=list,
        description="Every tool call, in order: tool, exact query, parameters, duration, status (ok|no_data|error).",
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
    agent: str = "retrieval",
) -> EvidenceBundle:
    """Graph neighborhood of the top candidates + vector neighbors of the symptoms + the window's events,
    fused (weighted RRF) and reranked into at most `limit` items (module doc). `exclude_incident` keeps
    the incident being explained out of the past incidents; `agent` is who the recorded steps are of."""
    t0 = time.perf_counter()
    opt = options or GatherOptions()
    ctx = Gathering(
        ranking=ranking,
        window=_check(window, hops, limit),
        opt=opt,
        events=events,
        graph=graph,
        vectors=vectors,
        embedder=embedder,
        cand_w=candidate_weights([c.service for c in ranking.candidates[: opt.candidates]]),
        log=StepLog(agent, expected=STORE_ERRORS),
    )
    found = window_events(ctx)
    text = (
        as_data(symptoms.splitlines(), max_chars=opt.max_symptom_chars)
        if symptoms
        else build_symptoms(ranking, found.top, max_chars=opt.max_symptom_chars)
    )
    near = graph_list(ctx, hops, exclude_incident)
    summaries = window_summaries(ctx)
    query = embed_symptoms(ctx, text)
    vec = (
        vector_lists(ctx, query, found.active, near, summaries, exclude_incident)
        if query is not None
        else VectorFindings(lists=[], sims={})
    )
    lists = [*found.lists, *near.lists, *vec.lists]
    sims, last_seen = similarities(ctx, lists, vec.sims, query, found)
    fused = rrf_fuse(annotated(lists, sims, found.active, last_seen), k=opt.rrf_k)
    ranked = rerank(fused, candidates=ctx.cand_w, weights=opt.rerank, limit=limit, max_per_kind=opt.max_per_kind)
    bundle = EvidenceBundle(
        items=[to_evidence(f) for f in ranked],
        queries=ctx.log.steps,
        symptoms=text,
        sources={f.id: [s.value for s in f.sources] for f in ranked},
        features={f.id: {k: round(v, 4) for k, v in f.features.items()} for f in ranked},
        notes=ctx.notes,
        took_ms=round((time.perf_counter() - t0) * 1000, 2),
    )
    logger.info(
        "evidence gathered",
        extra={
            "items": len(bundle.items),
            "fused": len(fused),
            "calls": len(bundle.queries),
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
