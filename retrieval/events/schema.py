"""The event store's tables (DDL from the row contract `core.telemetry.ARROW_SCHEMAS`), a batch in the
store's exact shape (`normalize`), the event id of a row, and stored rows read back as dicts.

`event_id` is xxh64 over a row's canonical fields (below), each written as text ('' for a missing
value, integers in decimal, floats as Arrow casts them) and joined by U+001F. Fields that depend
on how an event reached us (source, meta, template_id) are left out, so the same event sent twice,
through the same or another reader, gets the same id and is stored once. Callers that serialize
JSON fields used in the hash (metric `attributes`) should sort keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from core.errors import InvalidInput
from core.telemetry import ARROW_SCHEMAS, KINDS, REQUIRED, TEXT_DEFAULTS, Kind
from core.timeutil import iso
from retrieval.events.owed import DDL as OWED_DDL

SCHEMA_VERSION = 1

_S, _I, _U, _F, _B = pa.string(), pa.int64(), pa.uint64(), pa.float64(), pa.bool_()

# The fields the event id hashes (see the module doc).
CANONICAL_FIELDS: dict[Kind, tuple[str, ...]] = {
    "logs": (
        "ts_ns",
        "service",
        "host",
        "pod",
        "level",
        "message",
        "trace_id",
        "span_id",
        "event_type",
        "error_code",
    ),
    "spans": (
        "trace_id",
        "span_id",
        "parent_id",
        "service",
        "pod",
        "host",
        "operation",
        "start_ns",
        "end_ns",
        "status",
        "kind",
    ),
    "metrics": ("ts_ns", "name", "value", "service", "pod", "host", "attributes"),
}

# TEXT_DEFAULTS are constants, so safe to write into the DDL.
_SQL_TYPES = {_S: "VARCHAR", _I: "BIGINT", _U: "UBIGINT", _F: "DOUBLE", _B: "BOOLEAN"}


def _table_ddl(kind: Kind) -> str:
    cols = []
    for f in ARROW_SCHEMAS[kind]:
        sql_type = _SQL_TYPES[f.type]
        if f.type == _S:
            cols.append(f"{f.name} {sql_type} NOT NULL DEFAULT '{TEXT_DEFAULTS.get(f.name, '')}'")
        else:
            cols.append(f"{f.name} {sql_type} NOT NULL")
    return f"CREATE TABLE IF NOT EXISTS {kind} ({', '.join(cols)})"


def ddl(*, trace_index: bool) -> list[str]:
    """Statements that create the schema; each is idempotent."""
    stmts = [_table_ddl(k) for k in KINDS]
    stmts += [
        # The newest few lines of each template, kept at ingest, so search shows examples without a scan.
        _table_ddl("logs").replace("EXISTS logs (", "EXISTS template_examples (", 1),
        "CREATE TABLE IF NOT EXISTS templates (template_id VARCHAR PRIMARY KEY, text VARCHAR NOT NULL,"
        " count BIGINT NOT NULL DEFAULT 0, first_ns BIGINT NOT NULL DEFAULT 0,"
        " last_ns BIGINT NOT NULL DEFAULT 0, level VARCHAR NOT NULL DEFAULT '',"
        " embedded BOOLEAN NOT NULL DEFAULT false)",
        "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
        # Small JSON documents: incidents, explanations with their agent runs, detection runs.
        "CREATE TABLE IF NOT EXISTS docs (collection VARCHAR NOT NULL, id VARCHAR NOT NULL, time_ns BIGINT NOT NULL,"
        " status VARCHAR NOT NULL DEFAULT '', service VARCHAR NOT NULL DEFAULT '', body VARCHAR NOT NULL,"
        " updated_ns BIGINT NOT NULL, PRIMARY KEY (collection, id))",
        "CREATE TABLE IF NOT EXISTS kv (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL, updated_ns BIGINT NOT NULL)",
        # What pruned raw rows leave behind, per minute (`retrieval.events.retention`); rows of one
        # bucket may be split over several entries: readers sum them.
        "CREATE TABLE IF NOT EXISTS log_rollup (bucket_ns BIGINT NOT NULL, service VARCHAR NOT NULL,"
        " template_id VARCHAR NOT NULL, level VARCHAR NOT NULL, count BIGINT NOT NULL,"
        " first_ns BIGINT NOT NULL, last_ns BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS span_rollup (bucket_ns BIGINT NOT NULL, service VARCHAR NOT NULL,"
        " operation VARCHAR NOT NULL, status VARCHAR NOT NULL, count BIGINT NOT NULL, sum_us DOUBLE NOT NULL)",
        "CREATE TABLE IF NOT EXISTS metric_rollup (bucket_ns BIGINT NOT NULL, pod VARCHAR NOT NULL,"
        " name VARCHAR NOT NULL, count BIGINT NOT NULL, sum DOUBLE NOT NULL, min DOUBLE NOT NULL,"
        " max DOUBLE NOT NULL)",
    ]
    stmts += OWED_DDL  # the ledger of owed derived-store writes (`retrieval.events.owed`)
    if trace_index:
        stmts += [
            "CREATE INDEX IF NOT EXISTS logs_trace_id ON logs (trace_id)",
            "CREATE INDEX IF NOT EXISTS spans_trace_id ON spans (trace_id)",
        ]
    return stmts


def normalize(kind: Kind, table: pa.Table) -> pa.Table:
    """The table in the store's exact column order and types, '' for missing text, ids filled in.

    Raises InvalidInput naming the column when a required column is missing or null, a column is
    unknown, or a value cannot be cast to the column's type.
    """
    schema = ARROW_SCHEMAS[kind]
    unknown = [c for c in table.column_names if schema.get_field_index(c) < 0]
    if unknown:
        raise InvalidInput(f"unknown {kind} column(s): {', '.join(unknown)}", field=unknown[0])
    for name in REQUIRED[kind]:
        if name not in table.column_names:
            raise InvalidInput(f"{kind} batch has no '{name}' column", field=name)
        if table[name].null_count:
            raise InvalidInput(f"{kind} batch has null '{name}' values", field=name)
    n = table.num_rows
    arrays: dict[str, pa.ChunkedArray | pa.Array] = {}
    for f in schema:
        if f.name == "event_id":
            continue
        if f.name in table.column_names:
            arrays[f.name] = _cast(table[f.name], f)
        elif f.name == "duration_us":
            arrays[f.name] = pc.divide(pc.cast(pc.subtract(arrays["end_ns"], arrays["start_ns"]), _F), 1000.0)
        elif f.type == _S:
            arrays[f.name] = pa.repeat(TEXT_DEFAULTS.get(f.name, ""), n).cast(_S)
        else:  # pragma: no cover - every non-text column is required or computed
            raise InvalidInput(f"{kind} batch has no '{f.name}' column", field=f.name)
    body = pa.table(arrays)
    if "event_id" not in table.column_names:
        ids = _hash_rows(kind, body)
    else:
        ids = _cast(table["event_id"], schema.field("event_id"))
        if ids.null_count:
            ids = pc.coalesce(ids, _hash_rows(kind, body))
    return body.add_column(0, schema.field("event_id"), ids).cast(schema)


def _cast(col: pa.ChunkedArray, field: pa.Field) -> pa.ChunkedArray:
    try:
        out = col if col.type == field.type else pc.cast(col, field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(f"column '{field.name}' is not {field.type}: {exc}", field=field.name) from exc
    if field.type == _S and out.null_count:
        out = out.fill_null(TEXT_DEFAULTS.get(field.name, ""))
    return out


def _hash_rows(kind: Kind, table: pa.Table) -> pa.Array:
    parts = [pc.cast(table[c], _S) for c in CANONICAL_FIELDS[kind]]
    joined = pc.binary_join_element_wise(*parts, "\x1f", null_handling="replace", null_replacement="")
    h = xxhash.xxh64_intdigest
    values = pc.cast(joined, pa.binary()).to_pylist()
    return pa.array(np.fromiter((h(v) for v in values), dtype=np.uint64, count=len(values)), _U)


def event_ids(kind: Kind, table: pa.Table) -> pa.Array:
    """xxh64 event ids of a batch, as the store computes them (ignores an existing event_id column)."""
    if kind not in ARROW_SCHEMAS:
        raise InvalidInput(f"unknown event kind {kind!r}; use one of {', '.join(KINDS)}", field="kind")
    cols = [c for c in table.column_names if c != "event_id"]
    return normalize(kind, table.select(cols))["event_id"].combine_chunks()


def event_id_of(kind: Kind, row: Mapping[str, Any]) -> int:
    """The event id of one event given as a mapping of column -> value."""
    table = pa.Table.from_pylist([{k: v for k, v in row.items() if k != "event_id"}])
    return int(event_ids(kind, table)[0].as_py())


# -- stored rows read back -----------------------------------------------------------------------

LOG_SELECT = ", ".join(ARROW_SCHEMAS["logs"].names)
SPAN_SELECT = ", ".join(ARROW_SCHEMAS["spans"].names)


def json_or_text(text: str) -> Any:
    """A JSON column's value decoded ({} when empty), or the text itself when it is not JSON."""
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text


def log_row(columns: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    """One stored log line as a dict, with its time as ISO text (`ts`) and `meta` decoded."""
    event = dict(zip(columns, row, strict=True))
    event["ts"] = iso(event["ts_ns"])
    event["meta"] = json_or_text(event["meta"])
    return event
