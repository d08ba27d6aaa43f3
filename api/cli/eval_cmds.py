"""`devmesh eval templates|rca nezha|detect nezha`: accuracy on labelled data sets (one JSON object with --json).

The harnesses are in `api.measure`; the scoring they apply in `detect.scoring` and `ingest.templates.scoring`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from api.cli.common import JsonOpt, console, emit, progress, state
from api.measure.eval_detect import evaluate_detect_nezha
from api.measure.eval_rca import evaluate_rca_nezha
from api.wiring import open_services
from detect.rank.windows import IncidentOptions
from ingest.nezha import load_faults, plan
from ingest.templates.scoring import evaluate_templates

eval_app = typer.Typer(help="Accuracy evaluations on labelled data sets; JSON results with --json.")
rca_app = typer.Typer(help="Root-cause ranking accuracy on labelled fault-injection data sets.")
detect_app = typer.Typer(help="Scheduled detection replayed over a labelled data set.")
eval_app.add_typer(rca_app, name="rca")
eval_app.add_typer(detect_app, name="detect")


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")


def _print(d: dict[str, Any]) -> None:
    console.print_json(data=d)


@eval_app.command("templates")
def eval_templates(
    directory: Path = typer.Argument(..., help="Loghub-layout folder: <Sys>/<Sys>_2k.log_structured_corrected.csv"),
    system: list[str] | None = typer.Option(None, "--system", help="Only these systems (repeat)."),
    as_json: bool = JsonOpt,
) -> None:
    """Grouping accuracy of the template miner per system (Loghub definition) and the average."""
    result = evaluate_templates(directory, systems=system or None)
    emit(result, as_json, _print)


def _render_rca(d: dict[str, Any]) -> None:
    t = Table(title=f"root-cause ranking on {d['dataset']} ({', '.join(d['modalities'])})")
    for col in ("fault", "type", "truth", "rank", "top 3", "s"):
        t.add_column(col)
    for r in d["results"]:
        t.add_row(
            r["fault"],
            r["fault_type"],
            r["truth"],
            str(r["rank"] or "-"),
            ", ".join(r["ranking"][:3]),
            f"{r['seconds']:.2f}",
        )
    console.print(t)
    console.print(
        f"AC@1 {d['ac1']:.3f}  AC@3 {d['ac3']:.3f}  AC@5 {d['ac5']:.3f}  over {d['cases']} faults; "
        f"median {d['median_case_s']:.2f} s a case"
    )
    for kind, s in d["by_fault_type"].items():
        console.print(f"  {kind}: AC@1 {s['ac1']:.3f}  AC@3 {s['ac3']:.3f}  AC@5 {s['ac5']:.3f}  ({s['cases']})")


@rca_app.command("nezha")
def eval_rca_nezha(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Nezha-layout folder (date folders with log/, trace/, metric/)."),
    no_logs: bool = typer.Option(False, "--no-logs", help="Rank without logs."),
    no_traces: bool = typer.Option(False, "--no-traces", help="Rank without traces."),
    no_metrics: bool = typer.Option(False, "--no-metrics", help="Rank without metrics."),
    home: Path | None = typer.Option(
        None,
        "--eval-home",
        help="Import into this (empty) folder and keep it; default a temporary folder. Not DEVMESH_HOME.",
    ),
    reuse: bool = typer.Option(False, "--reuse", help="Reuse --eval-home if this evaluation imported it before."),
    past_only: bool = typer.Option(
        False, "--past-only", help="History only from before each fault, as live right after an alert."
    ),
    via_agents: bool = typer.Option(
        False, "--via-agents", help="Also explain each fault with the agent team and compare its ranking."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Import DIR, rank each labelled fault from its start time alone (as POST /explain would), score."""
    settings = state(ctx).settings
    mods = [m for m, off in (("logs", no_logs), ("traces", no_traces), ("metrics", no_metrics)) if not off]
    if not mods:
        raise typer.BadParameter("leave at least one of logs, traces, metrics")
    p = plan(directory)
    with progress(not as_json) as bar:
        imp = bar.add_task("import", total=len(p.files), status="")
        cases = bar.add_task("rank", total=len(load_faults(p)), status="")
        result = evaluate_rca_nezha(
            directory,
            home=home,
            open_fn=lambda h: open_services(
                settings.model_copy(update={"home": h, "embedder": "minilm" if via_agents else "none"}),
                graph=via_agents,
                vectors=via_agents,
            ),
            options=IncidentOptions(past_only=True) if past_only else None,
            via_agents=via_agents,
            modalities=mods,
            reuse=reuse,
            on_import=lambda name: bar.update(imp, advance=1, status=name),
            on_case=lambda r: bar.update(cases, advance=1, status=f"{r['fault']} rank {r['rank'] or '-'}"),
        )
    emit(result, as_json, _render_rca)


@detect_app.command("nezha")
def eval_detect_nezha(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Nezha-layout folder (date folders with a fault list)."),
    home: Path | None = typer.Option(None, help="Home to import into (default: a new temporary one)."),
    reuse: bool = typer.Option(False, help="Reuse the data already imported into --home."),
    explain: bool = typer.Option(False, help="Run the whole agent team for each incident (slower)."),
    as_json: bool = JsonOpt,
) -> None:
    """Replay detection once a minute over the data; faults detected within 3 minutes, top-1, false incidents."""
    with tempfile.TemporaryDirectory(prefix="devmesh-eval-") as tmp, progress(not as_json) as bar:
        settings = state(ctx).settings.model_copy(update={"home": home or Path(tmp)})
        task = bar.add_task("detect", total=None, status="")
        result = evaluate_detect_nezha(
            directory,
            settings,
            open_fn=open_services,
            reuse=reuse,
            explain=explain,
            on_run=lambda n, total: bar.update(task, completed=n, total=total),
        )
    emit(result, as_json, _print)
