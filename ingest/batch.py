"""Column batches: how bulk telemetry moves from readers through the pipeline into the event store.

A batch is a dict of equal-length Python lists keyed by the event store's column names (without
`event_id`, which the store computes). Readers append row by row; `to_table` makes the Arrow table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import pyarrow as pa

Kind = Literal["logs", "spans", "metrics"]

SCHEMAS: dict[str, pa.Schema] = {
    "logs": pa.schema(
        [
            ("ts_ns", pa.int64()),
            ("source", pa.string()),
            ("service", pa.string()),
            ("host", pa.string()),
            ("pod", pa.string()),
            ("level", pa.string()),
            ("message", pa.string()),
            ("trace_id", pa.string()),
            ("span_id", pa.string()),
            ("event_type", pa.string()),
            ("error_code", pa.string()),
            ("meta", pa.string()),
        ]
    ),
    "spans": pa.schema(
        [
            ("trace_id", pa.string()),
            ("span_id", pa.string()),
            ("parent_id", pa.string()),
            ("service", pa.string()),
            ("pod", pa.string()),
            ("host", pa.string()),
            ("operation", pa.string()),
            ("start_ns", pa.int64()),
            ("end_ns", pa.int64()),
            ("duration_us", pa.float64()),
            ("status", pa.string()),
            ("kind", pa.string()),
            ("attributes", pa.string()),
        ]
    ),
    "metrics": pa.schema(
        [
            ("ts_ns", pa.int64()),
            ("name", pa.string()),
            ("value", pa.float64()),
            ("service", pa.string()),
            ("pod", pa.string()),
            ("host", pa.string()),
            ("attributes", pa.string()),
        ]
    ),
}

COLUMNS: dict[str, tuple[str, ...]] = {kind: tuple(s.names) for kind, s in SCHEMAS.items()}


def empty(kind: Kind) -> dict[str, list[Any]]:
    return {name: [] for name in COLUMNS[kind]}


def append_row(cols: dict[str, list[Any]], row: Mapping[str, Any]) -> None:
    """Append one row; absent string columns become ''."""
    for name, values in cols.items():
        values.append(row.get(name, ""))


def num_rows(cols: Mapping[str, list[Any]]) -> int:
    return len(next(iter(cols.values()))) if cols else 0


def to_table(kind: Kind, cols: Mapping[str, list[Any]]) -> pa.Table:
    schema = SCHEMAS[kind]
    return pa.Table.from_pydict({name: cols[name] for name in schema.names}, schema=schema)


def concat(kind: Kind, batches: Iterable[Mapping[str, list[Any]]]) -> dict[str, list[Any]]:
    out = empty(kind)
    for b in batches:
        for name in out:
            out[name].extend(b[name])
    return out


def coalesce(
    batches: Iterable[tuple[Any, dict[str, list[Any]]]], kind_of: Any, max_rows: int
) -> Iterable[tuple[str, list[Any], dict[str, list[Any]]]]:
    """Merge consecutive batches of the same kind up to `max_rows` rows: (kind, sources, columns).

    Bulk imports write fewer, larger batches: each commit costs the same whatever its size, and the event
    store writes batches of a row group (122,880 rows) or more straight to its file.
    """
    kind: str | None = None
    sources: list[Any] = []
    merged: dict[str, list[Any]] = {}
    for source, cols in batches:
        k = kind_of(source)
        if kind is not None and (k != kind or num_rows(merged) + num_rows(cols) > max_rows) and sources:
            yield kind, sources, merged
            sources, merged = [], {}
        kind = k
        sources.append(source)
        if not merged:
            merged = {name: list(values) for name, values in cols.items()}
        else:
            for name, values in cols.items():
                merged[name].extend(values)
    if kind is not None and sources:
        yield kind, sources, merged
