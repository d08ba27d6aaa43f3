"""`devmesh demo`: the main job end to end on the bundled sample, in the demo's own home.

The demo home (DEVMESH_HOME/demo unless --home says otherwise) belongs to the demo: every run deletes what
an earlier run left there and starts empty, on the embedded engines (never a configured FalkorDB or Qdrant
server), so two runs print the same report.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from api.cli.common import JsonOpt, console, emit, progress, state
from core.errors import InvalidInput
from core.settings import Settings

if TYPE_CHECKING:  # the engines and the agents load when the demo runs
    from api.wiring import Services

MARKER = ".devmesh-demo"
"""A file in the demo home: the folder is the demo's to delete."""


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    ctx: typer.Context,
    as_json: bool = JsonOpt,
    home: Path | None = typer.Option(
        None,
        help="The demo's own data folder, emptied at the start of every run (default: DEVMESH_HOME/demo).",
    ),
) -> None:
    """The main job, end to end on bundled data: import a real TrainTicket incident and a few runbooks, detect
    the incident, explain it with the agent team, and print the report (evidence-only without Ollama).

    Each run starts from an empty demo home on the embedded engines, so it prints the same report every time.
    """
    from agents.investigate import detection_context, investigate
    from api.render.terminal import terminal_renderable
    from api.wiring import open_services
    from core.incident import InvestigationRequest
    from detect.runner import DetectOptions, replay
    from ingest.importers import import_nezha, import_runbooks
    from samples import sample_path

    base = state(ctx).settings
    settings = demo_settings(base, home)
    fresh_home(settings, default=home is None)
    sample = sample_path()
    with open_services(settings) as svc, progress(not as_json) as bar:
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
        report = demo_summary(svc, imported.as_dict(), books.as_dict())
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
        expl = None
        report["detection"] = {"runs": len(runs), "detected": [r.as_dict() for r in fired], "incident": None}
        if fired:
            bar.update(task, status=f"explaining the incident on {fired[0].root_cause}")
            incident, expl = investigate(tools, InvestigationRequest(incident_id=fired[0].opened[0]), source="demo")
            report["detection"]["incident"] = incident.model_dump(mode="json")
            report["explanation"] = expl.model_dump(mode="json")
    if as_json:
        emit(report, True)
        return
    _render_demo(report)
    if expl is None:
        console.print("[yellow]no incident detected in the sample[/yellow]")
        return
    run = report["detection"]["detected"][0]
    t = run["triggers"][0]
    console.print(
        f"\n[bold]Detected[/bold] by the run at {run['end']}: {t['rule']} on {t['service']} "
        f"({t['description'] or t['kind']}; robust z {t['score']})\n"
    )
    console.print(terminal_renderable(expl))


def demo_settings(settings: Settings, home: Path | None) -> Settings:
    """The demo's settings: its own home, and the embedded engines in it rather than any configured server."""
    return settings.model_copy(
        update={"home": home or settings.home / "demo", "falkordb_url": None, "qdrant_url": None}
    )


def fresh_home(settings: Settings, *, default: bool) -> None:
    """Empty the demo home (stopping an embedded FalkorDB left running on it) and mark it as the demo's.

    A folder that holds something else is refused: one with the marker, an empty one, and (for the default
    DEVMESH_HOME/demo) a DevMesh home an earlier demo left are emptied."""
    from graph.server import EmbeddedFalkorDB

    home = settings.home
    if home.exists():
        ours = (home / MARKER).is_file() or not any(home.iterdir()) or (default and settings.events_path.is_file())
        if not ours:
            raise InvalidInput(
                f"{home} holds data `devmesh demo` did not put there, and the demo empties its home on every "
                "run: give --home a new or empty folder",
                field="home",
            )
        EmbeddedFalkorDB(settings.falkordb_dir).stop()
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / MARKER).write_text("This folder belongs to `devmesh demo`, which empties it on every run.\n")


def demo_summary(svc: Services, imported: dict[str, Any], books: dict[str, Any]) -> dict[str, Any]:
    """What the demo home holds once the sample is imported: counts, services, busiest calls, top templates."""
    calls = svc.graph.call_edges() if svc.graph else []
    return {
        "home": str(svc.settings.home),
        "imported": {"telemetry": imported, "runbooks": books},
        "services": svc.graph.services() if svc.graph else [],
        "calls": [c.model_dump() for c in sorted(calls, key=lambda c: -c.calls)[:15]],
        "templates": svc.events.stats()["templates"]["rows"],
        "top_error_templates": svc.events.top_templates(min_level="WARN", limit=10),
        "detection": {"runs": 0, "detected": [], "incident": None},
        "explanation": None,
    }


def _render_demo(s: dict[str, Any]) -> None:
    imp, books = s["imported"]["telemetry"], s["imported"]["runbooks"]
    console.print(f"[bold]DevMesh demo[/bold]: data in {s['home']}")
    console.print(
        f"imported {imp['logs']['stored']} log lines, {imp['spans']['stored']} spans, "
        f"{imp['metrics']['stored']} metric points; {books['runbooks']} runbooks ({books['sections']} sections)"
    )
    console.print(f"{len(s['services'])} services, {imp['calls']} call edges, {s['templates']} log templates")
    t = Table(title="Busiest calls")
    for col in ("caller", "callee", "calls", "mean ms", "p95 ms"):
        t.add_column(col)
    for c in s["calls"]:
        t.add_row(c["caller"], c["callee"], str(c["calls"]), f"{c['mean_ms']:.1f}", f"{c['p95_ms']:.1f}")
    console.print(t)
    # a list, not a table: templates are long and read badly in a narrow column at 80 columns
    console.print("\n[bold]Top warning and error templates[/bold]")
    for row in s["top_error_templates"]:
        services = list(row.get("services", []))
        shown = ", ".join(services[:2]) + (f" +{len(services) - 2} more" if len(services) > 2 else "")
        console.print(f"{row['count']:>6}  {row['level']:<5}  {shown}", markup=False)
        console.print(Padding(Text(row["text"][:160]), (0, 0, 0, 8)))
