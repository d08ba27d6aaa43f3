"""One entry for every front end (API, CLI, chat, detection, eval): open the incident, run the team, store."""

from __future__ import annotations

from functools import partial

from agents.team import run_team_state
from agents.toolbox import Toolbox
from core.explanation import Explanation
from core.incident import Incident, InvestigationRequest
from detect.rank.callgraph import stored_call_edges
from detect.runner import DetectContext


def investigate(tools: Toolbox, req: InvestigationRequest, *, source: str = "api") -> tuple[Incident, Explanation]:
    incident = tools.book.open(req, source=source)
    explanation, final = run_team_state(tools, incident)
    incident = tools.book.record_explanation(incident, explanation, symptoms=final.get("symptoms", ""))
    return incident, explanation.model_copy(update={"incident_id": incident.id})


def detection_context(tools: Toolbox, *, explain: bool = True) -> DetectContext:
    """What scheduled detection needs from the toolbox; new incidents are explained by the agent team."""
    return DetectContext(
        events=tools.events,
        book=tools.book,
        explain=partial(investigate, tools, source="detection") if explain else None,
        call_edges=partial(stored_call_edges, tools.graph),
        modalities=tools.modalities,
    )
