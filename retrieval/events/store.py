"""The raw event store: logs, spans, metrics and log templates in one DuckDB file.

Appends come as Arrow tables in the row contract (`core.telemetry.ARROW_SCHEMAS`; the event id is
described in `retrieval.events.schema`). Exact repeats are stored once: a batch is de-duplicated in
Arrow, then checked against the stored rows of its own time range only (the id hashes the
timestamp), so no global unique index slows inserts down. Template bookkeeping lives in
`retrieval.events.templates`, aggregations in `retrieval.events.aggregates`; the JSON documents and
key-value state kept in the same file are reached as `store.docs` and `store.kv`. Thread-safe.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import InvalidInput
from core.telemetry import ARROW_SCHEMAS, KINDS, TIME_COLUMN, Kind
from core.timeutil import iso
from retrieval.events.aggregates import Aggregations
from retrieval.events.db import Database
from retrieval.events.docs import DocStore, DuckDocStore
from retrieval.events.keyword import KeywordSearch
from retrieval.events.kv import DuckKeyValueStore, KeyValueStore
from retrieval.events.owed import OwedLedger
from retrieval.events.query import (
    LogPage,
    LogQuery,
    decode_cursor,
    in_clause,
    keyset_clause,
    log_page,
    page_probe,
    where_clause,
)
from retrieval.events.readonly_sql import run_read_only
from retrieval.events.retention import Retention
from retrieval.events.schema import LOG_SELECT, SPAN_SELECT, json_or_text, normalize
from retrieval.events.templates import TemplateTables

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppendResult:
    inserted: int
    duplicates: int


class EventStore(TemplateTables, Aggregations, Retention, KeywordSearch):
    """DuckDB event store. `path=None` keeps everything in memory."""

    atomic_batches = True
    """`transaction()` commits or rolls back all its writes (ClickHouse's store: False)."""

    def __init__(self, path: Path | None, *, trace_index: bool = True, sql_timeout_s: float = 30.0) -> None:
        self.path = path
        self.sql_timeout_s = sql_timeout_s
        self._db = Database(path, trace_index=trace_index)
        self.docs: DocStore = DuckDocStore(self._db)
        """Incidents, explanations and detection runs, as JSON documents."""
        self.kv: KeyValueStore = DuckKeyValueStore(self._db)
        """Small state: the template miner's, the detection schedule's marker."""
        self.owed = OwedLedger(self._db)
        """Graph work that stored batches still need (`retrieval.events.owed`)."""

    @property
    def schema_version(self) -> int:
        row = self._db.one("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(row[0])

    def close(self) -> None:
        """Release the file; everything appended is kept for the next open."""
        self._db.close()

    def checkpoint(self) -> None:
        """Write the WAL into the main file."""
        with self._db.write() as cur:
            cur.execute("CHECKPOINT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes (events, templates, documents, kv) into one commit; other writers wait until it ends."""
        with self._db.transaction():
            yield

    # -- appends -------------------------------------------------------------------------------

    def append_logs(self, table: pa.Table) -> AppendResult:
        return self._append("logs", table)

    def append_spans(self, table: pa.Table) -> AppendResult:
        return self._append("spans", table)

    def append_metrics(self, table: pa.Table) -> AppendResult:
        return self._append("metrics", table)

    def _append(self, kind: Kind, table: pa.Table) -> AppendResult:
        batch = normalize(kind, table)
        total = batch.num_rows
        if total == 0:
            return AppendResult(0, 0)
        batch = _sorted_by(_first_of_each_id(batch), TIME_COLUMN[kind])
        tcol = TIME_COLUMN[kind]
        lo, hi = (v.as_py() for v in pc.min_max(batch[tcol]).values())
        with self._db.write() as cur:
            cur.register("_batch", batch)
            try:
                stored = cur.execute(
                    f"SELECT event_id FROM {kind} WHERE {tcol} BETWEEN ? AND ?"
                    " AND event_id IN (SELECT event_id FROM _batch)",
                    [lo, hi],
                ).fetchnumpy()["event_id"]
                if len(stored):
                    batch = batch.filter(pc.invert(pc.is_in(batch["event_id"], value_set=pa.array(stored))))
                    cur.unregister("_batch")
                    cur.register("_batch", batch)
                if batch.num_rows:
                    cur.execute(f"INSERT INTO {kind} SELECT * FROM _batch")
            finally:
                cur.unregister("_batch")
        result = AppendResult(inserted=batch.num_rows, duplicates=total - batch.num_rows)
        log.debug("appended", extra={"kind": kind, **asdict(result)})
        return result

    # -- log queries ---------------------------------------------------------------------------

    def query_logs(self, q: LogQuery) -> LogPage:
        """One page of log lines, keyset-paginated on (ts_ns, event_id) in the query's order.

        A page of a wide time range is looked for first in the `PAGE_PROBE_S` seconds nearest where the page
        starts (the end of the range, newest first; its start, oldest first): when that slice holds more than a
        page, those are the page, read from the row groups of one slice instead of the whole range's (their
        time zone maps skip the rest). Otherwise the whole range is read."""
        after = decode_cursor(q)
        probe = page_probe(q, after)
        columns, rows = (
            self._page(q.model_copy(update={"start_ns": probe[0], "end_ns": probe[1]}), after) if probe else ([], [])
        )
        if len(rows) <= q.limit:
            columns, rows = self._page(q, after)
        return log_page(q, columns, rows)

    def _page(self, q: LogQuery, after: tuple[int, int] | None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """At most `q.limit + 1` rows under `q`'s filters after the cursor position `after`, in its order."""
        clauses, params = where_clause(q, skip_trace=True)
        if after is not None:
            clauses.append(keyset_clause(q, after, params))
        direction = "ASC" if q.order == "asc" else "DESC"
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        source = "logs"
        if q.trace_id is not None:
            # A bare `trace_id = ?` scan, materialized, lets DuckDB use the ART index; with the
            # other filters or a top-N in the same scan it would read the whole table.
            source = "(WITH t AS MATERIALIZED (SELECT * FROM logs WHERE trace_id = ?) SELECT * FROM t)"
            params.insert(0, q.trace_id)
        return self._db.all(
            f"SELECT {LOG_SELECT} FROM {source} {where} ORDER BY ts_ns {direction}, event_id {direction} LIMIT ?",
            [*params, q.limit + 1],
        )

    def trace_spans(self, trace_id: str) -> list[dict[str, Any]]:
        """All stored spans of a trace, by start time."""
        columns, rows = self._db.all(
            f"SELECT {SPAN_SELECT} FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", [trace_id]
        )
        out = []
        for r in rows:
            span = dict(zip(columns, r, strict=True))
            span["start"] = iso(span["start_ns"])
            span["attributes"] = json_or_text(span["attributes"])
            out.append(span)
        return out

    def stats(self) -> dict[str, Any]:
        """Rows and time range per table, templates, schema version and file size."""
        tables: dict[str, Any] = {}
        for kind in KINDS:
            tcol = TIME_COLUMN[kind]
            n, lo, hi = self._db.one(f"SELECT count(*), min({tcol}), max({tcol}) FROM {kind}")
            tables[kind] = {"rows": n, "min_ns": lo, "max_ns": hi}
        n_tpl, n_unembedded = self._db.one("SELECT count(*), count(*) FILTER (WHERE NOT embedded) FROM templates")
        out: dict[str, Any] = {
            "path": str(self.path) if self.path else None,
            "schema_version": self.schema_version,
            "tables": tables,
            "templates": {"rows": n_tpl, "unembedded": n_unembedded},
        }
        if self.path is not None:
            wal = self.path.with_name(self.path.name + ".wal")
            out["file_bytes"] = self.path.stat().st_size if self.path.exists() else 0
            out["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
        return out

    # -- read-only SQL -------------------------------------------------------------------------

    def sql(self, statement: str, *, limit: int = 1000) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read-only SELECT; raises ReadOnlyViolation for anything that could write or read files."""
        with self._db.read() as cur:  # a cursor of the connection (and no swap by a compaction meanwhile)
            return run_read_only(cur, statement, limit=limit, timeout_s=self.sql_timeout_s)

    # -- windows as Arrow (root-cause analysis) ------------------------------------------------

    def fetch(
        self,
        kind: Kind,
        start_ns: int,
        end_ns: int,
        *,
        columns: Sequence[str] | None = None,
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> pa.Table:
        """Rows of `kind` whose time column is in [start_ns, end_ns), ordered by time, as an Arrow table."""
        return self.fetch_ranges(kind, [(start_ns, end_ns)], columns=columns, where=where)

    def fetch_ranges(
        self,
        kind: Kind,
        ranges: Sequence[tuple[int, int]],
        *,
        columns: Sequence[str] | None = None,
        where: Mapping[str, str | Sequence[str]] | None = None,
    ) -> pa.Table:
        """Rows of `kind` in any of the [start_ns, end_ns) `ranges`, ordered by time, as one Arrow table.

        `columns` (default all) and the keys of `where` (column -> value or values) must be columns of
        the table; values are passed as parameters.
        """
        if kind not in KINDS:
            raise InvalidInput(f"unknown event kind {kind!r}; use one of {', '.join(KINDS)}", field="kind")
        names = ARROW_SCHEMAS[kind].names
        cols = list(columns) if columns is not None else list(names)
        bad = [c for c in [*cols, *(where or {})] if c not in names]
        if bad:
            raise InvalidInput(f"{kind} has no column {', '.join(map(repr, bad))}", field="columns")
        spans = [(int(a), int(b)) for a, b in ranges if int(b) > int(a)]
        if not spans or not cols:
            empty = pa.schema([ARROW_SCHEMAS[kind].field(c) for c in cols])
            return empty.empty_table()
        tcol = TIME_COLUMN[kind]
        params: list[Any] = []
        parts = []
        for a, b in spans:
            parts.append(f"({tcol} >= ? AND {tcol} < ?)")
            params += [a, b]
        clauses = [f"({' OR '.join(parts)})"]
        for column, value in (where or {}).items():
            clauses.append(in_clause(column, [value] if isinstance(value, str) else list(value), params))
        sql = f"SELECT {', '.join(cols)} FROM {kind} WHERE {' AND '.join(clauses)} ORDER BY {tcol}"
        with self._db.read() as cur:
            return cur.sql(sql, params=params).to_arrow_table()


def _first_of_each_id(batch: pa.Table) -> pa.Table:
    ids = batch["event_id"].to_numpy()
    _, first = np.unique(ids, return_index=True)
    if len(first) == len(ids):
        return batch
    return batch.take(np.sort(first))


def _sorted_by(batch: pa.Table, column: str) -> pa.Table:
    ts = batch[column].to_numpy()
    if len(ts) < 2 or bool(np.all(ts[1:] >= ts[:-1])):
        return batch
    return batch.take(pc.sort_indices(batch[column]))
