"""Reading data back: `devmesh query logs|sql`, `devmesh search logs`."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table

from api.cli.common import JsonOpt, console, emit, opened
from core.errors import InvalidInput
from core.timeutil import parse_duration, parse_time_arg
from retrieval.logquery import LogQuery
from retrieval.search import search_logs

query_app = typer.Typer(help="Query stored telemetry: log lines with filters, or read-only SQL.")
search_app = typer.Typer(help="Semantic search over log templates.")


def register(app: typer.Typer) -> None:
    app.add_typer(query_app, name="query")
    app.add_typer(search_app, name="search")


def _filters(
    since: str | None,
    until: str | None,
    service: list[str] | None,
    host: list[str] | None,
    level: str | None,
    trace_id: str | None,
    template: list[str] | None,
    contains: str | None,
) -> dict[str, Any]:
    f: dict[str, Any] = {
        "start_ns": _time_arg(since, "--since") if since else None,
        "end_ns": _time_arg(until, "--until") if until else None,
        "service": service or None,
        "host": host or None,
        "min_level": level,
        "trace_id": trace_id,
        "template_id": template or None,
        "contains": contains,
    }
    return {k: v for k, v in f.items() if v is not None}


def _time_arg(text: str, option: str) -> int:
    """parse_time_arg, with a bare duration ('15m') read as that long ago, as --since's help says."""
    s = text.strip()
    try:
        parse_duration(s)
    except InvalidInput:
        try:
            return parse_time_arg(s)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field=option) from exc
    return parse_time_arg("-" + s)


_OPTION_OF = {"start_ns": "--since", "end_ns": "--until", "min_level": "--level", "template_id": "--template"}


def _log_query(**kwargs: Any) -> LogQuery:
    """LogQuery from the options; a bad value is InvalidInput naming the option."""
    try:
        return LogQuery(**kwargs)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "start_ns"  # the model-level check is since <= until
        problem = str(err["msg"]).removeprefix("Value error, ")
        problem = problem.replace("start_ns is after end_ns", "--since is after --until")
        raise InvalidInput(problem, field=_OPTION_OF.get(name, "--" + name.replace("_", "-"))) from exc


SinceOpt = typer.Option(None, "--since", help="Start: ISO time, epoch, or relative like 15m / 2h ago.")
UntilOpt = typer.Option(None, "--until", help="End (exclusive): same forms as --since.")
ServiceOpt = typer.Option(None, "--service", "-s", help="Service (repeat for several).")
HostOpt = typer.Option(None, "--host", help="Host (repeat for several).")
LevelOpt = typer.Option(None, "--level", "-l", help="Minimum level: DEBUG, INFO, WARN, ERROR, FATAL.")
TraceOpt = typer.Option(None, "--trace-id", help="Lines of one trace.")
TemplateOpt = typer.Option(None, "--template", help="Template id (repeat for several).")
ContainsOpt = typer.Option(None, "--contains", "-c", help="Case-insensitive substring of the message.")


@query_app.command("logs")
def query_logs_cmd(
    ctx: typer.Context,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    service: list[str] | None = ServiceOpt,
    host: list[str] | None = HostOpt,
    level: str | None = LevelOpt,
    trace_id: str | None = TraceOpt,
    template: list[str] | None = TemplateOpt,
    contains: str | None = ContainsOpt,
    oldest_first: bool = typer.Option(False, "--oldest-first", help="Ascending time order."),
    limit: int = typer.Option(50, min=1, max=1000, help="Lines on this page."),
    cursor: str | None = typer.Option(None, help="next_cursor printed by the previous page."),
    as_json: bool = JsonOpt,
) -> None:
    """Log lines matching the filters, newest first, a page at a time."""
    q = _log_query(
        **_filters(since, until, service, host, level, trace_id, template, contains),
        order="asc" if oldest_first else "desc",
        limit=limit,
        cursor=cursor,
    )
    with opened(ctx, graph=False, vectors=False) as svc:
        page = svc.events.query_logs(q)
    emit(page.model_dump(), as_json, _render_logs)


def _render_logs(page: dict[str, Any]) -> None:
    t = Table(show_lines=False)
    for col in ("time", "level", "service", "message"):
        t.add_column(col, overflow="fold")
    for e in page["events"]:
        t.add_row(e["ts"], e["level"], e["service"], e["message"][:300])
    console.print(t)
    if page.get("next_cursor"):
        console.print(f"more: --cursor {page['next_cursor']}")


@query_app.command("sql")
def query_sql_cmd(
    ctx: typer.Context,
    statement: str = typer.Argument(..., help="One read-only SELECT over logs, spans, metrics, templates."),
    limit: int = typer.Option(1000, min=1, max=100_000, help="Most rows returned."),
    as_json: bool = JsonOpt,
) -> None:
    """Read-only SQL over the event store (statements that write are refused)."""
    with opened(ctx, graph=False, vectors=False) as svc:
        columns, rows = svc.events.sql(statement, limit=limit)
    data = {"columns": columns, "rows": [list(r) for r in rows]}

    def render(d: dict[str, Any]) -> None:
        t = Table()
        for c in d["columns"]:
            t.add_column(str(c), overflow="fold")
        for r in d["rows"]:
            t.add_row(*(str(v) for v in r))
        console.print(t)

    emit(data, as_json, render)


@search_app.command("logs")
def search_logs_cmd(
    ctx: typer.Context,
    text: str = typer.Argument(..., help="What to look for, in words: 'connection refused to the database'."),
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    service: list[str] | None = ServiceOpt,
    host: list[str] | None = HostOpt,
    level: str | None = LevelOpt,
    limit: int = typer.Option(10, min=1, max=100, help="Templates returned."),
    as_json: bool = JsonOpt,
) -> None:
    """Log templates closest in meaning to TEXT, with scores, counts and example lines."""
    filters = _log_query(**_filters(since, until, service, host, level, None, None, None))
    with opened(ctx) as svc:
        result = search_logs(text, filters, events=svc.events, vectors=svc.vectors, embedder=svc.embedder, limit=limit)
    emit(result.model_dump(), as_json, _render_search)


def _render_search(r: dict[str, Any]) -> None:
    t = Table()
    for col in ("score", "count", "level", "template", "example"):
        t.add_column(col, overflow="fold")
    for h in r["hits"]:
        ex = h["examples"][0]["message"][:160] if h["examples"] else ""
        t.add_row(f"{h['score']:.3f}", str(h["count"]), h["level"], h["text"][:160], ex)
    console.print(t)
