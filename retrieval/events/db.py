"""The event store's DuckDB file: one connection shared by the store, its documents and its key-value
state. Reads run on a fresh cursor each; writes share one cursor under one re-entrant lock, so a
`transaction()` can group the writes of all of them. Thread-safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from core.errors import EngineUnavailable
from retrieval.events.schema import SCHEMA_VERSION, ddl

log = logging.getLogger(__name__)


class Database:
    """An open DuckDB event database with its schema. `path=None` keeps everything in memory."""

    def __init__(self, path: Path | None, *, trace_index: bool = True) -> None:
        self.path = path
        self._lock = threading.RLock()  # re-entrant: writes inside `transaction()` take it again
        self._closed = False
        config: dict[str, str | bool | int | float | list[str]] = {"enable_external_access": False}
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = duckdb.connect(str(path) if path else ":memory:", config=config)
        except duckdb.Error as exc:
            raise EngineUnavailable(
                f"cannot open the event store at {path}: {exc}; if another devmesh process holds it, "
                "stop that process or use its API"
            ) from exc
        self._writer = self.conn.cursor()
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
        """A fresh cursor for one read."""
        self.check_open()
        cur = self.conn.cursor()
        try:
            yield cur
        finally:
            cur.close()

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
