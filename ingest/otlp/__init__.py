"""OTLP/HTTP payloads: body decoding, per-signal parsing to event-store columns, partial-success replies.

The HTTP layer calls, for `POST /v1/logs` (likewise traces and metrics):

    body = decode_body(raw, content_type, content_encoding, settings.max_body_bytes)
    parsed = parse_logs(body, content_type, now_ns=..., min_year=..., max_future_skew_s=...)
    ... store parsed.rows ...
    payload, media_type = partial_success_response("logs", parsed, content_type)

Protobuf (`application/x-protobuf`) and JSON (`application/json`) bodies give the same rows.
"""

from __future__ import annotations

from ingest.otlp.logs import LOG_COLUMNS, parse_logs
from ingest.otlp.metrics import METRIC_COLUMNS, parse_metrics
from ingest.otlp.request import decode_body, media_kind
from ingest.otlp.response import partial_success_response
from ingest.otlp.result import ParsedBatch
from ingest.otlp.traces import SPAN_COLUMNS, parse_traces

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
