"""The ingestion pipeline: canonical batches -> templates -> event store, graph and vectors.

Logic only: the stores, the embedder and the miner are passed in by the entry point that built them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from core.errors import DevMeshError
from core.naming import level_rank
from core.telemetry import CallEdge, PodPlacement, Topology
from ingest import batch
from ingest.canonical import clean_text
from ingest.templates import TemplateMiner
from retrieval.collections import TEMPLATES
from retrieval.events import normalize
from retrieval.vectors import VectorPoint

if TYPE_CHECKING:
    from graph.store import GraphStore
    from retrieval.embedders import Embedder
    from retrieval.events import EventStore, StoredTemplate
    from retrieval.vectors import VectorStore

log = logging.getLogger(__name__)

MINER_STATE_KEY = "template_miner"


@dataclass
class IngestReport:
    """What one ingest call did."""

    kind: str
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    new_templates: int = 0
    embedded: int = 0
    embed_error: str | None = None
    seconds: float = 0.0

    def add(self, other: IngestReport) -> None:
        for name in ("received", "stored", "duplicates", "rejected", "new_templates", "embedded"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors[: max(0, 100 - len(self.errors))])
        self.embed_error = self.embed_error or other.embed_error
        self.seconds += other.seconds

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class _TemplateAgg:
    text: str
    count: int
    first_ns: int
    last_ns: int
    level: str
    services: set[str]


_PLACEHOLDER = re.compile(r"<\*>")
_SPACES = re.compile(r"\s+")
EMBED_CHARS = 256


def embedding_text(template: str) -> str:
    """What is embedded for a template: its words without the <*> placeholders, cut to a few hundred chars."""
    return _SPACES.sub(" ", _PLACEHOLDER.sub(" ", template)).strip()[:EMBED_CHARS] or template[:EMBED_CHARS]


class Pipeline:
    """Stateful ingestion front: owns the template miner and small caches of what the graph already has."""

    def __init__(
        self,
        events: EventStore,
        graph: GraphStore | None,
        vectors: VectorStore | None,
        embedder: Embedder | None,
        *,
        miner: TemplateMiner | None = None,
        max_message_chars: int = 65_536,
    ) -> None:
        self.events = events
        self.graph = graph
        self.vectors = vectors
        self.embedder = embedder
        self._lock = threading.RLock()
        self.max_message_chars = max_message_chars
        if miner is None:
            state = events.kv.get(MINER_STATE_KEY)
            miner = TemplateMiner.from_state(state) if state else TemplateMiner()
        self.miner = miner
        self._placements: set[tuple[str, str, str]] = set()
        self._miner_dirty = False
        self.spans_since_refresh = 0
        if vectors is not None and embedder is not None:
            vectors.ensure_collection(TEMPLATES, embedder.dim)

    # ---- logs -------------------------------------------------------------------------------------
    def ingest_logs(self, cols: dict[str, list[Any]], *, embed: bool = True) -> IngestReport:
        t0 = time.perf_counter()
        n = batch.num_rows(cols)
        report = IngestReport(kind="logs", received=n)
        if not n:
            return report
        messages = cols["message"]
        for i, m in enumerate(messages):
            if len(m) > self.max_message_chars:
                messages[i] = clean_text(m, self.max_message_chars)[0]
        with self._lock:
            matches = self.miner.add_many(messages)
            merges = self.miner.take_merges()  # templates merged late: old ids become aliases
            template_ids = [m.template_id for m in matches]
            table = batch.to_table("logs", cols).append_column("template_id", pa.array(template_ids, pa.string()))
            table = normalize("logs", table)  # event ids computed once, for the store and the examples
            aggs = self._aggregate_templates(cols, matches)
            changed = {m.template_id for m in matches if m.is_new or m.changed} | set(merges.values())
            report.new_templates = sum(1 for m in matches if m.is_new)
            if changed or merges:
                self._miner_dirty = True
            with self.events.transaction():  # one commit a batch: lines, examples, templates, miner state
                result = self.events.append_logs(table)
                report.stored, report.duplicates = result.inserted, result.duplicates
                if result.inserted:
                    self.events.remember_examples(table)
                    self._store_templates(aggs, exact=result.duplicates == 0)
                if merges:
                    targets = set(merges.values())
                    live = {tid: text for tid, text, _ in self.miner.templates() if tid in targets}
                    self.events.alias_templates(merges, live)
                if self._miner_dirty:
                    self.save_state()
            self._learn_placements(cols)
            if result.inserted:
                self._link_templates(template_ids, aggs)
        if embed and changed:
            report.embedded, report.embed_error = self._embed_templates(sorted(changed))
        report.seconds = time.perf_counter() - t0
        return report

    def _aggregate_templates(self, cols: dict[str, list[Any]], matches: Sequence[Any]) -> dict[str, _TemplateAgg]:
        aggs: dict[str, _TemplateAgg] = {}
        ts, levels, services = cols["ts_ns"], cols["level"], cols["service"]
        for i, m in enumerate(matches):
            a = aggs.get(m.template_id)
            if a is None:
                aggs[m.template_id] = _TemplateAgg(m.template, 1, ts[i], ts[i], levels[i], {services[i]})
                continue
            a.text = m.template
            a.count += 1
            a.first_ns = min(a.first_ns, ts[i])
            a.last_ns = max(a.last_ns, ts[i])
            if level_rank(levels[i]) > level_rank(a.level):
                a.level = levels[i]
            a.services.add(services[i])
        return aggs

    def _store_templates(self, aggs: dict[str, _TemplateAgg], *, exact: bool) -> None:
        rows = [
            {
                "template_id": tid,
                "text": a.text,
                "count": a.count,
                "first_ns": a.first_ns,
                "last_ns": a.last_ns,
                "level": a.level,
            }
            for tid, a in aggs.items()
        ]
        self.events.upsert_templates(rows)
        if not exact:
            # Some lines were repeats: take the counts from what is stored, not from what was sent.
            self.events.recount_templates(list(aggs))

    def _learn_placements(self, cols: dict[str, list[Any]]) -> None:
        new: list[PodPlacement] = []
        for pod, service, host in zip(cols["pod"], cols["service"], cols["host"], strict=True):
            key = (pod, service, host)
            if key in self._placements:
                continue
            self._placements.add(key)
            if pod and service:
                new.append(PodPlacement(pod=pod, service=service, host=host))
        if new and self.graph is not None:
            services = sorted({p.service for p in new})
            self.graph.upsert_topology(Topology(services=services, pods=new))

    def _link_templates(self, template_ids: list[str], aggs: dict[str, _TemplateAgg]) -> None:
        """EMITS edges for the (service, template) pairs of a batch, with their stored line counts."""
        if self.graph is None or not aggs:
            return
        rows = [
            {
                "service": r["service"],
                "template_id": r["template_id"],
                "text": aggs[r["template_id"]].text,
                "level": aggs[r["template_id"]].level,
                "count": int(r["count"]),
            }
            for r in self.events.count_by(
                "logs", ["service", "template_id"], where={"template_id": sorted(aggs)}, limit=1_000_000
            )
            if r["service"]
        ]
        if rows:
            self.graph.upsert_templates(rows)

    def _embed_templates(self, template_ids: list[str]) -> tuple[int, str | None]:
        """Embed templates and store their vectors; on failure they stay pending for `devmesh backfill`."""
        if self.vectors is None or self.embedder is None or not template_ids:
            return 0, None
        rows = self.events.templates(template_ids)
        try:
            return self._embed_rows(rows), None
        except DevMeshError as exc:
            log.warning("embedding failed; templates kept for backfill", extra={"error": exc.message})
            return 0, exc.message

    def _embed_rows(self, rows: Sequence[StoredTemplate]) -> int:
        assert self.vectors is not None and self.embedder is not None
        if not rows:
            return 0
        vectors = self.embedder.embed([embedding_text(r.text) for r in rows])
        points = [
            VectorPoint(
                id=r.template_id,
                vector=vectors[i],
                payload={"template_id": r.template_id, "text": r.text, "level": r.level},
            )
            for i, r in enumerate(rows)
        ]
        self.vectors.upsert(TEMPLATES, points)
        self.events.mark_embedded([r.template_id for r in rows])
        return len(rows)

    def backfill(self, *, batch_size: int = 256, progress: Any = None) -> int:
        """Embed every template still without a vector; resumable (each batch is marked when stored)."""
        if self.vectors is None or self.embedder is None:
            return 0
        done = 0
        while True:
            rows = self.events.unembedded_templates(batch_size)
            if not rows:
                return done
            done += self._embed_rows(rows)
            if progress is not None:
                progress(len(rows))

    # ---- spans and metrics -------------------------------------------------------------------------
    def ingest_spans(self, cols: dict[str, list[Any]]) -> IngestReport:
        report = self._store_plain("spans", cols)
        self.spans_since_refresh += report.stored
        return report

    def ingest_metrics(self, cols: dict[str, list[Any]]) -> IngestReport:
        return self._store_plain("metrics", cols)

    def _store_plain(self, kind: batch.Kind, cols: dict[str, list[Any]]) -> IngestReport:
        """Spans and metrics: stored as they are (de-duplicated); where their pods run goes to the graph."""
        t0 = time.perf_counter()
        report = IngestReport(kind=kind, received=batch.num_rows(cols))
        if not report.received:
            return report
        append = self.events.append_spans if kind == "spans" else self.events.append_metrics
        with self._lock:
            result = append(batch.to_table(kind, cols))
            report.stored, report.duplicates = result.inserted, result.duplicates
            self._learn_placements(cols)
        report.seconds = time.perf_counter() - t0
        return report

    def ingest(self, kind: batch.Kind, cols: dict[str, list[Any]], *, embed: bool = True) -> IngestReport:
        """Ingest one batch. Bulk imports pass `embed=False` and call `backfill()` once at the end, so a
        template whose text generalizes over many batches is embedded once, not once a change."""
        if kind == "logs":
            return self.ingest_logs(cols, embed=embed)
        if kind == "spans":
            return self.ingest_spans(cols)
        return self.ingest_metrics(cols)

    # ---- derived state -----------------------------------------------------------------------------
    def refresh_topology(self, start_ns: int | None = None, end_ns: int | None = None) -> Topology:
        """Service CALLS edges from the stored spans (caller = parent span's service), written to the graph."""
        self.spans_since_refresh = 0
        span_range = self.events.stats()["tables"]["spans"]
        if span_range["rows"] == 0:
            return Topology()
        lo = start_ns if start_ns is not None else span_range["min_ns"]
        hi = end_ns if end_ns is not None else span_range["max_ns"] + 1
        edges = [
            CallEdge(
                caller=e.caller, callee=e.callee, calls=e.calls, errors=e.errors, mean_ms=e.mean_ms, p95_ms=e.p95_ms
            )
            for e in self.events.call_edges(lo, hi)
        ]
        topo = Topology(services=sorted({e.caller for e in edges} | {e.callee for e in edges}), calls=edges)
        if self.graph is not None and (topo.services or topo.calls):
            self.graph.upsert_topology(topo)
        return topo

    def save_state(self) -> None:
        with self._lock:
            self.events.kv.set(MINER_STATE_KEY, self.miner.state())
            self._miner_dirty = False
