"""Explaining: `devmesh explain`, `devmesh incidents list|show|resolve|feedback`, `devmesh evidence`."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Group, RenderableType
from rich.text import Text

from api.cli.common import JsonOpt, connect, console, emit
from core.errors import InvalidInput
from core.incident import AlertIn, Feedback, IncidentStatus, InvestigationRequest
from core.timeutil import iso, parse_time_arg

if TYPE_CHECKING:  # the renderers (and the graph types they show) load when something is shown
    from core.explanation import Explanation

SOURCE = "cli"

incidents_app = typer.Typer(help="Incidents: list, show, resolve, give feedback.")


class Format(StrEnum):
    terminal = "terminal"
    markdown = "markdown"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
    app.command("evidence")(evidence)
    app.add_typer(incidents_app, name="incidents")


def show_explanation(expl: Explanation, fmt: Format) -> None:
    from api.render.markdown import to_markdown
    from api.render.terminal import terminal_renderable
    from api.render.text import to_json

    if fmt == Format.json:
        print(to_json(expl))
    elif fmt == Format.markdown:
        print(to_markdown(expl))
    else:
        console.print(terminal_renderable(expl))


def explain(
    ctx: typer.Context,
    incident: str | None = typer.Option(None, "--incident", "-i", help="Explain this incident again."),
    service: str | None = typer.Option(None, "--service", "-s", help="Service the problem shows on."),
    at: str | None = typer.Option(None, "--at", help="When it started: ISO time, epoch, or relative (15m)."),
    since: str | None = typer.Option(None, "--since", help="Start of the window to look at."),
    until: str | None = typer.Option(None, "--until", help="End of the window to look at."),
    alert: str | None = typer.Option(
        None,
        "--alert",
        help="An Alertmanager-style alert as JSON: a file, or - for stdin (one alert, or a webhook body whose "
        "first firing alert is taken).",
    ),
    fmt: Format = typer.Option(Format.terminal, "--format", "-f", help="terminal, markdown or json."),
    as_json: bool = JsonOpt,
) -> None:
    """Explain an incident: what broke, why, how it spread, the evidence, and the runbook steps to take.

    Say which incident by id (--incident), by service and/or time (--service, --at, --since, --until), or
    with the alert that fired (--alert)."""
    req = InvestigationRequest(
        incident_id=incident,
        service=service,
        at_ns=parse_time_arg(at) if at else None,
        start_ns=parse_time_arg(since) if since else None,
        end_ns=parse_time_arg(until) if until else None,
        alert=read_alert(alert) if alert else None,
    )
    with connect(ctx) as port:
        expl = port.explain(req, source=SOURCE).explanation
    show_explanation(expl, Format.json if as_json else fmt)


def read_alert(source: str) -> AlertIn:
    """An alert from a JSON file (or stdin for '-'): one alert, or a webhook body with `alerts`."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read the alert file {source}: {exc.strerror}", field="alert") from exc
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the alert is not JSON ({exc.msg} at line {exc.lineno})", field="alert") from exc
    if isinstance(body, dict) and isinstance(body.get("alerts"), list):
        alerts = [a for a in body["alerts"] if isinstance(a, dict)]
        firing = [a for a in alerts if a.get("status", "firing") == "firing"]
        if not (firing or alerts):
            raise InvalidInput("the webhook body has no alerts", field="alert.alerts")
        body = (firing or alerts)[0]
    if not isinstance(body, dict):
        raise InvalidInput("the alert must be a JSON object", field="alert")
    return AlertIn.model_validate(body)


def evidence(ctx: typer.Context, incident_id: str = typer.Argument(...), as_json: bool = JsonOpt) -> None:
    """The fused evidence list (graph and vector, reranked) behind an incident's explanation."""
    from api.render.terminal import evidence_lines
    from core.explanation import EvidenceItem

    with connect(ctx) as port:
        expl = port.latest_explanation(port.incident(incident_id))
    items = [e.model_dump(mode="json") for e in expl.evidence] if expl else []

    def render(rows: list[dict[str, Any]]) -> None:
        console.print(Group(*evidence_lines((EvidenceItem.model_validate(e) for e in rows), scores=True)))

    emit(items, as_json, render)


@incidents_app.command("list")
def list_cmd(
    ctx: typer.Context,
    status: IncidentStatus | None = typer.Option(None, help="open or resolved."),
    limit: int = typer.Option(50, min=1, max=1000),
    as_json: bool = JsonOpt,
) -> None:
    """Incidents, newest first."""
    with connect(ctx, vectors=False) as port:
        rows = [i.model_dump(mode="json") for i in port.list_incidents(status=status, limit=limit)]

    def render(data: list[dict[str, Any]]) -> None:
        """Each incident: id, status, start and source on one line; its root cause and title below it."""
        from api.render.terminal import Indented, one_line
        from api.render.text import plain

        lines: list[RenderableType] = []
        for i in data:
            head = f"{plain(i['id'])}  {i['status']:<8} {iso(i['alert_ns'])}  {plain(i['source'])}"
            lines.append(one_line(head, style="bold"))
            if i["root_cause"]:
                lines.append(Indented(Text(f"root cause {plain(i['root_cause'])} ({i['confidence']:.2f})")))
            if i["title"]:
                lines.append(Indented(Text(plain(i["title"]), style="dim")))
        console.print(Group(*lines) if lines else "no incidents")

    emit(rows, as_json, render)


@incidents_app.command("show")
def show_cmd(
    ctx: typer.Context,
    incident_id: str = typer.Argument(...),
    fmt: Format = typer.Option(Format.terminal, "--format", "-f"),
    as_json: bool = JsonOpt,
) -> None:
    """An incident's latest explanation."""
    with connect(ctx, vectors=False) as port:
        incident = port.incident(incident_id)
        expl = port.latest_explanation(incident)
    if expl is None:
        emit(incident.model_dump(mode="json"), True)
        return
    show_explanation(expl, Format.json if as_json else fmt)


@incidents_app.command("resolve")
def resolve_cmd(ctx: typer.Context, incident_id: str = typer.Argument(...), as_json: bool = JsonOpt) -> None:
    """Mark an incident resolved."""
    with connect(ctx, vectors=False) as port:
        inc = port.resolve(incident_id)
    emit(inc.model_dump(mode="json"), as_json, lambda d: console.print(f"resolved {d['id']}"))


@incidents_app.command("feedback")
def feedback_cmd(
    ctx: typer.Context,
    incident_id: str = typer.Argument(...),
    root_cause: str | None = typer.Option(None, help="The service that really broke."),
    helpful: bool | None = typer.Option(None, "--helpful/--not-helpful", help="Did the explanation help?"),
    by: str = typer.Option("", help="Who says so."),
    as_json: bool = JsonOpt,
) -> None:
    """Tell DevMesh the true root cause (used when similar incidents are ranked later)."""
    root_cause = (root_cause or "").strip() or None
    if root_cause is None and helpful is None:
        raise InvalidInput("give --root-cause, or --helpful / --not-helpful", field="root_cause")
    with connect(ctx) as port:
        inc = port.feedback(incident_id, Feedback(root_cause=root_cause, helpful=helpful, by=by))
    emit(inc.model_dump(mode="json"), as_json, lambda d: console.print(f"feedback stored on {d['id']}"))
