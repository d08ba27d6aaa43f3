"""The state the agent team shares while it investigates one incident."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from core.explanation import AgentStep, EvidenceItem, Explanation, RunbookLink, SimilarIncident
from core.incident import Incident
from core.rca import RankingResult


def _merge(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {**a, **b}


class TeamState(TypedDict, total=False):
    incident: Incident
    deadline: float  # time.monotonic() after which agents stop starting work
    plan: list[str]  # agents the planner chose, in order: topology, logs, runbooks
    ranking: RankingResult
    symptoms: str
    similar: list[SimilarIncident]
    evidence: Annotated[list[EvidenceItem], operator.add]
    runbooks: Annotated[list[RunbookLink], operator.add]
    steps: Annotated[list[AgentStep], operator.add]
    notes: Annotated[list[str], operator.add]
    timings: Annotated[dict[str, float], _merge]
    explanation: Explanation
