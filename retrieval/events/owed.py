"""The ledger of owed writes: derived-store work (the graph) that a stored batch still needs.

The event store is the source of truth; the graph is derived from it. The pipeline records the graph
work of a batch in the same commit as the batch itself (an entry names the store, the event kind and
the batch's time range; kind `incidents`: an incident mirror the graph missed, over its alert time),
does the work, and settles the entry once the graph has it. An entry that
stays (the graph was down, the process died between the commit and the graph write) is completed
later from the stored events by `ingest.repair.repair_owed`; the work is idempotent (MERGEs), so
replaying a range twice changes nothing. Vector work needs no entry here: a template's `embedded`
flag already says whether its vector is stored.

`OwedLedger` is reached as `EventStore.owed`; its writes join the store's transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.timeutil import now_ns

if TYPE_CHECKING:
    from retrieval.events.db import Database

DDL = [
    "CREATE SEQUENCE IF NOT EXISTS owed_seq START 1",
    "CREATE TABLE IF NOT EXISTS owed (id BIGINT PRIMARY KEY DEFAULT nextval('owed_seq'), store VARCHAR NOT NULL,"
    " kind VARCHAR NOT NULL, lo_ns BIGINT NOT NULL, hi_ns BIGINT NOT NULL, since_ns BIGINT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, error VARCHAR NOT NULL DEFAULT '')",
]
"""The ledger's table; each statement is idempotent (run with the store's schema)."""


@dataclass(frozen=True)
class OwedWork:
    """One owed entry: `store` ('graph') still lacks what the `kind` rows in [lo_ns, hi_ns] imply."""

    id: int
    store: str
    kind: str
    lo_ns: int
    hi_ns: int
    since_ns: int
    attempts: int
    error: str


class OwedLedger:
    """Owed derived-store writes in the event store's DuckDB file (table `owed`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, store: str, kind: str, lo_ns: int, hi_ns: int, *, error: str = "") -> int:
        """Record work owed to `store` for the `kind` rows in [lo_ns, hi_ns]; returns the entry's id."""
        with self._db.write() as cur:
            row = cur.execute(
                "INSERT INTO owed (store, kind, lo_ns, hi_ns, since_ns, error) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                [store, kind, int(lo_ns), int(hi_ns), now_ns(), error[:500]],
            ).fetchone()
        assert row is not None
        return int(row[0])

    def settle(self, ids: Sequence[int]) -> None:
        """The work of these entries is done: remove them."""
        if not ids:
            return
        params: list[object] = []
        cond = _id_in(ids, params)
        with self._db.write() as cur:
            cur.execute(f"DELETE FROM owed WHERE {cond}", params)

    def failed(self, ids: Sequence[int], error: str) -> None:
        """An attempt at these entries failed with `error`; they stay owed."""
        if not ids:
            return
        params: list[object] = [error[:500]]
        cond = _id_in(ids, params)
        with self._db.write() as cur:
            cur.execute(f"UPDATE owed SET attempts = attempts + 1, error = ? WHERE {cond}", params)

    def pending(self, store: str, *, exclude: Sequence[int] = (), limit: int = 10_000) -> list[OwedWork]:
        """Entries still owed to `store`, oldest first, leaving out the ids in `exclude`."""
        params: list[object] = [store]
        where = "store = ?"
        if exclude:
            where += f" AND NOT {_id_in(exclude, params)}"
        _, rows = self._db.all(
            f"SELECT id, store, kind, lo_ns, hi_ns, since_ns, attempts, error FROM owed WHERE {where}"
            " ORDER BY id LIMIT ?",
            [*params, limit],
        )
        return [OwedWork(*r) for r in rows]

    def counts(self, *, exclude: Sequence[int] = ()) -> dict[str, int]:
        """Owed entries per store (leaving out the ids in `exclude`)."""
        params: list[object] = []
        where = f"WHERE NOT {_id_in(exclude, params)}" if exclude else ""
        _, rows = self._db.all(f"SELECT store, count(*) FROM owed {where} GROUP BY store", params)
        return {store: int(n) for store, n in rows}


def _id_in(ids: Sequence[int], params: list[object]) -> str:
    """`id IN (?, ...)` with the ids appended to params."""
    params.extend(int(i) for i in ids)
    return f"id IN ({', '.join('?' * len(ids))})"
