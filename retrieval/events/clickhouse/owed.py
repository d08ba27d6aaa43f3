"""The ledger of owed writes on ClickHouse (table `owed`): the same `OwedLedger` calls and answers as
in DuckDB (`retrieval.events.owed`, which says what an entry means and who settles it).

ClickHouse has no sequences and no in-place updates, so an entry is a row of a ReplacingMergeTree
read with FINAL: its id is drawn at random (63 bits: unique across processes that share a server),
a failed attempt is a new version of the row, a settled entry a version marked deleted. Entries are
ordered by the time they were recorded, then id ("oldest first").

The entry is not written in one commit with its batch, as DuckDB's is (ClickHouse has no
multi-statement transactions); the pipeline records it whenever a batch is written, duplicates
included, so a batch cut short by a crash gets its entry when it is sent again (`ingest.pipeline`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from core.timeutil import now_ns
from retrieval.events.owed import OwedWork

if TYPE_CHECKING:
    from retrieval.events.clickhouse.store import ClickHouseEventStore

DDL = (
    "CREATE TABLE IF NOT EXISTS owed (id Int64, store String, kind String, lo_ns Int64, hi_ns Int64,"
    " since_ns Int64, attempts Int32, error String, version UInt64, deleted UInt8)"
    " ENGINE = ReplacingMergeTree(version, deleted) ORDER BY id"
)
"""The ledger's table (idempotent; run with the store's schema)."""

_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("store", pa.string()),
        ("kind", pa.string()),
        ("lo_ns", pa.int64()),
        ("hi_ns", pa.int64()),
        ("since_ns", pa.int64()),
        ("attempts", pa.int32()),
        ("error", pa.string()),
        ("version", pa.uint64()),
        ("deleted", pa.uint8()),
    ]
)
_COLUMNS = "id, store, kind, lo_ns, hi_ns, since_ns, attempts, error"


class ClickHouseOwedLedger:
    """`OwedLedger` in the ClickHouse event store."""

    def __init__(self, store: ClickHouseEventStore) -> None:
        self._s = store

    def add(self, store: str, kind: str, lo_ns: int, hi_ns: int, *, error: str = "") -> int:
        """Record work owed to `store` for the `kind` rows in [lo_ns, hi_ns]; returns the entry's id."""
        entry = OwedWork(secrets.randbits(63), store, kind, int(lo_ns), int(hi_ns), now_ns(), 0, error[:500])
        self._write([entry], deleted=False)
        return entry.id

    def settle(self, ids: Sequence[int]) -> None:
        """The work of these entries is done: remove them."""
        if ids:
            self._write(self._entries(ids), deleted=True)

    def failed(self, ids: Sequence[int], error: str) -> None:
        """An attempt at these entries failed with `error`; they stay owed."""
        if ids:
            entries = self._entries(ids)
            self._write([OwedWork(**{**e.__dict__, "attempts": e.attempts + 1, "error": error[:500]}) for e in entries])

    def pending(self, store: str, *, exclude: Sequence[int] = (), limit: int = 10_000) -> list[OwedWork]:
        """Entries still owed to `store`, oldest first, leaving out the ids in `exclude`."""
        _, rows = self._s._rows(
            f"SELECT {_COLUMNS} FROM owed FINAL WHERE store = {{s:String}} AND NOT has({{x:Array(Int64)}}, id)"
            " ORDER BY since_ns, id LIMIT {n:UInt64}",
            {"s": store, "x": [int(i) for i in exclude], "n": int(limit)},
        )
        return [OwedWork(*r) for r in rows]

    def counts(self, *, exclude: Sequence[int] = ()) -> dict[str, int]:
        """Owed entries per store (leaving out the ids in `exclude`)."""
        _, rows = self._s._rows(
            "SELECT store, count() FROM owed FINAL WHERE NOT has({x:Array(Int64)}, id) GROUP BY store",
            {"x": [int(i) for i in exclude]},
        )
        return {str(store): int(n) for store, n in rows}

    def min_lo(self, kind: str) -> int | None:
        """The oldest time still owed for `kind` (pruning keeps the rows from there on)."""
        row = self._s._one("SELECT minOrNull(lo_ns) FROM owed FINAL WHERE kind = {k:String}", {"k": kind})
        return None if row is None or row[0] is None else int(row[0])

    def _entries(self, ids: Sequence[int]) -> list[OwedWork]:
        _, rows = self._s._rows(
            f"SELECT {_COLUMNS} FROM owed FINAL WHERE has({{x:Array(Int64)}}, id)", {"x": [int(i) for i in ids]}
        )
        return [OwedWork(*r) for r in rows]

    def _write(self, entries: list[OwedWork], *, deleted: bool = False) -> None:
        if not entries:
            return
        first = self._s._versions.next(len(entries))
        cols: dict[str, list[object]] = {name: [getattr(e, name) for e in entries] for name in _COLUMNS.split(", ")}
        cols["version"] = list(range(first, first + len(entries)))
        cols["deleted"] = [int(deleted)] * len(entries)
        self._s._insert("owed", pa.table(cols, schema=_SCHEMA))
