"""Read routes behind the console's service page and trace view: a service's calls, log templates and
incidents over a window, and the stored spans of one trace. Read scope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from api.http.access import Scope, require
from api.http.deps import get_port
from api.http.incident_map import EdgeFigures, IncidentRow, edge_figures, get_services, incident_rows
from api.port import DevMeshPort
from api.wiring import Services
from core.errors import InvalidInput
from core.jsontypes import StripText
from core.timeutil import NS, TIME_ARG_PATTERN, parse_time_arg

router = APIRouter(tags=["console"], dependencies=[Depends(require(Scope.READ))])

MAX_TEMPLATES = 30
MAX_WINDOW_NS = 31 * 24 * 3600 * NS


class ServiceCall(BaseModel):
    caller: str
    callee: str
    figures: EdgeFigures


class ServiceTemplate(BaseModel):
    template_id: str
    text: str
    level: str
    count: int = Field(description="Lines in the window.")
    first_ns: int
    last_ns: int


class ServiceOverview(BaseModel):
    service: str
    since_ns: int = Field(description="The window's start as used (at most 31 days before until_ns).")
    until_ns: int
    calls: list[ServiceCall] = Field(description="Calls it makes and receives, from the spans in the window.")
    templates: list[ServiceTemplate] = Field(description="Its log templates in the window, most lines first.")
    incidents: list[IncidentRow] = Field(description="Incidents naming it or ranking it first (any time).")


def _time(value: str, name: str) -> int:
    try:
        return parse_time_arg(value)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=name) from exc


@router.get("/services/{service}/overview", response_model=ServiceOverview, summary="A service over a window")
def service_overview(
    service: Annotated[str, Path(min_length=1, max_length=256)],
    since: Annotated[str, Query(pattern=TIME_ARG_PATTERN, description="Window start (as /query/logs)."), StripText],
    until: Annotated[str, Query(pattern=TIME_ARG_PATTERN, description="Window end, exclusive."), StripText],
    port: DevMeshPort = Depends(get_port),
    svc: Services = Depends(get_services),
) -> ServiceOverview:
    hi = _time(until, "until")
    lo = max(_time(since, "since"), hi - MAX_WINDOW_NS)  # a longer window is cut to its last 31 days
    empty = hi <= lo  # a window that ends before it starts holds nothing
    calls = [
        ServiceCall(caller=e.caller, callee=e.callee, figures=edge_figures(e, hi - lo))
        for e in ([] if empty else svc.events.call_edges(lo, hi))
        if service in (e.caller, e.callee)
    ]
    counts = [] if empty else svc.events.template_counts(lo, hi, services=[service])[:MAX_TEMPLATES]
    stored = {t.template_id: t for t in svc.events.templates([c.template_id for c in counts])} if counts else {}
    templates = [
        ServiceTemplate(
            template_id=c.template_id,
            text=stored[c.template_id].text if c.template_id in stored else "",
            level=stored[c.template_id].level if c.template_id in stored else "",
            count=c.count,
            first_ns=c.first_ns,
            last_ns=c.last_ns,
        )
        for c in counts
    ]
    incidents = incident_rows(status=None, since=None, until=None, service=service, limit=50, port=port)
    return ServiceOverview(
        service=service, since_ns=lo, until_ns=hi, calls=calls, templates=templates, incidents=incidents
    )


@router.get("/traces/{trace_id}", summary="The stored spans of one trace, by start time")
def trace(
    trace_id: Annotated[str, Path(min_length=1, max_length=64)], svc: Services = Depends(get_services)
) -> dict[str, Any]:
    return {"trace_id": trace_id, "spans": svc.events.trace_spans(trace_id)}
