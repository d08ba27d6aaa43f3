"""Which event store to open: DuckDB embedded in a file, or ClickHouse at a URL (`DEVMESH_EVENTS_URL`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit, urlunsplit

from core.errors import InvalidInput
from core.telemetry import Kind
from retrieval.events.clickhouse import ClickHouseEventStore, Connection, connect
from retrieval.events.store import EventStore

NS_PER_DAY = 86_400 * 1_000_000_000


def ttl_days(retain_ns: dict[Kind, int | None]) -> dict[Kind, int | None]:
    """Retention periods (ns, None: kept) as whole days for ClickHouse TTLs, rounded up."""
    return {k: (-(-v // NS_PER_DAY) if v else None) for k, v in retain_ns.items()}


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def namespaced_database(url: str, namespace: str) -> str:
    """The database of `url` (`default` when it names none) in the namespace: '<namespace>_<database>'."""
    database = urlsplit(url).path.strip("/") if not url.lower().startswith("chdb://") else ""
    database = database or "default"
    if not _IDENTIFIER.match(database):
        raise InvalidInput(
            f"the ClickHouse database {database!r} cannot take a namespace: use letters, digits and '_'",
            field="events_url",
        )
    return f"{namespace}_{database}"


def _connect_in(url: str, namespace: str | None) -> Connection:
    """A connection to `url` whose current database is the namespace's own, created if missing."""
    conn = connect(url)
    if not namespace:
        return conn
    database = namespaced_database(url, namespace)
    try:
        conn.command("CREATE DATABASE IF NOT EXISTS {db:Identifier}", {"db": database})
        if url.lower().startswith("chdb://"):  # one session: USE holds for its later statements
            conn.command("USE {db:Identifier}", {"db": database})
            return conn
    except BaseException:
        conn.close()
        raise
    conn.close()  # over HTTP each request names its database: connect again to the namespace's
    parts = urlsplit(url)
    return connect(urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment)))


def open_clickhouse(
    url: str, *, retain_ns: dict[Kind, int | None] | None = None, namespace: str | None = None
) -> ClickHouseEventStore:
    """The ClickHouse event store at `url` (chdb://<folder>, clickhouse://..., http(s)://...); with a
    `namespace`, in the database '<namespace>_<the URL's database or default>' (created if missing)."""
    return ClickHouseEventStore(_connect_in(url, namespace), ttl_days=ttl_days(retain_ns) if retain_ns else None)


def open_event_store(
    path: Path,
    url: str | None = None,
    *,
    retain_ns: dict[Kind, int | None] | None = None,
    namespace: str | None = None,
) -> EventStore:
    """DuckDB at `path`, or the ClickHouse store at `url` when one is given.

    The ClickHouse store answers every call of the DuckDB one with the same parameters (owed ledger,
    pruning, footprint and keyword search included; `snapshot_to` refuses, naming ClickHouse's BACKUP).
    It is cast to `EventStore` because some thirty modules hint that class;
    tests/unit/test_eventstore_surface.py keeps the cast honest. A `namespace` applies to ClickHouse only
    (DuckDB's file is the home's own).
    """
    if url:
        return cast(EventStore, open_clickhouse(url, retain_ns=retain_ns, namespace=namespace))
    return EventStore(path)
