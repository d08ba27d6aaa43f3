"""OTLP/HTTP receivers: POST /v1/logs, /v1/traces, /v1/metrics (protobuf or JSON, optionally gzip)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.http.access import Scope, require
from api.http.deps import get_port, get_settings
from api.port import DevMeshPort
from core.settings import Settings
from core.timeutil import now_ns
from ingest import otlp
from ingest.batch import Kind

router = APIRouter(tags=["otlp"], dependencies=[Depends(require(Scope.INGEST))])

_PARSERS: dict[str, tuple[Kind, Callable[..., Any]]] = {
    "logs": ("logs", otlp.parse_logs),
    "traces": ("spans", otlp.parse_traces),
    "metrics": ("metrics", otlp.parse_metrics),
}
_MAX_RECORDS: dict[str, Callable[[Settings], int]] = {
    "logs": lambda s: s.max_batch_events,
    "traces": lambda s: s.max_batch_spans,
    "metrics": lambda s: s.max_batch_points,
}
_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


async def _receive(signal: str, request: Request, port: DevMeshPort, s: Settings) -> Response:
    kind, parse = _PARSERS[signal]
    content_type = request.headers.get("content-type", "")
    otlp.media_kind(content_type)  # an unsupported type is refused (415) before the body is read
    raw = await request.body()
    encoding = request.headers.get("content-encoding")

    def decode_and_parse() -> Any:  # CPU work (inflate, decode): off the event loop
        body = otlp.decode_body(  # records are counted before decoding: a request over the limit costs little
            raw,
            content_type,
            encoding,
            s.max_body_bytes,
            max_decoded_bytes=s.max_decoded_bytes,
            signal=signal,
            max_records=_MAX_RECORDS[signal](s),
        )
        return parse(
            body, content_type, now_ns=now_ns(), min_year=s.min_timestamp_year, max_future_skew_s=s.max_future_skew_s
        )

    parsed = await run_in_threadpool(decode_and_parse)
    await run_in_threadpool(port.ingest, kind, parsed.rows)
    payload, media_type = otlp.partial_success_response(signal, parsed, content_type)
    return Response(content=payload, media_type=media_type)


@router.post("/v1/logs", summary="OTLP/HTTP logs", openapi_extra=_DOC)
async def otlp_logs(
    request: Request, port: DevMeshPort = Depends(get_port), s: Settings = Depends(get_settings)
) -> Response:
    return await _receive("logs", request, port, s)


@router.post("/v1/traces", summary="OTLP/HTTP traces", openapi_extra=_DOC)
async def otlp_traces(
    request: Request, port: DevMeshPort = Depends(get_port), s: Settings = Depends(get_settings)
) -> Response:
    return await _receive("traces", request, port, s)


@router.post("/v1/metrics", summary="OTLP/HTTP metrics", openapi_extra=_DOC)
async def otlp_metrics(
    request: Request, port: DevMeshPort = Depends(get_port), s: Settings = Depends(get_settings)
) -> Response:
    return await _receive("metrics", request, port, s)
