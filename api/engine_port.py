"""`EnginePort`: the `DevMeshPort` over the real engines (event store, graph, vectors) and the agent team.

Built once per process (server start-up, CLI command) from the opened `Services`; it builds the agents'
toolbox (stores, incident book, LLM client) once and keeps it. Each investigation gets its own prompt
masker (its placeholders are numbered per explanation, `agents.masking.Masker`). Logic lives below api/:
this class only picks the function to call and shapes its answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from agents.investigate import Investigation, InvestigationEvent, detection_context, investigate, stream_investigation
from agents.masking import Masker
from agents.toolbox import Toolbox
from api.info import backend_info
from api.port import LogLine, Topology, TopologyEdge, TopologyNode, log_lines, search_hits_as_lines
from api.wiring import Services
from core.explanation import Explanation
from core.incident import Feedback, Incident, IncidentStatus, InvestigationRequest
from detect.node_changes import MetricShift, node_metric_shifts
from detect.runner import DetectionRun, DetectOptions, Notify, run_once
from graph.neighborhood import neighborhood
from ingest.batch import Kind
from ingest.pipeline import IngestReport
from ingest.repair import owed_counts
from retrieval.events import LogPage, LogQuery
from retrieval.search import SearchResult, search_logs

log = logging.getLogger(__name__)

MAX_TOPOLOGY_HOPS = 3
MAX_LOG_ROWS = 1000


class EnginePort:
    """The port over `services`. `notify` announces incidents that detection opens (None: nobody)."""

    def __init__(self, services: Services, *, notify: Notify | None = None) -> None:
        self.svc = services
        self.tools = services.toolbox()
        self.notify = notify
        self._detecting = threading.Lock()

    # -- incidents and explanations --------------------------------------------------------------------

    def _investigation_tools(self) -> Toolbox:
        """The toolbox with a masker of its own (placeholders numbered per investigation, none shared)."""
        masker = self.tools.masker
        return replace(self.tools, masker=Masker(masker.options) if masker is not None else None)

    def explain(self, req: InvestigationRequest, *, source: str) -> Investigation:
        incident, explanation = investigate(self._investigation_tools(), req, source=source)
        return Investigation(incident=incident, explanation=explanation)

    def explain_stream(self, req: InvestigationRequest, *, source: str) -> Iterator[InvestigationEvent]:
        return stream_investigation(self._investigation_tools(), req, source=source)

    def incident(self, incident_id: str) -> Incident:
        return self.tools.book.get(incident_id)

    def latest_explanation(self, incident: Incident) -> Explanation | None:
        return self.tools.book.explanation(incident)

    def list_incidents(
        self,
        *,
        status: IncidentStatus | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        return self.tools.book.list(status=status, since_ns=since_ns, until_ns=until_ns, limit=limit)

    def similar_incidents(self, text: str, *, limit: int) -> list[tuple[Incident, float]]:
        return self.tools.book.search(text, limit=limit)

    def feedback(self, incident_id: str, feedback: Feedback) -> Incident:
        return self.tools.book.add_feedback(incident_id, feedback)

    def resolve(self, incident_id: str) -> Incident:
        return self.tools.book.resolve(incident_id)

    def resolve_alert(self, fingerprint: str) -> None:
        book = self.tools.book
        for inc in book.list(status=IncidentStatus.OPEN, limit=1000):
            if inc.fingerprint == fingerprint:
                book.resolve(inc.id)

    def detect(self, *, end_ns: int, options: DetectOptions) -> list[DetectionRun]:
        """One run at a time: a second caller (the server's schedule, POST /detect/run) waits its turn."""
        with self._detecting:
            ctx = detection_context(self._investigation_tools(), explain=options.explain)
            return run_once(ctx, end_ns=end_ns, options=options, notify=self.notify)

    # -- telemetry -------------------------------------------------------------------------------------

    def ingest(self, kind: Kind, rows: dict[str, list[Any]]) -> IngestReport:
        return self.svc.pipeline.ingest(kind, rows)

    def query_logs(self, q: LogQuery) -> LogPage:
        return self.svc.events.query_logs(q)

    def search_templates(self, text: str, filters: LogQuery, *, limit: int) -> SearchResult:
        svc = self.svc
        return search_logs(text, filters, events=svc.events, vectors=svc.vectors, embedder=svc.embedder, limit=limit)

    def search_logs(self, text: str, *, service: str | None, since_ns: int | None, limit: int) -> list[LogLine]:
        result = self.search_templates(text, LogQuery(service=service, start_ns=since_ns), limit=limit)
        return search_hits_as_lines(result, limit)

    def logs_for(self, incident_id: str, limit: int) -> list[LogLine]:
        inc = self.tools.book.get(incident_id)
        services = [s for s in (inc.root_cause, inc.service) if s]
        q = LogQuery(
            start_ns=inc.start_ns,
            end_ns=inc.end_ns,
            service=services or None,
            min_level="WARN",
            limit=min(max(limit, 1), MAX_LOG_ROWS),
        )
        return log_lines(self.svc.events.query_logs(q).events)

    def node_changes(self, incident_id: str, node: str) -> list[MetricShift]:
        incident = self.tools.book.get(incident_id)
        return node_metric_shifts(self.svc.events, self.svc.graph, incident, node)

    def topology(self, service: str, hops: int) -> Topology:
        if self.svc.graph is None:
            return Topology()
        sub = neighborhood(self.svc.graph.graph, [("Service", service)], hops=max(1, min(hops, MAX_TOPOLOGY_HOPS)))
        ids = {n.id: f"{n.label}:{n.key}" for n in sub.nodes}
        return Topology(
            nodes=[TopologyNode(id=ids[n.id], label=n.label, key=n.key, hop=n.hop) for n in sub.nodes],
            edges=[
                TopologyEdge.model_validate(
                    {"source": ids[e.source], "target": ids[e.target], "type": e.type, **e.properties}
                )
                for e in sub.edges
                if e.source in ids and e.target in ids
            ],
        )

    def sql(self, statement: str, *, limit: int) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self.svc.events.sql(statement, limit=limit)

    # -- the engines -----------------------------------------------------------------------------------

    def health(self) -> dict[str, bool]:
        svc = self.svc
        checks = {"events": _reachable("events", lambda: svc.events.sql("SELECT 1", limit=1))}
        if svc.graph is not None:
            graph = svc.graph
            checks["graph"] = _reachable("graph", lambda: graph.graph.ro_query("RETURN 1"))
        if svc.vectors is not None:
            checks["vectors"] = _reachable("vectors", svc.vectors.collections)
        return checks

    def engines(self) -> dict[str, dict[str, Any]]:
        return {name: health.snapshot() for name, health in self.svc.engines.items()}

    def owed(self) -> dict[str, int]:
        return owed_counts(self.svc.pipeline)

    def info(self) -> dict[str, Any]:
        return backend_info(self.svc)


def _reachable(name: str, probe: Callable[[], Any]) -> bool:
    """Whether one engine answers a trivial request (any failure is 'no', logged)."""
    try:
        probe()
    except Exception as exc:  # a health check reports failures, it does not raise them
        log.warning("health check failed", extra={"engine": name, "error": repr(exc)})
        return False
    return True
