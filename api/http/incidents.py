"""POST /explain and the incident routes: list, show, evidence, feedback, resolve."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.http.deps import services
from api.wiring import Services
from core.errors import NotFound
from core.explanation import Explanation
from core.incident import Feedback, Incident, IncidentStatus, InvestigationRequest

router = APIRouter(tags=["incidents"])


class ExplainResponse(BaseModel):
    incident: Incident
    explanation: Explanation


class FeedbackIn(BaseModel):
    root_cause: str | None = Field(default=None, max_length=256, description="The service that really broke.")
    helpful: bool | None = Field(default=None, description="Whether the explanation helped.")
    by: str = Field(default="", max_length=256)
    note: str = Field(default="", max_length=4000)


@router.post(
    "/explain",
    response_model=ExplainResponse,
    summary="Explain an incident: by id, by service and time window, or from an Alertmanager-style alert",
    responses={200: {"content": {"text/event-stream": {}}, "description": "With stream=true: agent progress"}},
)
def explain(
    req: InvestigationRequest,
    stream: Annotated[bool, Query(description="Stream agent progress as server-sent events.")] = False,
    svc: Services = Depends(services),
) -> Any:
    tools = svc.toolbox()
    if not stream:
        from agents.investigate import investigate

        incident, explanation = investigate(tools, req, source="api")
        return ExplainResponse(incident=incident, explanation=explanation)
    incident = tools.book.open(req, source="api")  # errors (unknown id) before the stream starts
    return StreamingResponse(_events(tools, incident), media_type="text/event-stream")


def _events(tools: Any, incident: Incident) -> Iterator[str]:
    from agents.team import stream_team

    def sse(event: str, data: Any) -> str:
        return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"

    yield sse("incident", incident.model_dump(mode="json"))
    for agent, update in stream_team(tools, incident):
        if agent == "explainer" and update.get("explanation") is not None:
            explanation = update["explanation"]
            stored = tools.book.record_explanation(incident, explanation)
            yield sse(
                "explanation",
                {"incident": stored.model_dump(mode="json"), "explanation": explanation.model_dump(mode="json")},
            )
        else:
            steps = update.get("steps", [])
            yield sse(
                "progress",
                {
                    "agent": agent,
                    "steps": len(steps),
                    "evidence": len(update.get("evidence", [])),
                    "notes": update.get("notes", []),
                },
            )
    yield sse("done", {})


@router.get("/incidents", response_model=list[Incident], summary="Incidents, newest first")
def list_incidents(
    status: IncidentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    svc: Services = Depends(services),
) -> list[Incident]:
    return svc.toolbox().book.list(status=status, limit=limit)


@router.get("/incidents/{incident_id}", response_model=ExplainResponse, summary="An incident and its explanation")
def get_incident(incident_id: str, svc: Services = Depends(services)) -> ExplainResponse:
    book = svc.toolbox().book
    incident = book.get(incident_id)
    explanation = book.explanation(incident)
    if explanation is None:
        raise NotFound(f"incident {incident_id} has not been explained yet; POST /explain", field="incident_id")
    return ExplainResponse(incident=incident, explanation=explanation)


@router.get("/incidents/{incident_id}/evidence", summary="The fused evidence list of an incident's explanation")
def get_evidence(incident_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    resp = get_incident(incident_id, svc)
    return {"incident_id": incident_id, "evidence": [e.model_dump(mode="json") for e in resp.explanation.evidence]}


@router.post("/incidents/{incident_id}/feedback", response_model=Incident, summary="The true root cause; helpful?")
def feedback(incident_id: str, body: FeedbackIn, svc: Services = Depends(services)) -> Incident:
    return svc.toolbox().book.add_feedback(incident_id, Feedback(**body.model_dump()))


@router.post("/incidents/{incident_id}/resolve", response_model=Incident, summary="Mark an incident resolved")
def resolve(incident_id: str, svc: Services = Depends(services)) -> Incident:
    return svc.toolbox().book.resolve(incident_id)
