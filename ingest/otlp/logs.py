"""OTLP logs (ExportLogsServiceRequest, protobuf or JSON) -> rows of the `logs` event-store table."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

from ingest import batch
from ingest.otlp.column_text import check_text, dumps, render
from ingest.otlp.json_values import j_enum, j_hex_id, j_str, j_u64, jget, json_any, json_attrs
from ingest.otlp.pb_values import pb_any, pb_attrs, pb_id
from ingest.otlp.request import Columns, parse_request
from ingest.otlp.resources import ResourceInfo, json_leaves, path, pb_leaves
from ingest.otlp.result import Invalid, ParsedBatch, Rejects

LOG_COLUMNS = (*batch.COLUMNS["logs"], "template_id")  # the event store's columns (ingest/batch.py)
_NAMES = ("resourceLogs", "scopeLogs", "logRecords")
_SNAKES = ("resource_logs", "scope_logs", "log_records")
_SEVERITY_NAMES = dict(SeverityNumber.items())
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16

# OTel severity number ranges: 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL.
_BY_NUMBER = ("",) + tuple(lv for lv in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL") for _ in range(4))
_BY_TEXT = {
    "TRACE": "TRACE",
    "FINEST": "TRACE",
    "FINER": "TRACE",
    "DEBUG": "DEBUG",
    "FINE": "DEBUG",
    "INFO": "INFO",
    "INFORMATION": "INFO",
    "NOTICE": "INFO",
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "ERR": "ERROR",
    "SEVERE": "ERROR",
    "FATAL": "FATAL",
    "CRITICAL": "FATAL",
    "CRIT": "FATAL",
    "ALERT": "FATAL",
    "EMERG": "FATAL",
    "EMERGENCY": "FATAL",
    "PANIC": "FATAL",
}


def level_of(severity_number: int, severity_text: str) -> str:
    """The DevMesh level: from the severity number when it is in 1..24, else from the text, else INFO."""
    if 0 < severity_number < 25:
        return _BY_NUMBER[severity_number]
    if severity_text:
        return _BY_TEXT.get(severity_text.strip().upper().rstrip("0123456789"), "INFO")
    return "INFO"


def _status_code(v: Any) -> int | None:
    if type(v) is int:
        return v  # type: ignore[no-any-return]
    if type(v) is str and v.isascii() and v.isdigit():
        return int(v)
    return None


def error_code_of(attrs: dict[str, Any]) -> str:
    """HTTP status >= 400, else exception.type, else error.type; '' when none."""
    code = _status_code(attrs.get("http.response.status_code", attrs.get("http.status_code")))
    if code is not None and code >= 400:
        return str(code)
    for key in ("exception.type", "error.type"):
        v = attrs.get(key)
        if type(v) is str and v:
            return v  # type: ignore[no-any-return]
    return ""


class _LogColumns(Columns):
    """Validates one decoded record and appends its row; shared by both encodings."""

    names = LOG_COLUMNS

    def add(
        self,
        ts: int,
        observed: int,
        severity_number: int,
        severity_text: str,
        body: Any,
        trace_id: str,
        span_id: str,
        event_name: str,
        attrs: dict[str, Any],
        res: ResourceInfo,
        scope_name: str,
    ) -> None:
        ts = ts or observed or self.bounds.now_ns
        self.bounds.check(ts, "timeUnixNano")
        meta = dict(res.extras) if res.extras else {}
        meta.update(attrs)
        if not event_name:
            ev = attrs.get("event.name")
            if type(ev) is str and ev:
                event_name = ev
                del meta["event.name"]
        if scope_name:
            meta["otel.scope.name"] = scope_name
        message = render(body)
        meta_text = dumps(meta)
        if self.from_json:
            check_text(message, event_name, severity_text)
        c = self.cols
        c["ts_ns"].append(ts)
        c["source"].append("otlp")
        c["service"].append(res.service)
        c["host"].append(res.host)
        c["pod"].append(res.pod)
        c["level"].append(level_of(severity_number, severity_text))
        c["message"].append(message)
        c["trace_id"].append("" if trace_id == _ZERO_TRACE else trace_id)
        c["span_id"].append("" if span_id == _ZERO_SPAN else span_id)
        c["event_type"].append(event_name or "log")
        c["error_code"].append(error_code_of(attrs))
        c["template_id"].append("")
        c["meta"].append(meta_text)


def parse_logs(
    body: bytes | dict[str, Any],
    content_type: str,
    *,
    now_ns: int,
    min_year: int,
    max_future_skew_s: int,
) -> ParsedBatch:
    """Rows of the `logs` table from an ExportLogsServiceRequest (bytes, or the dict `decode_body` gave).

    Invalid records are counted in `rejected` and the rest kept; an undecodable body is InvalidInput.
    """
    return parse_request(
        body,
        content_type,
        message=ExportLogsServiceRequest,
        columns=_LogColumns,
        walk_json=_walk_json,
        walk_pb=_walk_pb,
        now_ns=now_ns,
        min_year=min_year,
        max_future_skew_s=max_future_skew_s,
    )


def _walk_pb(req: Any, out: _LogColumns, rej: Rejects) -> None:
    add = out.add
    for res, scope_name, idx, r in pb_leaves(req, _SNAKES, _NAMES, rej):
        try:
            add(
                r.time_unix_nano,
                r.observed_time_unix_nano,
                r.severity_number,
                r.severity_text,
                pb_any(r.body),
                pb_id(r.trace_id, 16, "traceId"),
                pb_id(r.span_id, 8, "spanId"),
                r.event_name,
                pb_attrs(r.attributes),
                res,
                scope_name,
            )
        except Invalid as exc:
            rej.add(path(_NAMES, idx), str(exc))


def _walk_json(doc: dict[str, Any], out: _LogColumns, rej: Rejects) -> None:
    add = out.add
    for res, scope_name, idx, r in json_leaves(doc, _NAMES, _SNAKES, rej):
        try:
            if type(r) is not dict:
                raise Invalid(f"a log record must be an object, got {type(r).__name__}")
            add(
                j_u64(jget(r, "timeUnixNano", "time_unix_nano"), "timeUnixNano"),
                j_u64(jget(r, "observedTimeUnixNano", "observed_time_unix_nano"), "observedTimeUnixNano"),
                j_enum(jget(r, "severityNumber", "severity_number"), _SEVERITY_NAMES, "severityNumber"),
                j_str(jget(r, "severityText", "severity_text"), "severityText"),
                json_any(r.get("body")),
                j_hex_id(jget(r, "traceId", "trace_id"), 16, "traceId"),
                j_hex_id(jget(r, "spanId", "span_id"), 8, "spanId"),
                j_str(jget(r, "eventName", "event_name"), "eventName"),
                json_attrs(r.get("attributes")),
                res,
                scope_name,
            )
        except Invalid as exc:
            rej.add(path(_NAMES, idx), str(exc))
