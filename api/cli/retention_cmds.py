"""`devmesh prune`, `devmesh backup DIR`, `devmesh restore DIR`: data in bounds, and a home kept safe."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from api.backup import backup_home, current_counts, load_vectors, restore_files
from api.cli.common import JsonOpt, console, emit, opened, state
from api.retention import RetentionPolicy, policy_from_settings, prune
from api.wiring import open_services
from retrieval.events.retention import compact_file


def register(app: typer.Typer) -> None:
    app.command("prune")(prune_cmd)
    app.command("backup")(backup_cmd)
    app.command("restore")(restore_cmd)


def prune_cmd(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; delete nothing."),
    logs: str | None = typer.Option(
        None, "--logs", help="Keep this much of raw log lines (e.g. 14d; overrides DEVMESH_RETAIN_LOGS)."
    ),
    spans: str | None = typer.Option(None, "--spans", help="Keep this much of raw spans (DEVMESH_RETAIN_SPANS)."),
    metrics: str | None = typer.Option(
        None, "--metrics", help="Keep this much of raw metric points (DEVMESH_RETAIN_METRICS)."
    ),
    max_bytes: int | None = typer.Option(
        None, "--max-bytes", min=0, help="Cap the event store's data (DEVMESH_RETAIN_MAX_BYTES; 0: none)."
    ),
    compact: bool = typer.Option(
        False, "--compact", help="Then rewrite the file to give freed space back (not while serve runs)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Age raw lines, spans and metric points out (counts, templates, graph and incidents stay).

    While `devmesh serve` runs it holds the event store: it prunes by itself every DEVMESH_PRUNE_EVERY.
    """
    settings = state(ctx).settings
    policy = policy_from_settings(settings, logs=logs, spans=spans, metrics=metrics)
    if max_bytes is not None:
        policy = RetentionPolicy(policy.retain_ns, policy.max_bytes, max_bytes or None)
    with opened(ctx, graph=False, vectors=False) as svc:
        report = prune(svc.events, policy, dry_run=dry_run)
    if compact and not dry_run:
        report["compact"] = compact_file(settings.events_path)
    emit(report, as_json, lambda d: console.print_json(data=d))


def backup_cmd(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="New or empty folder to write the backup into."),
    as_json: bool = JsonOpt,
) -> None:
    """Back up every store of the home (events, graph, vectors, keys, audit log, Slack replay db) with a manifest."""
    with opened(ctx) as svc:
        manifest = backup_home(svc, directory)
    emit(
        manifest,
        as_json,
        lambda d: console.print_json(data={k: d[k] for k in ("created", "counts", "notes", "seconds")}),
    )


def restore_cmd(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="A folder written by `devmesh backup`."),
    force: bool = typer.Option(False, "--force", help="Overwrite a home that already holds data."),
    as_json: bool = JsonOpt,
) -> None:
    """Restore a backup into the home: checksums checked first, counts compared after."""
    settings = state(ctx).settings
    started = time.perf_counter()
    manifest = restore_files(settings, directory, force=force)
    with open_services(settings) as svc:
        loaded = load_vectors(svc, directory)
        counts = current_counts(svc)
    want = manifest["counts"]
    report = {
        "restored": str(directory),
        "vectors_loaded": loaded,
        "counts": counts,
        "match": _same(want, counts),
        "seconds": round(time.perf_counter() - started, 3),
    }
    emit(report, as_json, lambda d: console.print_json(data=d))
    if not report["match"]:
        raise typer.Exit(1)


def _same(want: dict, have: dict) -> bool:
    return all(have.get(k) == v for k, v in want.items())
