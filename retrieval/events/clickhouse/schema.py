"""The ClickHouse event store's tables, from the same row contract as DuckDB's
(`core.telemetry.ARROW_SCHEMAS`).

Raw events are MergeTree tables partitioned by day of their time column and sorted for the queries
made most: logs by (service, ts_ns, event_id) for a window of one service and keyset pages, spans by
(service, start_ns), metrics by (name, pod, ts_ns); a bloom filter on trace_id finds a trace's rows.
An optional TTL per kind drops raw rows older than the retention period: ClickHouse counts it from
the wall clock (`now()`), not from the newest stored row as DuckDB's pruning does.

Each event table remembers the dedup tokens of its last `DEDUP_WINDOW` insert blocks (see
`ClickHouseEventStore._append`).

Templates, documents, key-value state and the owed ledger are ReplacingMergeTree tables read with
FINAL: an update is a new version of the row (`version`), a delete a version with `deleted = 1`. The
rollups of pruned rows are ReplacingMergeTrees keyed by bucket (`retrieval.events.clickhouse.retention`).
"""

from __future__ import annotations

import pyarrow as pa

from core.telemetry import ARROW_SCHEMAS, KINDS, TEXT_DEFAULTS, TIME_COLUMN, Kind
from retrieval.events.clickhouse.owed import DDL as OWED_DDL
from retrieval.events.clickhouse.retention import ROLLUP_DDL

SCHEMA_VERSION = 1

_TYPES = {pa.string(): "String", pa.int64(): "Int64", pa.uint64(): "UInt64", pa.float64(): "Float64"}
_TYPES[pa.bool_()] = "Bool"
LOW_CARDINALITY = frozenset({"source", "service", "host", "pod", "level", "event_type", "status", "kind", "name"})
"""Text columns with few distinct values: stored as dictionaries."""

DEDUP_WINDOW = 1000
"""Insert blocks per event table whose dedup token ClickHouse remembers: a block sent again with the same
token (a retried batch, or the same batch from two replicas at once) is dropped by the server."""

SORT_KEY: dict[Kind, tuple[str, ...]] = {
    "logs": ("service", "ts_ns", "event_id"),
    "spans": ("service", "start_ns"),
    "metrics": ("name", "pod", "ts_ns"),
}


def _columns(kind: Kind) -> str:
    cols = []
    for f in ARROW_SCHEMAS[kind]:
        t = _TYPES[f.type]
        if f.name in LOW_CARDINALITY:
            t = f"LowCardinality({t})"
        default = f" DEFAULT '{TEXT_DEFAULTS[f.name]}'" if f.name in TEXT_DEFAULTS else ""  # constants
        cols.append(f"{f.name} {t}{default}")
    return ", ".join(cols)


def _day(column: str) -> str:
    return f"toYYYYMMDD(fromUnixTimestamp64Nano({column}))"


def _event_table(kind: Kind, ttl_days: int | None) -> str:
    tcol = TIME_COLUMN[kind]
    index = ", INDEX trace_bf trace_id TYPE bloom_filter(0.01) GRANULARITY 4" if kind != "metrics" else ""
    ttl = f" TTL toDateTime(intDiv({tcol}, 1000000000)) + INTERVAL {int(ttl_days)} DAY" if ttl_days else ""
    return (
        f"CREATE TABLE IF NOT EXISTS {kind} ({_columns(kind)}{index}) ENGINE = MergeTree"
        f" PARTITION BY {_day(tcol)} ORDER BY ({', '.join(SORT_KEY[kind])}){ttl}"
    )


def ddl(ttl_days: dict[Kind, int | None] | None = None) -> list[str]:
    """Statements that create the schema; each is idempotent. `ttl_days`: retention per kind (None: kept)."""
    ttl = ttl_days or {}
    stmts = [_event_table(k, ttl.get(k)) for k in KINDS]
    stmts += [f"ALTER TABLE {k} MODIFY SETTING non_replicated_deduplication_window = {DEDUP_WINDOW}" for k in KINDS]
    stmts += [
        f"CREATE TABLE IF NOT EXISTS template_examples ({_columns('logs')}) ENGINE = MergeTree"
        " ORDER BY (template_id, ts_ns)",
        "CREATE TABLE IF NOT EXISTS templates (template_id String, text String, count Int64, first_ns Int64,"
        " last_ns Int64, level String, embedded Bool, version UInt64)"
        " ENGINE = ReplacingMergeTree(version) ORDER BY template_id",
        "CREATE TABLE IF NOT EXISTS meta (key String, value String) ENGINE = ReplacingMergeTree ORDER BY key",
        "CREATE TABLE IF NOT EXISTS docs (collection String, id String, time_ns Int64, status String,"
        " service String, body String, version UInt64, deleted UInt8)"
        " ENGINE = ReplacingMergeTree(version, deleted) ORDER BY (collection, id)",
        "CREATE TABLE IF NOT EXISTS kv (key String, value String, version UInt64)"
        " ENGINE = ReplacingMergeTree(version) ORDER BY key",
        OWED_DDL,  # the ledger of owed derived-store writes (`retrieval.events.clickhouse.owed`)
        *ROLLUP_DDL,  # what pruned raw rows add up to (`retrieval.events.clickhouse.retention`)
    ]
    return stmts
