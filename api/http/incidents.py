"""The incident routes: list (by time or by meaning), show, evidence, feedback, resolve."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.http.access import Scope, require
from api.http.deps import get_port
from api.port import DevMeshPort
from core.errors import InvalidInput, NotFound
from core.explanation import Explanation
from core.incident import Feedback, Incident, IncidentStatus
from core.jsontypes import StripText
from core.timeutil import TIME_ARG_PATTERN, parse_time_arg

router = APIRouter(tags=["incidents"])
READ = [Depends(require(Scope.READ))]
ACT = [Depends(require(Scope.EXPLAIN))]
"""Feedback and resolve change an incident: the scope of those who ask for and act on explanations."""

SIMILAR_SCAN = 1000
"""Incidents found by meaning (q) before the status and time filters apply."""


class IncidentResponse(BaseModel):
    incident: Incident
    explanation: Explanation | None = Field(description="The latest explanation; null until it is explained.")


class FeedbackIn(BaseModel):
    """What a person says about an explanation (at least one of root_cause, helpful, note); unknown fields are
    refused."""

    root_cause: str | None = Field(default=None, max_length=256, description="The service that really broke.")
    helpful: bool | None = Field(default=None, description="Whether the explanation helped.")
    by: str = Field(default="", max_length=256)
    note: str = Field(default="", max_length=4000)

    @field_validator("root_cause")
    @classmethod
    def _strip(cls, v: str | None) -> str | None:
        return (v.strip() or None) if v is not None else None

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={  # what _says_something checks, for the OpenAPI schema
            "anyOf": [
                {"required": ["root_cause"], "properties": {"root_cause": {"type": "string", "pattern": "\\S"}}},
                {"required": ["helpful"], "properties": {"helpful": {"type": "boolean"}}},
                {"required": ["note"], "properties": {"note": {"type": "string", "pattern": "\\S"}}},
            ]
        },
    )

    @model_validator(mode="after")
    def _says_something(self) -> FeedbackIn:
        if self.root_cause is None and self.helpful is None and not self.note.strip():
            raise ValueError("give root_cause, helpful or a note")
        return self


@router.get(
    "/incidents",
    response_model=list[Incident],
    summary="Incidents, newest first; by the time they started, or by meaning (q), most similar first",
    dependencies=READ,
)
def list_incidents(
    status: IncidentStatus | None = None,
    since: Annotated[
        str | None,
        Query(pattern=TIME_ARG_PATTERN, description="Started at or after: ISO-8601, epoch, or relative."),
        StripText,
    ] = None,
    until: Annotated[
        str | None, Query(pattern=TIME_ARG_PATTERN, description="Started before (same forms as since)."), StripText
    ] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=2000, description="Symptoms or words: the most similar incidents first."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    port: DevMeshPort = Depends(get_port),
) -> list[Incident]:
    since_ns, until_ns = _time(since, "since"), _time(until, "until")
    if q is None:
        return port.list_incidents(status=status, since_ns=since_ns, until_ns=until_ns, limit=limit)
    return [
        inc
        for inc, _ in port.similar_incidents(q, limit=SIMILAR_SCAN)
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
    dependencies=READ,
)
def get_incident(incident_id: str, port: DevMeshPort = Depends(get_port)) -> IncidentResponse:
    incident = port.incident(incident_id)
    return IncidentResponse(incident=incident, explanation=port.latest_explanation(incident))


@router.get(
    "/incidents/{incident_id}/evidence",
    summary="The fused evidence list of an incident's explanation",
    dependencies=READ,
)
def get_evidence(incident_id: str, port: DevMeshPort = Depends(get_port)) -> dict[str, Any]:
    resp = get_incident(incident_id, port)
    if resp.explanation is None:
        raise NotFound(f"incident {incident_id} has not been explained yet; POST /explain", field="incident_id")
    return {"incident_id": incident_id, "evidence": [e.model_dump(mode="json") for e in resp.explanation.evidence]}


@router.post(
    "/incidents/{incident_id}/feedback",
    response_model=Incident,
    summary="The true root cause; helpful?",
    dependencies=ACT,
)
def feedback(incident_id: str, body: FeedbackIn, port: DevMeshPort = Depends(get_port)) -> Incident:
    return port.feedback(incident_id, Feedback(**body.model_dump()))


@router.post(
    "/incidents/{incident_id}/resolve", response_model=Incident, summary="Mark an incident resolved", dependencies=ACT
)
def resolve(incident_id: str, port: DevMeshPort = Depends(get_port)) -> Incident:
    return port.resolve(incident_id)
