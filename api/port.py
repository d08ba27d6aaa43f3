"""The port: what every front end (HTTP routes, chat bot, alert intake, MCP server, CLI) asks of DevMesh.

`DevMeshPort` is the one seam between the front ends and the engines and agents below them; the engine
implementation is `api.engine_port.EnginePort`. `ConversationPort` is its part that the chat bot, the
alert intake and the MCP server call, so that their fakes (tests, benchmarks) implement only that.
Requests to explain are `core.incident.InvestigationRequest`; answers are typed models. Errors are
`core.errors` exceptions (NotFound, InvalidInput, EngineUnavailable, ...), which each front end maps in
one place. Every method is synchronous and may take seconds (`explain` runs the agents): async callers
run it off the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from agents.investigate import Investigation, InvestigationEvent
from api.sql_limits import MAX_SQL_CHARS, MAX_SQL_ROWS
from core.explanation import Explanation
from core.incident import Feedback, Incident, IncidentStatus, InvestigationRequest
from detect.node_changes import MetricShift
from detect.runner import DetectionRun, DetectOptions
from ingest.batch import Kind
from ingest.pipeline import IngestReport
from retrieval.events import LogPage, LogQuery
from retrieval.search import SearchResult

__all__ = [
    "MAX_SQL_CHARS",
    "MAX_SQL_ROWS",
    "ConversationPort",
    "DevMeshPort",
    "Investigation",
    "InvestigationEvent",
    "LogLine",
    "MetricShift",
    "Topology",
    "TopologyEdge",
    "TopologyNode",
]


class LogLine(BaseModel):
    """One stored log line (the event store's columns), with its template's score when found by search."""

    model_config = ConfigDict(frozen=True)

    event_id: int = 0
    ts_ns: int
    ts: str = Field(default="", description="ts_ns as ISO-8601 UTC.")
    source: str = ""
    service: str = ""
    host: str = ""
    pod: str = ""
    level: str = ""
    message: str = ""
    trace_id: str = ""
    span_id: str = ""
    event_type: str = ""
    error_code: str = ""
    template_id: str = ""
    meta: dict[str, Any] | str = Field(default_factory=dict, description="Other attributes (JSON, or its text).")
    score: float | None = Field(default=None, description="Search only: similarity of the line's template.")
    template: str | None = Field(default=None, description="Search only: the line's template text.")

    def as_json(self) -> dict[str, Any]:
        """The JSON row: the stored columns, plus score and template for search hits."""
        return self.model_dump(mode="json", exclude_none=True)


class TopologyNode(BaseModel):
    id: str = Field(description="'<label>:<key>', e.g. 'Service:ts-order-service'.")
    label: str
    key: str
    hop: int = Field(description="Edges from the service asked about (0 for it).")


class TopologyEdge(BaseModel):
    """An edge of the call graph; its properties (calls, errors, error_rate, p95_ms, ...) ride along as extras."""

    model_config = ConfigDict(extra="allow")

    source: str
    target: str
    type: str = "CALLS"


class Topology(BaseModel):
    nodes: list[TopologyNode] = Field(default_factory=list)
    edges: list[TopologyEdge] = Field(default_factory=list)


class ConversationPort(Protocol):
    """The part of the port the conversational front ends use: the chat bot, the alert intake, the MCP server."""

    def explain(self, req: InvestigationRequest, *, source: str) -> Investigation:
        """Open (or find) the incident the request names, run the agent team, store and return the result.
        `source` says who asked: api, cli, chat, mcp, alertmanager."""
        ...

    def feedback(self, incident_id: str, feedback: Feedback) -> Incident:
        """Record a person's verdict: the confirmed root cause and/or whether the explanation helped."""
        ...

    def list_incidents(
        self,
        *,
        status: IncidentStatus | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Incidents that started in [since_ns, until_ns), newest first."""
        ...

    def resolve_alert(self, fingerprint: str) -> None:
        """An alert stopped firing: resolve the open incidents it opened (no-op when none)."""
        ...

    def search_logs(self, text: str, *, service: str | None, since_ns: int | None, limit: int) -> list[LogLine]:
        """Log lines whose templates are like `text`, newest first."""
        ...

    def logs_for(self, incident_id: str, limit: int) -> list[LogLine]:
        """Warning and error lines of an incident's window, of its root cause and named service, newest first."""
        ...

    def node_changes(self, incident_id: str, node: str) -> list[MetricShift]:
        """Metric shifts of the pods on a node (host) around an incident (see `detect.node_changes`)."""
        ...

    def topology(self, service: str, hops: int) -> Topology:
        """The graph neighbourhood of a service, `hops` (1 to 3) edges out; empty without a graph."""
        ...


class DevMeshPort(ConversationPort, Protocol):
    """What the front ends need from DevMesh: the conversation's calls, and those of the HTTP API and the CLI."""

    def explain_stream(self, req: InvestigationRequest, *, source: str) -> Iterator[InvestigationEvent]:
        """`explain`, step by step (see `agents.investigate.stream_investigation`): the opened incident
        first (so an unknown incident fails on the first `next`), each agent's progress, the result last."""
        ...

    def incident(self, incident_id: str) -> Incident:
        """One incident (NotFound when unknown)."""
        ...

    def latest_explanation(self, incident: Incident) -> Explanation | None:
        """The incident's latest stored explanation; None until it is explained."""
        ...

    def similar_incidents(self, text: str, *, limit: int) -> list[tuple[Incident, float]]:
        """Incidents nearest in meaning to `text` (symptoms, words), with their similarity, most similar first."""
        ...

    def resolve(self, incident_id: str) -> Incident:
        """Mark an incident resolved."""
        ...

    def detect(self, *, end_ns: int, options: DetectOptions) -> list[DetectionRun]:
        """One detection run over the windows since the previous run, up to `end_ns`; new incidents
        are explained (unless `options.explain` is off) and announced."""
        ...

    def ingest(self, kind: Kind, rows: dict[str, list[Any]]) -> IngestReport:
        """Store one parsed batch (columns) of logs, spans or metrics."""
        ...

    def query_logs(self, q: LogQuery) -> LogPage:
        """One page of log lines matching the filters."""
        ...

    def search_templates(self, text: str, filters: LogQuery, *, limit: int) -> SearchResult:
        """Log templates closest in meaning to `text`, with counts and example lines under `filters`."""
        ...

    def sql(self, statement: str, *, limit: int) -> tuple[list[str], list[tuple[Any, ...]]]:
        """One read-only SELECT over the event store (at most `limit` rows): column names and rows. Refused
        with `ReadOnlyViolation` (anything that could write or read files) or `InvalidStatement` (does not
        parse, fails, runs too long), both naming the field `statement`."""
        ...

    def health(self) -> dict[str, bool]:
        """Whether each engine answers a trivial request."""
        ...

    def engines(self) -> dict[str, dict[str, Any]]:
        """The state of each supervised engine (graph, a Qdrant server, the LLM): up, down or restarting,
        since when (epoch seconds), the last error while not up, outages and restarts so far."""
        ...

    def owed(self) -> dict[str, int]:
        """Writes owed to each derived store (graph: ledger entries, vectors: templates), completed by the
        background repair."""
        ...

    def info(self) -> dict[str, Any]:
        """Versions, backends and how much each engine holds."""
        ...


def log_lines(rows: Sequence[dict[str, Any]]) -> list[LogLine]:
    """Event-store rows as `LogLine`s."""
    return [LogLine.model_validate(r) for r in rows]


def search_hits_as_lines(result: SearchResult, limit: int) -> list[LogLine]:
    """The example lines of a template search, each with its template's score and text, newest first."""
    rows = [dict(e, score=h.score, template=h.text) for h in result.hits for e in h.examples]
    return log_lines(sorted(rows, key=lambda r: -r["ts_ns"])[:limit])
