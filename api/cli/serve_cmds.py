"""`devmesh serve`, `devmesh demo`, `devmesh info`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from api.cli.common import JsonOpt, console, emit, opened, progress, state
from api.engine_port import EnginePort
from api.http.app import create_app
from api.info import backend_info
from api.mcp_server import run_stdio
from api.render.terminal import terminal_renderable
from ingest.importers import import_nezha, import_runbooks
from samples import sample_path


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("demo")(demo)
    app.command("info")(info)
    app.command("mcp")(mcp)


def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, help="Bind address (DEVMESH_API_HOST, default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (DEVMESH_API_PORT, default 8080)."),
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs): ingestion, OTLP receivers, query and search."""
    import uvicorn

    settings = state(ctx).settings
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level=settings.log_level.lower(),
    )


def demo(
    ctx: typer.Context,
    as_json: bool = JsonOpt,
    home: Path | None = typer.Option(None, help="Where to keep the demo data (default: DEVMESH_HOME/demo)."),
) -> None:
    """The main job, end to end on bundled data: import a real TrainTicket incident and a few runbooks, detect
    the incident, explain it with the agent team, and print the report (evidence-only without Ollama)."""
    from agents.investigate import detection_context, investigate
    from core.incident import InvestigationRequest
    from detect.runner import DetectOptions, replay

    st = state(ctx)
    st._settings = st.settings.model_copy(update={"home": home or st.settings.home / "demo"})
    sample = sample_path()
    with opened(ctx) as svc, progress(not as_json) as bar:
        task = bar.add_task("import sample", total=None, status="")

        def on_plan(plan: Any) -> None:
            bar.update(task, total=len(plan.files))

        def on_file(kind: str, path: Path, report: Any) -> None:
            bar.update(task, advance=1, status=f"{kind} {path.name}")

        imported = import_nezha(svc.pipeline, sample / "nezha", on_plan=on_plan, on_file=on_file)
        books = import_runbooks(
            sample / "runbooks",
            graph=svc.graph,
            vectors=svc.vectors,
            embedder=svc.embedder,
            known_services=svc.graph.services() if svc.graph else (),
        )
        summary = demo_summary(svc, imported.as_dict(), books.as_dict())
        tools = svc.toolbox()
        span = svc.events.stats()["tables"]["logs"]
        bar.update(task, status="detecting: a run for every minute of the sample")
        runs = (
            replay(
                detection_context(tools, explain=False), span["min_ns"], span["max_ns"], DetectOptions(explain=False)
            )
            if span["rows"]
            else []
        )
        fired = [r for r in runs if r.opened]
        summary["detected"] = [r.as_dict() for r in fired]
        expl = None
        if fired:
            bar.update(task, status=f"explaining the incident on {fired[0].root_cause}")
            incident, expl = investigate(tools, InvestigationRequest(incident_id=fired[0].opened[0]), source="demo")
            summary["incident"] = incident.model_dump(mode="json")
    if as_json:
        emit({**(expl.model_dump(mode="json") if expl else {}), **summary}, True)
        return
    _render_demo(summary)
    if expl is None:
        console.print("[yellow]no incident detected in the sample[/yellow]")
        return
    run = summary["detected"][0]
    t = run["triggers"][0]
    console.print(
        f"\n[bold]Detected[/bold] by the run at {run['end']}: {t['rule']} on {t['service']} "
        f"({t['description'] or t['kind']}; robust z {t['score']})\n"
    )
    console.print(terminal_renderable(expl))


def demo_summary(svc: Any, imported: dict[str, Any], books: dict[str, Any]) -> dict[str, Any]:
    calls = svc.graph.call_edges() if svc.graph else []
    return {
        "home": str(svc.settings.home),
        "imported": imported,
        "runbooks": books,
        "services": svc.graph.services() if svc.graph else [],
        "calls": [c.model_dump() for c in sorted(calls, key=lambda c: -c.calls)[:15]],
        "templates": svc.events.stats().get("templates"),
        "top_error_templates": svc.events.top_templates(min_level="WARN", limit=10),
    }


def _render_demo(s: dict[str, Any]) -> None:
    imp = s["imported"]
    console.print(f"[bold]DevMesh demo[/bold]: data in {s['home']}")
    console.print(
        f"imported {imp['logs']['stored']} log lines, {imp['spans']['stored']} spans, "
        f"{imp['metrics']['stored']} metric points; {s['runbooks']['runbooks']} runbooks "
        f"({s['runbooks']['sections']} sections)"
    )
    console.print(f"{len(s['services'])} services, {imp['calls']} call edges, {s['templates']} log templates")
    t = Table(title="Busiest calls")
    for col in ("caller", "callee", "calls", "mean ms", "p95 ms"):
        t.add_column(col)
    for c in s["calls"]:
        t.add_row(c["caller"], c["callee"], str(c["calls"]), f"{c['mean_ms']:.1f}", f"{c['p95_ms']:.1f}")
    console.print(t)
    t = Table(title="Top warning and error templates")
    for col in ("count", "level", "services", "template"):
        t.add_column(col)
    for row in s["top_error_templates"]:
        t.add_row(str(row["count"]), row["level"], ", ".join(row.get("services", [])), row["text"][:100])
    console.print(t)


def info(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Backends, versions and how much each engine holds."""
    with opened(ctx) as svc:
        data = backend_info(svc)
    emit(data, as_json, lambda d: console.print_json(data=d))


def mcp(ctx: typer.Context) -> None:
    """Serve DevMesh's tools (explain, search logs, topology, incidents) over MCP on stdin/stdout."""
    with opened(ctx) as svc:
        run_stdio(EnginePort(svc))
