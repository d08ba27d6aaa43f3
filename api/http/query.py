"""GET /query/logs, GET /query/sql (read-only SQL), GET /search/logs (semantic; keywords while vectors are down)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.http.access import Scope, require
from api.http.deps import get_port
from api.port import MAX_SQL_CHARS, MAX_SQL_ROWS, DevMeshPort
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
EXACT_VALUES = (
    " Matched exactly (case and every character count, control characters included: a value no stored line"
    " carries matches nothing)."
)
Texts = list[str] | str | None
"""A repeatable query parameter: one value is a string on the wire, several are an array (both are read as a
list). Declared so, the schema says what the handler accepts: any text, once or repeated."""
Services_ = Annotated[Texts, Query(alias="service", description="Service; repeat for several." + EXACT_VALUES)]
Hosts = Annotated[Texts, Query(alias="host", description="Host; repeat for several." + EXACT_VALUES)]
TemplateIds = Annotated[Texts, Query(description="Template id; repeat for several." + EXACT_VALUES)]
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
    template_id: TemplateIds = None,
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


@router.get(
    "/search/logs",
    response_model=SearchResult,
    summary="Semantic search over log templates",
    description="Templates nearest in meaning to `q` with lines under the filters, each with its count and newest "
    "lines (`mode` semantic). While the vector store or the embedder is down or not configured, the answer is still "
    "200: keyword matches of `q` in the templates' text and lines from the event store, `mode` text_fallback, with "
    "a `note` saying why and how they were scored (`score` is then the share of the query's words found).",
)
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


class SqlRows(BaseModel):
    """The answer of one read-only SELECT: column names, and rows in column order."""

    columns: list[str]
    rows: list[list[Any]] = Field(
        description="Numbers, text, booleans and nulls as JSON; lists and structs as JSON arrays and objects; "
        "any other value (times, decimals, UUIDs, blobs) as its text."
    )


def json_cell(value: Any) -> Any:
    """One SQL value as JSON, with the text `str()` gives for what JSON has no type for (as the CLI prints)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [json_cell(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_cell(v) for k, v in value.items()}
    return str(value)


@router.get(
    "/query/sql",
    response_model=SqlRows,
    summary="One read-only SELECT over the event store",
    responses={
        400: {
            "description": "The statement is refused (it could write, attach, copy, set a pragma or read files) or "
            "does not parse, fails or runs too long; `field` is `statement`."
        }
    },
)
def query_sql(
    statement: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_SQL_CHARS,
            description="One SELECT over logs, spans, metrics, templates (no writes, no files).",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_SQL_ROWS, description="Most rows returned.")] = 1000,
    port: DevMeshPort = Depends(get_port),
) -> SqlRows:
    columns, rows = port.sql(statement, limit=limit)
    return SqlRows(columns=columns, rows=[[json_cell(v) for v in row] for row in rows])
