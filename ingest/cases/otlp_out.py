"""Event-store rows as OTLP/JSON requests: what the Collector's file exporter writes, and what `ingest.otlp`
reads back into the same rows.

`log_requests`, `span_requests` and `metric_requests` turn rows (dicts in the row contract of
`core.telemetry`) into ExportLogsServiceRequest, ExportTraceServiceRequest and ExportMetricsServiceRequest
objects, one resource (service, pod, host) a request and at most `per_request` records each. Metrics
become gauges (the store keeps one value a point). Text goes through `mask` on the way (messages, span
names, attribute values). Ids that are not OTLP hex ids are replaced by a hash of themselves, the same
for every row, so logs and spans of a trace stay joined.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ingest.otlp.column_text import nonfinite
from ingest.otlp.logs import error_code_of
from ingest.otlp.pb_values import MAX_DEPTH

Mask = Callable[[str], str]
Row = dict[str, Any]

SEVERITY_NUMBER = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}
SPAN_KINDS = ("", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")
_HEX = frozenset("0123456789abcdef")
_INT64 = 2**63


def any_value(v: Any, mask: Mask, depth: int = 0) -> dict[str, Any]:
    """A Python value (as attribute JSON holds it) as an OTLP/JSON AnyValue, strings masked."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int) and -_INT64 <= v < _INT64:
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": _double(v)}
    if isinstance(v, str):
        return {"stringValue": mask(v)}
    if v is None:
        return {}
    if depth + 1 >= MAX_DEPTH:
        return {"stringValue": mask(json.dumps(v, default=str))}
    if isinstance(v, list):
        return {"arrayValue": {"values": [any_value(x, mask, depth + 1) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": key_values(v, mask, depth + 1)}}
    return {"stringValue": mask(str(v))}


def _double(v: float) -> float | str:
    return v if math.isfinite(v) else nonfinite(v)  # the JSON mapping's spelling; JSON has no NaN


def key_values(attrs: dict[str, Any], mask: Mask, depth: int = 0) -> list[dict[str, Any]]:
    """Attributes as a list of OTLP/JSON KeyValues."""
    return [{"key": str(k), "value": any_value(v, mask, depth)} for k, v in attrs.items()]


def attributes_of(text: str, name: str = "meta") -> dict[str, Any]:
    """The JSON object of a meta/attributes column; text that is not one is kept under `name`."""
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {name: text}
    return doc if isinstance(doc, dict) else {name: doc}


def hex_id(text: str, n_bytes: int) -> str:
    """`text` when it is an OTLP id (2*n_bytes hex digits, not all zeros); '' for ''; else a hash of it."""
    if not text:
        return ""
    low = text.lower()
    if len(low) == 2 * n_bytes and set(low) <= _HEX and low.strip("0"):
        return low
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[: 2 * n_bytes]


def _resource(key: tuple[str, str, str]) -> dict[str, Any]:
    service, pod, host = key
    attrs = {"service.name": service, "k8s.pod.name": pod, "host.name": host}
    return {"attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items() if v]}


def _by_resource(rows: Iterable[Row], per_request: int) -> Iterator[tuple[tuple[str, str, str], list[Row]]]:
    """Rows grouped by (service, pod, host), in order of first appearance, cut into `per_request` pieces."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r["service"], r["pod"], r["host"]), []).append(r)
    for key, group in groups.items():
        for i in range(0, len(group), per_request):
            yield key, group[i : i + per_request]


def log_record(row: Row, mask: Mask) -> tuple[str, dict[str, Any]]:
    """(scope name, LogRecord) of a stored log line."""
    attrs = attributes_of(row["meta"])
    scope = attrs.pop("otel.scope.name", "")
    code = row["error_code"]
    if code and error_code_of(attrs) != code:  # keep the error code the row had when it is read back
        numeric = code.isascii() and code.isdigit() and int(code) >= 400
        attrs["http.response.status_code" if numeric else "error.type"] = int(code) if numeric else code
    rec: dict[str, Any] = {
        "timeUnixNano": str(row["ts_ns"]),
        "severityNumber": SEVERITY_NUMBER.get(row["level"], 9),
        "severityText": row["level"],
        "body": {"stringValue": mask(row["message"])},
        "attributes": key_values(attrs, mask),
    }
    if row["trace_id"]:
        rec["traceId"] = hex_id(row["trace_id"], 16)
    if row["span_id"]:
        rec["spanId"] = hex_id(row["span_id"], 8)
    if row["event_type"] and row["event_type"] != "log":
        rec["eventName"] = row["event_type"]
    return (scope if isinstance(scope, str) else str(scope)), rec


def span_record(row: Row, mask: Mask) -> dict[str, Any]:
    """The Span of a stored span (its status message back from `otel.status_description`)."""
    attrs = attributes_of(row["attributes"], "attributes")
    status: dict[str, Any] = {"code": STATUS_CODES.index(row["status"]) if row["status"] in STATUS_CODES else 0}
    description = attrs.pop("otel.status_description", None)
    if description is not None:
        status["message"] = mask(str(description))
    span: dict[str, Any] = {
        "traceId": hex_id(row["trace_id"], 16) or hex_id("-", 16),
        "spanId": hex_id(row["span_id"], 8) or hex_id("-", 8),
        "name": mask(row["operation"]),
        "kind": SPAN_KINDS.index(row["kind"]) if row["kind"] in SPAN_KINDS else 0,
        "startTimeUnixNano": str(row["start_ns"]),
        "endTimeUnixNano": str(row["end_ns"]),
        "attributes": key_values(attrs, mask),
        "status": status,
    }
    if row["parent_id"]:
        span["parentSpanId"] = hex_id(row["parent_id"], 8)
    return span


def log_requests(rows: Iterable[Row], mask: Mask, per_request: int = 1000) -> Iterator[dict[str, Any]]:
    """ExportLogsServiceRequests of log rows, a resource each."""
    for key, group in _by_resource(rows, per_request):
        scopes: dict[str, list[dict[str, Any]]] = {}
        for row in group:
            scope, rec = log_record(row, mask)
            scopes.setdefault(scope, []).append(rec)
        scope_logs = [{"scope": {"name": s} if s else {}, "logRecords": recs} for s, recs in scopes.items()]
        yield {"resourceLogs": [{"resource": _resource(key), "scopeLogs": scope_logs}]}


def span_requests(rows: Iterable[Row], mask: Mask, per_request: int = 1000) -> Iterator[dict[str, Any]]:
    """ExportTraceServiceRequests of span rows, a resource each."""
    for key, group in _by_resource(rows, per_request):
        spans = [span_record(r, mask) for r in group]
        yield {"resourceSpans": [{"resource": _resource(key), "scopeSpans": [{"scope": {}, "spans": spans}]}]}


def metric_requests(rows: Iterable[Row], mask: Mask, per_request: int = 1000) -> Iterator[dict[str, Any]]:
    """ExportMetricsServiceRequests of metric rows, a resource each: one gauge a name."""
    for key, group in _by_resource(rows, per_request):
        by_name: dict[str, list[dict[str, Any]]] = {}
        for r in group:
            point = {
                "timeUnixNano": str(r["ts_ns"]),
                "asDouble": _double(r["value"]),
                "attributes": key_values(attributes_of(r["attributes"], "attributes"), mask),
            }
            by_name.setdefault(r["name"], []).append(point)
        metrics = [{"name": n, "gauge": {"dataPoints": pts}} for n, pts in by_name.items()]
        yield {"resourceMetrics": [{"resource": _resource(key), "scopeMetrics": [{"scope": {}, "metrics": metrics}]}]}
