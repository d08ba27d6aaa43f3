"""Completing owed writes, and rebuilding a derived store, from the event store (the source of truth).

- `repair_owed(pipeline)`: the graph work recorded in the ledger (`retrieval.events.owed`) and the
  templates still without a vector; run on a timer inside `devmesh serve`, and by whoever sees an
  engine come back. Idempotent: graph writes are MERGEs of what the stored events imply, vectors are
  upserted under ids derived from the template ids.
- `rebuild_graph(pipeline)` / `rebuild_vectors(pipeline)`: the same writes for every stored event
  (`devmesh rebuild graph|vectors`), and every stored incident's node and edges (`ingest.incidents`).
- `owed_counts(pipeline)`: what is owed now, per store (shown by `/health`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import DevMeshError, EngineUnavailable
from ingest import derive
from ingest.incidents import OWED_KIND as INCIDENT_KIND
from ingest.incidents import write_incidents
from ingest.pipeline import Pipeline
from retrieval.events.owed import OwedWork

log = logging.getLogger(__name__)

ENTRIES_A_ROUND = 200
"""Ledger entries completed under one hold of the pipeline's lock (ingestion waits meanwhile)."""


class HasPipeline(Protocol):
    """Anything holding the pipeline (`api.wiring.Services`)."""

    @property
    def pipeline(self) -> Pipeline: ...


Progress = Callable[[int, int], None]
"""Called with (done, total) as a rebuild goes."""


@dataclass
class RepairReport:
    """What a repair or rebuild did, what failed, and what is still owed afterwards."""

    entries: int = 0
    pods: int = 0
    templates: int = 0
    calls: int = 0
    incidents: int = 0
    embedded: int = 0
    graph_error: str | None = None
    vector_error: str | None = None
    owed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def owed_counts(pipeline: Pipeline) -> dict[str, int]:
    """Ledger entries owed to the graph, and templates owed a vector (0 without a vector store)."""
    events = pipeline.events
    graph = events.owed.counts(exclude=pipeline.settled()).get("graph", 0) if pipeline.graph is not None else 0
    vectors = 0
    if pipeline.vectors is not None and pipeline.embedder is not None:
        vectors = events.unembedded_count()
    return {"graph": graph, "vectors": vectors}


def repair_owed(target: Pipeline | HasPipeline, *, stores: Sequence[str] = ("graph", "vectors")) -> RepairReport:
    """Complete what the graph and the vector store are owed (see the module doc); `target` is the
    pipeline or what holds it (the services). Never raises for an engine that is still down: the
    report says so and the work stays owed for the next call."""
    pipeline = target if isinstance(target, Pipeline) else target.pipeline
    t0 = time.perf_counter()
    report = RepairReport()
    if "graph" in stores and pipeline.graph is not None:
        while _repair_graph_round(pipeline, report):
            pass
    if "vectors" in stores:
        _embed(pipeline, report)
    report.owed = owed_counts(pipeline)
    report.seconds = time.perf_counter() - t0
    if report.entries or report.embedded:
        log.info("owed writes repaired", extra=report.as_dict())
    return report


def _repair_graph_round(pipeline: Pipeline, report: RepairReport) -> bool:
    """One round of ledger entries; True when there may be more."""
    events = pipeline.events
    with pipeline.lock:
        pipeline.flush_settled()
        entries = events.owed.pending("graph", limit=ENTRIES_A_ROUND)
        if not entries:
            return False
        ids = [e.id for e in entries]
        try:
            _write_ranges(pipeline, entries, report)
        except DevMeshError as exc:
            report.graph_error = exc.message
            events.owed.failed(ids, exc.message)
            log.warning("graph repair failed; still owed", extra={"error": exc.message, "entries": len(ids)})
            return False
        events.owed.settle(ids)
        report.entries += len(ids)
    return len(entries) == ENTRIES_A_ROUND


def _write_ranges(pipeline: Pipeline, entries: Sequence[OwedWork], report: RepairReport) -> None:
    """The graph writes the stored events of these ledger entries imply."""
    events = pipeline.events
    pods: set[str] = set()
    templates: set[str] = set()
    incidents = [e for e in entries if e.kind == INCIDENT_KIND]
    for e in entries:
        if e.kind == INCIDENT_KIND:
            continue
        pods.update(derive.in_range(events, e.kind, "pod", e.lo_ns, e.hi_ns))
        if e.kind == "logs":
            templates.update(derive.in_range(events, "logs", "template_id", e.lo_ns, e.hi_ns))
    _write(pipeline, sorted(pods), sorted(templates), report)
    if any(e.kind == "spans" for e in entries):
        report.calls += len(pipeline.refresh_topology().calls)
    assert pipeline.graph is not None
    for lo_ns, hi_ns in sorted({(e.lo_ns, e.hi_ns) for e in incidents}):  # after the templates they link to
        report.incidents += write_incidents(events, pipeline.graph, lo_ns, hi_ns)


def _write(
    pipeline: Pipeline,
    pods: Sequence[str] | None,
    templates: Sequence[str],
    report: RepairReport,
    progress: Progress | None = None,
) -> None:
    """Placements of `pods` (all when None) and EMITS edges of `templates`, from the stored events."""
    graph = pipeline.graph
    assert graph is not None
    if pods is None or pods:
        topo = derive.placements(pipeline.events, pods)
        graph.upsert_topology(topo)
        report.pods += len(topo.pods)
    done = 0
    for part in derive.chunks(templates):
        rows = derive.template_links(pipeline.events, part)
        if rows:
            graph.upsert_templates(rows)
        done += len(part)
        report.templates += len(part)
        if progress is not None:
            progress(done, len(templates))


def embed_owed(pipeline: Pipeline) -> tuple[int, str | None]:
    """Embed the templates still without a vector: (how many, the error that stopped it or None).
    What is not embedded stays owed (`embedded = false`) for the next repair."""
    if pipeline.vectors is None or pipeline.embedder is None:
        return 0, None
    done = 0
    try:
        done = pipeline.backfill(progress=None)
    except DevMeshError as exc:
        log.warning("embedding failed; templates still owed a vector", extra={"error": exc.message})
        return done, exc.message
    return done, None


def _embed(pipeline: Pipeline, report: RepairReport) -> None:
    done, report.vector_error = embed_owed(pipeline)
    report.embedded += done


def rebuild_graph(pipeline: Pipeline, *, wipe: bool = False, progress: Progress | None = None) -> RepairReport:
    """Write into the graph everything the stored events imply: every pod's placement, every template's
    EMITS edges, the CALLS edges, every stored incident's node and edges. `wipe` first removes every node
    and edge (runbooks included: import the runbooks again). Settles the ledger. Raises when the graph is
    down."""
    t0 = time.perf_counter()
    report = RepairReport()
    graph = pipeline.graph
    if graph is None:
        raise EngineUnavailable("there is no graph to rebuild (opened without one)")
    events = pipeline.events
    with pipeline.lock:
        pipeline.flush_settled()
        owed = [e.id for e in events.owed.pending("graph", limit=derive.ALL)]
        if wipe:
            graph.delete_all()
        templates = [t.template_id for t in events.templates()]
        _write(pipeline, None, templates, report, progress)
        report.calls = len(pipeline.refresh_topology().calls)
        report.incidents = write_incidents(events, graph)
        events.owed.settle(owed)
        report.entries = len(owed)
    report.owed = owed_counts(pipeline)
    report.seconds = time.perf_counter() - t0
    return report


def rebuild_vectors(pipeline: Pipeline, *, progress: Callable[[int], None] | None = None) -> RepairReport:
    """Embed every stored template again and upsert its vector (same ids: nothing is doubled). Marks
    them all owed first, so an interrupted rebuild is finished by the repair."""
    t0 = time.perf_counter()
    report = RepairReport()
    if pipeline.vectors is None or pipeline.embedder is None:
        raise EngineUnavailable(
            "there is no vector store or embedder to rebuild: DEVMESH_EMBEDDER is none, or opened without one"
        )
    pipeline.events.mark_unembedded()
    report.embedded = pipeline.backfill(progress=progress)
    report.owed = owed_counts(pipeline)
    report.seconds = time.perf_counter() - t0
    return report
