"""The ingestion pipeline: canonical batches -> templates -> event store, graph and vectors.

Order of writes for a batch: the events, their templates, the miner state and an entry in the ledger of
owed graph work (`retrieval.events.owed`) are one commit to the event store, the source of truth. Then
the graph is written (pods, EMITS edges) and the entry settled; when the graph is down the entry stays
and `ingest.repair.repair_owed` completes it later from the stored events. Then templates are embedded;
a template whose vector could not be stored keeps `embedded = false` and is embedded by the repair.
So a stored batch is never refused for a derived store (see docs/research/failures.md).

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
import pyarrow.compute as pc

from core.errors import DevMeshError
from core.naming import level_rank
from core.telemetry import TIME_COLUMN, CallEdge, PodPlacement, Topology
from ingest import batch, derive
from ingest.canonical import clean_text
from ingest.templates import TemplateMiner
from retrieval.collections import TEMPLATES
from retrieval.events import normalize
from retrieval.vectors import VectorPoint

if TYPE_CHECKING:
    from graph.store import GraphStore
    from retrieval.embedders import Embedder
    from retrieval.events import AppendResult, EventStore, StoredTemplate
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
    graph_error: str | None = None
    """Set when the graph could not be written: the batch is stored and its graph work owed."""
    seconds: float = 0.0

    def add(self, other: IngestReport) -> None:
        for name in ("received", "stored", "duplicates", "rejected", "new_templates", "embedded"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors[: max(0, 100 - len(self.errors))])
        self.embed_error = self.embed_error or other.embed_error
        self.graph_error = self.graph_error or other.graph_error
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
        self._collection_ready = False  # the vector collection is set up at the first vector write
        self._settled: list[int] = []  # ledger entries done, removed with the next commit
        self._calls_owed: list[int] = []  # span entries whose CALLS edges wait for `refresh_topology`

    @property
    def lock(self) -> threading.RLock:
        """Held while a batch is written; the repair holds it too, so the two never interleave."""
        return self._lock

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
            places = self._new_placements(cols)
            with self.events.transaction():  # one commit a batch: lines, examples, templates, miner state, owed
                result = self.events.append_logs(table)
                report.stored, report.duplicates = result.inserted, result.duplicates
                due = self._due(result)
                if due:
                    self.events.remember_examples(table)
                    self._store_templates(aggs, exact=result.duplicates == 0)
                if merges:
                    targets = set(merges.values())
                    live = {tid: text for tid, text, _ in self.miner.templates() if tid in targets}
                    self.events.alias_templates(merges, live)
                if self._miner_dirty:
                    self.save_state()
                owed = self._owe("logs", table, due or bool(places))
            if owed is not None:
                self._write_graph(owed, report, places, lambda: self._link_templates(aggs) if due else None)
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

    # ---- the graph, and the ledger of what it is owed ------------------------------------------------
    def _new_placements(self, cols: dict[str, list[Any]]) -> set[tuple[str, str, str]]:
        """(pod, service, host) of the batch that the graph has not been given by this pipeline yet."""
        seen = set(zip(cols["pod"], cols["service"], cols["host"], strict=True))
        return {p for p in seen - self._placements if p[0] and p[1]}

    def _owe(self, kind: batch.Kind, table: pa.Table, needed: bool) -> int | None:
        """Inside the batch's commit: settle the entries done since the last commit, and record this
        batch's graph work as owed (when it has any and there is a graph). Returns the entry's id."""
        if self._settled:
            self.events.owed.settle(self._settled)
            self._settled = []
        if not needed or self.graph is None:
            return None
        lo, hi = (v.as_py() for v in pc.min_max(table[TIME_COLUMN[kind]]).values())
        return self.events.owed.add("graph", kind, lo, hi)

    def _due(self, result: AppendResult) -> bool:
        """Whether a batch's writes besides its lines are due: it stored lines, or it repeated stored ones
        on a store that cannot roll a batch back (ClickHouse), where a first attempt cut short between its
        lines and the rest left them undone; those writes are idempotent, so doing them again is safe."""
        return bool(result.inserted) or (bool(result.duplicates) and not self.events.atomic_batches)

    def _write_graph(
        self,
        owed: int,
        report: IngestReport,
        places: set[tuple[str, str, str]],
        more: Any = None,
        *,
        calls: bool = False,
    ) -> bool:
        """Do a batch's graph work; settle its ledger entry, or leave it owed when the graph fails."""
        try:
            if places and self.graph is not None:
                pods = [PodPlacement(pod=p, service=s, host=h) for p, s, h in sorted(places)]
                self.graph.upsert_topology(Topology(services=sorted({p.service for p in pods}), pods=pods))
            if more is not None:
                more()
        except DevMeshError as exc:  # EngineUnavailable above all; the stored events stay the record
            report.graph_error = exc.message
            log.warning("graph write failed; owed to the repair", extra={"error": exc.message, "owed": owed})
            self.events.owed.failed([owed], exc.message)
            return False
        self._placements |= places
        if calls:
            self._calls_owed.append(owed)  # settled by the next refresh of the call graph
        else:
            self._settled.append(owed)
        return True

    def settled(self) -> list[int]:
        """Ledger entries done but not yet removed (they are not owed)."""
        return list(self._settled)

    def flush_settled(self) -> None:
        """Remove the ledger entries that are done."""
        with self._lock:
            if self._settled:
                self.events.owed.settle(self._settled)
                self._settled = []

    def _link_templates(self, aggs: dict[str, _TemplateAgg]) -> None:
        """EMITS edges for the (service, template) pairs of a batch, with their stored line counts."""
        if self.graph is None or not aggs:
            return
        texts = {tid: (a.text, a.level) for tid, a in aggs.items()}
        rows = derive.template_links(self.events, sorted(aggs), texts)
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
        if not self._collection_ready:  # set up lazily: ingestion never waits for the vector store
            self.vectors.ensure_collection(TEMPLATES, self.embedder.dim)
            self._collection_ready = True
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
        """Embed every template still without a vector; resumable (each batch is marked when stored).
        Raises what the embedder or the vector store raised (what is done stays done)."""
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
        """Spans and metrics: stored as they are (de-duplicated); where their pods run goes to the graph,
        and new spans owe the call graph a refresh (`refresh_topology`)."""
        t0 = time.perf_counter()
        report = IngestReport(kind=kind, received=batch.num_rows(cols))
        if not report.received:
            return report
        append = self.events.append_spans if kind == "spans" else self.events.append_metrics
        with self._lock:
            table = batch.to_table(kind, cols)
            places = self._new_placements(cols)
            with self.events.transaction():
                result = append(table)
                report.stored, report.duplicates = result.inserted, result.duplicates
                due = self._due(result)
                owed = self._owe(kind, table, bool(places) or (kind == "spans" and due))
            if owed is not None:
                self._write_graph(owed, report, places, calls=kind == "spans" and due)
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
        """Service CALLS edges from the stored spans (caller = parent span's service), written to the graph.

        Raises what the graph raised; the span batches' ledger entries then stay owed."""
        with self._lock:
            done, waiting = list(self._calls_owed), self.spans_since_refresh
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
        with self._lock:
            self.spans_since_refresh = max(0, self.spans_since_refresh - waiting)
            self._calls_owed = [i for i in self._calls_owed if i not in done]
            self._settled += done
        return topo

    def save_state(self) -> None:
        """Keep the miner's state, and remove the ledger entries that are done."""
        with self._lock:
            self.events.kv.set(MINER_STATE_KEY, self.miner.state())
            self._miner_dirty = False
            if self._settled:
                self.events.owed.settle(self._settled)
                self._settled = []
