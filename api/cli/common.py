"""What every CLI command shares: settings, the port (a running server's API, or the engines of the home),
output as JSON or for people, progress."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli.serve_file import live_server, read
from core.errors import EngineUnavailable
from core.redaction import RedactUrls, redact_url
from core.settings import Settings

if TYPE_CHECKING:  # the engines, agents and HTTP client load in the commands that use them, not on start-up
    from api.port import DevMeshPort
    from api.wiring import Services

console = Console()
err_console = Console(stderr=True)

JsonOpt = typer.Option(False, "--json", help="Print one JSON document instead of a table.")


class State:
    """Global options, kept on the typer context."""

    def __init__(self, home: Path | None, verbose: bool, server: str | None = None) -> None:
        self.home = home
        self.verbose = verbose
        self.server = server
        self._settings: Settings | None = None
        self._server_url: str | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            kwargs: dict[str, Any] = {"home": self.home} if self.home else {}
            self._settings = Settings(**kwargs)
        return self._settings

    def server_url(self) -> str | None:
        """The server commands go through: --server / DEVMESH_SERVER, else the live one recorded in
        `<home>/serve.json`, else None (the command opens the home itself)."""
        if self.server:
            return self.server.rstrip("/")
        if self._server_url is None:
            found = live_server(self.settings.home)
            self._server_url = found.url if found else ""
        return self._server_url or None


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def setup_logging(level: str, verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:  # no URL credentials in any log line
        if not any(isinstance(f, RedactUrls) for f in handler.filters):
            handler.addFilter(RedactUrls())
    for noisy in ("httpx", "urllib3", "sentence_transformers", "filelock", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def connect(ctx: typer.Context, *, graph: bool = True, vectors: bool = True) -> Iterator[DevMeshPort]:
    """The port a command calls: the HTTP API of the server that owns the home (or --server), with
    DEVMESH_API_KEY as its bearer token; else the home's engines, opened here (`graph`, `vectors`: which)."""
    st = state(ctx)
    url = st.server_url()
    if url is not None:
        from api.http_port import HttpPort

        key = st.settings.api_key
        with HttpPort(url, key.get_secret_value() if key is not None else None) as port:
            yield port
        return
    from api.engine_port import EnginePort

    with opened(ctx, graph=graph, vectors=vectors) as svc:
        yield EnginePort(svc)


@contextlib.contextmanager
def opened(ctx: typer.Context, *, graph: bool = True, vectors: bool = True) -> Iterator[Services]:
    """The home's engines, for commands that need them themselves; refused while a server owns the home."""
    st = state(ctx)
    url = st.server_url()
    if url is not None:
        raise EngineUnavailable(
            f"`{ctx.command_path}` works on the home's files, and the DevMesh server at {redact_url(url)} owns "
            f"{st.settings.home}: stop that server and run it again, or send the data through the server's API "
            f"({redact_url(url)}/docs)"
        )
    from api.wiring import open_services

    try:
        svc = open_services(st.settings, graph=graph, vectors=vectors)
    except EngineUnavailable as exc:
        served = read(st.settings.home)
        if served is None:
            raise
        raise EngineUnavailable(
            f"{exc.message}. A DevMesh server (pid {served.pid}) recorded {redact_url(served.url)} in "
            f"{st.settings.home}: if it is still starting, wait and run this again (it then goes through that "
            "server), else stop it"
        ) from exc
    try:
        yield svc
    finally:
        svc.close()


def emit(data: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    """JSON on stdout for machines; `render` for people."""
    if as_json or render is None:
        sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    else:
        render(data)


@contextlib.contextmanager
def progress(enabled: bool = True) -> Iterator[Progress]:
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not enabled or not err_console.is_terminal,
        transient=False,
    )
    with bar:
        yield bar
