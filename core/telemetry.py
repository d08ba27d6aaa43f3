"""Telemetry rows and topology: the one row contract of logs, spans and metrics, and the service graph.

`ARROW_SCHEMAS` is the row contract: the columns every reader produces (`ingest`), the event store
keeps (`retrieval.events`) and detection reads (`detect`). Consumers that read only some columns name
them with `columns` or `row_schema`, which check the names against it. Timestamps are nanoseconds
since the epoch (UTC); text columns hold '' for a missing value (see `TEXT_DEFAULTS`); `meta` and
`attributes` hold other attributes as JSON text.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, Field

Kind = Literal["logs", "spans", "metrics"]
KINDS: tuple[Kind, ...] = ("logs", "spans", "metrics")

_S, _I, _U, _F = pa.string(), pa.int64(), pa.uint64(), pa.float64()

ARROW_SCHEMAS: dict[Kind, pa.Schema] = {
    "logs": pa.schema(
        [
            ("event_id", _U),  # xxh64 of the canonical fields (retrieval.events.schema)
            ("ts_ns", _I),  # event time
            ("source", _S),  # where it came from: api, journald, otlp, nezha, file
            ("service", _S),  # service (application) that wrote the line
            ("host", _S),  # node/host the line was written on
            ("pod", _S),  # pod or instance name
            ("level", _S),  # normalized severity: a `Level`
            ("message", _S),  # the log message text (untrusted)
            ("trace_id", _S),  # W3C trace id (32 hex)
            ("span_id", _S),  # span id (16 hex)
            ("event_type", _S),  # kind of event: log, audit, k8s_event, ...
            ("error_code", _S),  # application or HTTP error code
            ("template_id", _S),  # mined log template (ingest.templates)
            ("meta", _S),  # other attributes, JSON
        ]
    ),
    "spans": pa.schema(
        [
            ("event_id", _U),
            ("trace_id", _S),
            ("span_id", _S),
            ("parent_id", _S),  # parent span id; '' for a root span
            ("service", _S),
            ("pod", _S),
            ("host", _S),
            ("operation", _S),  # span name
            ("start_ns", _I),
            ("end_ns", _I),
            ("duration_us", _F),  # (end_ns - start_ns) / 1000, computed when absent
            ("status", _S),  # UNSET, OK or ERROR
            ("kind", _S),  # OTLP span kind: SERVER, CLIENT, INTERNAL, PRODUCER, CONSUMER
            ("attributes", _S),  # JSON
        ]
    ),
    "metrics": pa.schema(
        [
            ("event_id", _U),
            ("ts_ns", _I),
            ("name", _S),  # e.g. cpu_usage, memory_usage, latency_p95_s
            ("value", _F),
            ("service", _S),
            ("pod", _S),
            ("host", _S),
            ("attributes", _S),  # JSON, keys sorted (part of the event id)
        ]
    ),
}

# The column each kind is ordered and windowed by.
TIME_COLUMN: dict[Kind, str] = {"logs": "ts_ns", "spans": "start_ns", "metrics": "ts_ns"}

# Columns a row must carry; every other column may be missing (text '' or its default, or computed).
REQUIRED: dict[Kind, tuple[str, ...]] = {
    "logs": ("ts_ns", "message"),
    "spans": ("trace_id", "span_id", "start_ns", "end_ns"),
    "metrics": ("ts_ns", "name", "value"),
}

# Text columns whose missing value is not ''.
TEXT_DEFAULTS: dict[str, str] = {"event_type": "log", "status": "UNSET"}


def columns(kind: Kind, names: Iterable[str]) -> tuple[str, ...]:
    """`names` as a tuple, each checked to be a column of `kind` (ValueError naming the first that is not)."""
    out = tuple(names)
    known = ARROW_SCHEMAS[kind].names
    bad = [n for n in out if n not in known]
    if bad:
        raise ValueError(f"{kind} rows have no column {bad[0]!r}; the columns are {', '.join(known)}")
    return out


def row_schema(kind: Kind, names: Iterable[str], *, as_text: Iterable[str] = ()) -> pa.Schema:
    """The contract's fields `names` of `kind`, in that order; those in `as_text` typed as strings (for
    a reader that treats an id as an opaque label, '' when absent)."""
    text = set(columns(kind, as_text))
    schema = ARROW_SCHEMAS[kind]
    return pa.schema([pa.field(n, _S) if n in text else schema.field(n) for n in columns(kind, names)])


class Level(StrEnum):
    """Log severity, least severe first."""

    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    FATAL = "FATAL"


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
