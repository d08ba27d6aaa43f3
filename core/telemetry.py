"""Canonical telemetry: what every reader produces and every store keeps.

Timestamps are nanoseconds since the epoch (UTC). These are the shapes of one event; bulk paths
carry the same fields as columns (see `ingest/batch.py`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Level(StrEnum):
    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    FATAL = "FATAL"


class LogEvent(BaseModel):
    """One log line after canonicalization."""

    model_config = ConfigDict(frozen=True)

    ts_ns: int = Field(description="Event time, ns since the epoch, UTC.")
    source: str = Field(default="", description="Where it came from: api, journald, otlp, nezha, file.")
    service: str = Field(default="", description="Service (application) that wrote the line.")
    host: str = Field(default="", description="Node/host the line was written on.")
    pod: str = Field(default="", description="Pod or instance name, if any.")
    level: Level = Field(default=Level.INFO, description="Normalized severity.")
    message: str = Field(description="The log message text (untrusted).")
    trace_id: str = Field(default="", description="W3C trace id (32 hex), if the line carries one.")
    span_id: str = Field(default="", description="Span id (16 hex), if any.")
    event_type: str = Field(default="log", description="Kind of event: log, audit, k8s_event, ...")
    error_code: str = Field(default="", description="Application or HTTP error code, if any.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Other attributes, kept as JSON.")


class SpanStatus(StrEnum):
    UNSET = "UNSET"
    OK = "OK"
    ERROR = "ERROR"


class Span(BaseModel):
    """One span of a trace."""

    model_config = ConfigDict(frozen=True)

    trace_id: str
    span_id: str
    parent_id: str = Field(default="", description="Parent span id; empty for a root span.")
    service: str = Field(default="")
    pod: str = Field(default="")
    host: str = Field(default="")
    operation: str = Field(description="Span name / operation.")
    start_ns: int
    end_ns: int
    status: SpanStatus = SpanStatus.UNSET
    kind: str = Field(default="", description="OTLP span kind: SERVER, CLIENT, INTERNAL, ...")
    attributes: dict[str, Any] = Field(default_factory=dict)

    @property
    def duration_us(self) -> float:
        return (self.end_ns - self.start_ns) / 1000


class MetricPoint(BaseModel):
    """One sample of one metric."""

    model_config = ConfigDict(frozen=True)

    ts_ns: int
    name: str = Field(description="Metric name, e.g. cpu_usage, memory_usage, latency_p95_s.")
    value: float
    service: str = Field(default="")
    pod: str = Field(default="")
    host: str = Field(default="")
    attributes: dict[str, Any] = Field(default_factory=dict)


class LogTemplate(BaseModel):
    """A mined log template: the constant part of a family of lines, variables as <*>."""

    template_id: str = Field(description="Stable id: a hash of the template text.")
    text: str
    count: int = Field(default=0, description="Lines seen with this template.")
    first_ns: int = 0
    last_ns: int = 0
    services: list[str] = Field(default_factory=list)
    level: Level = Level.INFO


class CallEdge(BaseModel):
    """Aggregated calls from one service to another, derived from spans."""

    caller: str
    callee: str
    calls: int = 0
    errors: int = 0
    mean_ms: float = 0.0
    p95_ms: float = 0.0


class PodPlacement(BaseModel):
    pod: str
    service: str
    host: str = ""


class Topology(BaseModel):
    """Services, pods, nodes and calls, from spans or a declared YAML file."""

    services: list[str] = Field(default_factory=list)
    pods: list[PodPlacement] = Field(default_factory=list)
    calls: list[CallEdge] = Field(default_factory=list)
