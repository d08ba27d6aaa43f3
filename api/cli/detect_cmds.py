"""`devmesh detect`: one detection run over the last window, or runs on a schedule (`--every 5m`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import typer

from api.cli.common import JsonOpt, connect, console, emit, state
from core.timeutil import now_ns, parse_duration, parse_time_arg

if TYPE_CHECKING:  # detection (and the engines) load when the command runs
    from detect.runner import DetectOptions


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)


def detect(
    ctx: typer.Context,
    every: str | None = typer.Option(None, "--every", help="Run repeatedly at this interval (e.g. 1m, 5m)."),
    at: str | None = typer.Option(None, "--at", help="Treat this time as now (replays; ISO or epoch)."),
    window: str = typer.Option("1m", help="Width of one detection window."),
    server: str | None = typer.Option(
        None, help="Ask a running `devmesh serve` at this URL to run detection (as `devmesh --server URL detect`)."
    ),
    no_explain: bool = typer.Option(False, "--no-explain", help="Open incidents without running the agents."),
    max_runs: int = typer.Option(0, min=0, help="With --every: stop after this many runs (0: never)."),
    as_json: bool = JsonOpt,
) -> None:
    """Find anomalous services in the last window, open or update incidents, explain them and notify."""
    from detect.runner import DetectOptions

    opt = DetectOptions(window_s=int(parse_duration(window).total_seconds()), explain=not no_explain)
    interval = parse_duration(every).total_seconds() if every else 0.0
    if server:
        state(ctx).server = server
    runs = 0
    while True:
        end = parse_time_arg(at) if at else now_ns()
        data = _run(ctx, end, opt)
        emit(data, as_json, _render)
        runs += 1
        if not every or (max_runs and runs >= max_runs):
            return
        time.sleep(interval)


def _run(ctx: typer.Context, end: int, opt: DetectOptions) -> dict[str, Any]:
    """One run through the port: a server (it notifies as its settings say) or the home's engines."""
    from api.engine_port import EnginePort
    from api.notify import notifier_from_settings

    with connect(ctx) as port:
        if isinstance(port, EnginePort):  # the engines of this home: announce as this user's settings say
            port.notify = notifier_from_settings(port.svc.settings)
        return {"runs": [r.as_dict() for r in port.detect(end_ns=end, options=opt)]}


def _render(d: dict[str, Any]) -> None:
    for run in d["runs"]:
        opened_ = ", ".join(run["opened"]) or "-"
        updated = ", ".join(run["updated"]) or "-"
        console.print(f"{run['start']} .. {run['end']}: {_why(run)}, opened {opened_}, updated {updated}")
    if not d["runs"]:
        console.print("nothing new to look at since the last run")


def _why(run: dict[str, Any]) -> str:
    if not run["triggers"]:
        return "nothing anomalous"
    t = run["triggers"][0]
    more = f" (+{len(run['triggers']) - 1} more)" if len(run["triggers"]) > 1 else ""
    return f"{t['rule']} on {t['service']} (z {t['score']}){more}, root cause {run['root_cause'] or '?'}"
