"""What every step of one `gather_evidence` call shares: a small frozen context, and helpers of the steps.

The context holds the call's inputs (ranking, window, options, stores) and its two records, the step
log and the notes, which only grow. What a step finds it returns; the orchestrator (`gather`) passes it
on to the steps that need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from core.explanation import EvidenceSource
from core.rca import RankingResult
from core.steps import StepLog
from retrieval.evidence.fusion import Hit, RankedList
from retrieval.evidence.options import GatherOptions

if TYPE_CHECKING:
    from graph.store import GraphStore
    from retrieval.embedders import Embedder
    from retrieval.events import EventStore
    from retrieval.vectors import VectorStore

STORE_ERRORS: tuple[type[Exception], ...] = (redis.RedisError,)
"""Errors of a store client that make a step `error` with a warning (not a traceback): FalkorDB's."""


@dataclass(frozen=True)
class Gathering:
    """The inputs of one `gather_evidence` call, and where its steps and notes are recorded."""

    ranking: RankingResult
    window: tuple[int, int]
    opt: GatherOptions
    events: EventStore
    graph: GraphStore | None
    vectors: VectorStore | None
    embedder: Embedder | None
    cand_w: Mapping[str, float]
    """1/rank of each top candidate's service (`fusion.candidate_weights`)."""
    log: StepLog
    notes: list[str] = field(default_factory=list)
    """What was skipped, and why."""

    @property
    def win(self) -> dict[str, int]:
        """The window as query parameters."""
        return {"start_ns": self.window[0], "end_ns": self.window[1]}

    def ranked(self, name: str, source: EvidenceSource, hits: list[Hit]) -> RankedList:
        """One list for the fusion, with its weight from the options."""
        return RankedList(name, source, hits, self.opt.list_weights.get(name, 1.0))


def pick(services: set[str] | frozenset[str], weights: Mapping[str, float]) -> str:
    """The service most tied to a candidate, else the first by name."""
    if not services:
        return ""
    return min(services, key=lambda s: (-weights.get(s, 0.0), s))


def as_int(value: Any) -> int | None:
    """A stored number as an int (None for anything else, booleans included)."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def short(ids: Sequence[str], n: int = 20) -> list[str]:
    """Ids for a query record: all of them, or the first n and how many there were."""
    return list(ids) if len(ids) <= n else [*ids[:n], f"... {len(ids)} ids"]


def keep_max(sims: dict[str, float], item_id: str, score: float) -> None:
    """Keep the best similarity seen for an item."""
    sims[item_id] = max(sims.get(item_id, -1.0), score)
