"""Replaying a case bundle into a home: `ingest_case` stores its topology, telemetry and runbooks.

Telemetry files are read by suffix (`*.otlp.jsonl[.gz]`, `*.journal.jsonl[.gz]`, `*.devmesh.jsonl[.gz]`)
through the same parsers and pipeline as live ingestion. With `until_ns` (live: the case's `asked_at`)
only records stamped at or before it are kept, record by record; with None (hindsight) everything is.
The declared topology and the runbooks have no time and are always taken.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from core.settings import Settings
from core.telemetry import Topology
from ingest.cases.model import Case
from ingest.feed import FeedOptions, FeedReport, LineFormat, feed_lines
from ingest.importers import BULK_ROWS, RunbookImport, import_runbooks
from ingest.jsonlines import numbered_lines, open_input
from ingest.pipeline import IngestReport, Pipeline
from ingest.topology_yaml import read_topology


@dataclass
class CaseIngest:
    """What replaying one bundle stored: per file, per kind, the declared and derived topology, runbooks."""

    case_id: str
    until_ns: int | None
    files: list[FeedReport] = field(default_factory=list)
    declared: Topology | None = None
    derived_calls: int = 0
    runbooks: RunbookImport | None = None
    embedded: int = 0
    seconds: float = 0.0

    @property
    def later(self) -> int:
        """Records left out because they were stamped after `until_ns`."""
        return sum(f.later for f in self.files)

    def kinds(self) -> dict[str, IngestReport]:
        """Every file's reports summed per kind (logs, spans, metrics)."""
        out: dict[str, IngestReport] = {}
        for f in self.files:
            for kind, r in f.kinds.items():
                out.setdefault(kind, IngestReport(kind=kind)).add(r)
        return out

    @property
    def rejected(self) -> int:
        return sum(f.total().rejected for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        topo = self.declared
        return {
            "case": self.case_id,
            "until_ns": self.until_ns,
            "later": self.later,
            "rejected": self.rejected,
            "kinds": {k: {n: v for n, v in r.as_dict().items() if n != "errors"} for k, r in self.kinds().items()},
            "files": [f.as_dict() for f in self.files],
            "topology": None if topo is None else {"services": len(topo.services), "calls": len(topo.calls)},
            "derived_calls": self.derived_calls,
            "runbooks": None if self.runbooks is None else self.runbooks.as_dict(),
            "embedded": self.embedded,
            "seconds": round(self.seconds, 3),
        }


def ingest_case(
    case: Case,
    pipeline: Pipeline,
    *,
    until_ns: int | None,
    options: FeedOptions | None = None,
    on_file: Callable[[FeedReport], None] | None = None,
) -> CaseIngest:
    """Store the bundle's topology, telemetry (up to `until_ns` when given) and runbooks into the stores
    behind `pipeline`, then derive the call graph from the stored spans and embed new templates.

    `options` carries the ingest limits (default: DevMesh's defaults); its `until_ns` is replaced by
    the one given here. Rejected records and bad lines are reported, not raised.
    """
    t0 = time.perf_counter()
    base = options or FeedOptions.from_settings(Settings.model_construct(), batch_rows=BULK_ROWS)
    opts = replace(base, until_ns=until_ns, embed=False)
    out = CaseIngest(case_id=case.id, until_ns=until_ns)
    files = case.telemetry
    if files.topology is not None:
        out.declared = read_topology(files.topology)
        if pipeline.graph is not None:
            pipeline.graph.upsert_topology(out.declared)
    plan = [
        *((LineFormat.otlp, p) for p in files.otlp),
        *((LineFormat.journald, p) for p in files.journal),
        *((LineFormat.devmesh, p) for p in files.devmesh),
    ]
    for fmt, path in plan:
        with contextlib.closing(open_input(path)) as stream:
            lines = numbered_lines(stream, opts.max_line_bytes)
            report = feed_lines(pipeline, lines, fmt, opts, source=str(path.relative_to(case.root)))
        out.files.append(report)
        if on_file is not None:
            on_file(report)
    pipeline.save_state()
    out.embedded = pipeline.backfill()
    if pipeline.spans_since_refresh:
        out.derived_calls = len(pipeline.refresh_topology().calls)
    if case.runbooks is not None:
        graph = pipeline.graph
        out.runbooks = import_runbooks(
            case.runbooks,
            graph=graph,
            vectors=pipeline.vectors,
            embedder=pipeline.embedder,
            known_services=graph.services() if graph is not None else (),
        )
    out.seconds = time.perf_counter() - t0
    return out
