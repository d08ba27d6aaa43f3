"""`devmesh bench ingest|query|explain|chat|replicas|backup`: throughput, latency, memory, seconds and bytes
(one JSON object with --json).

The benchmarks are in `api.measure`; standalone timings of the lower packages are `python -m bench.X`.
`replicas` runs `python -m bench.replicas` in a process of its own (bench sits beside api and is not imported
by it; it starts the protocol fakes of `tests/fakes`, so it runs from a checkout of the repository).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from api.cli.common import JsonOpt, console, emit, progress, state

# each benchmark imports its harness (and the engines) in its body: `devmesh` starts without them

bench_app = typer.Typer(help="Benchmarks (throughput, latency, memory); JSON results with --json.")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


def _print(d: dict[str, Any]) -> None:
    console.print_json(data=d)


@bench_app.command("ingest")
def bench_ingest(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Nezha-layout folder whose logs and spans are replayed."),
    as_json: bool = JsonOpt,
) -> None:
    """End-to-end ingest throughput (parse, template, dedup, store, embed new templates) and peak RSS."""
    from api.measure.bench_ingest import run_ingest_bench
    from api.wiring import open_services
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
    backend: str = typer.Option(
        "duckdb", help="Event store to fill: duckdb (embedded) or chdb (ClickHouse in-process, the `clickhouse` extra)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Query and semantic-search latency over a temporary store filled with EVENTS synthetic events."""
    from api.measure.bench_query import run_query_bench
    from api.wiring import open_services

    if backend not in ("duckdb", "chdb"):
        raise typer.BadParameter("duckdb or chdb", param_hint="--backend")
    settings = state(ctx).settings
    if backend == "chdb":  # a temporary chDB folder; no TTL: the synthetic day is from 2023
        settings = settings.model_copy(
            update={"events_url": "chdb://", "retain_logs": "none", "retain_spans": "none", "retain_metrics": "none"}
        )
    with progress(not as_json) as bar:
        task = bar.add_task("bench query", total=None, status="filling")
        result = run_query_bench(
            settings,
            n_events=events,
            runs=runs,
            open_fn=lambda s: open_services(s, graph=False),
            on_status=lambda s: bar.update(task, status=s),
        )
    result["backend"] = backend
    emit(result, as_json, _print)


@bench_app.command("explain")
def bench_explain(
    ctx: typer.Context,
    directory: Path | None = typer.Argument(None, help="Nezha-layout folder (default: the bundled sample)."),
    faults: int | None = typer.Option(None, min=1, help="Use the first N labelled faults' times (default all)."),
    runs: int = typer.Option(20, min=1, help="Timed POST /explain calls."),
    embedder: str = typer.Option("minilm", help="minilm (as installed), ollama:<model> or none."),
    client: str = typer.Option("uvicorn", help="uvicorn (the app on 127.0.0.1) or testclient (in process)."),
    demo: bool = typer.Option(False, help="Also time `devmesh demo` in a fresh home."),
    demo_warm_models: bool = typer.Option(
        False, help="Time the demo with the shared model folder (no model export) instead of a fresh one."
    ),
    question: str = typer.Option(
        "at",
        help="at: each fault's time and service, as an alert gives them; end: only an end three minutes after"
        " it (no start: ranked over several windows).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """POST /explain latency (p50, p95) in evidence-only mode on an imported Nezha case, and peak RSS."""
    from api.measure.bench_explain import run_explain_bench
    from samples import sample_path

    if client not in ("uvicorn", "testclient"):
        raise typer.BadParameter("uvicorn or testclient", param_hint="--client")
    result = run_explain_bench(
        (directory or sample_path() / "nezha").resolve(),
        state(ctx).settings,
        faults=faults,
        runs=runs,
        embedder=embedder,
        client=client,
        demo=demo,
        fresh_demo_models=not demo_warm_models,
        question=question,
    )
    emit(result, as_json, _print)


@bench_app.command("chat")
def bench_chat(
    requests: int = typer.Option(60, min=1, help="Slash commands to send."),
    concurrency: int = typer.Option(6, min=1, help="Slash commands in flight at once."),
    explain_ms: float = typer.Option(500, min=0, help="How long the stand-in port's explain takes."),
    workers: int = typer.Option(4, min=1, help="The bot's worker threads."),
    closed_loop: bool = typer.Option(False, help="Each client waits for its answer before its next command."),
    as_json: bool = JsonOpt,
) -> None:
    """Chat bot latency on 127.0.0.1: slash command to acknowledgement (Slack wants < 3 s) and to the answer."""
    from api.measure.bench_chat import run_chat_bench

    result = run_chat_bench(
        requests=requests, concurrency=concurrency, explain_ms=explain_ms, workers=workers, closed_loop=closed_loop
    )
    emit(result, as_json, _print)


@bench_app.command("replicas")
def bench_replicas(
    seconds: float = typer.Option(30.0, min=1, help="How long each phase's ingest load runs."),
    clients: int = typer.Option(4, min=1, help="Client threads posting batches."),
    batch: int = typer.Option(500, min=1, help="Lines per POST /ingest/logs."),
    cli_runs: int = typer.Option(20, min=1, help="Timed `devmesh query logs` through the server."),
    embedder: str = typer.Option("none", help="none (no vectors) or minilm (with the Qdrant REST fake)."),
    baseline: bool = typer.Option(False, help="Also one and two replicas on DuckDB homes of their own."),
    as_json: bool = JsonOpt,
) -> None:
    """Ingest lines/s with one and two `devmesh serve` replicas on shared servers, and `query logs` p50 through one."""
    cmd = [sys.executable, "-m", "bench.replicas", "--seconds", str(seconds), "--clients", str(clients)]
    cmd += ["--batch", str(batch), "--cli-runs", str(cli_runs), "--embedder", embedder]
    if baseline:
        cmd.append("--baseline")
    with progress(not as_json) as bar:
        bar.add_task("bench replicas", total=None, status="running")
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        console.print(proc.stderr[-2000:], markup=False)
        raise typer.Exit(1)
    emit(json.loads(proc.stdout), as_json, _print)


@bench_app.command("backup")
def bench_backup(
    ctx: typer.Context,
    keep_hours: float = typer.Option(1.0, min=0.01, help="Hours of raw rows the compaction's prune keeps."),
    as_json: bool = JsonOpt,
) -> None:
    """Backup, graph dump/load, restore and in-process compaction (seconds, bytes) on this home, left unchanged.

    Run it on a home not held by `devmesh serve` (e.g. a Nezha day imported with `devmesh import nezha`).
    """
    from api.measure.bench_backup import run_backup_bench
    from api.wiring import open_services

    result = run_backup_bench(state(ctx).settings, open_services, keep_hours=keep_hours)
    emit(result, as_json, _print)
