"""Past incidents and what people said about them: similar incidents by meaning, and feedback that moves a
confirmed root cause up when a new incident looks like an old one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents.toolbox import record
from core.explanation import AgentStep, SimilarIncident
from core.rca import RankingResult
from detect.incidents import INCIDENTS

if TYPE_CHECKING:
    from agents.toolbox import Toolbox

MIN_SIMILARITY = 0.6
FEEDBACK_WEIGHT = 0.3


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
                root_cause=str(h.payload.get("confirmed_root_cause") or h.payload.get("root_cause", "")),
                similarity=round(max(0.0, float(h.score)), 4),
                time_ns=h.payload.get("time_ns"),
            )
            for h in hits
            if h.id != exclude and str(h.payload.get("incident_id", "")) != exclude and h.score >= MIN_SIMILARITY
        ][:limit]

    found, step = record(
        "topology",
        "vectors.search",
        f"nearest past incidents to the symptoms in '{INCIDENTS}'",
        {"collection": INCIDENTS, "limit": limit, "min_similarity": MIN_SIMILARITY},
        search,
        default=[],
    )
    return found, [step]


def apply_feedback(ranking: RankingResult, similar: list[SimilarIncident]) -> tuple[RankingResult, list[str]]:
    """Raise the confidence of candidates that people confirmed as the root cause of similar incidents.

    confidence' = confidence + (1 - confidence) * FEEDBACK_WEIGHT * similarity, then re-rank.
    """
    confirmed = {s.root_cause: s for s in similar if s.root_cause}
    if not confirmed or not ranking.candidates:
        return ranking, []
    notes = []
    moved = []
    for c in ranking.candidates:
        s = confirmed.get(c.service)
        if s is None:
            moved.append(c)
            continue
        conf = min(1.0, c.confidence + (1 - c.confidence) * FEEDBACK_WEIGHT * s.similarity)
        moved.append(c.model_copy(update={"confidence": round(conf, 4)}))
        notes.append(f"{c.service} was the root cause of the similar incident {s.incident_id}: confidence raised")
    moved.sort(key=lambda c: -c.confidence)
    moved = [c.model_copy(update={"rank": i + 1}) for i, c in enumerate(moved)]
    return ranking.model_copy(update={"candidates": moved}), notes
