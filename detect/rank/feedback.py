"""What people said about past incidents, inside the score: a root cause confirmed on a similar incident
raises that candidate's confidence, and the candidates are ordered by confidence again."""

from __future__ import annotations

from core.explanation import SimilarIncident
from core.rca import RankingResult

FEEDBACK_WEIGHT = 0.3
"""How far a confirmation on a fully similar incident moves a candidate toward confidence 1."""


def apply_feedback(ranking: RankingResult, similar: list[SimilarIncident]) -> tuple[RankingResult, list[str]]:
    """Raise the confidence of candidates that people confirmed as the root cause of similar incidents.

    confidence' = confidence + (1 - confidence) * FEEDBACK_WEIGHT * similarity; the candidates are then
    ordered by confidence (ties keep their order), so the order shown is always the order of the scores.
    """
    confirmed: dict[str, SimilarIncident] = {}
    for s in sorted(similar, key=lambda s: -s.similarity):
        if s.root_cause:
            confirmed.setdefault(s.root_cause, s)  # the most similar incident that confirmed it counts
    if not confirmed or not ranking.candidates:
        return ranking, []
    notes = []
    raised = []
    for c in ranking.candidates:
        past = confirmed.get(c.service)
        if past is None:
            raised.append(c)
            continue
        conf = round(min(1.0, c.confidence + (1 - c.confidence) * FEEDBACK_WEIGHT * past.similarity), 4)
        raised.append(c.model_copy(update={"confidence": conf}))
        notes.append(
            f"{c.service} was confirmed as the root cause of the similar incident {past.incident_id} "
            f"(similarity {past.similarity:.2f}): confidence raised from {c.confidence:.2f} to {conf:.2f}"
        )
    ordered = sorted(raised, key=lambda c: -c.confidence)
    moved = [c.model_copy(update={"rank": i + 1}) for i, c in enumerate(ordered)]
    return ranking.model_copy(update={"candidates": moved}), notes
