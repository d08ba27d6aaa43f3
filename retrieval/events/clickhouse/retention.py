"""Retention, footprint and backups in the ClickHouse event store: the calls `devmesh prune`, the
schedule in `devmesh serve` and `devmesh info` make of the DuckDB store (`retrieval.events.retention`).

Pruning keeps DuckDB's promises: per-bucket sums go into `log_rollup`, `span_rollup` and
`metric_rollup` before raw rows are deleted (a lightweight DELETE), rows whose graph work is still
owed stay, and the newest pruned time of each kind is kept in the key-value state. Without a
transaction the rollup and the delete are two statements, so the cut-off is moved down to a bucket
boundary and the rollup tables are ReplacingMergeTrees keyed by bucket: a prune cut short between
the two and run again writes the same rows again, which replace the first ones instead of counting
twice. The TTL of `DEVMESH_RETAIN_*` drops raw rows by itself as well (no rollup for those).

A ClickHouse server is shared by many processes and keeps its own files: there is no sole writer to
check, no file to rewrite or checkpoint, and no file to copy for `devmesh backup` (its BACKUP
statement does that; `snapshot_to` refuses and names it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InvalidInput
from core.telemetry import KINDS, TIME_COLUMN, Kind
from core.timeutil import NS
from retrieval.events.retention import BATCH_ROWS, HORIZON_KEY, ROLLUP_BUCKET_S, KindPrune

if TYPE_CHECKING:
    from retrieval.events.clickhouse.owed import ClickHouseOwedLedger
    from retrieval.events.clickhouse.state import ClickHouseKeyValueStore

log = logging.getLogger(__name__)

ROLLUP_DDL = [
    "CREATE TABLE IF NOT EXISTS log_rollup (bucket_ns Int64, service String, template_id String, level String,"
    " count Int64, first_ns Int64, last_ns Int64)"
    " ENGINE = ReplacingMergeTree ORDER BY (bucket_ns, service, template_id, level)",
    "CREATE TABLE IF NOT EXISTS span_rollup (bucket_ns Int64, service String, operation String, status String,"
    " count Int64, sum_us Float64) ENGINE = ReplacingMergeTree ORDER BY (bucket_ns, service, operation, status)",
    "CREATE TABLE IF NOT EXISTS metric_rollup (bucket_ns Int64, pod String, name String, count Int64,"
    " sum Float64, min Float64, max Float64)"
    " ENGINE = ReplacingMergeTree ORDER BY (bucket_ns, pod, name)",
]
"""The rollup tables (DuckDB's columns); a replayed bucket replaces its row. A bucket holds one row: the
cut-off of a prune is a bucket boundary, so no bucket is rolled up in two parts."""

_ROLLUP_SQL: dict[Kind, str] = {
    "logs": "INSERT INTO log_rollup SELECT intDiv(ts_ns, {w:Int64}) * {w:Int64} AS b, service, template_id, level,"
    " toInt64(count()), min(ts_ns), max(ts_ns) FROM logs WHERE ts_ns < {upto:Int64}"
    " GROUP BY b, service, template_id, level",
    "spans": "INSERT INTO span_rollup SELECT intDiv(start_ns, {w:Int64}) * {w:Int64} AS b, service, operation,"
    " status, toInt64(count()), toFloat64(sum(duration_us)) FROM spans WHERE start_ns < {upto:Int64}"
    " GROUP BY b, service, operation, status",
    "metrics": "INSERT INTO metric_rollup SELECT intDiv(ts_ns, {w:Int64}) * {w:Int64} AS b, pod, name,"
    " toInt64(count()), sum(value), min(value), max(value) FROM metrics WHERE ts_ns < {upto:Int64}"
    " GROUP BY b, pod, name",
}

BACKUP_HINT = (
    "the event store is on ClickHouse ({where}) and devmesh backup copies only a DuckDB file: back the events"
    " up with ClickHouse's own BACKUP statement, e.g. BACKUP DATABASE <db> TO Disk('backups', 'devmesh.zip')"
    " (RESTORE brings it back); the graph and vectors derive from the events again"
    " (devmesh rebuild graph, devmesh rebuild vectors)"
)


class ClickHouseRetention:
    """Pruning, footprint and the backup refusal; mixed into `ClickHouseEventStore`."""

    where: str
    owed: ClickHouseOwedLedger
    kv: ClickHouseKeyValueStore

    def _one(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        raise NotImplementedError

    def _command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        raise NotImplementedError

    def table_bytes(self) -> dict[str, int]:
        raise NotImplementedError

    def _count(self, kind: Kind, before_ns: int | None = None) -> int:
        tcol = TIME_COLUMN[kind]
        cond = f" WHERE {tcol} < {{c:Int64}}" if before_ns is not None else ""
        row = self._one(f"SELECT count() FROM {kind}{cond}", {"c": before_ns} if before_ns is not None else None)
        return int(row[0]) if row else 0

    def age_cutoff(self, kind: Kind, retain_ns: int, now_ns: int) -> int | None:
        """The time before which `kind`'s raw rows are older than `retain_ns`, counted back from the newest row."""
        if retain_ns <= 0:
            raise InvalidInput("a retention period must be positive", field="retain")
        row = self._one(f"SELECT maxOrNull({TIME_COLUMN[kind]}) FROM {kind}")
        if row is None or row[0] is None:
            return None
        return min(int(row[0]), now_ns) - retain_ns

    def size_cutoff(self, kind: Kind, keep_fraction: float) -> int | None:
        """The time that keeps the newest `keep_fraction` of `kind`'s raw rows (None: keep all)."""
        if keep_fraction >= 1.0:
            return None
        tcol = TIME_COLUMN[kind]
        n = self._count(kind)
        drop = n - int(n * max(keep_fraction, 0.0))
        if drop <= 0:
            return None
        if drop >= n:
            row = self._one(f"SELECT max({tcol}) FROM {kind}")
            return int(row[0]) + 1 if row else None
        row = self._one(f"SELECT {tcol} FROM {kind} ORDER BY {tcol} LIMIT 1 OFFSET {{d:UInt64}}", {"d": drop})
        return int(row[0]) if row else None

    def prune_before(
        self, kind: Kind, cutoff_ns: int, *, dry_run: bool = False, batch_rows: int = BATCH_ROWS, reason: str = ""
    ) -> KindPrune:
        """Roll up, then delete, `kind`'s raw rows older than `cutoff_ns` (moved down to a bucket boundary).

        `batch_rows` is accepted for the DuckDB signature; a ClickHouse DELETE marks rows by parts, not in
        row batches, so one statement covers the range.
        """
        if kind not in KINDS:
            raise InvalidInput(f"unknown event kind {kind!r}; use one of {', '.join(KINDS)}", field="kind")
        if batch_rows < 1:
            raise InvalidInput("batch_rows must be at least 1", field="batch_rows")
        width = ROLLUP_BUCKET_S[kind] * NS
        owed = self.owed.min_lo(kind)
        if owed is not None and owed < cutoff_ns:  # rows the graph is still owed stay until repaired
            cutoff_ns = owed
        cutoff_ns = (cutoff_ns // width) * width  # whole buckets: a replayed rollup replaces, never adds
        rows_before = self._count(kind)
        doomed = self._count(kind, cutoff_ns)
        if dry_run or not doomed:
            return KindPrune(kind, reason if doomed else "", cutoff_ns, rows_before, doomed, 0)
        self._command(_ROLLUP_SQL[kind], {"w": width, "upto": cutoff_ns})
        self._command(f"DELETE FROM {kind} WHERE {TIME_COLUMN[kind]} < {{upto:Int64}}", {"upto": cutoff_ns})
        known = self.retention_horizon()
        known[kind] = max(known.get(kind, 0), cutoff_ns)
        self.kv.set(HORIZON_KEY, known)
        log.info("pruned", extra={"kind": kind, "deleted": doomed, "cutoff_ns": cutoff_ns, "reason": reason})
        return KindPrune(kind, reason, cutoff_ns, rows_before, doomed, 1)

    def retention_horizon(self) -> dict[str, int]:
        """{kind: newest pruned time (ns)}: raw rows before it are gone, rollups remain."""
        known = self.kv.get(HORIZON_KEY) or {}
        return {str(k): int(v) for k, v in known.items()}

    def rewrite_table(self, kind: Kind) -> None:
        """Nothing to do: ClickHouse's background merges drop deleted rows from the parts."""

    def checkpoint_file(self) -> None:
        """Nothing to do: each insert is a part on disk already."""

    def check_sole_writer(self) -> None:
        """Nothing to check: many processes write to one ClickHouse server (and chDB refuses a second opener)."""

    def footprint(self) -> dict[str, Any]:
        """Bytes of the active parts per table and in all (there are no free blocks or WAL), with raw row counts."""
        tables = self.table_bytes()
        used = sum(tables.values())
        return {
            "tables": tables,
            "used_bytes": used,
            "free_bytes": 0,
            "file_bytes": used,
            "wal_bytes": 0,
            "rows": {k: self._count(k) for k in KINDS},
        }

    def snapshot_to(self, dest: Path) -> int:
        """Refused: there is no file to copy; the message names ClickHouse's BACKUP statement."""
        raise InvalidInput(BACKUP_HINT.format(where=self.where), field="events_url")
