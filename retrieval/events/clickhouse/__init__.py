"""The event store on ClickHouse, for the scale-out form (`DEVMESH_EVENTS_URL`): the same interface
and answers as the embedded DuckDB store, tested on chDB (ClickHouse in-process).

- `connection`: the two thin connections (clickhouse-connect for a server, chDB) and `connect(url)`
- `schema`: MergeTree tables partitioned by day, sort keys, TTL; `binder`: `{name:Type}` parameters
- `store`: `ClickHouseEventStore`; `templates`, `aggregates`, `state`: its mixed-in methods, docs, kv
- `readonly`: the guards of `devmesh query sql` in ClickHouse's dialect
"""

from retrieval.events.clickhouse.connection import ChdbConnection, ClickHouseError, Connection, HttpConnection, connect
from retrieval.events.clickhouse.store import ClickHouseEventStore

__all__ = ["ChdbConnection", "ClickHouseError", "ClickHouseEventStore", "Connection", "HttpConnection", "connect"]
