"""Feeding line-delimited telemetry into the pipeline: OTLP/JSON lines, journald JSON, DevMesh JSON lines.

`feed_lines` reads numbered lines (`ingest.jsonlines`), parses them with the reader of their format (the
same parsers as the HTTP routes), keeps only the records stamped at or before `until_ns` when one is
given (record by record: a log's time, a span's start, a metric point's time), and stores them through
`Pipeline.ingest` (or a `RowSink`: the CLI's port to a running server) in batches of `batch_rows`.
Memory stays bounded by a batch and a line. Bad lines and rejected records are reported by line number;
everything else is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from core.errors import InvalidInput
from core.settings import Settings
from core.telemetry import TIME_COLUMN
from core.timeutil import now_ns
from ingest import batch
from ingest.devmesh_json import EventError, Limits, parse_events
from ingest.journald import parse_journald
from ingest.jsonlines import Line, loads
from ingest.otlp.lines import parse_line
from ingest.pipeline import IngestReport

MAX_ERRORS = 100
"""How many error messages a report keeps (the counts cover all of them)."""
OTLP_LINES = 16
"""OTLP lines read before a progress report (each holds a whole request)."""
EVENT_LINES = 10_000
"""journald or DevMesh JSON lines parsed together (at most)."""


class LineFormat(StrEnum):
    """What each line of a file is."""

    otlp = "otlp"  # an OTLP/JSON Export*ServiceRequest
    journald = "journald"  # a `journalctl -o json` entry
    devmesh = "devmesh"  # a DevMesh JSON event


class RowSink(Protocol):
    """Where parsed rows go: `ingest.pipeline.Pipeline`, or a front end's port to a running server."""

    def ingest(self, kind: batch.Kind, cols: dict[str, list[Any]], *, embed: bool = True) -> IngestReport: ...


@dataclass(frozen=True)
class FeedOptions:
    """How to feed: the ingest limits, the largest line, rows a write, a time cut, embedding on the way."""

    limits: Limits
    max_line_bytes: int = 16 * 1024 * 1024
    batch_rows: int = 5000
    until_ns: int | None = None
    embed: bool = True

    @classmethod
    def from_settings(cls, s: Settings, **kw: Any) -> FeedOptions:
        """Options with the ingest limits of settings `s` (DEVMESH_MAX_*, ...); `kw` sets the rest."""
        limits = Limits(s.max_batch_events, s.max_message_chars, s.min_timestamp_year, s.max_future_skew_s)
        return cls(limits=limits, max_line_bytes=s.max_body_bytes, **kw)


@dataclass
class FeedReport:
    """What feeding lines did: per kind what the pipeline stored, records left out as later than the cut,
    bad lines, and the first `MAX_ERRORS` problems as {index: line number, field, problem}."""

    source: str
    lines: int = 0
    later: int = 0
    bad_lines: int = 0
    kinds: dict[str, IngestReport] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def kind(self, kind: str) -> IngestReport:
        return self.kinds.setdefault(kind, IngestReport(kind=kind))

    def error(self, line: int, where: str, problem: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            field_ = f"line {line}.{where}" if where else f"line {line}"
            self.errors.append({"index": line, "field": field_, "problem": problem})

    def total(self, kind: str = "all") -> IngestReport:
        """Every kind summed; a bad line counts as one received and rejected."""
        out = IngestReport(kind=kind, received=self.bad_lines, rejected=self.bad_lines)
        for r in self.kinds.values():
            out.add(r)
        out.errors = list(self.errors)
        return out

    def as_dict(self) -> dict[str, Any]:
        """The summed report (kind 'all' when the lines held more than one), the lines read, records left
        out as later than the cut, and the report of each kind."""
        kind = next(iter(self.kinds)) if len(self.kinds) == 1 else "all"
        return {
            **self.total(kind).as_dict(),
            "source": self.source,
            "lines": self.lines,
            "later": self.later,
            "kinds": {k: {n: v for n, v in r.as_dict().items() if n != "errors"} for k, r in self.kinds.items()},
        }


def keep_until(kind: batch.Kind, cols: dict[str, list[Any]], until_ns: int | None) -> tuple[dict[str, list[Any]], int]:
    """The rows of `cols` stamped at or before `until_ns` (all when None), and how many were left out."""
    if until_ns is None:
        return cols, 0
    times = cols[TIME_COLUMN[kind]]
    keep = [i for i, t in enumerate(times) if t <= until_ns]
    if len(keep) == len(times):
        return cols, 0
    return {name: [values[i] for i in keep] for name, values in cols.items()}, len(times) - len(keep)


class _Writer:
    """Collects rows per kind and stores them through the pipeline a batch at a time."""

    def __init__(self, pipeline: RowSink, opts: FeedOptions, report: FeedReport) -> None:
        self.pipeline, self.opts, self.report = pipeline, opts, report
        self.pending: dict[batch.Kind, dict[str, list[Any]]] = {}

    def add(self, kind: batch.Kind, cols: dict[str, list[Any]], rejected: int = 0) -> None:
        self.report.kind(kind).received += rejected
        self.report.kind(kind).rejected += rejected
        cols, later = keep_until(kind, cols, self.opts.until_ns)
        self.report.later += later
        if not batch.num_rows(cols):
            return
        buf = self.pending.setdefault(kind, batch.empty(kind))
        for name, values in buf.items():
            values.extend(cols[name])
        if batch.num_rows(buf) >= self.opts.batch_rows:
            self.flush(kind)

    def flush(self, kind: batch.Kind | None = None) -> None:
        for k in [kind] if kind else list(self.pending):
            cols = self.pending.pop(k, None)
            if cols and batch.num_rows(cols):
                self.report.kind(k).add(self.pipeline.ingest(k, cols, embed=self.opts.embed))


def feed_lines(
    pipeline: RowSink,
    lines: Iterable[Line],
    fmt: LineFormat,
    opts: FeedOptions,
    *,
    source: str = "-",
    on_batch: Callable[[FeedReport], None] | None = None,
) -> FeedReport:
    """Parse `lines` as `fmt` and store what they hold (see the module doc)."""
    report = FeedReport(source=source)
    out = _Writer(pipeline, opts, report)
    step = {LineFormat.otlp: _otlp, LineFormat.journald: _journald, LineFormat.devmesh: _devmesh}[fmt]
    size = OTLP_LINES if fmt == LineFormat.otlp else min(opts.batch_rows, opts.limits.max_events, EVENT_LINES)
    for chunk in _chunks(lines, report, size):
        step(chunk, out, opts, now_ns())
        if on_batch is not None:
            on_batch(report)
    out.flush()
    if on_batch is not None:
        on_batch(report)
    return report


def _chunks(lines: Iterable[Line], report: FeedReport, size: int) -> Iterator[list[Line]]:
    """Readable lines in chunks of `size` (unreadable ones reported and left out)."""
    chunk: list[Line] = []
    for line in lines:
        report.lines = line.number
        if line.problem:
            _bad_line(report, line.number, line.problem)
            continue
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _bad_line(report: FeedReport, line: int, problem: str) -> None:
    report.bad_lines += 1
    report.error(line, "", problem)


def _otlp(chunk: list[Line], out: _Writer, opts: FeedOptions, now: int) -> None:
    lim = opts.limits
    for line in chunk:
        if not line.data.strip():
            continue
        try:
            decoded = parse_line(line.data, now_ns=now, min_year=lim.min_year, max_future_skew_s=lim.max_future_skew_s)
        except InvalidInput as exc:
            _bad_line(out.report, line.number, exc.message)
            continue
        parsed = decoded.parsed
        for e in parsed.errors:
            where, _, why = e.partition(": ")
            out.report.error(line.number, where, why)
        out.add(decoded.kind, parsed.rows, parsed.rejected)


def _journald(chunk: list[Line], out: _Writer, opts: FeedOptions, now: int) -> None:
    for first, run in _consecutive(chunk):
        parsed = parse_journald(run, opts.limits, now_ns=now, first_line=first)
        _events(out, parsed.rows, parsed.errors)


def _devmesh(chunk: list[Line], out: _Writer, opts: FeedOptions, now: int) -> None:
    items: list[Any] = []
    line_of: list[int] = []
    for line in chunk:
        if not line.data.strip():
            continue
        try:
            items.append(loads(line.data))
            line_of.append(line.number)
        except (ValueError, RecursionError) as exc:
            _bad_line(out.report, line.number, f"not JSON: {exc}")
    parsed = parse_events(items, opts.limits, default_source="file", now_ns=now)
    errors = [
        EventError(line_of[e.index], e.field.replace(f"events[{e.index}]", "", 1), e.problem) for e in parsed.errors
    ]
    _events(out, parsed.rows, errors)


def _events(out: _Writer, rows: dict[str, list[Any]], errors: list[EventError]) -> None:
    """Rows of a log reader, and its errors (index = line number, field as the reader named it)."""
    for e in errors:
        where = e.field.removeprefix(f"line {e.index}").lstrip(".")
        out.report.error(e.index, where, e.problem)
    out.add("logs", rows, len(errors))


def _consecutive(chunk: list[Line]) -> Iterator[tuple[int, list[bytes]]]:
    """Runs of consecutively numbered lines (a reader numbers its lines from the first one's number)."""
    run: list[bytes] = []
    first = 0
    for line in chunk:
        if run and line.number != first + len(run):
            yield first, run
            run = []
        if not run:
            first = line.number
        run.append(line.data)
    if run:
        yield first, run
