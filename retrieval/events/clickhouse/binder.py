"""Query parameters for ClickHouse SQL: `Binder.bind(value, type)` names a value and returns its
`{pN:Type}` placeholder, so no value is ever written into a statement; and the WHERE clause of a
`LogQuery` in ClickHouse's dialect (the same filters as `retrieval.events.query.where_clause`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from retrieval.events.query import LogQuery, levels_at_least

_LIST_FIELDS = ("service", "host", "pod", "template_id")  # as in retrieval.events.query


class Binder:
    """Collects named parameters for one statement."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def bind(self, value: Any, ch_type: str) -> str:
        """A placeholder for `value` of ClickHouse type `ch_type` (a constant of this package)."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"{{{name}:{ch_type}}}"

    def int(self, value: int) -> str:
        return self.bind(int(value), "Int64")

    def text(self, value: str) -> str:
        return self.bind(str(value), "String")

    def one_of(self, column: str, values: Sequence[str]) -> str:
        """`column IN (...)`; `column` must come from an allow-list."""
        if not values:
            return "false"
        return f"{column} IN {self.bind([str(v) for v in values], 'Array(String)')}"


def _as_list(v: str | Sequence[str]) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


def log_where(q: LogQuery, b: Binder) -> list[str]:
    """Conditions (to be ANDed) for the filters of `q` (not the cursor)."""
    clauses: list[str] = []
    if q.start_ns is not None:
        clauses.append(f"ts_ns >= {b.int(q.start_ns)}")
    if q.end_ns is not None:
        clauses.append(f"ts_ns < {b.int(q.end_ns)}")
    for name in _LIST_FIELDS:
        value = getattr(q, name)
        if value is not None:
            clauses.append(b.one_of(name, _as_list(value)))
    if q.level is not None:
        clauses.append(b.one_of("level", _as_list(q.level)))
    if q.min_level is not None:
        clauses.append(b.one_of("level", levels_at_least(q.min_level)))
    if q.trace_id is not None:
        clauses.append(f"trace_id = {b.text(q.trace_id)}")
    if q.contains is not None:
        clauses.append(f"positionCaseInsensitiveUTF8(message, {b.text(q.contains)}) > 0")
    return clauses


def keyset(q: LogQuery, after: tuple[int, int], b: Binder) -> str:
    """Rows strictly after (ts_ns, event_id) in the query's order."""
    ts_ns, event_id = after
    ts, ts2, eid = b.int(ts_ns), b.int(ts_ns), b.bind(int(event_id), "UInt64")
    if q.order == "asc":
        return f"ts_ns >= {ts} AND (ts_ns > {ts2} OR event_id > {eid})"
    return f"ts_ns <= {ts} AND (ts_ns < {ts2} OR event_id < {eid})"
