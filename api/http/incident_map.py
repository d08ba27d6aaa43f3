"""Read routes the web console draws from: an incident's service map (each call edge before vs during the
incident) and its signal timeline (`detect.timeline`), and the overview rows of the incident list (with the top
cause's fault kind).

All read scope. The map's "during" window is the explanation's ranked window (else the incident's); "before" is
the window of the same width just before it. Edges are the calls between services seen in the spans
(`EventStore.call_edges`: a span whose parent belongs to another service), kept when one end is a ranked
root cause, a step of the propagation path or the incident's named service.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.http.access import Scope, require
from api.http.deps import get_port
from api.http.incidents import list_incidents
from api.port import DevMeshPort
from api.wiring import Services
from core.errors import EngineUnavailable
from core.explanation import Explanation
from core.incident import Incident, IncidentStatus
from core.jsontypes import StripText
from core.rca import FaultKind
from core.timeutil import NS, TIME_ARG_PATTERN
from detect.timeline import SignalTimeline, signal_timeline
from retrieval.events.aggregates import EdgeStat

router = APIRouter(tags=["console"], dependencies=[Depends(require(Scope.READ))])

MAX_EDGES = 80
"""Most edges a map holds (the busiest during the incident first)."""
MAX_CALLERS = 3
"""Callers of the top root cause whose latency the timeline shows (most calls first)."""
MAX_CANDIDATES = 3
"""Ranked candidates whose saturation metrics the timeline shows."""
SERVICE_SCAN = 1000
"""Incidents looked at (newest first) when the list is filtered by service."""


def get_services(request: Request) -> Services:
    """FastAPI dependency: the engines the application opened at start-up (`app.state.services`)."""
    svc: Services | None = getattr(request.app.state, "services", None)
    if svc is None:
        raise EngineUnavailable("DevMesh is still starting (no services on app.state); retry in a moment")
    return svc


class EdgeFigures(BaseModel):
    calls: int = 0
    per_min: float = Field(default=0.0, description="Calls per minute over the window.")
    errors: int = 0
    error_rate: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None


class MapEdge(BaseModel):
    caller: str
    callee: str
    before: EdgeFigures
    during: EdgeFigures
    on_path: bool = Field(description="A step of the explanation's propagation path (either direction).")
    path_step: int | None = Field(
        default=None, description="Its place on the propagation path, 1 for the step next to the root cause."
    )


class MapNode(BaseModel):
    service: str
    rank: int | None = Field(default=None, description="Its rank among the root causes, if ranked.")
    confidence: float | None = None
    fault_kind: FaultKind | None = None
    on_path: bool = False
    named: bool = Field(default=False, description="The service the incident was opened for.")


class ServiceMap(BaseModel):
    incident_id: str
    before_start_ns: int
    start_ns: int
    end_ns: int
    nodes: list[MapNode]
    edges: list[MapEdge]


class Timeline(SignalTimeline):
    incident_id: str
    alert_ns: int = Field(description="When the incident started (the fault time marked on the timeline).")


class IncidentRow(BaseModel):
    incident: Incident
    fault_kind: FaultKind | None = Field(description="Of the top root cause of the latest explanation.")
    explained: bool


def _window(incident: Incident, expl: Explanation | None) -> tuple[int, int]:
    if expl is not None and expl.window is not None and expl.window.end_ns > expl.window.start_ns:
        return expl.window.start_ns, expl.window.end_ns
    return incident.start_ns, max(incident.end_ns, incident.start_ns + NS)


def edge_figures(stat: EdgeStat | None, width_ns: int) -> EdgeFigures:
    if stat is None:
        return EdgeFigures()
    return EdgeFigures(
        calls=stat.calls,
        per_min=round(stat.calls / (width_ns / NS / 60), 3),
        errors=stat.errors,
        error_rate=round(stat.errors / stat.calls, 4) if stat.calls else 0.0,
        p50_ms=round(stat.p50_ms, 3) if stat.p50_ms is not None else None,
        p95_ms=round(stat.p95_ms, 3) if stat.p95_ms is not None else None,
    )


def _focus(incident: Incident, expl: Explanation | None) -> tuple[set[str], dict[frozenset[str], int]]:
    """The services a map or timeline centres on, and each propagation step's pair with its place (from 1)."""
    focus = {incident.service} if incident.service else set()
    path: dict[frozenset[str], int] = {}
    if expl is not None:
        focus.update(rc.service for rc in expl.root_causes)
        for i, step in enumerate(expl.propagation_path, start=1):
            focus.update((step.source, step.target))
            path.setdefault(frozenset((step.source, step.target)), i)
    return focus, path


@router.get("/incidents/{incident_id}/map", response_model=ServiceMap, summary="The service map around an incident")
def incident_map(
    incident_id: str, port: DevMeshPort = Depends(get_port), svc: Services = Depends(get_services)
) -> ServiceMap:
    incident = port.incident(incident_id)
    expl = port.latest_explanation(incident)
    start, end = _window(incident, expl)
    width = end - start
    during = {(e.caller, e.callee): e for e in svc.events.call_edges(start, end)}
    before = {(e.caller, e.callee): e for e in svc.events.call_edges(start - width, start)}
    focus, path = _focus(incident, expl)
    pairs = [p for p in during.keys() | before.keys() if not focus or p[0] in focus or p[1] in focus]
    pairs.sort(key=lambda p: (-(during[p].calls if p in during else 0), p))
    edges = [
        MapEdge(
            caller=p[0],
            callee=p[1],
            before=edge_figures(before.get(p), width),
            during=edge_figures(during.get(p), width),
            on_path=frozenset(p) in path,
            path_step=path.get(frozenset(p)),
        )
        for p in pairs[:MAX_EDGES]
    ]
    ranked = {rc.service: rc for rc in expl.root_causes} if expl is not None else {}
    on_path = {s for pair in path for s in pair}
    names = sorted({e.caller for e in edges} | {e.callee for e in edges} | focus)
    nodes = [
        MapNode(
            service=name,
            rank=ranked[name].rank if name in ranked else None,
            confidence=ranked[name].confidence if name in ranked else None,
            fault_kind=ranked[name].fault_kind if name in ranked else None,
            on_path=name in on_path,
            named=name == incident.service,
        )
        for name in names
    ]
    return ServiceMap(
        incident_id=incident.id, before_start_ns=start - width, start_ns=start, end_ns=end, nodes=nodes, edges=edges
    )


@router.get(
    "/incidents/{incident_id}/timeline",
    response_model=Timeline,
    summary="The signals around an incident per minute: error templates, latency, saturation, restarts",
    description="Over the explanation's window, the same width before it, and at least 10 minutes before and 5 "
    "after the fault time (at most 6 hours, at most 60 buckets: a minute each, wider for a longer window): "
    "ERROR-or-worse lines per focus service, the busiest error templates, p50/p95 of the spans of the top root "
    "cause and its callers, CPU/memory (and cited) metrics of the ranked candidates, and restarts (crash-loop "
    "or out-of-memory lines, pods starting or stopping).",
)
def incident_timeline(
    incident_id: str, port: DevMeshPort = Depends(get_port), svc: Services = Depends(get_services)
) -> Timeline:
    incident = port.incident(incident_id)
    expl = port.latest_explanation(incident)
    start, end = _window(incident, expl)
    lo = min(start - (end - start), incident.alert_ns - 10 * 60 * NS)
    hi = max(end, incident.alert_ns + 5 * 60 * NS)
    focus, _ = _focus(incident, expl)
    ranked = [rc.service for rc in expl.root_causes] if expl is not None else []
    root = ranked[0] if ranked else None
    callers = (
        [e.caller for e in sorted(svc.events.call_edges(start, end), key=lambda e: -e.calls) if e.callee == root]
        if root
        else []
    )
    cited = [(e.service, _metric_name(e.id)) for e in expl.evidence if e.kind == "metric"] if expl else []
    tl = signal_timeline(
        svc.events,
        lo=lo,
        hi=hi,
        alert_ns=incident.alert_ns,
        focus=sorted(focus),
        root=root,
        callers=callers[:MAX_CALLERS],
        candidates=ranked[:MAX_CANDIDATES],
        cited_metrics=[c for c in cited if c[0] in ranked[:MAX_CANDIDATES] and c[1]],
    )
    return Timeline(incident_id=incident.id, alert_ns=incident.alert_ns, **dict(tl))


def _metric_name(evidence_id: str) -> str:
    """The metric name in 'metric:<pod or service>:<name>@<start>-<end>' ('' for another shape)."""
    parts = evidence_id.rsplit("@", 1)[0].split(":", 2)
    return parts[2] if len(parts) == 3 else ""


@router.get(
    "/overview/incidents",
    response_model=list[IncidentRow],
    summary="Incidents for a list: each with its top root cause's fault kind (filters as GET /incidents)",
)
def incident_rows(
    status: IncidentStatus | None = None,
    since: Annotated[str | None, Query(pattern=TIME_ARG_PATTERN), StripText] = None,
    until: Annotated[str | None, Query(pattern=TIME_ARG_PATTERN), StripText] = None,
    service: Annotated[
        str | None, Query(max_length=256, description="Named by the incident or ranked first."), StripText
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    port: DevMeshPort = Depends(get_port),
) -> list[IncidentRow]:
    scan = SERVICE_SCAN if service else limit
    found = list_incidents(status=status, since=since, until=until, q=None, limit=scan, port=port)
    rows: list[IncidentRow] = []
    for inc in found:
        if service and service not in (inc.service, inc.root_cause):
            continue
        expl = port.latest_explanation(inc) if inc.explanation_id else None
        kind = expl.root_causes[0].fault_kind if expl is not None and expl.root_causes else None
        rows.append(IncidentRow(incident=inc, fault_kind=kind, explained=expl is not None))
    return rows[:limit]
