"""POST /ingest/logs: DevMesh JSON batches (gzip or deflate Content-Encoding read, bounded)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.http.access import Scope, require
from api.http.deps import get_port, get_settings
from api.port import DevMeshPort
from core.errors import InvalidInput
from core.settings import Settings
from core.timeutil import now_ns
from ingest.bounded import check_json_items, inflate
from ingest.devmesh_json import Limits, LogEventIn, ParsedEvents, events_of, parse_events

router = APIRouter(tags=["ingest"], dependencies=[Depends(require(Scope.INGEST))])


_EVENT_PATHS = ("item", "events.item")
"""Where a batch's events are: a bare list, or {"events": [...]}."""


def limits_of(s: Settings) -> Limits:
    return Limits(
        max_events=s.max_batch_events,
        max_message_chars=s.max_message_chars,
        min_year=s.min_timestamp_year,
        max_future_skew_s=s.max_future_skew_s,
    )


def decode_json(raw: bytes) -> Any:
    if not raw.strip():
        raise InvalidInput("request body is empty; send a JSON batch", field="body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"body is not valid UTF-8 (byte {exc.start})", field="body") from exc
    try:
        return json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field="body") from exc
    except RecursionError as exc:
        raise InvalidInput("malformed JSON: nested too deeply", field="body") from exc
    except ValueError as exc:  # a number over Python's 4300-digit conversion limit
        raise InvalidInput(f"malformed JSON: {str(exc)[:200]}", field="body") from exc


def _not_json(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259), although Python's json module reads them."""
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


def _parse(raw: bytes, encoding: str | None, limits: Limits, max_decoded: int) -> tuple[list[Any], ParsedEvents]:
    """Inflate (bounded), count the events while streaming (413 past the limit), decode and validate a body
    (CPU work: run off the event loop)."""
    raw = inflate(raw, encoding, max_decoded)
    check_json_items(
        raw, limits.max_events, paths=_EVENT_PATHS, what="events", field="events", setting="DEVMESH_MAX_BATCH_EVENTS"
    )
    items = events_of(decode_json(raw))
    return items, parse_events(items, limits, now_ns=now_ns())


BATCH_SCHEMA: dict[str, Any] = {
    "description": 'A batch: {"events": [...]}, a bare list of events, or one event. Each event is checked on its own'
    " (the fields of LogEventIn): the valid ones are stored, the invalid ones listed by index in the answer.",
    "anyOf": [
        {"type": "object", "required": ["events"], "properties": {"events": {"type": "array"}}},
        {"type": "array"},
        {"type": "object", "required": ["message"]},
    ],
    "examples": [{"events": [{"timestamp": "2025-10-09T08:53:20Z", "message": "job 1 finished", "service": "jobs"}]}],
    "x-event-schema": LogEventIn.model_json_schema(),
}


@router.post(
    "/ingest/logs",
    summary="Ingest a JSON batch of log events",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": BATCH_SCHEMA}}}},
    responses={
        200: {
            "description": "Each event's fate: the valid ones stored, the invalid ones listed by index (all of them"
            " when none is valid)"
        }
    },
)
async def ingest_logs(
    request: Request, port: DevMeshPort = Depends(get_port), settings: Settings = Depends(get_settings)
) -> JSONResponse:
    raw = await request.body()
    encoding = request.headers.get("content-encoding")
    items, parsed = await run_in_threadpool(_parse, raw, encoding, limits_of(settings), settings.max_decoded_bytes)
    return await store_and_answer(port, items, parsed)


async def store_and_answer(port: DevMeshPort, items: list[Any], parsed: ParsedEvents) -> JSONResponse:
    """Store the valid rows of a parsed batch and answer each item's fate (every JSON ingest route)."""
    report = await run_in_threadpool(port.ingest, "logs", parsed.rows)
    body = {
        "received": len(items),
        "accepted": parsed.accepted,
        "stored": report.stored,
        "duplicates": report.duplicates,
        "rejected": len(parsed.errors),
        "errors": [e.as_dict() for e in parsed.errors[:100]],
        "new_templates": report.new_templates,
    }
    if report.embed_error:
        body["warning"] = f"stored without vectors ({report.embed_error}); run `devmesh backfill`"
    return JSONResponse(body)
