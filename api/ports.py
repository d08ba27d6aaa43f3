"""The port the people-facing front ends (chat bot, alert intake, MCP server) call DevMesh through.

The front ends know only `DevMeshPort`; the lead's implementation runs the real engines and agents
behind it. Routers find the port at `request.app.state.port` (see `get_port`). Every method is
synchronous and may take seconds (`explain` runs the agents): callers run it off the event loop.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import EngineUnavailable, InvalidInput
from core.explanation import Explanation
from core.timeutil import NS, now_ns, parse_duration, parse_time_arg

MAX_ID_CHARS = 200
MAX_QUESTION_CHARS = 2000


class ExplainRequest(BaseModel):
    """What to explain: an incident by id, or a service over a time window, or an alert."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    incident_id: str | None = Field(default=None, max_length=MAX_ID_CHARS, description="An incident id, e.g. 'inc-42'.")
    service: str | None = Field(default=None, max_length=MAX_ID_CHARS, description="A service to explain.")
    start_ns: int | None = Field(default=None, description="Window start, ns since the epoch (UTC).")
    end_ns: int | None = Field(default=None, description="Window end, ns since the epoch (UTC); unset means now.")
    alert: dict[str, Any] | None = Field(
        default=None,
        description="The alert that asked for it (api.alerts.alert_context): fingerprint, labels, annotations, "
        "runbook_url, starts_ns, ... The port opens or updates the incident keyed by its fingerprint.",
    )
    question: str | None = Field(
        default=None, max_length=MAX_QUESTION_CHARS, description="A follow-up question about the incident."
    )

    @model_validator(mode="after")
    def _check(self) -> ExplainRequest:
        if not (self.incident_id or self.service or self.alert):
            raise ValueError("name an incident_id, a service or an alert to explain")
        if self.start_ns is not None and self.end_ns is not None and self.start_ns > self.end_ns:
            raise ValueError("start_ns is after end_ns")
        return self


@runtime_checkable
class DevMeshPort(Protocol):
    """What the front ends need from DevMesh. Errors are `core.errors` exceptions (NotFound, InvalidInput, ...)."""

    def explain(self, req: ExplainRequest) -> Explanation:
        """Explain an incident (opening one for a service or an alert when needed)."""
        ...

    def feedback(self, incident_id: str, *, root_cause: str | None, helpful: bool | None, by: str) -> None:
        """Record a person's verdict: the confirmed root cause (None: not known) and whether it helped."""
        ...

    def search_logs(self, text: str, *, service: str | None, since_ns: int | None, limit: int) -> list[dict[str, Any]]:
        """Log lines like `text` (rows with ts_ns, service, level, message, ...), newest first."""
        ...

    def logs_for(self, incident_id: str, limit: int) -> list[dict[str, Any]]:
        """The log lines of an incident's window and services, most telling first."""
        ...

    def node_changes(self, incident_id: str, node: str) -> list[dict[str, Any]]:
        """What changed on a node (host) around an incident: pods started or gone, restarts, metric shifts."""
        ...

    def list_incidents(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        """Incidents, newest first (dicts with id, title, status, opened_ns, services, root_cause, ...)."""
        ...

    def topology(self, service: str, hops: int) -> dict[str, Any]:
        """The call-graph neighbourhood of a service: {"nodes": [...], "edges": [{"source", "target", ...}]}."""
        ...

    def resolve_alert(self, fingerprint: str) -> None:
        """An alert stopped firing: mark the incident it opened as resolved (no-op when unknown)."""
        ...


def get_port(request: Request) -> DevMeshPort:
    """FastAPI dependency: the port the application set at start-up (`app.state.port`)."""
    port: DevMeshPort | None = getattr(request.app.state, "port", None)
    if port is None:
        raise EngineUnavailable("DevMesh is still starting (no port on app.state); retry in a moment")
    return port


def since_to_ns(text: str, *, now: int | None = None) -> int:
    """A start time from a front end: '30m' or '2h' (that long ago), '-15m', '15m ago', ISO-8601, epoch, 'now'."""
    ref = now if now is not None else now_ns()
    s = text.strip()
    try:
        return ref - int(parse_duration(s).total_seconds() * NS)
    except InvalidInput:
        pass
    try:
        return parse_time_arg(s, now=ref)
    except InvalidInput:
        raise InvalidInput(f"not a time: {text!r} (use 30m, 2h, 1d, or an ISO-8601 time)", field="since") from None
