"""`devmesh detect`: one detection run over the last window, or runs on a schedule (`--every 5m`)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import typer
from pydantic import SecretStr

from api.cli.common import JsonOpt, console, emit, err_console, opened, state
from api.engine_port import EnginePort
from api.notify import notifier_from_settings
from core.errors import EngineUnavailable
from core.timeutil import now_ns, parse_duration, parse_time_arg
from detect.runner import DetectOptions


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)


def detect(
    ctx: typer.Context,
    every: str | None = typer.Option(None, "--every", help="Run repeatedly at this interval (e.g. 1m, 5m)."),
    at: str | None = typer.Option(None, "--at", help="Treat this time as now (replays; ISO or epoch)."),
    window: str = typer.Option("1m", help="Width of one detection window."),
    server: str | None = typer.Option(None, help="Ask a running `devmesh serve` at this URL to run detection."),
    no_explain: bool = typer.Option(False, "--no-explain", help="Open incidents without running the agents."),
    max_runs: int = typer.Option(0, min=0, help="With --every: stop after this many runs (0: never)."),
    as_json: bool = JsonOpt,
) -> None:
    """Find anomalous services in the last window, open or update incidents, explain them and notify."""
    opt = DetectOptions(window_s=int(parse_duration(window).total_seconds()), explain=not no_explain)
    interval = parse_duration(every).total_seconds() if every else 0.0
    runs = 0
    while True:
        end = parse_time_arg(at) if at else now_ns()
        data = _via_server(server, end, opt, state(ctx).settings.api_key) if server else _local(ctx, end, opt)
        emit(data, as_json, _render)
        runs += 1
        if not every or (max_runs and runs >= max_runs):
            return
        time.sleep(interval)


def _local(ctx: typer.Context, end: int, opt: DetectOptions) -> dict[str, Any]:
    with opened(ctx) as svc:
        port = EnginePort(svc, notify=notifier_from_settings(svc.settings))
        return {"runs": [r.as_dict() for r in port.detect(end_ns=end, options=opt)]}


def _via_server(url: str, end: int, opt: DetectOptions, api_key: SecretStr | None) -> dict[str, Any]:
    """POST /detect/run on a running `devmesh serve` (it notifies as its settings say), with DEVMESH_API_KEY
    as the bearer token when set (the server wants a key with the admin scope once keys exist)."""
    headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key is not None else {}
    try:
        r = httpx.post(
            url.rstrip("/") + "/detect/run",
            json={"end_ns": end, "window_s": opt.window_s, "explain": opt.explain},
            headers=headers,
            timeout=600,
        )
    except httpx.HTTPError as exc:
        raise EngineUnavailable(f"cannot reach DevMesh at {url}: {exc}") from exc
    if r.status_code >= 400:
        err_console.print(r.text)
        raise EngineUnavailable(f"DevMesh at {url} answered {r.status_code}")
    data: dict[str, Any] = r.json()
    return data


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
