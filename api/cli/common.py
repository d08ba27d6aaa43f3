"""What every CLI command shares: settings, opening the engines, output as JSON or for people, progress."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.wiring import Services, open_services
from core.redaction import RedactUrls
from core.settings import Settings

console = Console()
err_console = Console(stderr=True)

JsonOpt = typer.Option(False, "--json", help="Print one JSON document instead of a table.")


class State:
    """Global options, kept on the typer context."""

    def __init__(self, home: Path | None, verbose: bool) -> None:
        self.home = home
        self.verbose = verbose
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            kwargs: dict[str, Any] = {"home": self.home} if self.home else {}
            self._settings = Settings(**kwargs)
        return self._settings


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
def opened(ctx: typer.Context, *, graph: bool = True, vectors: bool = True) -> Iterator[Services]:
    svc = open_services(state(ctx).settings, graph=graph, vectors=vectors)
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
