"""Bulk imports: a Nezha-layout data set, a folder of Markdown runbooks, a declared topology."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import DevMeshError
from ingest import batch, nezha
from ingest.pipeline import IngestReport, Pipeline
from ingest.repair import embed_owed
from ingest.runbooks import Runbook, read_runbooks, services_mentioned
from retrieval.collections import RUNBOOKS
from retrieval.vectors import VectorPoint

if TYPE_CHECKING:
    from graph.store import GraphStore
    from retrieval.embedders import Embedder
    from retrieval.vectors import VectorStore

log = logging.getLogger(__name__)

BULK_ROWS = 131_072  # rows a write during imports (a DuckDB row group is 122,880)
OnFile = Callable[[str, Path, IngestReport], None]


@dataclass
class ImportReport:
    root: str
    files: int = 0
    reports: dict[str, IngestReport] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    faults: int = 0
    services: int = 0
    calls: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "files": self.files,
            "faults": self.faults,
            "services": self.services,
            "calls": self.calls,
            "seconds": round(self.seconds, 3),
            "warnings": self.warnings,
            **{kind: r.as_dict() for kind, r in self.reports.items()},
        }


def import_nezha(
    pipeline: Pipeline,
    root: Path,
    *,
    kinds: Collection[str] = ("logs", "spans", "metrics"),
    on_plan: Callable[[nezha.NezhaPlan], None] | None = None,
    on_file: OnFile | None = None,
) -> ImportReport:
    """Import every file of a Nezha-layout folder, then derive the call graph from the spans."""
    t0 = time.perf_counter()
    plan = nezha.plan(root)
    plan.files = [f for f in plan.files if f.kind in kinds]
    if on_plan is not None:
        on_plan(plan)
    out = ImportReport(root=str(root), warnings=list(plan.warnings), faults=len(nezha.load_faults(plan)))
    for kind in kinds:
        out.reports[kind] = IngestReport(kind=kind)
    for kind, files, cols in batch.coalesce(nezha.iter_batches(plan), lambda f: f.kind, BULK_ROWS):
        report = pipeline.ingest(kind, cols, embed=False)  # type: ignore[arg-type]
        out.reports[kind].add(report)
        out.files += len(files)
        if on_file is not None:
            for f in files:
                on_file(kind, f.path, report)
    pipeline.save_state()
    if "logs" in out.reports:  # a vector store or embedder that is down leaves the vectors owed
        logs = out.reports["logs"]
        logs.embedded, logs.embed_error = embed_owed(pipeline)
    try:
        topo = pipeline.refresh_topology()
        out.services, out.calls = len(topo.services), len(topo.calls)
    except DevMeshError as exc:  # the events are stored; the call graph is owed to the repair
        out.warnings.append(f"call graph not written ({exc.message}); owed to the repair")
    for w in out.warnings:
        log.warning("nezha import: %s", w)
    out.seconds = time.perf_counter() - t0
    return out


@dataclass
class RunbookImport:
    runbooks: int = 0
    sections: int = 0
    embedded: int = 0
    linked_services: int = 0
    alerts: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def import_runbooks(
    root: Path,
    *,
    graph: GraphStore | None,
    vectors: VectorStore | None,
    embedder: Embedder | None,
    known_services: Collection[str] = (),
    base_url: str = "",
    on_runbook: Callable[[Runbook], None] | None = None,
) -> RunbookImport:
    """Read, embed (section by section) and link runbooks: COVERS edges to the alerts and services they name."""
    books, warnings = read_runbooks(root, base_url=base_url)
    out = RunbookImport(warnings=warnings)
    if vectors is not None and embedder is not None:
        vectors.ensure_collection(RUNBOOKS, embedder.dim)
    for rb in books:
        services = services_mentioned(rb, known_services)
        if graph is not None:
            graph.upsert_runbook(rb.id, rb.title, rb.path, rb.url, covers_services=services, covers_alerts=rb.alerts)
        if vectors is not None and embedder is not None and rb.sections:
            texts = [f"{rb.title}: {s.heading}\n{s.text}" for s in rb.sections]
            vecs = embedder.embed(texts)
            vectors.upsert(
                RUNBOOKS,
                [
                    VectorPoint(
                        id=s.id,
                        vector=vecs[i],
                        payload={
                            "runbook_id": rb.id,
                            "title": rb.title,
                            "heading": s.heading,
                            "kind": s.kind,
                            "url": rb.url,
                            "path": rb.path,
                            "alerts": rb.alerts,
                            "text": s.text[:4000],
                        },
                    )
                    for i, s in enumerate(rb.sections)
                ],
            )
            out.embedded += len(rb.sections)
        out.runbooks += 1
        out.sections += len(rb.sections)
        out.alerts += len(rb.alerts)
        out.linked_services += len(services)
        if on_runbook is not None:
            on_runbook(rb)
    return out
