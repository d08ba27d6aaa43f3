"""POST /explain and the incident routes: list, show, evidence, feedback, resolve."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator, model_validator

from api.http.deps import services
from api.wiring import Services
from core.errors import DevMeshError, InvalidInput, NotFound
from core.explanation import Explanation
from core.incident import Feedback, Incident, IncidentStatus, InvestigationRequest
from core.timeutil import parse_time_arg

log = logging.getLogger(__name__)
router = APIRouter(tags=["incidents"])


class ExplainResponse(BaseModel):
    incident: Incident
    explanation: Explanation


class IncidentResponse(BaseModel):
    incident: Incident
    explanation: Explanation | None = Field(description="The latest explanation; null until it is explained.")


class FeedbackIn(BaseModel):
    root_cause: str | None = Field(default=None, max_length=256, description="The service that really broke.")
    helpful: bool | None = Field(default=None, description="Whether the explanation helped.")
    by: str = Field(default="", max_length=256)
    note: str = Field(default="", max_length=4000)

    @field_validator("root_cause")
    @classmethod
    def _strip(cls, v: str | None) -> str | None:
        return (v.strip() or None) if v is not None else None

    @model_validator(mode="after")
    def _says_something(self) -> FeedbackIn:
        if self.root_cause is None and self.helpful is None and not self.note.strip():
            raise ValueError("give root_cause, helpful or a note")
        return self


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
    """incident, then one progress event per agent as it finishes, explanation (stored), done; or error."""
    from agents.team import stream_team

    def sse(event: str, data: Any) -> str:
        return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"

    t0 = time.perf_counter()
    symptoms = ""
    timings: dict[str, float] = {}
    yield sse("incident", incident.model_dump(mode="json"))
    try:
        for agent, update in stream_team(tools, incident):
            symptoms = update.get("symptoms") or symptoms
            timings.update(update.get("timings", {}))
            if agent == "explainer" and update.get("explanation") is not None:
                explanation = update["explanation"]
                total = round((time.perf_counter() - t0) * 1000, 2)
                explanation = explanation.model_copy(
                    update={"incident_id": incident.id, "timings": {**timings, **explanation.timings, "total": total}}
                )
                stored = tools.book.record_explanation(incident, explanation, symptoms=symptoms)
                yield sse(
                    "explanation",
                    {"incident": stored.model_dump(mode="json"), "explanation": explanation.model_dump(mode="json")},
                )
            else:
                yield sse(
                    "progress",
                    {
                        "agent": agent,
                        "steps": len(update.get("steps", [])),
                        "evidence": len(update.get("evidence", [])),
                        "notes": update.get("notes", []),
                    },
                )
    except DevMeshError as exc:  # the stream has started: the error is its last event
        yield sse("error", exc.to_dict())
        return
    except Exception:
        log.exception("explain stream failed", extra={"incident": incident.id})
        yield sse("error", {"error": "InternalError", "message": "unexpected server error; see the server log"})
        return
    yield sse("done", {})


@router.get(
    "/incidents",
    response_model=list[Incident],
    summary="Incidents, newest first; by the time they started, or by meaning (q), most similar first",
)
def list_incidents(
    status: IncidentStatus | None = None,
    since: Annotated[str | None, Query(description="Started at or after: ISO-8601, epoch, or relative.")] = None,
    until: Annotated[str | None, Query(description="Started before (same forms as since).")] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=2000, description="Symptoms or words: the most similar incidents first."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    svc: Services = Depends(services),
) -> list[Incident]:
    book = svc.toolbox().book
    since_ns, until_ns = _time(since, "since"), _time(until, "until")
    if q is None:
        return book.list(status=status, since_ns=since_ns, until_ns=until_ns, limit=limit)
    return [
        inc
        for inc, _ in book.search(q, limit=1000)
        if (status is None or inc.status == status)
        and (since_ns is None or inc.alert_ns >= since_ns)
        and (until_ns is None or inc.alert_ns < until_ns)
    ][:limit]


def _time(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_time_arg(value)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=name) from exc


@router.get(
    "/incidents/{incident_id}",
    response_model=IncidentResponse,
    summary="An incident and its latest explanation (null until explained)",
)
def get_incident(incident_id: str, svc: Services = Depends(services)) -> IncidentResponse:
    book = svc.toolbox().book
    incident = book.get(incident_id)
    return IncidentResponse(incident=incident, explanation=book.explanation(incident))


@router.get("/incidents/{incident_id}/evidence", summary="The fused evidence list of an incident's explanation")
def get_evidence(incident_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    resp = get_incident(incident_id, svc)
    if resp.explanation is None:
        raise NotFound(f"incident {incident_id} has not been explained yet; POST /explain", field="incident_id")
    return {"incident_id": incident_id, "evidence": [e.model_dump(mode="json") for e in resp.explanation.evidence]}


@router.post("/incidents/{incident_id}/feedback", response_model=Incident, summary="The true root cause; helpful?")
def feedback(incident_id: str, body: FeedbackIn, svc: Services = Depends(services)) -> Incident:
    return svc.toolbox().book.add_feedback(incident_id, Feedback(**body.model_dump()))


@router.post("/incidents/{incident_id}/resolve", response_model=Incident, summary="Mark an incident resolved")
def resolve(incident_id: str, svc: Services = Depends(services)) -> Incident:
    return svc.toolbox().book.resolve(incident_id)
