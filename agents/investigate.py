"""One entry for every front end (API, CLI, chat, detection, eval): open the incident, run the team, store.

`investigate` does it in one call; `stream_investigation` does the same and says how it goes on the way
(the opened incident, each agent as it finishes, the stored result), for progress streams.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

from pydantic import BaseModel, Field

from agents.state import TeamState
from agents.team import run_team_state, stream_team
from agents.toolbox import Toolbox
from core.explanation import Explanation
from core.incident import Incident, InvestigationRequest
from detect.rank.callgraph import stored_call_edges
from detect.runner import DetectContext


class Investigation(BaseModel):
    """An investigated incident: the incident as stored (with its latest explanation linked) and the explanation."""

    incident: Incident
    explanation: Explanation


class AgentProgress(BaseModel):
    """One agent of the team finished."""

    agent: str
    steps: int = Field(description="Tool calls the agent made.")
    evidence: int = Field(description="Evidence items it added.")
    notes: list[str] = Field(default_factory=list)


InvestigationEvent = Incident | AgentProgress | Investigation
"""What `stream_investigation` yields: the opened incident, then each agent's progress, then the result."""


def investigate(tools: Toolbox, req: InvestigationRequest, *, source: str = "api") -> tuple[Incident, Explanation]:
    incident = tools.book.open(req, source=source)
    explanation, final = run_team_state(tools, incident)
    done = _store(tools, incident, explanation, final)
    return done.incident, done.explanation


def stream_investigation(
    tools: Toolbox, req: InvestigationRequest, *, source: str = "api"
) -> Iterator[InvestigationEvent]:
    """`investigate`, step by step: yields the opened incident (so an unknown id fails on the first `next`),
    an `AgentProgress` as each agent but the explainer finishes, and the stored `Investigation` last."""
    incident = tools.book.open(req, source=source)
    yield incident
    team = stream_team(tools, incident)
    while True:
        try:
            agent, update = next(team)
        except StopIteration as finished:
            explanation, final = finished.value
            break
        if agent != "explainer" or update.get("explanation") is None:
            yield _progress(agent, update)
    yield _store(tools, incident, explanation, final)


def _progress(agent: str, update: dict[str, Any]) -> AgentProgress:
    return AgentProgress(
        agent=agent,
        steps=len(update.get("steps", [])),
        evidence=len(update.get("evidence", [])),
        notes=list(update.get("notes", [])),
    )


def _store(tools: Toolbox, incident: Incident, explanation: Explanation, final: TeamState) -> Investigation:
    """Record the explanation on the incident (once); the explanation carries the incident's id."""
    stored = tools.book.record_explanation(incident, explanation, symptoms=final.get("symptoms", ""))
    return Investigation(incident=stored, explanation=explanation.model_copy(update={"incident_id": stored.id}))


def detection_context(tools: Toolbox, *, explain: bool = True) -> DetectContext:
    """What scheduled detection needs from the toolbox; new incidents are explained by the agent team."""
    return DetectContext(
        events=tools.events,
        book=tools.book,
        explain=partial(investigate, tools, source="detection") if explain else None,
        call_edges=partial(stored_call_edges, tools.graph),
        modalities=tools.modalities,
    )
