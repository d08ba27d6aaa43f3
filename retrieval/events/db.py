"""The event store's DuckDB file: one connection shared by the store, its documents and its key-value
state. Reads run on a fresh cursor each; writes share one cursor under one re-entrant lock, so a
`transaction()` can group the writes of all of them. Thread-safe.

`compact_in_place` rewrites the open file without its free blocks while the process keeps serving:
under the write lock (writers wait, readers go on) the live database is copied into a new file
(`ATTACH` + `COPY FROM DATABASE`), then, once the reads in flight have ended, the connection is closed,
the new file put in place of the old and opened again. The connection may touch no file but its own and
those under the compaction folder (`enable_external_access` off, `allowed_directories`).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from core.errors import EngineUnavailable, InvalidInput
from retrieval.events.schema import SCHEMA_VERSION, ddl

log = logging.getLogger(__name__)


class Database:
    """An open DuckDB event database with its schema. `path=None` keeps everything in memory."""

    def __init__(self, path: Path | None, *, trace_index: bool = True) -> None:
        self.path = path
        self._lock = threading.RLock()  # re-entrant: writes inside `transaction()` take it again
        self._gate = threading.Condition()  # reads in flight, and whether the connection is being swapped
        self._reading = 0
        self._swapping = False
        self._closed = False
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = self._connect()
        self._writer = self.conn.cursor()
        self._init_schema(trace_index)
        log.info("event store open", extra={"path": str(path) if path else ":memory:"})

    @property
    def compact_dir(self) -> Path | None:
        """The one folder besides its own file that the connection may write (compaction's new file)."""
        return None if self.path is None else self.path.with_name(self.path.name + ".compact.d")

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            conn = duckdb.connect(str(self.path) if self.path else ":memory:")
            try:
                # a second open in this process shares the first one's database, already cut off
                setting = conn.execute("SELECT current_setting('enable_external_access')").fetchone()
                open_to_files = setting is None or bool(setting[0])
                if open_to_files and self.compact_dir is not None:  # settable only before access is cut
                    conn.execute("SET allowed_directories = [?]", [str(self.compact_dir) + os.sep])
                if open_to_files:
                    conn.execute("SET enable_external_access = false")
            except BaseException:
                conn.close()
                raise
        except duckdb.Error as exc:
            raise EngineUnavailable(
                f"cannot open the event store at {self.path}: {exc}; if another devmesh process holds it, "
                "stop that process or use its API"
            ) from exc
        return conn

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
    def closed(self) -> bool:
        return self._closed

    def check_open(self) -> None:
        if self._closed:
            raise EngineUnavailable("the event store is closed")

    def close(self) -> None:
        """Release the file; everything written is kept for the next open."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._writer.close()
            self.conn.close()

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh cursor for one read (waits while a compaction swaps the file)."""
        with self._gate:
            while self._swapping:
                self._gate.wait()
            self.check_open()
            cur = self.conn.cursor()
            self._reading += 1
        try:
            yield cur
        finally:
            cur.close()
            with self._gate:
                self._reading -= 1
                self._gate.notify_all()

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The writer cursor, held under the write lock."""
        with self._lock:
            self.check_open()
            yield self._writer

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit (all or nothing); other writers wait until it ends."""
        with self._lock:
            self.check_open()
            self._writer.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def compact_in_place(self) -> dict[str, Any]:
        """Rewrite the open file without its free blocks; writers wait meanwhile, readers only for the swap.

        Returns file bytes before and after and seconds (copy, swap). The old file stays in place until
        the copy is complete; a failure leaves it untouched and open.
        """
        if self.path is None or self.compact_dir is None:
            raise InvalidInput("an in-memory event store has no file to compact", field="path")
        path, folder = self.path, self.compact_dir
        new = folder / path.name
        started = time.perf_counter()
        with self._lock:
            self.check_open()
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                self._writer.execute("CHECKPOINT")
                before = path.stat().st_size
                catalog = self._writer.execute("SELECT current_database()").fetchone()
                assert catalog is not None
                self._writer.execute("ATTACH ? AS devmesh_compacted", [str(new)])
                try:  # identifiers, not values: the catalog is quoted, the target a constant
                    name = str(catalog[0]).replace('"', '""')
                    self._writer.execute(f'COPY FROM DATABASE "{name}" TO devmesh_compacted')
                finally:
                    self._writer.execute("DETACH devmesh_compacted")
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            copied = time.perf_counter()
            with self._gate:  # no new reads; wait for those in flight
                self._swapping = True
                while self._reading:
                    self._gate.wait()
            try:
                self._writer.close()
                self.conn.close()
                os.replace(new, path)
                path.with_name(path.name + ".wal").unlink(missing_ok=True)  # checkpointed: nothing in it
                self.conn = self._connect()
                self._writer = self.conn.cursor()
            except BaseException:
                self._closed = True  # neither file can be trusted open now; reopening is the operator's
                raise
            finally:
                with self._gate:
                    self._swapping = False
                    self._gate.notify_all()
                shutil.rmtree(folder, ignore_errors=True)
        out = {
            "file_bytes_before": before,
            "file_bytes_after": path.stat().st_size,
            "seconds": round(time.perf_counter() - started, 3),
            "swap_seconds": round(time.perf_counter() - copied, 3),
        }
        log.info("event store compacted", extra=out)
        return out

    def all(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and every row of one parameterized query."""
        with self.read() as cur:
            cur.execute(sql, list(params))
            columns = [d[0] for d in cur.description or []]
            return columns, cur.fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        """The first row of one parameterized query."""
        _, rows = self.all(sql, params)
        return rows[0]
