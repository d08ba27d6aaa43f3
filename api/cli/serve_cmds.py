"""`devmesh serve`, `devmesh info`, `devmesh mcp`."""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

import typer

from api.cli import serve_file
from api.cli.common import JsonOpt, connect, console, emit, err_console, opened, state
from api.keystore import KeyStore
from core.errors import Unauthorized
from core.settings import Settings

if TYPE_CHECKING:  # the web app (FastAPI) and the engines load in the commands that serve
    from api.http.access import Principal

log = logging.getLogger(__name__)


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

    from api.http.access import is_loopback
    from api.http.app import create_app
    from api.http.guard import allowed_hosts

    settings = state(ctx).settings
    settings = settings.model_copy(update={"api_host": host or settings.api_host})
    keys = KeyStore(settings.keys_path)
    if not keys.configured():
        if not is_loopback(settings.api_host):
            err_console.print(
                f"[red]error[/red]: no API key is configured, so DevMesh listens on loopback only and will not bind "
                f"{settings.api_host}. Create a key first: `devmesh keys create --scope admin` (then send it as "
                "`Authorization: Bearer <key>`), or serve on 127.0.0.1.",
                highlight=False,
            )
            raise typer.Exit(2)
        log.info("access: loopback-only mode (no API keys): every request acts as 'local' with every scope")
    else:
        active = sum(1 for k in keys.all_keys() if k.revoked is None)
        log.info("access: API keys required (%d active); audit log %s", active, settings.audit_path)
    hosts = allowed_hosts(settings)
    log.info(
        "access: answering Host %s", "any (DEVMESH_ALLOWED_HOSTS=*)" if hosts is None else ", ".join(sorted(hosts))
    )
    bind_port = port or settings.api_port
    serve_file.record(settings.home, serve_file.local_url(settings.api_host, bind_port))  # the CLI goes through us
    # uvicorn re-raises the SIGTERM it stopped on once it is done: exit through `finally`, not by the signal
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run(create_app(settings), host=settings.api_host, port=bind_port, log_level=settings.log_level.lower())
    finally:
        serve_file.forget(settings.home)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def info(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Backends, versions and how much each engine holds."""
    with connect(ctx) as port:
        data = port.info()
    emit(data, as_json, lambda d: console.print_json(data=d))


def mcp(ctx: typer.Context) -> None:
    """Serve DevMesh's tools (explain, search logs, topology, incidents) over MCP on stdin/stdout."""
    from api.engine_port import EnginePort

    settings = state(ctx).settings
    principal = mcp_principal(settings)
    with opened(ctx) as svc:
        # the MCP SDK (about 1 s to import) loads only for this command
        from api.mcp_server import run_stdio

        run_stdio(EnginePort(svc), scopes=principal.scopes)


def mcp_principal(settings: Settings) -> Principal:
    """Who `devmesh mcp` acts as: the key in DEVMESH_API_KEY once keys exist, else 'local' (every scope)."""
    from api.http.access import LOCAL, authenticate

    keys = KeyStore(settings.keys_path)
    if not keys.configured():
        return LOCAL
    if settings.api_key is None:
        raise Unauthorized("API keys are configured: set DEVMESH_API_KEY to a key (`devmesh keys create --scope read`)")
    token = settings.api_key.get_secret_value()
    return authenticate(keys, None, {"authorization": f"Bearer {token}"})
