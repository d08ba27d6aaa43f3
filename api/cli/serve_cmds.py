"""`devmesh serve`, `devmesh info`, `devmesh mcp`."""

from __future__ import annotations

import typer

from api.cli.common import JsonOpt, console, emit, opened, state
from api.engine_port import EnginePort
from api.http.app import create_app
from api.info import backend_info


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
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


def info(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Backends, versions and how much each engine holds."""
    with opened(ctx) as svc:
        data = backend_info(svc)
    emit(data, as_json, lambda d: console.print_json(data=d))


def mcp(ctx: typer.Context) -> None:
    """Serve DevMesh's tools (explain, search logs, topology, incidents) over MCP on stdin/stdout."""
    with opened(ctx) as svc:
        # the MCP SDK (about 1 s to import) loads only for this command
        from api.mcp_server import run_stdio

        run_stdio(EnginePort(svc))
