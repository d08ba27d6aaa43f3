"""POST /ingest/journald: `journalctl -o json` entries, as a JSON array (gzip or deflate read, bounded).

The same reader as `devmesh ingest --format journald` (`ingest.journald`), so host, unit, priority and the
journal's own fields are kept as they are; the same limits as `/ingest/logs` (body bytes, inflated bytes,
entries a request). A resent entry gets the event id it got the first time and is stored once, which is what
lets `devmesh ship journald` resend a batch whose answer it did not see.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.http.access import Scope, require
from api.http.deps import get_port, get_settings
from api.http.ingest import decode_json, limits_of, store_and_answer
from api.port import DevMeshPort
from core.errors import InvalidInput, PayloadTooLarge
from core.settings import Settings
from core.timeutil import now_ns
from ingest.bounded import check_json_items, inflate
from ingest.devmesh_json import Limits, ParsedEvents
from ingest.journald import parse_journald_entries

router = APIRouter(tags=["ingest"], dependencies=[Depends(require(Scope.INGEST))])

_ENTRY_PATHS = ("item", "entries.item")
"""Where a request's entries are: a bare list, or {"entries": [...]}."""

JOURNALD_SCHEMA: dict[str, Any] = {
    "description": 'journald entries as `journalctl -o json` prints them, one object each: {"entries": [...]} or a'
    " bare list. Each entry is read on its own (__REALTIME_TIMESTAMP in microseconds and MESSAGE as text, or as"
    " journald's array of bytes, are needed): the valid ones are stored, the invalid ones listed by index.",
    "anyOf": [
        {"type": "object", "required": ["entries"], "properties": {"entries": {"type": "array"}}},
        {"type": "array"},
    ],
    "examples": [
        {
            "entries": [
                {
                    "__CURSOR": "s=1;i=1;b=1;m=1;t=1;x=1",
                    "__REALTIME_TIMESTAMP": "1760000000000000",
                    "_HOSTNAME": "atlas",
                    "_SYSTEMD_UNIT": "nginx.service",
                    "SYSLOG_IDENTIFIER": "nginx",
                    "PRIORITY": "6",
                    "MESSAGE": "GET / 200",
                }
            ]
        }
    ],
}


def entries_of(doc: Any) -> list[Any]:
    """The entry list of a decoded body: {"entries": [...]} or [...]."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict) and "entries" in doc:
        if not isinstance(doc["entries"], list):
            raise InvalidInput("must be a list of journald entries", field="entries")
        return doc["entries"]
    raise InvalidInput('expected {"entries": [...]} or a list of journald entries', field="body")


def _parse(raw: bytes, encoding: str | None, limits: Limits, max_decoded: int) -> tuple[list[Any], ParsedEvents]:
    """Inflate (bounded), count the entries while streaming (413 past the limit), decode and read them."""
    raw = inflate(raw, encoding, max_decoded)
    setting = "DEVMESH_MAX_BATCH_EVENTS"
    check_json_items(raw, limits.max_events, paths=_ENTRY_PATHS, what="entries", field="entries", setting=setting)
    entries = entries_of(decode_json(raw))
    if len(entries) > limits.max_events:  # the streaming count is skipped for bodies that cannot hold that many
        raise PayloadTooLarge(f"more than {limits.max_events} entries in one request ({setting})", field="entries")
    return entries, parse_journald_entries(entries, limits, now_ns=now_ns())


@router.post(
    "/ingest/journald",
    summary="Ingest journald entries (journalctl -o json)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": JOURNALD_SCHEMA}}}},
    responses={
        200: {
            "description": "Each entry's fate: the valid ones stored (a resent entry counted as a duplicate), the"
            " invalid ones listed by index (all of them when none is valid)"
        }
    },
)
async def ingest_journald(
    request: Request, port: DevMeshPort = Depends(get_port), settings: Settings = Depends(get_settings)
) -> JSONResponse:
    raw = await request.body()
    encoding = request.headers.get("content-encoding")
    entries, parsed = await run_in_threadpool(_parse, raw, encoding, limits_of(settings), settings.max_decoded_bytes)
    return await store_and_answer(port, entries, parsed)
