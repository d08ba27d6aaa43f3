"""The raw event store: logs, spans, metrics and log templates in one DuckDB file.

Appends come as Arrow tables (see `retrieval/eventstore_schema.py` for the columns and the event
id). Exact repeats are stored once: a batch is de-duplicated in Arrow, then checked against the
stored rows of its own time range only (the id hashes the timestamp), so no global unique index
slows inserts down. Reads run on a fresh cursor each; writes hold one lock. Thread-safe.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import EngineUnavailable, InvalidInput
from core.timeutil import NS, iso, now_ns
from retrieval.eventstore_schema import (
    ARROW_SCHEMAS,
    KINDS,
    SCHEMA_VERSION,
    TIME_COLUMN,
    Kind,
    ddl,
    normalize,
)
from retrieval.logquery import (
    LogPage,
    LogQuery,
    decode_cursor,
    encode_cursor,
    in_clause,
    keyset_clause,
    levels_at_least,
    where_clause,
)
from retrieval.readonly_sql import run_read_only

log = logging.getLogger(__name__)

# Columns that count_by may group or filter on (identifiers are only ever taken from here).
GROUPABLE: dict[Kind, frozenset[str]] = {
    "logs": frozenset(
        {"source", "service", "host", "pod", "level", "trace_id", "event_type", "error_code", "template_id"}
    ),
    "spans": frozenset({"trace_id", "service", "pod", "host", "operation", "status", "kind", "parent_id"}),
    "metrics": frozenset({"name", "service", "pod", "host"}),
}
_LOG_COLUMNS = ", ".join(ARROW_SCHEMAS["logs"].names)
_SPAN_COLUMNS = ", ".join(ARROW_SCHEMAS["spans"].names)


@dataclass(frozen=True)
class AppendResult:
    inserted: int
    duplicates: int


@dataclass(frozen=True)
class TemplateDelta:
    """Lines newly seen for a template: `count` is added to the stored count."""

    template_id: str
    text: str
    count: int = 1
    first_ns: int = 0
    last_ns: int = 0
    level: str = ""


@dataclass(frozen=True)
class StoredTemplate:
    template_id: str
    text: str
    count: int
    first_ns: int
    last_ns: int
    level: str
    embedded: bool


@dataclass(frozen=True)
class TemplateCount:
    template_id: str
    service: str
    count: int
    first_ns: int
    last_ns: int


@dataclass(frozen=True)
class BucketCount:
    bucket_ns: int
    service: str
    count: int


@dataclass(frozen=True)
class SpanStat:
    service: str
    operation: str
    count: int
    errors: int
    mean_ms: float
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class EdgeStat:
    caller: str
    callee: str
    calls: int
    errors: int
    mean_ms: float
    p50_ms: float
    p95_ms: float


class EventStore:
    """DuckDB event store. `path=None` keeps everything in memory."""

    def __init__(self, path: Path | None, *, trace_index: bool = True, sql_timeout_s: float = 30.0) -> None:
        self.path = path
        self.sql_timeout_s = sql_timeout_s
        self._lock = threading.RLock()  # re-entrant: writes inside `transaction()` take it again
        self._example_writes = 0
        self._closed = False
        config: dict[str, str | bool | int | float | list[str]] = {"enable_external_access": False}
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = duckdb.connect(str(path) if path else ":memory:", config=config)
        except duckdb.Error as exc:
            raise EngineUnavailable(
                f"cannot open the event store at {path}: {exc}; if another devmesh process holds it, "
                "stop that process or use its API"
            ) from exc
        self._writer = self._conn.cursor()
        self._init_schema(trace_index)
        log.info("event store open", extra={"path": str(path) if path else ":memory:"})

    def _init_schema(self, trace_index: bool) -> None:
        cur = self._writer
        cur.execute("BEGIN TRANSACTION")
        for stmt in ddl(trace_index=trace_index):
            cur.execute(stmt)
        row = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            cur.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        cur.execute("COMMIT")
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            self.close()
            raise EngineUnavailable(
                f"the event store was written by a newer DevMesh (schema {row[0]} > {SCHEMA_VERSION}); upgrade DevMesh"
            )

    @property
    def schema_version(self) -> int:
        row = self._one("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(row[0])

    def close(self) -> None:
        """Release the file; everything appended is kept for the next open."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._writer.close()
            self._conn.close()

    def checkpoint(self) -> None:
        """Write the WAL into the main file."""
        with self._write() as cur:
            cur.execute("CHECKPOINT")

    # -- cursors -------------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._closed:
            raise EngineUnavailable("the event store is closed")
        cur = self._conn.cursor()
        try:
            yield cur
        finally:
            cur.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit (all or nothing); other writers wait until it ends."""
        with self._lock:
            if self._closed:
                raise EngineUnavailable("the event store is closed")
            self._writer.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            if self._closed:
                raise EngineUnavailable("the event store is closed")
            yield self._writer

    def _all(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._read() as cur:
            cur.execute(sql, list(params))
            columns = [d[0] for d in cur.description or []]
            return columns, cur.fetchall()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        _, rows = self._all(sql, params)
        return rows[0]

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
        with self._write() as cur:
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

    # -- templates and small state --------------------------------------------------------------

    def upsert_templates(self, rows: Iterable[TemplateDelta | Mapping[str, Any]]) -> int:
        """Add templates or update them (count added, first/last widened); returns ids touched.

        A template whose text changes is marked not embedded again.
        """
        merged: dict[str, TemplateDelta] = {}
        for raw in rows:
            d = raw if isinstance(raw, TemplateDelta) else _template_delta(raw)
            if not d.template_id:
                raise InvalidInput("a template needs a non-empty template_id", field="template_id")
            old = merged.get(d.template_id)
            if old is not None:
                firsts = [x for x in (old.first_ns, d.first_ns) if x]
                d = TemplateDelta(
                    d.template_id,
                    d.text,
                    old.count + d.count,
                    min(firsts) if firsts else 0,
                    max(old.last_ns, d.last_ns),
                    d.level or old.level,
                )
            merged[d.template_id] = d
        if not merged:
            return 0
        table = pa.Table.from_pylist([asdict(d) for d in merged.values()])
        with self._write() as cur:
            cur.register("_tpl", table)
            try:
                cur.execute(
                    "INSERT INTO templates SELECT template_id, text, count, first_ns, last_ns, level, false"
                    " FROM _tpl ON CONFLICT (template_id) DO UPDATE SET"
                    " count = templates.count + excluded.count,"
                    " first_ns = CASE WHEN templates.first_ns = 0 THEN excluded.first_ns"
                    "   WHEN excluded.first_ns = 0 THEN templates.first_ns"
                    "   ELSE least(templates.first_ns, excluded.first_ns) END,"
                    " last_ns = greatest(templates.last_ns, excluded.last_ns),"
                    " level = CASE WHEN excluded.level = '' THEN templates.level ELSE excluded.level END,"
                    " embedded = templates.embedded AND templates.text = excluded.text,"
                    " text = excluded.text"
                )
            finally:
                cur.unregister("_tpl")
        return len(merged)

    def templates(self, ids: Sequence[str] | None = None) -> list[StoredTemplate]:
        """Stored templates (all, or those with the given ids), most frequent first."""
        params: list[Any] = []
        where = f"WHERE {in_clause('template_id', list(ids), params)}" if ids is not None else ""
        _, rows = self._all(
            "SELECT template_id, text, count, first_ns, last_ns, level, embedded FROM templates"
            f" {where} ORDER BY count DESC, template_id",
            params,
        )
        return [StoredTemplate(*r) for r in rows]

    def mark_embedded(self, ids: Sequence[str]) -> int:
        """Record that these templates' vectors are stored; returns how many were found."""
        if not ids:
            return 0
        params: list[Any] = []
        cond = in_clause("template_id", list(ids), params)
        with self._write() as cur:
            row = cur.execute(f"UPDATE templates SET embedded = true WHERE {cond}", params).fetchone()
        return int(row[0]) if row else 0

    def unembedded_templates(self, limit: int = 1000) -> list[StoredTemplate]:
        """Templates still to embed, most frequent first: call, embed, mark_embedded, repeat."""
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        _, rows = self._all(
            "SELECT template_id, text, count, first_ns, last_ns, level, embedded FROM templates"
            " WHERE NOT embedded ORDER BY count DESC, template_id LIMIT ?",
            [limit],
        )
        return [StoredTemplate(*r) for r in rows]

    def recount_templates(self, ids: Sequence[str]) -> None:
        """Set these templates' count and first/last time from the stored lines (after de-duplication)."""
        if not ids:
            return
        params: list[Any] = []
        cond = in_clause("template_id", list(ids), params)
        with self._write() as cur:
            cur.execute(
                "UPDATE templates SET count = s.n, first_ns = s.lo, last_ns = s.hi FROM"
                " (SELECT template_id AS tid, count(*) AS n, min(ts_ns) AS lo, max(ts_ns) AS hi FROM logs"
                f" WHERE {cond} GROUP BY template_id) AS s WHERE templates.template_id = s.tid",
                params,
            )

    def top_templates(
        self, *, min_level: str = "WARN", limit: int = 10, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[dict[str, Any]]:
        """Most frequent templates among lines at `min_level` or above, with their services."""
        params: list[Any] = []
        clauses = [in_clause("l.level", levels_at_least(min_level), params)]
        if start_ns is not None:
            clauses.append("l.ts_ns >= ?")
            params.append(start_ns)
        if end_ns is not None:
            clauses.append("l.ts_ns < ?")
            params.append(end_ns)
        _, rows = self._all(
            "SELECT l.template_id, t.text, max(l.level), count(*) AS n, list(DISTINCT l.service ORDER BY l.service)"
            " FROM logs l JOIN templates t ON t.template_id = l.template_id"
            f" WHERE {' AND '.join(clauses)} GROUP BY l.template_id, t.text ORDER BY n DESC, l.template_id LIMIT ?",
            [*params, limit],
        )
        return [{"template_id": r[0], "text": r[1], "level": r[2], "count": r[3], "services": list(r[4])} for r in rows]

    def remember_examples(self, table: pa.Table, *, keep: int = 3) -> None:
        """Keep the newest `keep` lines of each template in `table` (logs with template_id) as examples."""
        if table.num_rows == 0 or "template_id" not in table.column_names:
            return
        batch = normalize("logs", table)
        tids = batch["template_id"].to_pylist()
        seen: dict[str, int] = {}
        newest: list[int] = []
        for i in np.argsort(-batch["ts_ns"].to_numpy(), kind="stable").tolist():
            n = seen.get(tids[i], 0)
            if n < keep and tids[i]:
                newest.append(i)
                seen[tids[i]] = n + 1
        batch = batch.take(pa.array(newest, pa.int64()))
        with self._write() as cur:
            cur.register("_ex", batch)
            try:
                cur.execute(
                    "INSERT INTO template_examples SELECT * FROM _ex WHERE event_id NOT IN"
                    " (SELECT event_id FROM template_examples WHERE template_id IN (SELECT template_id FROM _ex))"
                )
                self._example_writes += 1
                if self._example_writes % 64 == 0:  # older examples are only trimmed now and then
                    cur.execute(
                        "DELETE FROM template_examples WHERE rowid NOT IN (SELECT rowid FROM template_examples"
                        " QUALIFY row_number() OVER (PARTITION BY template_id ORDER BY ts_ns DESC, event_id DESC)"
                        " <= ?)",
                        [keep * 4],
                    )
            finally:
                cur.unregister("_ex")

    def cached_examples(self, template_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Examples kept by `remember_examples`, newest first."""
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in template_ids}
        if not template_ids:
            return out
        params: list[Any] = []
        cond = in_clause("template_id", list(template_ids), params)
        columns, rows = self._all(
            f"SELECT {_LOG_COLUMNS} FROM template_examples WHERE {cond} ORDER BY template_id, ts_ns DESC", params
        )
        for r in rows:
            event = _log_dict(columns, r)
            out[event["template_id"]].append(event)
        return out

    def latest_examples(
        self, q: LogQuery, template_ids: Sequence[str], per_template: int = 3, *, slices_s: Sequence[int] = (60, 3600)
    ) -> dict[str, list[dict[str, Any]]]:
        """The newest `per_template` lines of each template among the lines matching `q`'s filters.

        Looks first in short slices of time before each template's last line (or the filter's end), so that
        the time zone maps keep it from scanning every row; templates with no match there are looked up over
        the whole filter range.
        """
        if not template_ids:
            return {}
        last = {t.template_id: t.last_ns for t in self.templates(list(template_ids))}
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in template_ids}
        missing = [t for t in template_ids if t in last]
        for slice_s in (*slices_s, None):
            if not missing:
                break
            parts: list[str] = []
            params: list[Any] = []
            for tid in missing:
                sub = q.model_copy(update={"template_id": [tid], "cursor": None})
                if slice_s is not None:
                    end = min(q.end_ns, last[tid] + 1) if q.end_ns is not None else last[tid] + 1
                    lo = end - slice_s * NS
                    start = max(q.start_ns, lo) if q.start_ns is not None else lo
                    sub = sub.model_copy(update={"start_ns": start, "end_ns": end})
                clauses, sub_params = where_clause(sub)
                parts.append(
                    f"(SELECT {_LOG_COLUMNS} FROM logs WHERE {' AND '.join(clauses)}"
                    " ORDER BY ts_ns DESC, event_id DESC LIMIT ?)"
                )
                params += [*sub_params, per_template]
            columns, rows = self._all(" UNION ALL ".join(parts), params)
            for r in rows:
                event = _log_dict(columns, r)
                out[event["template_id"]].append(event)
            missing = [t for t in missing if len(out[t]) < per_template]
            for t in missing:
                out[t] = []
        for events in out.values():
            events.sort(key=lambda e: (-e["ts_ns"], -e["event_id"]))
        return out

    def put_doc(
        self,
        collection: str,
        doc_id: str,
        body: Mapping[str, Any],
        *,
        time_ns: int,
        status: str = "",
        service: str = "",
    ) -> None:
        """Store (or replace) one JSON document: an incident, an explanation, a detection run."""
        with self._write() as cur:
            cur.execute(
                "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (collection, id) DO UPDATE SET"
                " time_ns = excluded.time_ns, status = excluded.status, service = excluded.service,"
                " body = excluded.body, updated_ns = excluded.updated_ns",
                [collection, doc_id, time_ns, status, service, json.dumps(body, default=str), now_ns()],
            )

    def get_doc(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        _, rows = self._all("SELECT body FROM docs WHERE collection = ? AND id = ?", [collection, doc_id])
        return json.loads(rows[0][0]) if rows else None

    def delete_docs(self, collection: str) -> int:
        """Remove every document of a collection (a replay starting from a clean slate); returns how many."""
        with self._write() as cur:
            cur.execute("DELETE FROM docs WHERE collection = ? RETURNING id", [collection])
            return len(cur.fetchall())

    def list_docs(
        self,
        collection: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        status: str | None = None,
        service: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Documents of a collection, newest first, by time window, status and service."""
        clauses: list[str] = ["collection = ?"]
        params: list[Any] = [collection]
        for cond, value in (
            ("time_ns >= ?", start_ns),
            ("time_ns < ?", end_ns),
            ("status = ?", status),
            ("service = ?", service),
        ):
            if value is not None:
                clauses.append(cond)
                params.append(value)
        _, rows = self._all(
            f"SELECT body FROM docs WHERE {' AND '.join(clauses)} ORDER BY time_ns DESC, id LIMIT ?", [*params, limit]
        )
        return [json.loads(r[0]) for r in rows]

    def metric_means(
        self, start_ns: int, end_ns: int, *, pods: Sequence[str] | None = None
    ) -> dict[tuple[str, str], float]:
        """Mean of each (pod, metric name) in [start_ns, end_ns)."""
        params: list[Any] = [start_ns, end_ns]
        cond = f" AND {in_clause('pod', list(pods), params)}" if pods is not None else ""
        _, rows = self._all(
            f"SELECT pod, name, avg(value) FROM metrics WHERE ts_ns >= ? AND ts_ns < ?{cond} GROUP BY pod, name",
            params,
        )
        return {(r[0], r[1]): float(r[2]) for r in rows if r[2] is not None}

    def kv_get(self, key: str, default: Any = None) -> Any:
        _, rows = self._all("SELECT value FROM kv WHERE key = ?", [key])
        return json.loads(rows[0][0]) if rows else default

    def kv_set(self, key: str, value: Any) -> None:
        """Keep a small JSON-serializable value (miner state, run markers) under `key`."""
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"value for {key!r} is not JSON-serializable: {exc}", field="value") from exc
        with self._write() as cur:
            cur.execute(
                "INSERT INTO kv VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
                " SET value = excluded.value, updated_ns = excluded.updated_ns",
                [key, text, now_ns()],
            )

    # -- log queries ---------------------------------------------------------------------------

    def query_logs(self, q: LogQuery) -> LogPage:
        """One page of log lines, keyset-paginated on (ts_ns, event_id) in the query's order."""
        after = decode_cursor(q)
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
        columns, rows = self._all(
            f"SELECT {_LOG_COLUMNS} FROM {source} {where} ORDER BY ts_ns {direction}, event_id {direction} LIMIT ?",
            [*params, q.limit + 1],
        )
        events = [_log_dict(columns, r) for r in rows[: q.limit]]
        next_cursor = None
        if len(rows) > q.limit:
            last = events[-1]
            next_cursor = encode_cursor(q, last["ts_ns"], last["event_id"])
        return LogPage(events=events, next_cursor=next_cursor)

    def example_lines(
        self, template_ids: Sequence[str], start_ns: int, end_ns: int, per_template: int = 3
    ) -> dict[str, list[dict[str, Any]]]:
        """The first `per_template` lines of each template within [start_ns, end_ns)."""
        if not template_ids:
            return {}
        params: list[Any] = [start_ns, end_ns]
        cond = in_clause("template_id", list(template_ids), params)
        columns, rows = self._all(
            f"SELECT {_LOG_COLUMNS} FROM logs WHERE ts_ns >= ? AND ts_ns < ? AND {cond}"
            " QUALIFY row_number() OVER (PARTITION BY template_id ORDER BY ts_ns, event_id) <= ?"
            " ORDER BY template_id, ts_ns, event_id",
            [*params, per_template],
        )
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in template_ids}
        for r in rows:
            event = _log_dict(columns, r)
            out[event["template_id"]].append(event)
        return out

    def trace_spans(self, trace_id: str) -> list[dict[str, Any]]:
        """All stored spans of a trace, by start time."""
        columns, rows = self._all(
            f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", [trace_id]
        )
        out = []
        for r in rows:
            span = dict(zip(columns, r, strict=True))
            span["start"] = iso(span["start_ns"])
            span["attributes"] = _json_or_text(span["attributes"])
            out.append(span)
        return out

    # -- aggregations --------------------------------------------------------------------------

    def count_by(
        self,
        kind: Kind,
        group_by: Sequence[str],
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        where: LogQuery | Mapping[str, str | Sequence[str]] | None = None,
        bucket_s: int | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        """Row counts per group (and per time bucket of `bucket_s`, key `bucket_ns`), largest first.

        `where` is a LogQuery (logs only; its window, filters and level rules apply) or a mapping
        of column -> value or list of values. Empty buckets are not returned.
        """
        if kind not in KINDS:
            raise InvalidInput(f"unknown event kind {kind!r}; use one of {', '.join(KINDS)}", field="kind")
        allowed = GROUPABLE[kind]
        bad = [c for c in group_by if c not in allowed]
        if bad:
            raise InvalidInput(
                f"cannot group {kind} by {', '.join(bad)}; use any of {', '.join(sorted(allowed))}",
                field="group_by",
            )
        tcol = TIME_COLUMN[kind]
        clauses: list[str] = []
        params: list[Any] = []
        keys = list(group_by)
        select = list(group_by)
        if bucket_s is not None:
            if bucket_s < 1:
                raise InvalidInput("bucket_s must be at least 1", field="bucket_s")
            select.insert(0, f"({tcol} // ?) * ? AS bucket_ns")
            params += [bucket_s * NS, bucket_s * NS]
            keys.insert(0, "bucket_ns")
        if start_ns is not None:
            clauses.append(f"{tcol} >= ?")
            params.append(start_ns)
        if end_ns is not None:
            clauses.append(f"{tcol} < ?")
            params.append(end_ns)
        if isinstance(where, LogQuery):
            if kind != "logs":
                raise InvalidInput("a LogQuery filter applies to logs only", field="where")
            more, more_params = where_clause(where)
            clauses += more
            params += more_params
        elif where:
            for column, value in where.items():
                if column not in allowed:
                    raise InvalidInput(f"cannot filter {kind} on {column!r}", field="where")
                clauses.append(in_clause(column, [value] if isinstance(value, str) else list(value), params))
        where_sql = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        group_sql = f"GROUP BY {', '.join(keys)}" if keys else ""
        order = ", ".join(["count DESC", *keys]) if bucket_s is None else ", ".join([*keys, "count DESC"])
        columns, rows = self._all(
            f"SELECT {', '.join([*select, 'count(*) AS count'])} FROM {kind} {where_sql} {group_sql}"
            f" ORDER BY {order} LIMIT ?",
            [*params, limit],
        )
        return [dict(zip(columns, r, strict=True)) for r in rows]

    def template_counts(
        self, start_ns: int, end_ns: int, *, services: Sequence[str] | None = None
    ) -> list[TemplateCount]:
        """Lines per (template, service) in [start_ns, end_ns), most frequent first; untemplated skipped."""
        params: list[Any] = [start_ns, end_ns]
        cond = f" AND {in_clause('service', list(services), params)}" if services is not None else ""
        _, rows = self._all(
            "SELECT template_id, service, count(*) AS n, min(ts_ns), max(ts_ns) FROM logs"
            f" WHERE ts_ns >= ? AND ts_ns < ? AND template_id <> ''{cond}"
            " GROUP BY template_id, service ORDER BY n DESC, template_id, service",
            params,
        )
        return [TemplateCount(*r) for r in rows]

    def error_counts(
        self,
        start_ns: int,
        end_ns: int,
        *,
        bucket_s: int = 60,
        min_level: str = "ERROR",
        services: Sequence[str] | None = None,
    ) -> list[BucketCount]:
        """Lines at `min_level` or above per service per time bucket (buckets aligned to the epoch)."""
        if bucket_s < 1:
            raise InvalidInput("bucket_s must be at least 1", field="bucket_s")
        width = bucket_s * NS
        params: list[Any] = [width, width, start_ns, end_ns]
        cond = in_clause("level", levels_at_least(min_level), params)
        if services is not None:
            cond += f" AND {in_clause('service', list(services), params)}"
        _, rows = self._all(
            "SELECT (ts_ns // ?) * ? AS bucket_ns, service, count(*) FROM logs"
            f" WHERE ts_ns >= ? AND ts_ns < ? AND {cond}"
            " GROUP BY bucket_ns, service ORDER BY bucket_ns, service",
            params,
        )
        return [BucketCount(*r) for r in rows]

    def span_stats(self, start_ns: int, end_ns: int, *, services: Sequence[str] | None = None) -> list[SpanStat]:
        """Per (service, operation): spans starting in the window, errors, mean/p50/p95 duration."""
        params: list[Any] = [start_ns, end_ns]
        cond = f" AND {in_clause('service', list(services), params)}" if services is not None else ""
        _, rows = self._all(
            "SELECT service, operation, count(*), count(*) FILTER (WHERE status = 'ERROR'),"
            " avg(duration_us) / 1000, quantile_cont(duration_us, 0.5) / 1000,"
            " quantile_cont(duration_us, 0.95) / 1000"
            f" FROM spans WHERE start_ns >= ? AND start_ns < ?{cond}"
            " GROUP BY service, operation ORDER BY service, operation",
            params,
        )
        return [SpanStat(*r) for r in rows]

    def call_edges(self, start_ns: int, end_ns: int, *, parent_slack_s: int = 600) -> list[EdgeStat]:
        """Calls from one service to another: a span whose parent span belongs to another service.

        Counts the child spans starting in the window; errors and durations are the child's (the
        callee's view). Parents are looked for within `parent_slack_s` around the window.
        """
        slack = parent_slack_s * NS
        _, rows = self._all(
            "SELECT p.service AS caller, c.service AS callee, count(*) AS calls,"
            " count(*) FILTER (WHERE c.status = 'ERROR'), avg(c.duration_us) / 1000,"
            " quantile_cont(c.duration_us, 0.5) / 1000, quantile_cont(c.duration_us, 0.95) / 1000"
            " FROM spans c JOIN spans p ON p.trace_id = c.trace_id AND p.span_id = c.parent_id"
            " WHERE c.start_ns >= ? AND c.start_ns < ? AND p.start_ns >= ? AND p.start_ns < ?"
            " AND c.parent_id <> '' AND p.service <> c.service"
            " GROUP BY caller, callee ORDER BY caller, callee",
            [start_ns, end_ns, start_ns - slack, end_ns + slack],
        )
        return [EdgeStat(*r) for r in rows]

    def stats(self) -> dict[str, Any]:
        """Rows and time range per table, templates, schema version and file size."""
        tables: dict[str, Any] = {}
        for kind in KINDS:
            tcol = TIME_COLUMN[kind]
            n, lo, hi = self._one(f"SELECT count(*), min({tcol}), max({tcol}) FROM {kind}")
            tables[kind] = {"rows": n, "min_ns": lo, "max_ns": hi}
        n_tpl, n_unembedded = self._one("SELECT count(*), count(*) FILTER (WHERE NOT embedded) FROM templates")
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
        with self._read() as cur:
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


def _template_delta(row: Mapping[str, Any]) -> TemplateDelta:
    try:
        return TemplateDelta(
            template_id=str(row["template_id"]),
            text=str(row["text"]),
            count=int(row.get("count", 1)),
            first_ns=int(row.get("first_ns", 0) or 0),
            last_ns=int(row.get("last_ns", 0) or 0),
            level=str(row.get("level", "") or ""),
        )
    except KeyError as exc:
        raise InvalidInput(f"a template row needs {exc.args[0]!r}", field=str(exc.args[0])) from exc


def _json_or_text(text: str) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text


def _log_dict(columns: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    event = dict(zip(columns, row, strict=True))
    event["ts"] = iso(event["ts_ns"])
    event["meta"] = _json_or_text(event["meta"])
    return event
