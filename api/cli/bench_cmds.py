"""Measuring: `devmesh bench ingest|query`, `devmesh eval templates`. All print one JSON object with --json."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli.common import JsonOpt, console, emit, progress, state
from api.wiring import open_services

bench_app = typer.Typer(help="Benchmarks (throughput, latency, memory); JSON results with --json.")
eval_app = typer.Typer(help="Accuracy evaluations on labelled data sets; JSON results with --json.")
eval_detect_app = typer.Typer(help="Scheduled detection replayed over a labelled data set.")
eval_app.add_typer(eval_detect_app, name="detect")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
    app.add_typer(eval_app, name="eval")


def _print(d: dict) -> None:
    console.print_json(data=d)


@bench_app.command("ingest")
def bench_ingest(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Nezha-layout folder whose logs and spans are replayed."),
    as_json: bool = JsonOpt,
) -> None:
    """End-to-end ingest throughput (parse, template, dedup, store, embed new templates) and peak RSS."""
    from bench.ingest import run_ingest_bench
    from ingest.nezha import plan

    total = len([f for f in plan(directory).files if f.kind in ("logs", "spans")])
    with progress(not as_json) as bar:
        task = bar.add_task("bench ingest", total=total, status="")
        result = run_ingest_bench(
            directory,
            state(ctx).settings,
            open_fn=open_services,
            on_file=lambda name: bar.update(task, advance=1, status=name),
        )
    emit(result, as_json, _print)


@bench_app.command("query")
def bench_query(
    ctx: typer.Context,
    events: int = typer.Option(1_000_000, min=1000, help="Events to synthesize into a temporary store."),
    runs: int = typer.Option(200, min=10, help="Timed runs per query."),
    as_json: bool = JsonOpt,
) -> None:
    """Query and semantic-search latency over a temporary store filled with EVENTS synthetic events."""
    from bench.query import run_query_bench

    with progress(not as_json) as bar:
        task = bar.add_task("bench query", total=None, status="filling")
        result = run_query_bench(
            state(ctx).settings,
            n_events=events,
            runs=runs,
            open_fn=lambda s: open_services(s, graph=False),
            on_status=lambda s: bar.update(task, status=s),
        )
    emit(result, as_json, _print)


@eval_app.command("templates")
def eval_templates(
    directory: Path = typer.Argument(..., help="Loghub-layout folder: <Sys>/<Sys>_2k.log_structured_corrected.csv"),
    system: list[str] | None = typer.Option(None, "--system", help="Only these systems (repeat)."),
    as_json: bool = JsonOpt,
) -> None:
    """Grouping accuracy of the template miner per system (Loghub definition) and the average."""
    from bench.eval_templates import evaluate_templates

    result = evaluate_templates(directory, systems=system or None)
    emit(result, as_json, _print)


@eval_detect_app.command("nezha")
def eval_detect_nezha(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Nezha-layout folder (date folders with a fault list)."),
    home: Path | None = typer.Option(None, help="Home to import into (default: a new temporary one)."),
    reuse: bool = typer.Option(False, help="Reuse the data already imported into --home."),
    explain: bool = typer.Option(False, help="Run the whole agent team for each incident (slower)."),
    as_json: bool = JsonOpt,
) -> None:
    """Replay detection once a minute over the data; faults detected within 3 minutes, top-1, false incidents."""
    import tempfile

    from bench.eval_detect import evaluate_detect_nezha

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


@bench_app.command("explain")
def bench_explain(
    directory: Path | None = typer.Argument(None, help="Nezha-layout folder (default: the bundled sample)."),
    faults: int | None = typer.Option(None, help="Use the first N labelled faults' times."),
    runs: int = typer.Option(20, min=1, help="Timed POST /explain calls."),
    demo: bool = typer.Option(False, help="Also time `devmesh demo` in a fresh home."),
    as_json: bool = JsonOpt,
) -> None:
    """POST /explain latency (p50, p95) in evidence-only mode on an imported Nezha case, and peak RSS."""
    from bench.explain_latency import REPO, run

    result = run(directory or REPO / "samples" / "nezha", faults=faults, runs=runs, demo=demo)
    emit(result, as_json, _print)
