"""Getting data out: `devmesh export case`, an incident as a case bundle (CASE-BUNDLES.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from api.cli.common import JsonOpt, console, emit, opened, progress
from core.errors import InvalidInput
from core.timeutil import NS, parse_duration, parse_time_arg

export_app = typer.Typer(help="Export data: an incident as a case bundle to replay, share or score.")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")


def _ns(text: str, option: str) -> int:
    try:
        return int(parse_duration(text).total_seconds() * NS)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=option) from None


@export_app.command("case")
def export_case_cmd(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="Folder to write the bundle into (new, or empty)."),
    at: str = typer.Option(..., "--at", help="When the explanation is asked for: ISO-8601, epoch, or '15m ago'."),
    service: str | None = typer.Option(None, "--service", help="Where the symptom shows: the case's alert names it."),
    before: str = typer.Option("60m", "--before", help="Telemetry from this long before --at."),
    after: str = typer.Option("10m", "--after", help="Telemetry up to this long after --at."),
    truth: str | None = typer.Option(None, "--truth", help="The root-cause service: writes truth.json."),
    system: str = typer.Option("devmesh", "--system", help="The system's name in case.json."),
    case_id: str = typer.Option("", "--id", help="The case id (default: <system>-<at>)."),
    no_mask: bool = typer.Option(False, "--no-mask", help="Keep secrets in the text (masked by default)."),
    as_json: bool = JsonOpt,
) -> None:
    """Write an incident as a case bundle: case.json, telemetry/ (OTLP/JSON lines for logs, spans and
    metrics, journald lines where that was the source, topology.yaml), and truth.json with --truth."""
    from ingest.cases import ExportSpec, export_case

    spec = ExportSpec(
        at_ns=parse_time_arg(at),
        before_ns=_ns(before, "--before"),
        after_ns=_ns(after, "--after"),
        service=service or None,
        system=system,
        case_id=case_id,
        truth_service=truth or None,
        mask=not no_mask,
    )
    with opened(ctx, vectors=False) as svc, progress(not as_json) as bar:
        task = bar.add_task("export case", total=None, status="")
        report = export_case(
            svc.events,
            svc.graph,
            out,
            spec,
            on_slice=lambda done, total: bar.update(task, completed=done, total=total, status=""),
        )
    emit(report.as_dict(), as_json, _render)


def _render(r: dict[str, Any]) -> None:
    rows = r["rows"]
    console.print(
        f"case {r['case_id']} in {r['root']}: {rows['logs']} log lines, {rows['journal']} journald lines, "
        f"{rows['spans']} spans, {rows['metrics']} metric points from {r['window'][0]} to {r['window'][1]}; "
        f"{r['services']} services and {r['calls']} calls in topology.yaml; {r['masked']} secrets masked"
        + ("; truth.json written" if r["truth"] else "")
    )
