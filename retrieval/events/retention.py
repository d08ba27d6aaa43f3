"""Retention in the event store: raw logs, spans and metric points age out, by age and by size, while
what they add up to stays.

Before a batch of raw rows is deleted, its per-minute sums go into the rollup tables in the same
transaction: `log_rollup` (lines per service, template and level), `span_rollup` (spans and their
summed duration per service, operation and status) and `metric_rollup` (count, sum, min, max per pod
and metric name). Templates (with their total counts), the documents (incidents, explanations,
detection runs) and the key-value state are never touched. The newest pruned time of each kind is
kept in the key-value store (`HORIZON_KEY`): windows before it hold rollups only.

Rows in a time range whose graph work is still owed (`retrieval.events.owed`) are kept until the
repair has done it. Deletion runs in bounded batches of whole time slices, each its own short transaction under the
store's write lock, so ingestion interleaves with a prune running inside `devmesh serve`; rows newer
than the cut-off are never touched. DuckDB keeps deleted blocks in its file and reuses them for new
rows: the file shrinks only when rewritten: `compact_file` with no process holding it, or
`Retention.compact_in_place` inside the process that holds it (`devmesh serve`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from core.errors import EngineUnavailable, InvalidInput
from core.telemetry import KINDS, TIME_COLUMN, Kind
from core.timeutil import NS
from retrieval.events.db import Database

log = logging.getLogger(__name__)

ROLLUP_BUCKET_S: dict[Kind, int] = {"logs": 60, "spans": 60, "metrics": 3600}
"""Width of a rollup bucket per kind: what a pruned window can still be counted by (metric points
usually come a minute apart already, so their rollup is hourly)."""
HORIZON_KEY = "retention_horizon"
"""Key-value entry {kind: newest pruned time (ns)}; raw rows older than it are gone."""
BATCH_ROWS = 100_000
"""Most raw rows deleted in one transaction."""

_ROLLUP_SQL: dict[Kind, str] = {
    "logs": "INSERT INTO log_rollup SELECT (ts_ns // ?) * ? AS b, service, template_id, level, count(*),"
    " min(ts_ns), max(ts_ns) FROM logs WHERE ts_ns < ? GROUP BY b, service, template_id, level",
    "spans": "INSERT INTO span_rollup SELECT (start_ns // ?) * ? AS b, service, operation, status, count(*),"
    " sum(duration_us) FROM spans WHERE start_ns < ? GROUP BY b, service, operation, status",
    "metrics": "INSERT INTO metric_rollup SELECT (ts_ns // ?) * ? AS b, pod, name, count(*), sum(value),"
    " min(value), max(value) FROM metrics WHERE ts_ns < ? GROUP BY b, pod, name",
}
ROLLUP_TABLES: dict[Kind, str] = {"logs": "log_rollup", "spans": "span_rollup", "metrics": "metric_rollup"}


@dataclass(frozen=True)
class KindPrune:
    """What pruning one kind did (or, in a dry run, would do)."""

    kind: Kind
    reason: str  # "age", "size" or "" (nothing to do)
    cutoff_ns: int | None  # raw rows before this time go
    rows_before: int
    deleted: int
    batches: int


def table_bytes(db: Database) -> dict[str, int]:
    """Bytes of the blocks each table occupies in the file (DuckDB's storage info)."""
    out: dict[str, int] = {}
    with db.read() as cur:
        block = int(cur.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0])  # type: ignore[index]
        rows = cur.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
        names = [r[0] for r in rows]
        for name in names:
            row = cur.execute(
                "SELECT count(DISTINCT block_id) FROM pragma_storage_info(?) WHERE block_id >= 0", [name]
            ).fetchone()
            out[name] = int(row[0] if row else 0) * block
    return out


def database_bytes(db: Database) -> dict[str, int]:
    """The file's blocks: `used_bytes` (data), `free_bytes` (deleted, reused later), `file_bytes`, `wal_bytes`."""
    with db.read() as cur:
        row = cur.execute(
            "SELECT block_size, total_blocks, used_blocks, free_blocks FROM pragma_database_size()"
        ).fetchone()
    assert row is not None
    block, _total, used, free = (int(v) for v in row)
    out = {"used_bytes": used * block, "free_bytes": free * block, "file_bytes": 0, "wal_bytes": 0}
    if db.path is not None:
        wal = db.path.with_name(db.path.name + ".wal")
        out["file_bytes"] = db.path.stat().st_size if db.path.exists() else 0
        out["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
    return out


def age_cutoff(db: Database, kind: Kind, retain_ns: int, now_ns: int) -> int | None:
    """The time before which `kind`'s raw rows are older than `retain_ns`.

    Age counts back from the newest stored row of the kind (never later than `now_ns`), so a day of
    history imported today keeps its last `retain_ns` instead of vanishing at the first run.
    """
    if retain_ns <= 0:
        raise InvalidInput("a retention period must be positive", field="retain")
    tcol = TIME_COLUMN[kind]
    newest = db.one(f"SELECT max({tcol}) FROM {kind}")[0]
    if newest is None:
        return None
    return min(int(newest), now_ns) - retain_ns


def size_cutoff(db: Database, kind: Kind, keep_fraction: float) -> int | None:
    """The time that keeps the newest `keep_fraction` of `kind`'s raw rows (None: keep all)."""
    if keep_fraction >= 1.0:
        return None
    tcol = TIME_COLUMN[kind]
    n = int(db.one(f"SELECT count(*) FROM {kind}")[0])
    drop = n - int(n * max(keep_fraction, 0.0))
    if drop <= 0:
        return None
    if drop >= n:
        return int(db.one(f"SELECT max({tcol}) FROM {kind}")[0]) + 1
    return int(db.one(f"SELECT {tcol} FROM {kind} ORDER BY {tcol} LIMIT 1 OFFSET ?", [drop])[0])


def prune_before(
    db: Database, kind: Kind, cutoff_ns: int, *, dry_run: bool = False, batch_rows: int = BATCH_ROWS, reason: str = ""
) -> KindPrune:
    """Roll up, then delete, `kind`'s raw rows older than `cutoff_ns`, oldest first, `batch_rows` a transaction."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown event kind {kind!r}; use one of {', '.join(KINDS)}", field="kind")
    if batch_rows < 1:
        raise InvalidInput("batch_rows must be at least 1", field="batch_rows")
    tcol = TIME_COLUMN[kind]
    owed = db.one("SELECT min(lo_ns) FROM owed WHERE kind = ?", [kind])[0]
    if owed is not None and int(owed) < cutoff_ns:  # rows the graph is still owed stay until repaired
        cutoff_ns = int(owed)
    rows_before = int(db.one(f"SELECT count(*) FROM {kind}")[0])
    if dry_run:
        doomed = int(db.one(f"SELECT count(*) FROM {kind} WHERE {tcol} < ?", [cutoff_ns])[0])
        return KindPrune(kind, reason if doomed else "", cutoff_ns, rows_before, doomed, 0)
    deleted = batches = 0
    while True:
        # the end of this batch: the time of the row `batch_rows` after the oldest, or the cut-off
        row = db.one(
            f"SELECT min(t) FROM (SELECT {tcol} AS t FROM {kind} WHERE {tcol} < ? ORDER BY {tcol} LIMIT 1 OFFSET ?)",
            [cutoff_ns, batch_rows],
        )
        upto = cutoff_ns if row[0] is None else int(row[0])
        with db.transaction(), db.write() as cur:
            width = ROLLUP_BUCKET_S[kind] * NS
            cur.execute(_ROLLUP_SQL[kind], [width, width, upto])
            done = cur.execute(f"DELETE FROM {kind} WHERE {tcol} < ?", [upto]).fetchone()
        n = int(done[0]) if done else 0
        deleted += n
        batches += 1
        if upto >= cutoff_ns or n == 0:
            break
    if deleted:
        _widen_horizon(db, kind, cutoff_ns)
        log.info("pruned", extra={"kind": kind, "deleted": deleted, "cutoff_ns": cutoff_ns, "reason": reason})
    return KindPrune(kind, reason if deleted else "", cutoff_ns, rows_before, deleted, batches)


def horizon(db: Database) -> dict[str, int]:
    """{kind: newest pruned time (ns)} for the kinds pruned so far."""
    row = db.all("SELECT value FROM kv WHERE key = ?", [HORIZON_KEY])[1]
    if not row:
        return {}
    return {k: int(v) for k, v in json.loads(row[0][0]).items()}


def _widen_horizon(db: Database, kind: Kind, cutoff_ns: int) -> None:
    known = horizon(db)
    known[kind] = max(known.get(kind, 0), cutoff_ns)
    with db.write() as cur:
        cur.execute(
            "INSERT INTO kv VALUES (?, ?, epoch_ns(now())) ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_ns = excluded.updated_ns",
            [HORIZON_KEY, json.dumps(known, sort_keys=True)],
        )


def rewrite_table(db: Database, kind: Kind) -> None:
    """Rewrite `kind`'s table with its remaining rows (in time order), in one transaction.

    DuckDB reuses the blocks of row groups that a DELETE emptied only partly once the table is
    rewritten; readers see the old table until the commit. The trace-id index is made again.
    """
    if kind not in KINDS:
        raise InvalidInput(f"unknown event kind {kind!r}; use one of {', '.join(KINDS)}", field="kind")
    tcol = TIME_COLUMN[kind]
    with db.transaction(), db.write() as cur:
        indexes = [
            r[0] for r in cur.execute("SELECT sql FROM duckdb_indexes() WHERE table_name = ?", [kind]).fetchall()
        ]
        table_sql = cur.execute("SELECT sql FROM duckdb_tables() WHERE table_name = ?", [kind]).fetchone()
        assert table_sql is not None
        cur.execute(str(table_sql[0]).replace(f"CREATE TABLE {kind}(", f"CREATE TABLE {kind}__rewrite(", 1))
        cur.execute(f"INSERT INTO {kind}__rewrite SELECT * FROM {kind} ORDER BY {tcol}")
        cur.execute(f"DROP TABLE {kind}")
        cur.execute(f"ALTER TABLE {kind}__rewrite RENAME TO {kind}")
        for sql in indexes:
            cur.execute(sql)


def check_sole_writer(db: Database) -> None:
    """EngineUnavailable when another process holds the file's write lock (e.g. `devmesh serve`).

    DuckDB lets a second process open the file and fails only at its first commit that writes; this
    commits a one-row write to find out before any work is done.
    """
    try:
        with db.transaction(), db.write() as cur:
            cur.execute(  # a row that changes: DuckDB takes the lock only for a commit that writes
                "INSERT INTO kv VALUES ('writer_probe', '{}', epoch_ns(now())) ON CONFLICT (key)"
                " DO UPDATE SET updated_ns = excluded.updated_ns"
            )
    except duckdb.Error as exc:
        raise EngineUnavailable(
            f"another process holds the event store at {db.path} (is `devmesh serve` running?): "
            f"{str(exc).splitlines()[0][:200]}"
        ) from exc


def checkpoint(db: Database) -> None:
    """Write the WAL into the file and let DuckDB truncate trailing free blocks where it can."""
    with db.write() as cur:
        cur.execute("CHECKPOINT")


def compact_file(path: Path) -> dict[str, Any]:
    """Rewrite a closed event-store file without its free blocks; the old file is replaced only on success.

    Refused (EngineUnavailable) while another process holds the file, e.g. `devmesh serve`.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".compact")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    before = path.stat().st_size
    started = time.perf_counter()
    try:
        conn = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise EngineUnavailable(
            f"cannot compact {path}: {exc}; stop the process holding it (devmesh serve) first"
        ) from exc
    try:
        conn.execute("CHECKPOINT")
        conn.execute("ATTACH ? AS compacted", [str(tmp)])
        conn.execute(_copy_sql(path))
        conn.execute("DETACH compacted")
    except BaseException:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise
    conn.close()
    os.replace(tmp, path)
    seconds = round(time.perf_counter() - started, 3)
    return {"file_bytes_before": before, "file_bytes_after": path.stat().st_size, "seconds": seconds}


def _copy_sql(path: Path) -> str:
    # The catalog name of a file is its stem; it is quoted as an identifier, not a value.
    name = path.stem.replace('"', '""')
    return f'COPY FROM DATABASE "{name}" TO compacted'


class Retention:
    """Pruning, footprint and snapshots; mixed into `EventStore`, which sets `_db`."""

    _db: Database

    def age_cutoff(self, kind: Kind, retain_ns: int, now_ns: int) -> int | None:
        """See `age_cutoff`."""
        return age_cutoff(self._db, kind, retain_ns, now_ns)

    def size_cutoff(self, kind: Kind, keep_fraction: float) -> int | None:
        """See `size_cutoff`."""
        return size_cutoff(self._db, kind, keep_fraction)

    def prune_before(
        self, kind: Kind, cutoff_ns: int, *, dry_run: bool = False, batch_rows: int = BATCH_ROWS, reason: str = ""
    ) -> KindPrune:
        """See `prune_before`."""
        return prune_before(self._db, kind, cutoff_ns, dry_run=dry_run, batch_rows=batch_rows, reason=reason)

    def rewrite_table(self, kind: Kind) -> None:
        """See `rewrite_table`."""
        rewrite_table(self._db, kind)

    def check_sole_writer(self) -> None:
        """See `check_sole_writer`."""
        check_sole_writer(self._db)

    def checkpoint_file(self) -> None:
        """CHECKPOINT: the WAL into the file."""
        checkpoint(self._db)

    def retention_horizon(self) -> dict[str, int]:
        """{kind: newest pruned time (ns)}: raw rows before it are gone, rollups remain."""
        return horizon(self._db)

    def footprint(self) -> dict[str, Any]:
        """Bytes per table and of the file (used, free, file, WAL) with the raw row counts."""
        out: dict[str, Any] = {"tables": table_bytes(self._db), **database_bytes(self._db)}
        out["rows"] = {k: int(self._db.one(f"SELECT count(*) FROM {k}")[0]) for k in KINDS}
        return out

    def compact_in_place(self) -> dict[str, Any]:
        """Rewrite the open file without its free blocks while serving (see `Database.compact_in_place`).

        DuckDB only: callers probe for it with hasattr (ClickHouse merges its parts by itself).
        """
        return self._db.compact_in_place()

    def snapshot_to(self, dest: Path) -> int:
        """A consistent copy of the file at `dest`: CHECKPOINT, then copy under the write lock. Returns bytes."""
        if self._db.path is None:
            raise InvalidInput("an in-memory event store has no file to copy", field="path")
        with self._db.write() as cur:
            cur.execute("CHECKPOINT")
            shutil.copyfile(self._db.path, dest)
        return Path(dest).stat().st_size
