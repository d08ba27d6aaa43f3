"""OTLP/JSON lines: one ExportLogsServiceRequest, ExportTraceServiceRequest or ExportMetricsServiceRequest
a line, as the OpenTelemetry Collector's file exporter writes them.

`parse_line` decodes one line with the same parsers as `POST /v1/logs|traces|metrics` (JSON bodies); the
kind of request is told by its top-level key (`resourceLogs`, `resourceSpans`, `resourceMetrics`, or
their proto names). A line that is not JSON, or not one of those requests, is an `InvalidInput`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput
from ingest.batch import Kind
from ingest.jsonlines import loads
from ingest.otlp.logs import parse_logs
from ingest.otlp.metrics import parse_metrics
from ingest.otlp.request import JSON_MEDIA
from ingest.otlp.result import ParsedBatch
from ingest.otlp.traces import parse_traces

Parser = Callable[..., ParsedBatch]

_KIND_OF_KEY: dict[str, Kind] = {
    "resourceLogs": "logs",
    "resource_logs": "logs",
    "resourceSpans": "spans",
    "resource_spans": "spans",
    "resourceMetrics": "metrics",
    "resource_metrics": "metrics",
}
_PARSERS: dict[Kind, Parser] = {"logs": parse_logs, "spans": parse_traces, "metrics": parse_metrics}


@dataclass(frozen=True)
class OtlpLine:
    """One decoded line: the kind of its request and its rows (with the records it rejected)."""

    kind: Kind
    parsed: ParsedBatch


def request_kind(doc: dict[str, Any]) -> Kind:
    """'logs', 'spans' or 'metrics' for a decoded OTLP/JSON request, from its top-level key."""
    found = {_KIND_OF_KEY[k] for k in doc if k in _KIND_OF_KEY}
    if len(found) != 1:
        what = "more than one of" if found else "none of"
        raise InvalidInput(f"the line has {what} resourceLogs, resourceSpans and resourceMetrics", field="line")
    return found.pop()


def parse_line(data: bytes, *, now_ns: int, min_year: int, max_future_skew_s: int) -> OtlpLine:
    """Rows of one OTLP/JSON line; InvalidInput when the line as a whole cannot be read."""
    try:
        doc = loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidInput(f"not JSON: {exc}", field="line") from None
    if type(doc) is not dict:
        raise InvalidInput(f"an OTLP/JSON request must be a JSON object, not {type(doc).__name__}", field="line")
    kind = request_kind(doc)
    parsed = _PARSERS[kind](doc, JSON_MEDIA, now_ns=now_ns, min_year=min_year, max_future_skew_s=max_future_skew_s)
    return OtlpLine(kind, parsed)
