"""`devmesh prune`, `devmesh backup DIR`, `devmesh restore DIR`: data in bounds, and a home kept safe."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import typer

from api.cli.common import JsonOpt, console, emit, opened, state
from core.errors import EngineUnavailable, InvalidInput
from core.redaction import redact_url
from core.settings import Settings

# the stores, the backup and the HTTP client load in the commands that use them

SERVER_TIMEOUT_S = 1800.0
"""A backup of a large home inside the server may take minutes."""


ServerOpt = typer.Option(
    None,
    "--server",
    help="The `devmesh serve` that owns the home, used when it holds the event store"
    " (default http://DEVMESH_API_HOST:DEVMESH_API_PORT).",
)


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
    server: str | None = ServerOpt,
    compact: bool = typer.Option(
        False,
        "--compact",
        help="Then rewrite the event store's file to give freed space back (inside the server when one runs).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Age raw lines, spans and metric points out (counts, templates, graph and incidents stay).

    While `devmesh serve` runs it holds the event store: it prunes by itself every DEVMESH_PRUNE_EVERY, and
    this command (and --compact) goes through it.
    """
    from api.retention import RetentionPolicy, policy_from_settings, prune
    from retrieval.events.retention import compact_file

    settings = state(ctx).settings
    policy = policy_from_settings(settings, logs=logs, spans=spans, metrics=metrics)
    if max_bytes is not None:
        policy = RetentionPolicy(policy.retain_ns, policy.max_bytes, max_bytes or None)
    try:
        with opened(ctx, graph=False, vectors=False) as svc:
            svc.events.check_sole_writer()
            report = prune(svc.events, policy, dry_run=dry_run)
    except EngineUnavailable as held:  # `devmesh serve` owns the home: it prunes, with its own settings
        if logs or spans or metrics or max_bytes is not None:
            raise InvalidInput(
                f"{held.message}; while the server runs, prune goes through it with its DEVMESH_RETAIN_* "
                "settings: drop --logs/--spans/--metrics/--max-bytes",
                field="home",
            ) from held
        report = through_server(settings, server, "/admin/prune", {"dry_run": dry_run, "compact": compact}, held)
        compact = False  # done by the server
    if compact and not dry_run:
        report["compact"] = compact_file(settings.events_path)
    emit(report, as_json, lambda d: console.print_json(data=d))


def backup_cmd(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="New or empty folder to write the backup into."),
    server: str | None = ServerOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Back up every store of the home (events, graph, vectors, keys, audit log, Slack replay db) with a manifest."""
    from api.backup import backup_home

    try:
        with opened(ctx, graph=False, vectors=False) as probe:  # before the other engines are opened
            probe.events.check_sole_writer()
        with opened(ctx) as svc:
            manifest = backup_home(svc, directory)
    except EngineUnavailable as held:  # `devmesh serve` owns the home: it takes the backup, then it is moved
        if directory.exists() and any(directory.iterdir()):
            raise InvalidInput(f"{directory} is not empty; back up into a new folder", field="dir") from held
        manifest = through_server(state(ctx).settings, server, "/admin/backup", {}, held)
        made = Path(manifest.pop("dir"))
        manifest["taken_by"] = "server"
        if made.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            for part in made.iterdir():
                shutil.move(str(part), directory / part.name)
            made.rmdir()
        else:  # a server on another machine: the backup stays on its disk
            manifest["server_dir"] = str(made)
    emit(
        manifest,
        as_json,
        lambda d: console.print_json(data={k: d[k] for k in ("created", "counts", "notes", "seconds")}),
    )


def restore_cmd(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="A folder written by `devmesh backup`."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Overwrite a home that already holds data (and empty a remote graph, overwrite Qdrant server points).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Restore a backup into the home and its engines (a remote FalkorDB or Qdrant server too, when empty):
    checksums checked first, counts compared after."""
    from api.backup import current_counts, load_graph_rows, load_vectors, restore_files
    from api.wiring import open_services

    settings = state(ctx).settings
    started = time.perf_counter()
    manifest = restore_files(settings, directory, force=force)
    with open_services(settings) as svc:
        graph = load_graph_rows(svc, directory)
        loaded = load_vectors(svc, directory)
        counts = current_counts(svc)
    want = manifest["counts"]
    report = {
        "restored": str(directory),
        "graph_loaded": graph,
        "vectors_loaded": loaded,
        "counts": counts,
        "match": _same(want, counts),
        "seconds": round(time.perf_counter() - started, 3),
    }
    emit(report, as_json, lambda d: console.print_json(data=d))
    if not report["match"]:
        raise typer.Exit(1)


def _same(want: dict[str, Any], have: dict[str, Any]) -> bool:
    return all(have.get(k) == v for k, v in want.items())


def through_server(
    settings: Settings, server: str | None, path: str, body: dict[str, Any], held: EngineUnavailable
) -> dict[str, Any]:
    """POST `body` to the server that owns the home, with DEVMESH_API_KEY; its answer, or why it could not."""
    import httpx

    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    url = (server or f"http://{host}:{settings.api_port}").rstrip("/")
    key = settings.api_key.get_secret_value() if settings.api_key else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        r = httpx.post(url + path, json=body, headers=headers, timeout=SERVER_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise EngineUnavailable(
            f"{held.message}; and no server answered at {redact_url(url)} ({type(exc).__name__}): "
            "pass --server URL, or stop the process that holds the home"
        ) from exc
    answer: dict[str, Any] = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code != 200:
        raise EngineUnavailable(
            f"the server at {redact_url(url)} answered {r.status_code}: {answer.get('message', r.text[:200])}"
            + (" (set DEVMESH_API_KEY to a key with the admin scope)" if r.status_code in (401, 403) else "")
        )
    return answer
