"""Past incidents like this one, found by meaning, with the root cause people confirmed for them (the
ranking's feedback step, `detect.rank.feedback`, uses those confirmations)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents.toolbox import record
from core.explanation import AgentStep, SimilarIncident
from detect.incidents import INCIDENTS

if TYPE_CHECKING:
    from agents.toolbox import Toolbox

MIN_SIMILARITY = 0.6


def similar_incidents(
    tools: Toolbox, symptoms: str, *, exclude: str, limit: int = 5
) -> tuple[list[SimilarIncident], list[AgentStep]]:
    if not symptoms or tools.vectors is None or tools.embedder is None:
        return [], []
    vectors, embedder = tools.vectors, tools.embedder
    if INCIDENTS not in vectors.collections():
        return [], []

    def search() -> list[SimilarIncident]:
        hits = vectors.search(INCIDENTS, embedder.embed([symptoms])[0], limit=limit + 1)
        return [
            SimilarIncident(
                incident_id=str(h.payload.get("incident_id", h.id)),
                summary=str(h.payload.get("summary", ""))[:500],
                # only what a person confirmed: the ranking's own earlier answer is no evidence for itself
                root_cause=str(h.payload.get("confirmed_root_cause") or ""),
                similarity=round(min(1.0, max(0.0, float(h.score))), 4),
                time_ns=h.payload.get("time_ns"),
            )
            for h in hits
            if h.id != exclude and str(h.payload.get("incident_id", "")) != exclude and h.score >= MIN_SIMILARITY
        ][:limit]

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
        search,
        default=[],
    )
    return found, [step]
