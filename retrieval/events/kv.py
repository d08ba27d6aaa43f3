"""Small JSON values by key: the template miner's state, the detection schedule's marker.

`KeyValueStore` is the interface the callers use; `DuckKeyValueStore` keeps the values in the event
store's DuckDB file (table `kv`), so its writes join the store's transactions.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from core.errors import InvalidInput
from core.timeutil import now_ns
from retrieval.events.db import Database


class KeyValueStore(Protocol):
    """JSON-serializable values by key."""

    def get(self, key: str, default: Any = None) -> Any:
        """The value under `key`, or `default`."""
        ...

    def set(self, key: str, value: Any) -> None:
        """Keep `value` under `key` (InvalidInput if it is not JSON-serializable)."""
        ...


class DuckKeyValueStore:
    """`KeyValueStore` in the event store's DuckDB file."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str, default: Any = None) -> Any:
        _, rows = self._db.all("SELECT value FROM kv WHERE key = ?", [key])
        return json.loads(rows[0][0]) if rows else default

    def set(self, key: str, value: Any) -> None:
        """Keep a small JSON-serializable value (miner state, run markers) under `key`."""
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"value for {key!r} is not JSON-serializable: {exc}", field="value") from exc
        with self._db.write() as cur:
            cur.execute(
                "INSERT INTO kv VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
                " SET value = excluded.value, updated_ns = excluded.updated_ns",
                [key, text, now_ns()],
            )
