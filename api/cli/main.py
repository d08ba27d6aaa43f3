"""`devmesh`: the command line. Wiring only: parse arguments, open the engines, call the logic, print."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from pydantic import ValidationError

from api.cli import (
    bench_cmds,
    data_cmds,
    demo_cmds,
    detect_cmds,
    eval_cmds,
    incident_cmds,
    keys_cmds,
    query_cmds,
    rebuild_cmds,
    retention_cmds,
    serve_cmds,
    ship_cmds,
)
from api.cli.common import State, err_console, setup_logging
from core.errors import DevMeshError

app = typer.Typer(
    name="devmesh",
    help=(
        "DevMesh explains incidents in distributed systems, locally.\n\n"
        "Data lives under DEVMESH_HOME (default ~/.devmesh): an embedded FalkorDB graph, Qdrant Edge vectors "
        "and a DuckDB event store. Every command that returns data takes --json."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Path | None = typer.Option(None, "--home", envvar="DEVMESH_HOME", help="Data folder (DEVMESH_HOME)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging on stderr."),
    server: str | None = typer.Option(
        None,
        "--server",
        envvar="DEVMESH_SERVER",
        help="Go through the DevMesh server at this URL (DEVMESH_SERVER; default: the `devmesh serve` that owns "
        "the home, if one runs), sending DEVMESH_API_KEY.",
    ),
) -> None:
    ctx.obj = State(home, verbose, server)
    setup_logging(ctx.obj.settings.log_level if not verbose else "DEBUG", verbose)


serve_cmds.register(app)
demo_cmds.register(app)
data_cmds.register(app)
query_cmds.register(app)
rebuild_cmds.register(app)
bench_cmds.register(app)
eval_cmds.register(app)
incident_cmds.register(app)
detect_cmds.register(app)
keys_cmds.register(app)
retention_cmds.register(app)
ship_cmds.register(app)


def main() -> None:
    """Console entry point: DevMesh errors become a message and exit code 1, never a traceback.

    Usage errors are click's (message and exit code 2); commands choose their own exit codes.
    """
    try:
        app()
    except DevMeshError as exc:
        where = f" ({exc.field})" if exc.field else ""
        err_console.print(f"[red]error[/red]{where}: {exc.message}")
        sys.exit(1)
    except ValidationError as exc:
        e = exc.errors()[0]
        field = ".".join(str(p) for p in e["loc"]) or exc.title
        err_console.print(f"[red]error[/red] ({field}): {e['msg']}")
        sys.exit(1)
