"""OTLP traces (ExportTraceServiceRequest, protobuf or JSON) -> rows of the `spans` event-store table."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest import batch
from ingest.otlp.column_text import check_text, dumps
from ingest.otlp.json_values import j_enum, j_hex_id, j_list, j_obj, j_str, j_u64, jget, json_attrs
from ingest.otlp.pb_values import pb_attrs, pb_id
from ingest.otlp.request import Columns, parse_request
from ingest.otlp.resources import ResourceInfo, json_leaves, path, pb_leaves
from ingest.otlp.result import Invalid, ParsedBatch, Rejects

SPAN_COLUMNS = batch.COLUMNS["spans"]  # the event store's columns (ingest/batch.py)
_NAMES = ("resourceSpans", "scopeSpans", "spans")
_SNAKES = ("resource_spans", "scope_spans", "spans")
_KINDS = ("", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUSES = ("UNSET", "OK", "ERROR")
_KIND_NAMES = dict(Span.SpanKind.items())
_STATUS_NAMES = dict(Status.StatusCode.items())
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class _SpanColumns(Columns):
    """Validates one decoded span and appends its row; shared by both encodings."""

    names = SPAN_COLUMNS

    def add(
        self,
        trace_id: str,
        span_id: str,
        parent_id: str,
        name: str,
        kind: int,
        start: int,
        end: int,
        status_code: int,
        status_message: str,
        attrs: dict[str, Any],
        exception: dict[str, Any] | None,
        res: ResourceInfo,
    ) -> None:
        if not trace_id or trace_id == _ZERO_TRACE:
            raise Invalid("traceId is missing or all zeros")
        if not span_id or span_id == _ZERO_SPAN:
            raise Invalid("spanId is missing or all zeros")
        if not 0 <= kind < len(_KINDS):
            raise Invalid(f"kind {kind} is not a span kind")
        if not 0 <= status_code < len(_STATUSES):
            raise Invalid(f"status.code {status_code} is not a status code")
        self.bounds.check(start, "startTimeUnixNano")
        self.bounds.check(end, "endTimeUnixNano")
        if end < start:
            raise Invalid(f"endTimeUnixNano {end} is before startTimeUnixNano {start}")
        if status_message:
            attrs["otel.status_description"] = status_message
        if exception:
            for key in ("exception.type", "exception.message"):
                if key in exception and key not in attrs:
                    attrs[key] = exception[key]
        attrs_text = dumps(attrs)
        if self.from_json:
            check_text(name)
        c = self.cols
        c["trace_id"].append(trace_id)
        c["span_id"].append(span_id)
        c["parent_id"].append("" if parent_id == _ZERO_SPAN else parent_id)
        c["service"].append(res.service)
        c["pod"].append(res.pod)
        c["host"].append(res.host)
        c["operation"].append(name)
        c["start_ns"].append(start)
        c["end_ns"].append(end)
        c["duration_us"].append((end - start) / 1000)
        c["status"].append(_STATUSES[status_code])
        c["kind"].append(_KINDS[kind])
        c["attributes"].append(attrs_text)


def parse_traces(
    body: bytes | dict[str, Any],
    content_type: str,
    *,
    now_ns: int,
    min_year: int,
    max_future_skew_s: int,
) -> ParsedBatch:
    """Rows of the `spans` table from an ExportTraceServiceRequest (bytes, or the dict `decode_body` gave).

    Span attributes are kept as JSON, plus `otel.status_description` (the status message) and the
    `exception.type` / `exception.message` of the first exception event. Links are not kept.
    """
    return parse_request(
        body,
        content_type,
        message=ExportTraceServiceRequest,
        columns=_SpanColumns,
        walk_json=_walk_json,
        walk_pb=_walk_pb,
        now_ns=now_ns,
        min_year=min_year,
        max_future_skew_s=max_future_skew_s,
    )


def _pb_exception(span: Any) -> dict[str, Any] | None:
    for ev in span.events:
        if ev.name == "exception":
            return pb_attrs(ev.attributes)
    return None


def _walk_pb(req: Any, out: _SpanColumns, rej: Rejects) -> None:
    add = out.add
    for res, _scope, idx, s in pb_leaves(req, _SNAKES, _NAMES, rej):
        try:
            status = s.status
            add(
                pb_id(s.trace_id, 16, "traceId"),
                pb_id(s.span_id, 8, "spanId"),
                pb_id(s.parent_span_id, 8, "parentSpanId"),
                s.name,
                s.kind,
                s.start_time_unix_nano,
                s.end_time_unix_nano,
                status.code,
                status.message,
                pb_attrs(s.attributes),
                _pb_exception(s) if s.events else None,
                res,
            )
        except Invalid as exc:
            rej.add(path(_NAMES, idx), str(exc))


def _json_exception(span: dict[str, Any]) -> dict[str, Any] | None:
    for ev in j_list(span.get("events"), "events"):
        ev = j_obj(ev, "events[]")
        if ev.get("name") == "exception":
            return json_attrs(ev.get("attributes"))
    return None


def _walk_json(doc: dict[str, Any], out: _SpanColumns, rej: Rejects) -> None:
    add = out.add
    for res, _scope, idx, s in json_leaves(doc, _NAMES, _SNAKES, rej):
        try:
            if type(s) is not dict:
                raise Invalid(f"a span must be an object, got {type(s).__name__}")
            status = j_obj(s.get("status"), "status")
            add(
                j_hex_id(jget(s, "traceId", "trace_id"), 16, "traceId"),
                j_hex_id(jget(s, "spanId", "span_id"), 8, "spanId"),
                j_hex_id(jget(s, "parentSpanId", "parent_span_id"), 8, "parentSpanId"),
                j_str(s.get("name"), "name"),
                j_enum(s.get("kind"), _KIND_NAMES, "kind"),
                j_u64(jget(s, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano"),
                j_u64(jget(s, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano"),
                j_enum(status.get("code"), _STATUS_NAMES, "status.code"),
                j_str(status.get("message"), "status.message"),
                json_attrs(s.get("attributes")),
                _json_exception(s) if s.get("events") else None,
                res,
            )
        except Invalid as exc:
            rej.add(path(_NAMES, idx), str(exc))
