"""GET /query/logs and GET /search/logs."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from api.http.access import Scope, require
from api.http.deps import get_port
from api.port import DevMeshPort
from core.jsontypes import StripText
from core.naming import LEVEL_ORDER
from core.timeutil import TIME_ARG_PATTERN
from retrieval.events import LogPage, query_from_args
from retrieval.search import SearchResult

router = APIRouter(tags=["query"], dependencies=[Depends(require(Scope.READ))])


Since = Annotated[
    str | None,
    Query(pattern=TIME_ARG_PATTERN, description="Start: ISO-8601, epoch, 'now' or relative ('15m' = 15 minutes ago)."),
    StripText,
]
Until = Annotated[
    str | None,
    Query(pattern=TIME_ARG_PATTERN, description="End (exclusive), same forms as since; before since: nothing."),
    StripText,
]
Services_ = Annotated[list[str] | None, Query(alias="service", description="Service; repeat for several.")]
Hosts = Annotated[list[str] | None, Query(alias="host", description="Host; repeat for several.")]
LEVEL_PATTERN = "^(" + "|".join(f"{name}|{name.lower()}" for name in (*LEVEL_ORDER, "WARNING")) + ")$"
Level = Annotated[
    str | None,
    Query(pattern=LEVEL_PATTERN, description="Minimum level: TRACE, DEBUG, INFO, WARN, ERROR, FATAL."),
    StripText,
]


@router.get("/query/logs", response_model=LogPage, summary="Log lines by filters, paginated with a cursor")
def query_logs(
    since: Since = None,
    until: Until = None,
    service: Services_ = None,
    host: Hosts = None,
    level: Level = None,
    trace_id: Annotated[str | None, Query(max_length=64)] = None,
    template_id: Annotated[list[str] | None, Query()] = None,
    contains: Annotated[str | None, Query(max_length=1000)] = None,
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    port: DevMeshPort = Depends(get_port),
) -> LogPage:
    q = query_from_args(
        {},
        since=since,
        until=until,
        service=service,
        host=host,
        level=level,
        trace_id=trace_id,
        template_id=template_id,
        contains=contains,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return port.query_logs(q)


@router.get("/search/logs", response_model=SearchResult, summary="Semantic search over log templates")
def search(
    q: Annotated[str, Query(min_length=1, max_length=2000, description="What to look for, in words.")],
    since: Since = None,
    until: Until = None,
    service: Services_ = None,
    host: Hosts = None,
    level: Level = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    port: DevMeshPort = Depends(get_port),
) -> SearchResult:
    filters = query_from_args({}, since=since, until=until, service=service, host=host, level=level)
    return port.search_templates(q, filters, limit=limit)
