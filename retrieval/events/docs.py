"""Small JSON documents kept by collection: incidents, explanations with their agent runs, detection runs.

`DocStore` is the interface the callers use; `DuckDocStore` keeps the documents in the event store's
DuckDB file (table `docs`), so its writes join the store's transactions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from core.timeutil import now_ns
from retrieval.events.db import Database


class DocStore(Protocol):
    """JSON documents by (collection, id), with a time, a status and a service to select them by."""

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
        """Store (or replace) one document."""
        ...

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """The document, or None."""
        ...

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
        """Documents of a collection, newest first, by time window [start_ns, end_ns), status and service."""
        ...

    def clear(self, collection: str) -> int:
        """Remove every document of a collection; returns how many."""
        ...


class DuckDocStore:
    """`DocStore` in the event store's DuckDB file."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
        """Store (or replace) one JSON document: an incident, an explanation, a detection run."""
        with self._db.write() as cur:
            cur.execute(
                "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (collection, id) DO UPDATE SET"
                " time_ns = excluded.time_ns, status = excluded.status, service = excluded.service,"
                " body = excluded.body, updated_ns = excluded.updated_ns",
                [collection, doc_id, time_ns, status, service, json.dumps(body, default=str), now_ns()],
            )

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        _, rows = self._db.all("SELECT body FROM docs WHERE collection = ? AND id = ?", [collection, doc_id])
        return json.loads(rows[0][0]) if rows else None

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
        _, rows = self._db.all(
            f"SELECT body FROM docs WHERE {' AND '.join(clauses)} ORDER BY time_ns DESC, id LIMIT ?", [*params, limit]
        )
        return [json.loads(r[0]) for r in rows]

    def clear(self, collection: str) -> int:
        """Remove every document of a collection (a replay starting from a clean slate); returns how many."""
        with self._db.write() as cur:
            cur.execute("DELETE FROM docs WHERE collection = ? RETURNING id", [collection])
            return len(cur.fetchall())
