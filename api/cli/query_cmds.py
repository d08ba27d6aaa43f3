"""Reading data back: `devmesh query logs|sql`, `devmesh search logs`."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from api.cli.common import JsonOpt, connect, console, emit
from api.sql_limits import MAX_SQL_ROWS

# the event store's query model and the renderers load in the commands that use them

query_app = typer.Typer(help="Query stored telemetry: log lines with filters, or read-only SQL.")
search_app = typer.Typer(help="Semantic search over log templates (keywords while the vectors are down).")


def register(app: typer.Typer) -> None:
    app.add_typer(query_app, name="query")
    app.add_typer(search_app, name="search")


_OPTION_OF = {
    "since": "--since",
    "until": "--until",
    "level": "--level",
    "template_id": "--template",
    "service": "--service",
    "host": "--host",
    "trace_id": "--trace-id",
    "contains": "--contains",
    "limit": "--limit",
    "cursor": "--cursor",
}


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
    from retrieval.events import query_from_args

    q = query_from_args(
        _OPTION_OF,
        since=since,
        until=until,
        service=service,
        host=host,
        level=level,
        trace_id=trace_id,
        template_id=template,
        contains=contains,
        order="asc" if oldest_first else "desc",
        limit=limit,
        cursor=cursor,
    )
    with connect(ctx, graph=False, vectors=False) as port:
        page = port.query_logs(q)
    emit(page.model_dump(), as_json, _render_logs)


def _render_logs(page: dict[str, Any]) -> None:
    """Each line: time, level and service, then the message below it."""
    from api.render.terminal import Indented, one_line
    from api.render.text import plain

    lines: list[RenderableType] = []
    for e in page["events"]:
        lines.append(one_line(f"{e['ts']} {e['level']:<5} {plain(e['service'])}", style="bold"))
        lines.append(Indented(Text(plain(e["message"], 300))))
    console.print(Group(*lines) if lines else "no log lines")
    if page.get("next_cursor"):
        console.print(f"more: --cursor {page['next_cursor']}", soft_wrap=True)  # one line: copied whole


@query_app.command("sql")
def query_sql_cmd(
    ctx: typer.Context,
    statement: str = typer.Argument(..., help="One read-only SELECT over logs, spans, metrics, templates."),
    limit: int = typer.Option(1000, min=1, max=MAX_SQL_ROWS, help="Most rows returned."),
    as_json: bool = JsonOpt,
) -> None:
    """Read-only SQL over the event store (statements that write are refused); through the server's
    GET /query/sql while one owns the home."""
    with connect(ctx, graph=False, vectors=False) as port:
        columns, rows = port.sql(statement, limit=limit)
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
    """Log templates closest in meaning to TEXT, with scores, counts and example lines. While the vector store or
    the embedder is down, keyword matches from the event store instead, with a note saying so (--json: `mode`
    is text_fallback and `note` says why and how they were scored)."""
    from retrieval.events import query_from_args

    filters = query_from_args(_OPTION_OF, since=since, until=until, service=service, host=host, level=level)
    with connect(ctx) as port:
        result = port.search_templates(text, filters, limit=limit)
    emit(result.model_dump(), as_json, _render_search)


def _render_search(r: dict[str, Any]) -> None:
    """The note of a degraded answer first; each template: score, count and level, then its text and an example
    line below it."""
    from api.render.terminal import Indented, one_line
    from api.render.text import plain

    lines: list[RenderableType] = []
    if r.get("note"):
        lines.append(Text(plain(r["note"], 600), style="yellow"))
    for h in r["hits"]:
        lines.append(one_line(f"{h['score']:.3f}  {h['count']:>6} lines  {h['level']}", style="bold"))
        lines.append(Indented(Text(plain(h["text"], 160))))
        if h["examples"]:
            lines.append(Indented(Text("e.g. " + plain(h["examples"][0]["message"], 160), style="dim")))
    console.print(Group(*lines) if lines else "no templates found")
