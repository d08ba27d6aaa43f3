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


def apply_feedback(ranking: RankingResult, similar: list[SimilarIncident]) -> tuple[RankingResult, list[str]]:
    """Raise the confidence of candidates that people confirmed as the root cause of similar incidents.

    confidence' = confidence + (1 - confidence) * FEEDBACK_WEIGHT * similarity, then re-rank.
    """
    confirmed: dict[str, SimilarIncident] = {}
    for s in sorted(similar, key=lambda s: -s.similarity):
        if s.root_cause:
            confirmed.setdefault(s.root_cause, s)  # the most similar incident that confirmed it counts
    if not confirmed or not ranking.candidates:
        return ranking, []
    notes = []
    moved = list(ranking.candidates)
    for c in ranking.candidates:
        past = confirmed.get(c.service)
        if past is None:
            continue
        conf = round(min(1.0, c.confidence + (1 - c.confidence) * FEEDBACK_WEIGHT * past.similarity), 4)
        raised = c.model_copy(update={"confidence": conf})
        # up past every candidate it now beats, never down; the others keep their order (e.g. the alert's hint)
        at = moved.index(c)
        del moved[at]
        ahead = next((i for i, o in enumerate(moved) if o.confidence < conf), len(moved))
        moved.insert(min(at, ahead), raised)
        notes.append(
            f"{c.service} was confirmed as the root cause of the similar incident {past.incident_id} "
            f"(similarity {past.similarity:.2f}): confidence raised from {c.confidence:.2f} to {conf:.2f}"
        )
    moved = [c.model_copy(update={"rank": i + 1}) for i, c in enumerate(moved)]
    return ranking.model_copy(update={"candidates": moved}), notes
