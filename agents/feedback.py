"""Past incidents like this one, found by meaning, with the root cause people confirmed for them (the
ranking's feedback step, `detect.rank.feedback`, uses those confirmations)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.explanation import AgentStep, SimilarIncident
from core.steps import record
from retrieval.collections import INCIDENTS
from retrieval.incident_search import IncidentHit, search_incidents

if TYPE_CHECKING:
    from agents.toolbox import Toolbox

MIN_SIMILARITY = 0.6


def similar_incidents(
    tools: Toolbox, symptoms: str, *, exclude: str, limit: int = 5
) -> tuple[list[SimilarIncident], list[AgentStep]]:
    """Past incidents at least `MIN_SIMILARITY` alike by their symptoms (not `exclude`), as one step."""
    if not symptoms or tools.vectors is None or tools.embedder is None:
        return [], []
    vectors, embedder = tools.vectors, tools.embedder
    if INCIDENTS not in vectors.collections():
        return [], []
    found, step = record(
        "topology",
        "vectors.search",
        f"nearest past incidents to the symptoms in '{INCIDENTS}'",
        {
            "collection": INCIDENTS,
            "limit": limit,
            "min_similarity": MIN_SIMILARITY,
            "exclude": exclude,
            "text": symptoms[:200],
        },
        lambda: search_incidents(
            vectors, embedder, symptoms, limit=limit, min_similarity=MIN_SIMILARITY, exclude=exclude
        ),
        default=[],
    )
    return [similar(h) for h in found], [step]


def similar(hit: IncidentHit) -> SimilarIncident:
    """A search hit as a similar incident, with only the root cause a person confirmed: the ranking's own
    earlier answer is no evidence for itself."""
    return SimilarIncident(
        incident_id=hit.incident_id,
        summary=str(hit.payload.get("summary", ""))[:500],
        root_cause=str(hit.payload.get("confirmed_root_cause") or ""),
        similarity=round(min(1.0, max(0.0, hit.similarity)), 4),
        time_ns=hit.payload.get("time_ns"),
    )
