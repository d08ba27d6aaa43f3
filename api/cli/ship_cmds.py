"""`devmesh ship journald`: ship a host's journal to a DevMesh API (wiring only; the loop is `api.shipper`)."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from api.cli.common import JsonOpt, console, err_console, state
from api.shipper.unit import UNIT_PATH, install_steps, render_unit
from core.errors import InvalidInput

if TYPE_CHECKING:  # the shipper (its HTTP client, YAML filters) loads when it ships
    from api.shipper.filters import FilterConfig
    from api.shipper.source import Source

ship_app = typer.Typer(help="Ship telemetry from this host to a DevMesh API.", no_args_is_help=True)

QUEUE_ENTRIES = 10_000
"""Entries read ahead of the batcher at most (the reader waits beyond)."""


def register(app: typer.Typer) -> None:
    app.add_typer(ship_app, name="ship")


@ship_app.command("journald")
def journald(
    ctx: typer.Context,
    server: str = typer.Option(None, "--server", help="The DevMesh API, e.g. http://devmesh.lan:8080."),
    cursor_file: Path = typer.Option(None, "--cursor-file", help="Where the acknowledged position is kept."),
    file: Path | None = typer.Option(
        None, "--file", help="Ship a file of `journalctl -o json` lines (else journalctl)."
    ),
    once: bool = typer.Option(False, "--once", help="Stop at the end of the input (else follow it)."),
    config: Path | None = typer.Option(None, "--config", help="Filters from a TOML or YAML file (same keys)."),
    exclude_unit: list[str] = typer.Option([], "--exclude-unit", help="Unit glob to leave out (repeat)."),
    only_unit: list[str] = typer.Option([], "--only-unit", help="Ship only these unit globs (repeat)."),
    exclude_identifier: list[str] = typer.Option(
        [], "--exclude-identifier", help="SYSLOG_IDENTIFIER glob to leave out."
    ),
    exclude_message: list[str] = typer.Option(
        [], "--exclude-message", help="Regex: a MESSAGE matching it is left out."
    ),
    max_priority: int | None = typer.Option(None, "--max-priority", min=0, max=7, help="Leave out less severe (0-7)."),
    batch_size: int = typer.Option(500, "--batch-size", min=1, max=100_000, help="Entries a request at most."),
    flush_s: float = typer.Option(2.0, "--flush-seconds", min=0.01, help="Send a batch at most this old."),
    spool_mb: float = typer.Option(64.0, "--spool-max-mb", min=0.001, help="Spool bound; reading pauses beyond."),
    from_start: bool = typer.Option(False, "--from-start", help="No cursor yet: ship what the journal holds."),
    journalctl: str = typer.Option("journalctl", "--journalctl", help="The journalctl command to run."),
    install_unit: bool = typer.Option(False, "--install-unit", help="Write the systemd unit and say how to start it."),
    unit_path: Path = typer.Option(Path(UNIT_PATH), "--unit-path", help="Where --install-unit writes the unit."),
    as_json: bool = JsonOpt,
) -> None:
    """Follow the journal (`journalctl -f -o json`) or a file of its lines, leave out the noise, and send it in
    batches to POST /ingest/journald with DEVMESH_API_KEY (an `ingest` key). The cursor file moves only past
    what the server acknowledged, and batches wait in a spool beside it while the API is down, so a restart
    resumes where it stopped: no gap, no duplicate."""
    from api.shipper.filters import FilterConfig, NoiseFilter, load_config, merge
    from api.shipper.ship import ShipOptions, Shipper, load_state, resume_position
    from api.shipper.source import FileSource, JournalSource

    cli_filters = FilterConfig(
        exclude_units=exclude_unit,
        only_units=only_unit,
        exclude_identifiers=exclude_identifier,
        exclude_messages=exclude_message,
        max_priority=max_priority,
    )
    noise = NoiseFilter.of(merge(load_config(config) if config else None, cli_filters))
    if install_unit:
        _install(server, config, cli_filters, unit_path)
        return
    if not server:
        raise InvalidInput("--server is required (the DevMesh API's URL)", field="server")
    if cursor_file is None:
        raise InvalidInput("--cursor-file is required (where the acknowledged position is kept)", field="cursor-file")
    if not server.startswith(("http://", "https://")):
        raise InvalidInput(f"--server must be an http:// or https:// URL, not {server!r}", field="server")
    key = state(ctx).settings.api_key
    opts = ShipOptions(
        server=server,
        cursor_file=cursor_file,
        api_key=key.get_secret_value() if key is not None else None,
        batch_size=batch_size,
        flush_s=flush_s,
        spool_max_bytes=int(spool_mb * 1024 * 1024),
        once=once,
    )
    cursor, spool = load_state(opts)
    start = resume_position(cursor, spool)
    source: Source
    if file is not None:
        source = FileSource(file, start, once=once, capacity=QUEUE_ENTRIES)
    else:
        if shutil.which(journalctl) is None:
            raise InvalidInput(f"{journalctl!r} not found; give --file or --journalctl", field="journalctl")
        source = JournalSource(start, once=once, capacity=QUEUE_ENTRIES, from_start=from_start, command=[journalctl])
    shipper = Shipper(opts, source, noise, cursor, spool)

    def stop(signum: int, _frame: Any) -> None:
        shipper.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stats = shipper.run().as_dict()
    stats["spooled_batches"] = len(spool)
    stats["source_error"] = source.error
    if as_json:
        sys.stdout.write(json.dumps(stats) + "\n")
    else:
        s = stats["server"]
        console.print(
            f"read {stats['read']}, left out {stats['filtered']} (filters) and {stats['bad']} (not JSON), sent"
            f" {stats['sent']} in {stats['batches']} batches: stored {s['stored']}, duplicates {s['duplicates']},"
            f" rejected {s['rejected']}; {stats['retries']} retries, {stats['spooled_batches']} batches still spooled",
            highlight=False,
        )
    if source.error:
        raise typer.Exit(1)


def _install(server: str | None, config: Path | None, filters: FilterConfig, unit_path: Path) -> None:
    """Write the unit (with this run's server, config and filters) and print the systemctl steps."""
    extra: list[str] = []
    if config is not None:
        extra += ["--config", str(config.resolve())]
    for flag, values in (
        ("--exclude-unit", filters.exclude_units),
        ("--only-unit", filters.only_units),
        ("--exclude-identifier", filters.exclude_identifiers),
        ("--exclude-message", filters.exclude_messages),
    ):
        for v in values:
            extra += [flag, v]
    if filters.max_priority is not None:
        extra += ["--max-priority", str(filters.max_priority)]
    exe = shutil.which("devmesh") or str(Path(sys.argv[0]).resolve())
    text = render_unit(exe, server or "http://127.0.0.1:8080", extra)
    try:
        unit_path.parent.mkdir(parents=True, exist_ok=True)
        unit_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(
            f"cannot write {unit_path}: {exc.strerror} (run as root, or give --unit-path)", field="unit-path"
        ) from None
    err_console.print(f"wrote {unit_path}; now run:", highlight=False)
    for step in install_steps(str(unit_path)):
        console.print(f"  {step}", highlight=False, soft_wrap=True)
