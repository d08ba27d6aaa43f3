"""Documents and key-value state in the ClickHouse event store (tables `docs` and `kv`): the same
`DocStore` and `KeyValueStore` interfaces as in DuckDB. Each write is a new version of its row in a
ReplacingMergeTree, read back with FINAL; removing a document writes a version marked deleted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from core.errors import InvalidInput
from core.timeutil import now_ns

if TYPE_CHECKING:
    from retrieval.events.clickhouse.store import ClickHouseEventStore

_DOC_SCHEMA = pa.schema(
    [
        ("collection", pa.string()),
        ("id", pa.string()),
        ("time_ns", pa.int64()),
        ("status", pa.string()),
        ("service", pa.string()),
        ("body", pa.string()),
        ("version", pa.uint64()),
        ("deleted", pa.uint8()),
    ]
)


class Versions:
    """Row versions that grow strictly within a process: the wall clock in ns, bumped past the last one."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self, n: int = 1) -> int:
        """The first of `n` consecutive new versions."""
        with self._lock:
            first = max(now_ns(), self._last + 1)
            self._last = first + n - 1
            return first


class ClickHouseDocStore:
    """`DocStore` in the ClickHouse event store."""

    def __init__(self, store: ClickHouseEventStore) -> None:
        self._s = store

    def put(
        self,
        collection: str,
        doc_id: str,
        body: Mapping[str, Any],
        *,
        time_ns: int,
        status: str = "",
        service: str = "",
    ) -> None:
        """Store (or replace) one JSON document."""
        row = {
            "collection": collection,
            "id": doc_id,
            "time_ns": time_ns,
            "status": status,
            "service": service,
            "body": json.dumps(body, default=str),
            "version": self._s._versions.next(),
            "deleted": 0,
        }
        self._s._insert("docs", pa.Table.from_pylist([row], schema=_DOC_SCHEMA))

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        row = self._s._one(
            "SELECT body FROM docs FINAL WHERE collection = {c:String} AND id = {i:String} AND deleted = 0",
            {"c": collection, "i": doc_id},
        )
        return json.loads(row[0]) if row else None

    def find(
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
        clauses = ["collection = {c:String}", "deleted = 0"]
        params: dict[str, Any] = {"c": collection, "lim": limit}
        for cond, name, value in (
            ("time_ns >= {lo:Int64}", "lo", start_ns),
            ("time_ns < {hi:Int64}", "hi", end_ns),
            ("status = {st:String}", "st", status),
            ("service = {sv:String}", "sv", service),
        ):
            if value is not None:
                clauses.append(cond)
                params[name] = value
        _, rows = self._s._rows(
            f"SELECT body FROM docs FINAL WHERE {' AND '.join(clauses)} ORDER BY time_ns DESC, id LIMIT {{lim:UInt64}}",
            params,
        )
        return [json.loads(r[0]) for r in rows]

    def clear(self, collection: str) -> int:
        """Remove every document of a collection; returns how many."""
        with self._s._write_lock:
            live = self._s._table(
                "SELECT collection, id, time_ns, status, service, body FROM docs FINAL"
                " WHERE collection = {c:String} AND deleted = 0",
                {"c": collection},
            )
            n = live.num_rows
            if n:
                first = self._s._versions.next(n)
                gone = live.append_column("version", pa.array(range(first, first + n), pa.uint64()))
                gone = gone.append_column("deleted", pa.array([1] * n, pa.uint8()))
                self._s._insert("docs", gone.cast(_DOC_SCHEMA))
        return n


class ClickHouseKeyValueStore:
    """`KeyValueStore` in the ClickHouse event store."""

    def __init__(self, store: ClickHouseEventStore) -> None:
        self._s = store

    def get(self, key: str, default: Any = None) -> Any:
        row = self._s._one("SELECT value FROM kv FINAL WHERE key = {k:String}", {"k": key})
        return json.loads(row[0]) if row else default

    def set(self, key: str, value: Any) -> None:
        """Keep a small JSON-serializable value under `key`."""
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"value for {key!r} is not JSON-serializable: {exc}", field="value") from exc
        row = pa.table({"key": [key], "value": [text], "version": pa.array([self._s._versions.next()], pa.uint64())})
        self._s._insert("kv", row)
