"""GET /query/logs and GET /search/logs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import ValidationError

from api.http.deps import services
from api.wiring import Services
from core.errors import InvalidInput
from core.timeutil import parse_duration, parse_time_arg
from retrieval.logquery import LogPage, LogQuery
from retrieval.search import SearchResult, search_logs

router = APIRouter(tags=["query"])


def _filters(
    since: str | None,
    until: str | None,
    service: list[str] | None,
    host: list[str] | None,
    level: str | None,
    trace_id: str | None,
    template_id: list[str] | None,
    contains: str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in (("since", since), ("until", until)):
        if value:
            try:
                out["start_ns" if name == "since" else "end_ns"] = time_arg(value)
            except InvalidInput as exc:
                raise InvalidInput(exc.message, field=name) from exc
    for key, values in (("service", service), ("host", host), ("template_id", template_id)):
        if values:
            out[key] = values
    for key, text in (("min_level", level), ("trace_id", trace_id), ("contains", contains)):
        if text:
            out[key] = text
    return out


def time_arg(text: str) -> int:
    """parse_time_arg, with a bare duration ('15m') read as that long ago, as the parameter docs say."""
    s = text.strip()
    try:
        parse_duration(s)
    except InvalidInput:
        return parse_time_arg(s)
    return parse_time_arg("-" + s)


# LogQuery's fields under the names of the query parameters that set them
_PARAM_OF = {"start_ns": "since", "end_ns": "until", "min_level": "level"}


def _log_query(**kwargs: Any) -> LogQuery:
    """LogQuery from query parameters; a bad value is InvalidInput naming the parameter the client sent."""
    try:
        return LogQuery(**kwargs)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "since"  # the model-level check is since <= until
        problem = str(err["msg"]).removeprefix("Value error, ")
        problem = problem.replace("start_ns is after end_ns", "since is after until")
        raise InvalidInput(problem, field=_PARAM_OF.get(name, name)) from exc


Since = Annotated[str | None, Query(description="Start: ISO-8601, epoch, or relative ('15m' = 15 minutes ago).")]
Until = Annotated[str | None, Query(description="End (exclusive), same forms as since.")]
Services_ = Annotated[list[str] | None, Query(alias="service", description="Service; repeat for several.")]
Hosts = Annotated[list[str] | None, Query(alias="host", description="Host; repeat for several.")]
Level = Annotated[str | None, Query(description="Minimum level: DEBUG, INFO, WARN, ERROR, FATAL.")]


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
    svc: Services = Depends(services),
) -> LogPage:
    q = _log_query(
        **_filters(since, until, service, host, level, trace_id, template_id, contains),
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return svc.events.query_logs(q)


@router.get("/search/logs", response_model=SearchResult, summary="Semantic search over log templates")
def search(
    q: Annotated[str, Query(min_length=1, max_length=2000, description="What to look for, in words.")],
    since: Since = None,
    until: Until = None,
    service: Services_ = None,
    host: Hosts = None,
    level: Level = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    svc: Services = Depends(services),
) -> SearchResult:
    filters = _log_query(**_filters(since, until, service, host, level, None, None, None))
    return search_logs(q, filters, events=svc.events, vectors=svc.vectors, embedder=svc.embedder, limit=limit)
