"""The OTLP/HTTP reply: an Export{Logs,Trace,Metrics}ServiceResponse with partial success.

`partial_success_response` encodes the response like the request was encoded (protobuf or JSON) and sets
`partialSuccess` (the rejected count and `error_message`) only when records were rejected.
"""

from __future__ import annotations

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ingest.otlp.request import JSON_MEDIA, PROTOBUF_MEDIA, media_kind
from ingest.otlp.result import ParsedBatch

_RESPONSES: dict[str, tuple[type[Message], str, str]] = {
    "logs": (ExportLogsServiceResponse, "rejected_log_records", "log records"),
    "traces": (ExportTraceServiceResponse, "rejected_spans", "spans"),
    "metrics": (ExportMetricsServiceResponse, "rejected_data_points", "data points"),
}


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
