"""OTLP/HTTP payloads: body decoding, per-signal parsing to event-store columns, partial-success replies.

The HTTP layer calls, for `POST /v1/logs` (likewise traces and metrics):

    body = decode_body(raw, content_type, content_encoding, settings.max_body_bytes)
    parsed = parse_logs(body, content_type, now_ns=..., min_year=..., max_future_skew_s=...)
    ... store parsed.rows ...
    payload, media_type = partial_success_response("logs", parsed, content_type)

Protobuf (`application/x-protobuf`) and JSON (`application/json`) bodies give the same rows.
"""

from __future__ import annotations

import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from core.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ingest.otlp_common import JSON_MEDIA, PROTOBUF_MEDIA, ParsedBatch, load_json, media_kind
from ingest.otlp_logs import LOG_COLUMNS, parse_logs
from ingest.otlp_metrics import METRIC_COLUMNS, parse_metrics
from ingest.otlp_traces import SPAN_COLUMNS, parse_traces

__all__ = [
    "LOG_COLUMNS",
    "METRIC_COLUMNS",
    "SPAN_COLUMNS",
    "ParsedBatch",
    "decode_body",
    "media_kind",
    "parse_logs",
    "parse_metrics",
    "parse_traces",
    "partial_success_response",
]

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS

_RESPONSES: dict[str, tuple[type[Message], str, str]] = {
    "logs": (ExportLogsServiceResponse, "rejected_log_records", "log records"),
    "traces": (ExportTraceServiceResponse, "rejected_spans", "spans"),
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points", "data points"),
}


def decode_body(
    raw: bytes, content_type: str | None, content_encoding: str | None, max_bytes: int
) -> bytes | dict[str, Any]:
    """The request body ready for `parse_*`: protobuf bytes, or the parsed JSON object.

    Content-Encoding gzip (or x-gzip), deflate and identity are read; the decompressed size is capped
    at `max_bytes` while inflating, so a gzip bomb stops at the cap with PayloadTooLarge.
    Raises UnsupportedMediaType for other content types or encodings, InvalidInput for a body that
    cannot be decoded (bad gzip, bad JSON).
    """
    kind = media_kind(content_type)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"body is {len(raw)} bytes; the limit is {max_bytes}", field="body")
    data = bytes(raw)
    encodings = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
    for enc in reversed(encodings):  # the last encoding listed was applied last
        if enc in ("gzip", "x-gzip"):
            data = _inflate(data, _GZIP_WBITS, "gzip", max_bytes)
        elif enc == "deflate":
            data = _inflate(data, _ZLIB_WBITS, "deflate", max_bytes)
        elif enc != "identity":
            raise UnsupportedMediaType(
                f"Content-Encoding {enc!r} is not supported; use gzip, deflate or none",
                field="content-encoding",
            )
    return load_json(data) if kind == "json" else data


def _inflate(data: bytes, wbits: int, label: str, max_bytes: int) -> bytes:
    out = bytearray()
    d = zlib.decompressobj(wbits)
    buf = data
    while True:
        try:
            chunk = d.decompress(buf, max_bytes - len(out) + 1)
        except zlib.error as exc:
            raise InvalidInput(f"body is not valid {label}: {exc}", field="body") from None
        out += chunk
        if len(out) > max_bytes:
            raise PayloadTooLarge(
                f"body inflates to more than {max_bytes} bytes (Content-Encoding {label})", field="body"
            )
        if d.eof:
            buf = d.unused_data
            if not buf:
                return bytes(out)
            if wbits != _GZIP_WBITS:
                raise InvalidInput(f"body has data after the end of the {label} stream", field="body")
            d = zlib.decompressobj(wbits)  # a further gzip member
            continue
        buf = d.unconsumed_tail
        if not buf and not chunk:
            raise InvalidInput(f"body is a truncated {label} stream", field="body")


def error_message(kind: str, parsed: ParsedBatch) -> str:
    unit = _RESPONSES[kind][2]
    text = f"{parsed.rejected} {unit} rejected: " + "; ".join(parsed.errors)
    if parsed.rejected > len(parsed.errors):
        text += "; ..."
    return text


def partial_success_response(kind: str, parsed: ParsedBatch, content_type: str) -> tuple[bytes, str]:
    """The Export{Logs,Trace,Metrics}ServiceResponse for `kind` ('logs', 'traces' or 'metrics').

    Encoded like the request (protobuf or JSON); `partialSuccess` is set only when records were rejected.
    Returns (body, media type).
    """
    if kind not in _RESPONSES:
        raise ValueError(f"kind must be one of {sorted(_RESPONSES)}, not {kind!r}")
    cls, count_field, _unit = _RESPONSES[kind]
    resp = cls()
    if parsed.rejected:
        partial = resp.partial_success  # type: ignore[attr-defined]
        setattr(partial, count_field, parsed.rejected)
        partial.error_message = error_message(kind, parsed)
    if media_kind(content_type) == "json":
        return json_format.MessageToJson(resp, indent=None).encode("utf-8"), JSON_MEDIA
    return resp.SerializeToString(), PROTOBUF_MEDIA
