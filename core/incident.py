"""Incidents and what opens them: a request to investigate (an id, a service and window, or an alert)."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import InvalidInput
from core.jsontypes import json_integer, strip_text
from core.timeutil import LATEST_NS, TIME_PATTERN, to_ns


class IncidentStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Feedback(BaseModel):
    """What a person said about an explanation: the true root cause, and whether it helped."""

    root_cause: str | None = Field(default=None, max_length=256, description="The service that really broke.")
    helpful: bool | None = Field(default=None, description="Whether the explanation helped.")
    by: str = Field(default="", max_length=256, description="Who said it (user name, chat id).")
    note: str = Field(default="", max_length=4000)
    time_ns: int = Field(default=0, ge=0, le=LATEST_NS)


class Incident(BaseModel):
    id: str
    title: str = ""
    status: IncidentStatus = IncidentStatus.OPEN
    source: str = Field(default="api", description="api, cli, alertmanager, detection, chat, demo.")
    alert_ns: int = Field(description="When it started (alert time or detected onset), ns UTC.")
    lead_s: int = Field(
        default=0,
        ge=0,
        description="The ranked window starts this long before alert_ns: an alert's startsAt comes after its rule's "
        "`for:` delay, minutes after the change began.",
    )
    start_ns: int = Field(description="Start of the window investigated.")
    end_ns: int = Field(description="End of the window investigated.")
    end_given: bool = Field(
        default=False,
        description="The question named its end ('what was going on up to then'): the ranked window runs to it, "
        "through any pause in the telemetry; otherwise it runs while the telemetry keeps coming.",
    )
    onset_given: bool = Field(
        default=True,
        description="The question said when the incident began (an alert, a time or a start); when it named only "
        "its end, the ranking looks at several windows before that end (detect.rank.scales).",
    )
    service: str = Field(default="", description="Service named by the alert or the user, if any.")
    fingerprint: str = Field(default="", description="Alert fingerprint or detection key, for de-duplication.")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    root_cause: str = Field(default="", description="Top-ranked service of the latest explanation.")
    confidence: float = 0.0
    explanation_id: str = ""
    symptoms: str = Field(
        default="",
        description="What went wrong, in the signals' own words (of the latest explanation): the text that "
        "similar incidents are found by.",
    )
    feedback: list[Feedback] = Field(default_factory=list)
    opened_ns: int = 0
    updated_ns: int = 0
    resolved_ns: int = 0


class AlertIn(BaseModel):
    """An Alertmanager-style alert (one element of its webhook's `alerts`): its fields and no others, of their
    JSON types (strict: no coercion)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    status: str = "firing"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = Field(default=None, pattern=TIME_PATTERN)  # noqa: N815 - Alertmanager's field name
    endsAt: str | None = None  # noqa: N815
    generatorURL: str | None = Field(default=None, max_length=4000)  # noqa: N815
    fingerprint: str = ""

    _stripped = field_validator("startsAt", mode="before")(strip_text)

    @field_validator("startsAt")
    @classmethod
    def _a_time(cls, v: str | None) -> str | None:
        """startsAt opens the window: a time DevMesh can store, after 1970 (as at_ns)."""
        if v is None:
            return v
        try:
            ns = to_ns(v)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
        if ns <= 0:
            raise ValueError("startsAt must be after 1970-01-01")
        return v


_TIMES = ("start_ns", "at_ns", "end_ns")


def _given(name: str) -> dict[str, Any]:
    """JSON schema: `name` is given and not empty (one way to name what to explain)."""
    kind: dict[str, Any] = {"type": "string", "minLength": 1}
    if name in _TIMES:
        kind = {"type": "integer"}
    elif name == "alert":
        kind = {"type": "object"}
    return {"required": [name], "properties": {name: kind}}


class InvestigationRequest(BaseModel):
    """What to explain: an existing incident, a service and/or time window, or an alert. Unknown fields are
    refused (a misspelled time would otherwise explain "now"). A window whose end is not after its start holds
    nothing: the answer says there is no evidence in it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"anyOf": [_given(name) for name in ("incident_id", "service", *_TIMES, "alert")]},
    )

    incident_id: str | None = Field(default=None, max_length=128)
    service: str | None = Field(default=None, max_length=256)
    start_ns: int | None = Field(
        default=None, gt=0, le=LATEST_NS, description="Start of the window, ns since the epoch."
    )
    end_ns: int | None = Field(
        default=None,
        gt=0,
        le=LATEST_NS,
        description="End of the window, ns since the epoch. Alone, it asks what was going on up to then: the change "
        "under way is looked for in the minutes before it.",
    )
    at_ns: int | None = Field(
        default=None, gt=0, le=LATEST_NS, description="When it started (defaults to the window's start)."
    )
    alert: AlertIn | None = None
    question: str | None = Field(default=None, max_length=2000, description="Follow-up question, as data.")

    _json_integers = field_validator(*_TIMES, mode="before")(json_integer)

    @model_validator(mode="after")
    def _one_subject(self) -> InvestigationRequest:
        if not (self.incident_id or self.service or self.start_ns or self.at_ns or self.end_ns or self.alert):
            raise ValueError("give an incident_id, a service, a time (start_ns/at_ns/end_ns) or an alert")
        return self


def incident_id_for(key: str) -> str:
    """Stable short id from a de-duplication key."""
    return "inc-" + hashlib.sha1(key.encode()).hexdigest()[:12]


def alert_service(labels: dict[str, Any]) -> str:
    for name in ("service", "app", "app_kubernetes_io_name", "job", "deployment", "container"):
        if labels.get(name):
            return str(labels[name])
    return ""
