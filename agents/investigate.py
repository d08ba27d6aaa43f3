"""One entry for every front end (API, CLI, chat, detection, eval): open the incident, run the team, store."""

from __future__ import annotations

from agents.team import run_team_state
from agents.toolbox import Toolbox
from core.explanation import Explanation
from core.incident import Incident, InvestigationRequest


def investigate(tools: Toolbox, req: InvestigationRequest, *, source: str = "api") -> tuple[Incident, Explanation]:
    incident = tools.book.open(req, source=source)
    explanation, final = run_team_state(tools, incident)
    incident = tools.book.record_explanation(incident, explanation, symptoms=final.get("symptoms", ""))
    return incident, explanation.model_copy(update={"incident_id": incident.id})
