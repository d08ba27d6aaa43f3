"""Getting data in: `devmesh ingest`, `devmesh import nezha|runbooks|topology`, `devmesh backfill` (and
`devmesh export`, registered with them, in `api.cli.export_cmds`)."""

from __future__ import annotations

import contextlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from api.cli import export_cmds
from api.cli.common import JsonOpt, connect, console, emit, err_console, opened, progress, state
from core.errors import InvalidInput
from core.timeutil import now_ns

if TYPE_CHECKING:  # the ingest pipeline (pyarrow, the event store) loads in the commands that use it
    from api.port import DevMeshPort
    from ingest.batch import Kind
    from ingest.devmesh_json import EventError, Limits, ParsedEvents
    from ingest.feed import FeedReport, LineFormat, RowSink
    from ingest.jsonlines import Readable
    from ingest.pipeline import IngestReport

import_app = typer.Typer(help="Import data sets: a Nezha-layout folder, Markdown runbooks, a declared topology.")


class Format(StrEnum):
    json = "json"
    journald = "journald"
    otlp = "otlp"


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.add_typer(import_app, name="import")
    app.command("backfill")(backfill)
    export_cmds.register(app)


def _limits(ctx: typer.Context) -> Limits:
    from ingest.devmesh_json import Limits

    s = state(ctx).settings
    return Limits(s.max_batch_events, s.max_message_chars, s.min_timestamp_year, s.max_future_skew_s)


def ingest(
    ctx: typer.Context,
    file: str = typer.Argument("-", help="File to read (plain or gzip), or - for standard input."),
    fmt: Format = typer.Option(
        Format.json,
        "--format",
        "-f",
        help="json: DevMesh batch or JSON Lines; journald: journalctl -o json; "
        "otlp: OTLP/JSON lines (a Collector file exporter's output).",
    ),
    batch_size: int = typer.Option(5000, min=1, help="Events per write."),
    as_json: bool = JsonOpt,
) -> None:
    """Ingest telemetry from a file or stdin: logs, or with --format otlp logs, spans and metrics.

    Files may be gzip. Invalid events are reported by index or line, and the rest stored.
    Exit status: 0 all stored, 2 some events rejected, 1 nothing could be read.
    """
    from ingest.feed import LineFormat
    from ingest.jsonlines import open_input

    with contextlib.closing(open_input(sys.stdin.buffer if file == "-" else Path(file))) as stream:
        if fmt == Format.json:
            data = _ingest_json(ctx, stream.read(), batch_size, as_json)
        else:
            data = _ingest_lines(ctx, stream, LineFormat(fmt.value), file, batch_size, as_json)
    emit(data, as_json, _render_report)
    # SystemExit, not typer.Exit: the entry point runs typer with standalone_mode=False, where a
    # typer.Exit's code is returned (and was dropped) instead of becoming the process's exit status
    if data["rejected"] and not data["stored"] and not data["duplicates"]:
        raise SystemExit(1)
    if data["rejected"]:
        raise SystemExit(2)


def _ingest_lines(
    ctx: typer.Context, stream: Readable, fmt: LineFormat, file: str, batch_size: int, as_json: bool
) -> dict[str, Any]:
    """Line formats, streamed a batch at a time: journald through the port (parsed here, then a running
    server's POST /ingest/logs, or the home's pipeline), OTLP through the home's pipeline only."""
    from ingest.feed import FeedOptions, LineFormat, feed_lines
    from ingest.jsonlines import numbered_lines

    opts = FeedOptions.from_settings(state(ctx).settings, batch_rows=batch_size)
    lines = numbered_lines(stream, opts.max_line_bytes)
    with progress(not as_json) as bar:
        task = bar.add_task(f"ingest {fmt.value}", total=None, status="")

        def feed(sink: RowSink) -> FeedReport:
            def on_batch(r: FeedReport) -> None:
                bar.update(task, completed=r.lines, status=f"line {r.lines}")

            return feed_lines(sink, lines, fmt, opts, source=file, on_batch=on_batch)

        if fmt == LineFormat.journald:
            with connect(ctx) as port:
                report = feed(_PortSink(port))
        else:
            with opened(ctx) as svc:
                report = feed(svc.pipeline)
                if svc.pipeline.spans_since_refresh:  # the call graph from new spans, as the server does
                    svc.pipeline.refresh_topology()
    if not report.lines:
        raise InvalidInput(f"nothing to read in {file}", field="FILE")
    return report.as_dict()


class _PortSink:
    """Parsed log rows into the port (`embed` is the port's business: the server and the home embed them)."""

    def __init__(self, port: DevMeshPort) -> None:
        self.port = port

    def ingest(self, kind: Kind, cols: dict[str, list[Any]], *, embed: bool = True) -> IngestReport:
        return self.port.ingest(kind, cols)


def _ingest_json(ctx: typer.Context, raw: bytes, batch_size: int, as_json: bool) -> dict[str, Any]:
    """A DevMesh JSON batch, or JSON Lines of events."""
    from ingest.devmesh_json import parse_events
    from ingest.pipeline import IngestReport

    limits = _limits(ctx)
    total = IngestReport(kind="logs")
    items, line_of, bad_lines = _read_json(raw)
    total.rejected += len(bad_lines)
    total.received += len(bad_lines)
    total.errors.extend(e.as_dict() for e in bad_lines[:100])
    with connect(ctx) as port, progress(not as_json) as bar:
        task = bar.add_task("ingest json", total=len(items), status="")
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            parsed = parse_events(chunk, limits, default_source="file", now_ns=now_ns(), index_offset=start)
            if line_of is not None:
                parsed.errors = [_on_line(e, line_of[e.index]) for e in parsed.errors]
            _one(port, parsed, total)
            bar.update(task, advance=len(chunk), status=f"{total.stored} stored")
    return total.as_dict()


def _read_json(raw: bytes) -> tuple[list[Any], list[int] | None, list[EventError]]:
    """Events of a DevMesh JSON batch or of JSON Lines (one event a line).

    Returns (events, line number of each event or None for a batch, errors of lines that are not JSON).
    """
    from ingest.devmesh_json import EventError, events_of
    from ingest.jsonlines import loads

    try:
        return events_of(loads(raw)), None, []
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        first_error = exc
    items: list[Any] = []
    line_of: list[int] = []
    bad: list[EventError] = []
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(loads(line))
            line_of.append(n)
        except (ValueError, RecursionError) as exc:
            bad.append(EventError(n, f"line {n}", f"not JSON: {exc}"))
    if not items:
        raise InvalidInput(f"not JSON or JSON Lines: {first_error}", field="FILE")
    return items, line_of, bad


def _on_line(e: EventError, line: int) -> EventError:
    """An event error of JSON Lines input, named by its line ('line 3.timestamp')."""
    from ingest.devmesh_json import EventError

    return EventError(line, e.field.replace(f"events[{e.index}]", f"line {line}", 1), e.problem)


def _one(port: DevMeshPort, parsed: ParsedEvents, total: IngestReport) -> None:
    report = port.ingest("logs", parsed.rows)
    report.rejected = len(parsed.errors)
    report.received += len(parsed.errors)
    report.errors = [e.as_dict() for e in parsed.errors]
    total.add(report)


def _render_report(r: dict[str, Any]) -> None:
    console.print(
        f"received {r['received']}, stored {r['stored']}, duplicates {r['duplicates']}, rejected {r['rejected']}, "
        f"new templates {r['new_templates']}, embedded {r['embedded']} ({r['seconds']:.2f}s)"
    )
    for kind, k in r.get("kinds", {}).items():
        console.print(f"  {kind}: received {k['received']}, stored {k['stored']}, rejected {k['rejected']}")
    for e in r.get("errors", [])[:20]:
        err_console.print(f"  rejected {e['field']}: {e['problem']}")
    if r.get("embed_error"):
        err_console.print(f"[yellow]stored without vectors[/yellow] ({r['embed_error']}); run `devmesh backfill`")


@import_app.command("nezha")
def import_nezha_cmd(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Nezha-layout folder (date folders with log/, trace/, metric/)."),
    no_logs: bool = typer.Option(False, "--no-logs", help="Skip logs."),
    no_traces: bool = typer.Option(False, "--no-traces", help="Skip traces."),
    no_metrics: bool = typer.Option(False, "--no-metrics", help="Skip metrics."),
    as_json: bool = JsonOpt,
) -> None:
    """Import a Nezha fault-injection data set: logs, spans and per-pod metrics, then the call graph."""
    from ingest.importers import import_nezha

    kinds = [k for k, off in (("logs", no_logs), ("spans", no_traces), ("metrics", no_metrics)) if not off]
    with opened(ctx) as svc, progress(not as_json) as bar:
        task = bar.add_task("import nezha", total=None, status="")
        report = import_nezha(
            svc.pipeline,
            directory,
            kinds=kinds,
            on_plan=lambda p: bar.update(task, total=len(p.files)),
            on_file=lambda kind, path, r: bar.update(task, advance=1, status=f"{kind} {path.name}"),
        )
    emit(report.as_dict(), as_json, lambda d: console.print_json(data=d))


@import_app.command("runbooks")
def import_runbooks_cmd(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Folder of Markdown runbooks (searched recursively)."),
    base_url: str = typer.Option("", help="Web address the runbooks are published under, for links."),
    as_json: bool = JsonOpt,
) -> None:
    """Import Markdown runbooks: split into sections, embedded, linked to the alerts and services they name."""
    from ingest.importers import import_runbooks

    with opened(ctx) as svc, progress(not as_json) as bar:
        task = bar.add_task("import runbooks", total=None, status="")
        report = import_runbooks(
            directory,
            graph=svc.graph,
            vectors=svc.vectors,
            embedder=svc.embedder,
            known_services=svc.graph.services() if svc.graph else (),
            base_url=base_url,
            on_runbook=lambda rb: bar.update(task, advance=1, status=rb.id),
        )
    emit(report.as_dict(), as_json, lambda d: console.print_json(data=d))


@import_app.command("topology")
def import_topology_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="YAML file: services with their calls and pods."),
    as_json: bool = JsonOpt,
) -> None:
    """Import a declared topology (services, calls, pods and nodes) into the graph."""
    from ingest.topology_yaml import read_topology

    topo = read_topology(file)
    with opened(ctx, vectors=False) as svc:
        assert svc.graph is not None
        svc.graph.upsert_topology(topo)
    data = {"services": len(topo.services), "calls": len(topo.calls), "pods": len(topo.pods)}
    emit(data, as_json, lambda d: console.print_json(data=d))


def backfill(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Embed templates stored without vectors (after an embedder failure). Safe to stop and run again."""
    with opened(ctx) as svc, progress(not as_json) as bar:
        pending = svc.events.stats().get("templates_unembedded", 0)
        task = bar.add_task("backfill", total=pending or None, status="")
        done = svc.pipeline.backfill(progress=lambda n: bar.update(task, advance=n))
    emit({"embedded": done}, as_json, lambda d: console.print(f"embedded {d['embedded']} templates"))
