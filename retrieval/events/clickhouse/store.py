"""The raw event store on ClickHouse: the same methods and answers as the DuckDB `EventStore` for
appends, log pages, trace spans, Arrow windows, stats and read-only SQL; templates and aggregations
are mixed in from `templates` and `aggregates`, documents and key-value state are `store.docs` and
`store.kv`.

Appends are bulk Arrow inserts. Exact repeats are stored once, as in DuckDB: a batch is
de-duplicated in Arrow, then against the event ids stored in its own time range, and the insert
carries a dedup token made of its event ids, so the server drops the same block sent again (a retry,
or the same batch from two processes at the same moment). ClickHouse has no multi-statement
transactions: `atomic_batches` is False, and the pipeline repeats a batch's other writes when the
batch comes again (see docs/scaling.md, "Acknowledged means stored once"). The owed ledger is
`store.owed`; pruning, footprint and the backup refusal are mixed in from `retention`, the keyword
search of the search fallback from `keyword`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from core.errors import EngineUnavailable, InvalidInput
from core.telemetry import ARROW_SCHEMAS, KINDS, TIME_COLUMN, Kind
from core.timeutil import iso
from retrieval.events.clickhouse.aggregates import ClickHouseAggregations
from retrieval.events.clickhouse.binder import Binder, keyset, log_where
from retrieval.events.clickhouse.connection import Connection
from retrieval.events.clickhouse.keyword import ClickHouseKeywordSearch
from retrieval.events.clickhouse.owed import ClickHouseOwedLedger
from retrieval.events.clickhouse.readonly import run_read_only
from retrieval.events.clickhouse.retention import ClickHouseRetention
from retrieval.events.clickhouse.schema import SCHEMA_VERSION, ddl
from retrieval.events.clickhouse.state import ClickHouseDocStore, ClickHouseKeyValueStore, Versions
from retrieval.events.clickhouse.templates import ClickHouseTemplates
from retrieval.events.query import LogPage, LogQuery, decode_cursor, log_page
from retrieval.events.schema import LOG_SELECT, SPAN_SELECT, json_or_text, normalize
from retrieval.events.store import AppendResult, _first_of_each_id, _sorted_by

log = logging.getLogger(__name__)


class ClickHouseEventStore(ClickHouseTemplates, ClickHouseAggregations, ClickHouseRetention, ClickHouseKeywordSearch):
    """Event store on a ClickHouse connection (a server, or chDB in-process)."""

    atomic_batches = False
    """`transaction()` cannot roll back: a batch's writes are made idempotent instead."""

    def __init__(
        self, conn: Connection, *, ttl_days: dict[Kind, int | None] | None = None, sql_timeout_s: float = 30.0
    ) -> None:
        self._conn = conn
        self.path = None
        self.where = conn.where
        self.sql_timeout_s = sql_timeout_s
        self._write_lock = threading.RLock()
        self._closed = False
        self._versions = Versions()
        for stmt in ddl(ttl_days):
            conn.command(stmt)
        stored = self._one("SELECT value FROM meta FINAL WHERE key = 'schema_version'")
        if stored is None:
            conn.command("INSERT INTO meta VALUES ('schema_version', {v:String})", {"v": str(SCHEMA_VERSION)})
        elif int(stored[0]) > SCHEMA_VERSION:
            raise EngineUnavailable(
                f"the event store was written by a newer DevMesh (schema {stored[0]} > {SCHEMA_VERSION});"
                " upgrade DevMesh"
            )
        self.docs = ClickHouseDocStore(self)
        """Incidents, explanations and detection runs, as JSON documents."""
        self.kv = ClickHouseKeyValueStore(self)
        """Small state: the template miner's, the detection schedule's marker."""
        self.owed = ClickHouseOwedLedger(self)
        """Graph work that stored batches still need (`retrieval.events.clickhouse.owed`)."""
        log.info("event store open", extra={"where": self.where})

    # -- plumbing shared by the mixins ---------------------------------------------------------

    def _table(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        if self._closed:
            raise EngineUnavailable("the event store is closed")
        return self._conn.query(sql, params)

    def _rows(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        t = self._table(sql, params)
        return t.column_names, list(zip(*(c.to_pylist() for c in t.columns), strict=True))

    def _one(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        _, rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _insert(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        if self._closed:
            raise EngineUnavailable("the event store is closed")
        self._conn.insert(table, data, dedup_token=dedup_token)

    def _command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        if self._closed:
            raise EngineUnavailable("the event store is closed")
        self._conn.command(sql, params)

    @property
    def schema_version(self) -> int:
        row = self._one("SELECT value FROM meta FINAL WHERE key = 'schema_version'")
        return int(row[0]) if row else SCHEMA_VERSION

    def close(self) -> None:
        """Release the connection; everything appended is kept."""
        with self._write_lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def checkpoint(self) -> None:
        """Nothing to do: ClickHouse writes each insert as a part."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Serializes this process's writes; ClickHouse has no rollback, so writes before an error stay."""
        with self._write_lock:
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
        tcol = TIME_COLUMN[kind]
        batch = _sorted_by(_first_of_each_id(batch), tcol)
        lo, hi = (v.as_py() for v in pc.min_max(batch[tcol]).values())
        with self._write_lock:
            # the ids stored in the batch's time range (few unless the batch repeats stored rows)
            stored = self._table(
                f"SELECT event_id FROM {kind} WHERE {tcol} BETWEEN {{lo:Int64}} AND {{hi:Int64}}", {"lo": lo, "hi": hi}
            )["event_id"]
            if len(stored):
                batch = batch.filter(pc.invert(pc.is_in(batch["event_id"], value_set=stored.combine_chunks())))
            if batch.num_rows:
                self._insert(kind, batch, dedup_token=dedup_token(batch))
        result = AppendResult(inserted=batch.num_rows, duplicates=total - batch.num_rows)
        log.debug("appended", extra={"kind": kind, "inserted": result.inserted, "duplicates": result.duplicates})
        return result

    # -- log queries ---------------------------------------------------------------------------

    def query_logs(self, q: LogQuery) -> LogPage:
        """One page of log lines, keyset-paginated on (ts_ns, event_id) in the query's order."""
        after = decode_cursor(q)
        b = Binder()
        clauses = log_where(q, b)
        if after is not None:
            clauses.append(keyset(q, after, b))
        direction = "ASC" if q.order == "asc" else "DESC"
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        columns, rows = self._rows(
            f"SELECT {LOG_SELECT} FROM logs {where} ORDER BY ts_ns {direction}, event_id {direction}"
            f" LIMIT {b.bind(q.limit + 1, 'UInt64')}",
            b.params,
        )
        return log_page(q, columns, rows)

    def trace_spans(self, trace_id: str) -> list[dict[str, Any]]:
        """All stored spans of a trace, by start time."""
        columns, rows = self._rows(
            f"SELECT {SPAN_SELECT} FROM spans WHERE trace_id = {{t:String}} ORDER BY start_ns, span_id", {"t": trace_id}
        )
        out = []
        for r in rows:
            span = dict(zip(columns, r, strict=True))
            span["start"] = iso(span["start_ns"])
            span["attributes"] = json_or_text(span["attributes"])
            out.append(span)
        return out

    def stats(self) -> dict[str, Any]:
        """Rows and time range per table, templates, schema version and bytes on disk."""
        tables: dict[str, Any] = {}
        for kind in KINDS:
            tcol = TIME_COLUMN[kind]
            n, lo, hi = self._one(f"SELECT count(), minOrNull({tcol}), maxOrNull({tcol}) FROM {kind}") or (
                0,
                None,
                None,
            )
            tables[kind] = {"rows": n, "min_ns": lo, "max_ns": hi}
        n_tpl, n_unembedded = self._one("SELECT count(), countIf(NOT embedded) FROM templates FINAL") or (0, 0)
        return {
            "path": None,
            "where": self.where,
            "schema_version": self.schema_version,
            "tables": tables,
            "templates": {"rows": n_tpl, "unembedded": n_unembedded},
            "file_bytes": self.table_bytes_total(),
        }

    def table_bytes(self) -> dict[str, int]:
        """Compressed bytes of the active parts of each table of this database."""
        _, rows = self._rows(
            "SELECT table, sum(bytes_on_disk) FROM system.parts WHERE active AND database = currentDatabase()"
            " GROUP BY table"
        )
        return {str(t): int(n) for t, n in rows}

    def table_bytes_total(self) -> int:
        return sum(self.table_bytes().values())

    # -- read-only SQL -------------------------------------------------------------------------

    def sql(self, statement: str, *, limit: int = 1000) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read-only SELECT; raises ReadOnlyViolation for anything that could write or read files."""
        if self._closed:
            raise EngineUnavailable("the event store is closed")
        return run_read_only(self._conn, statement, limit=limit, timeout_s=self.sql_timeout_s)

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
        """Rows of `kind` in any of the [start_ns, end_ns) `ranges`, ordered by time, as one Arrow table."""
        if kind not in KINDS:
            raise InvalidInput(f"unknown event kind {kind!r}; use one of {', '.join(KINDS)}", field="kind")
        names = ARROW_SCHEMAS[kind].names
        cols = list(columns) if columns is not None else list(names)
        bad = [c for c in [*cols, *(where or {})] if c not in names]
        if bad:
            raise InvalidInput(f"{kind} has no column {', '.join(map(repr, bad))}", field="columns")
        schema = pa.schema([ARROW_SCHEMAS[kind].field(c) for c in cols])
        spans = [(int(a), int(b)) for a, b in ranges if int(b) > int(a)]
        if not spans or not cols:
            return schema.empty_table()
        tcol = TIME_COLUMN[kind]
        b = Binder()
        parts = [f"({tcol} >= {b.int(a)} AND {tcol} < {b.int(z)})" for a, z in spans]
        clauses = [f"({' OR '.join(parts)})"]
        for column, value in (where or {}).items():
            clauses.append(b.one_of(column, [value] if isinstance(value, str) else list(value)))
        table = self._table(
            f"SELECT {', '.join(cols)} FROM {kind} WHERE {' AND '.join(clauses)} ORDER BY {tcol}", b.params
        )
        return table.cast(schema) if table.num_rows else schema.empty_table()


def dedup_token(batch: pa.Table) -> str:
    """The insert's dedup token: a digest of its event ids, in order (the same rows give the same token)."""
    return hashlib.blake2b(batch["event_id"].combine_chunks().to_numpy().tobytes(), digest_size=16).hexdigest()
