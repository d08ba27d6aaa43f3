"""Which event store to open: DuckDB embedded in a file, or ClickHouse at a URL (`DEVMESH_EVENTS_URL`)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from core.telemetry import Kind
from retrieval.events.clickhouse import ClickHouseEventStore, connect
from retrieval.events.store import EventStore

NS_PER_DAY = 86_400 * 1_000_000_000


def ttl_days(retain_ns: dict[Kind, int | None]) -> dict[Kind, int | None]:
    """Retention periods (ns, None: kept) as whole days for ClickHouse TTLs, rounded up."""
    return {k: (-(-v // NS_PER_DAY) if v else None) for k, v in retain_ns.items()}


def open_clickhouse(url: str, *, retain_ns: dict[Kind, int | None] | None = None) -> ClickHouseEventStore:
    """The ClickHouse event store at `url` (chdb://<folder>, clickhouse://..., http(s)://...)."""
    return ClickHouseEventStore(connect(url), ttl_days=ttl_days(retain_ns) if retain_ns else None)


def open_event_store(
    path: Path, url: str | None = None, *, retain_ns: dict[Kind, int | None] | None = None
) -> EventStore:
    """DuckDB at `path`, or the ClickHouse store at `url` when one is given.

    The ClickHouse store answers every call of the DuckDB one with the same parameters (owed ledger,
    pruning, footprint and keyword search included; `snapshot_to` refuses, naming ClickHouse's BACKUP).
    It is cast to `EventStore` because some thirty modules hint that class;
    tests/unit/test_eventstore_surface.py keeps the cast honest.
    """
    if url:
        return cast(EventStore, open_clickhouse(url, retain_ns=retain_ns))
    return EventStore(path)
