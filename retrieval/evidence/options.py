"""The knobs of `gather_evidence` (`GatherOptions`) and the RRF weight of each evidence list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from retrieval.evidence.fusion import RerankWeights

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
