"""An in-memory `ConversationPort` for the front-end tests (chat, alerts, MCP).

The port is DevMesh's own boundary (api.port), so the front ends are tested against this stand-in;
the engines behind the real port have their own tests. It answers what the chat bot, the alert intake
and the MCP server ask (explain, feedback, logs, node changes, incidents, topology, resolve_alert).
Every call is recorded (bounded).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from api.port import Investigation, LogLine, MetricShift, Topology, TopologyEdge, TopologyNode
from core.errors import NotFound
from core.explanation import (
    EvidenceItem,
    EvidenceSource,
    Explanation,
    ExplanationMode,
    RootCause,
    RunbookLink,
)
from core.incident import Feedback, Incident, IncidentStatus, InvestigationRequest, alert_service
from core.rca import FaultKind, TimeRange

T0 = 1_700_000_000 * 1_000_000_000


def sample_explanation(incident_id: str = "inc-42", service: str = "ts-order-service") -> Explanation:
    """An evidence-only explanation with two causes, cited evidence and a runbook."""
    return Explanation(
        incident_id=incident_id,
        window=TimeRange(start_ns=T0, end_ns=T0 + 900 * 1_000_000_000),
        mode=ExplanationMode.EVIDENCE_ONLY,
        fallback_reason="no language model configured",
        summary=f"{service} exhausted its DB connection pool; callers timed out.",
        summary_evidence_ids=["log:1"],
        root_causes=[
            RootCause(
                rank=1,
                service=service,
                pod=f"{service}-5b67c48447-mv5hb",
                confidence=0.82,
                fault_kind=FaultKind.UNKNOWN,
                evidence_ids=["log:1", "span:t1:s1"],
                reasoning="errors start here first and spread to its callers",
            ),
            RootCause(rank=2, service="ts-payment-service", confidence=0.11, evidence_ids=["log:2"]),
        ],
        evidence=[
            EvidenceItem(
                id="log:1",
                kind="log",
                source=EvidenceSource.EVENTS,
                time_ns=T0 + 60 * 1_000_000_000,
                service=service,
                text="HikariPool-1 - Connection is not available, request timed out after 30000ms",
            ),
            EvidenceItem(
                id="span:t1:s1",
                kind="span",
                source=EvidenceSource.EVENTS,
                service=service,
                text="POST /order 30.1 s ERROR",
            ),
            EvidenceItem(
                id="log:2", kind="log", source=EvidenceSource.EVENTS, service="ts-payment-service", text="retry"
            ),
        ],
        runbooks=[
            RunbookLink(
                id="rb:db/connection-pool",
                title="DB connection pool exhausted",
                url="https://runbooks.example.org/db/pool",
                steps=["Check active connections", "Raise maximumPoolSize or fix the leak"],
            )
        ],
    )


@dataclass
class Call:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0


class FakePort:
    """Answers from memory; `explain_delay_s` makes explain slow; `incidents` are the known incident ids."""

    def __init__(
        self,
        *,
        explain_delay_s: float = 0.0,
        incidents: tuple[str, ...] = ("inc-42",),
        max_calls: int = 10_000,
    ) -> None:
        self.explain_delay_s = explain_delay_s
        self.incidents = set(incidents)
        self.explain_error: Exception | None = None
        self._calls: deque[Call] = deque(maxlen=max_calls)
        self._lock = threading.Lock()
        self.done = threading.Condition(self._lock)

    # -- inspection ------------------------------------------------------------------------------------

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self._calls.append(Call(method, args, kwargs, time.monotonic()))
            self.done.notify_all()

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [c for c in self._calls if c.method == method]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{method} called {len(found)} times, expected {count}")
                self.done.wait(left)

    # -- the port ------------------------------------------------------------------------------------------

    def _known(self, incident_id: str) -> None:
        if incident_id not in self.incidents:
            raise NotFound(f"no incident {incident_id!r}; list them with `devmesh incidents`")

    def explain(self, req: InvestigationRequest, *, source: str) -> Investigation:
        if self.explain_delay_s:
            time.sleep(self.explain_delay_s)
        try:
            if self.explain_error is not None:
                raise self.explain_error
            if req.incident_id:
                self._known(req.incident_id)
                return _investigated(sample_explanation(req.incident_id))
            labels = req.alert.labels if req.alert else {}
            service = req.service or alert_service(labels) or "unknown"
            iid = "inc-" + ((req.alert.fingerprint if req.alert else "") or service)
            return _investigated(sample_explanation(iid, service))
        finally:
            self._record("explain", req, source=source)

    def feedback(self, incident_id: str, feedback: Feedback) -> Incident:
        self._record("feedback", incident_id, root_cause=feedback.root_cause, helpful=feedback.helpful, by=feedback.by)
        self._known(incident_id)
        return _incident(incident_id)

    def search_logs(self, text: str, *, service: str | None, since_ns: int | None, limit: int) -> list[LogLine]:
        self._record("search_logs", text, service=service, since_ns=since_ns, limit=limit)
        rows = [
            LogLine(ts_ns=T0 + i, service=service or "ts-order-service", level="ERROR", message=f"{text} #{i}")
            for i in range(3)
        ]
        return rows[:limit]

    def logs_for(self, incident_id: str, limit: int) -> list[LogLine]:
        self._record("logs_for", incident_id, limit)
        self._known(incident_id)
        rows = [
            LogLine(ts_ns=T0, service="ts-order-service", level="ERROR", message="Connection is not available"),
            LogLine(ts_ns=T0 + 1, service="ts-order-service", level="WARN", message="pool <stats> & more"),
        ]
        return rows[:limit]

    def node_changes(self, incident_id: str, node: str) -> list[MetricShift]:
        self._record("node_changes", incident_id, node)
        self._known(incident_id)
        return [MetricShift(pod="ts-order-service-5b67c48447-mv5hb", metric="restarts", before=1, during=4, change=3)]

    def list_incidents(
        self,
        *,
        status: IncidentStatus | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        self._record("list_incidents", status=status, limit=limit)
        return [_incident(i) for i in sorted(self.incidents)][:limit]

    def topology(self, service: str, hops: int) -> Topology:
        self._record("topology", service, hops)
        return Topology(
            nodes=[
                TopologyNode(id=f"Service:{service}", label="Service", key=service, hop=0),
                TopologyNode(id="Service:ts-payment-service", label="Service", key="ts-payment-service", hop=1),
            ],
            edges=[TopologyEdge(source=service, target="ts-payment-service", calls=120, errors=7)],  # type: ignore[call-arg]
        )

    def resolve_alert(self, fingerprint: str) -> None:
        self._record("resolve_alert", fingerprint)


def _incident(incident_id: str) -> Incident:
    return Incident(
        id=incident_id, title="order errors", alert_ns=T0, start_ns=T0, end_ns=T0 + 900 * 10**9, opened_ns=T0
    )


def _investigated(expl: Explanation) -> Investigation:
    return Investigation(incident=_incident(expl.incident_id), explanation=expl)
