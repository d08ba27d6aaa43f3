"""Log queries: the filter model, its SQL WHERE clause, and keyset cursors over (ts_ns, event_id)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import xxhash
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import InvalidInput, NotFound
from core.telemetry import Level
from core.timeutil import parse_time_arg
from retrieval.events.schema import log_row

LEVEL_ORDER: tuple[str, ...] = tuple(level.value for level in Level)

_CURSOR_VERSION = 1
_LIST_FIELDS = ("service", "host", "pod", "template_id")


class LogQuery(BaseModel):
    """Which log lines to return. Every given filter must hold; text filters are exact matches."""

    model_config = ConfigDict(extra="forbid")

    start_ns: int | None = Field(default=None, description="Earliest event time (inclusive), ns UTC.")
    end_ns: int | None = Field(default=None, description="Latest event time (exclusive), ns UTC.")
    service: str | list[str] | None = Field(default=None, description="Service name, or any of several.")
    host: str | list[str] | None = Field(default=None, description="Host name, or any of several.")
    pod: str | list[str] | None = Field(default=None, description="Pod name, or any of several.")
    level: str | list[str] | None = Field(default=None, description="Level, or any of several levels.")
    min_level: str | None = Field(default=None, description="This level or a more severe one.")
    trace_id: str | None = Field(default=None, description="Lines of this trace.")
    template_id: str | list[str] | None = Field(default=None, description="Lines of these templates.")
    contains: str | None = Field(
        default=None, min_length=1, max_length=1000, description="Case-insensitive substring of the message."
    )
    order: Literal["asc", "desc"] = Field(default="desc", description="By time: oldest or newest first.")
    limit: int = Field(default=100, ge=1, le=1000, description="Most lines on one page.")
    cursor: str | None = Field(default=None, description="`next_cursor` of the previous page.")

    @field_validator("level", mode="after")
    @classmethod
    def _check_levels(cls, v: str | list[str] | None) -> str | list[str] | None:
        if v is None:
            return None
        levels = [_level(x) for x in ([v] if isinstance(v, str) else v)]
        return levels[0] if isinstance(v, str) else levels

    @field_validator("min_level", mode="after")
    @classmethod
    def _check_min_level(cls, v: str | None) -> str | None:
        return None if v is None else _level(v)

    def filter_fingerprint(self) -> str:
        """A short hash of the filters (not order, limit or cursor): a cursor is valid only for them."""
        body = self.model_dump(exclude={"order", "limit", "cursor"})
        return xxhash.xxh64_hexdigest(json.dumps(body, sort_keys=True).encode())


class LogPage(BaseModel):
    """One page of log lines and the cursor of the next page (None on the last page)."""

    events: list[dict[str, Any]]
    next_cursor: str | None = None


def _level(value: str) -> str:
    up = value.strip().upper()
    if up == "WARNING":
        up = "WARN"
    if up not in LEVEL_ORDER:
        raise ValueError(f"unknown level {value!r}; use one of {', '.join(LEVEL_ORDER)}")
    return up


def levels_at_least(level: str) -> list[str]:
    """The levels as severe as `level` or more."""
    return list(LEVEL_ORDER[LEVEL_ORDER.index(_level(level)) :])


def _as_list(v: str | Sequence[str]) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


def in_clause(column: str, values: Sequence[str], params: list[Any]) -> str:
    """`column IN (?, ...)` with the values appended to params; `column` must come from an allow-list."""
    if not values:
        return "false"
    params.extend(values)
    return f"{column} IN ({', '.join('?' * len(values))})"


def where_clause(q: LogQuery, *, skip_trace: bool = False) -> tuple[list[str], list[Any]]:
    """SQL conditions (to be ANDed) and their parameters for the filters of `q` (not the cursor).

    `skip_trace` leaves out the trace_id condition, for a caller that applies it itself.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if q.start_ns is not None:
        clauses.append("ts_ns >= ?")
        params.append(q.start_ns)
    if q.end_ns is not None:
        clauses.append("ts_ns < ?")
        params.append(q.end_ns)
    for name in _LIST_FIELDS:
        value = getattr(q, name)
        if value is not None:
            clauses.append(in_clause(name, _as_list(value), params))
    if q.level is not None:
        clauses.append(in_clause("level", _as_list(q.level), params))
    if q.min_level is not None:
        clauses.append(in_clause("level", levels_at_least(q.min_level), params))
    if q.trace_id is not None and not skip_trace:
        clauses.append("trace_id = ?")
        params.append(q.trace_id)
    if q.contains is not None:
        clauses.append("contains(lower(message), ?)")
        params.append(q.contains.lower())
    return clauses, params


def encode_cursor(q: LogQuery, ts_ns: int, event_id: int) -> str:
    body = {"v": _CURSOR_VERSION, "o": q.order, "f": q.filter_fingerprint(), "t": ts_ns, "e": event_id}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(q: LogQuery) -> tuple[int, int] | None:
    """(ts_ns, event_id) of the last line of the previous page, or None without a cursor."""
    if q.cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(q.cursor + "=" * (-len(q.cursor) % 4))
        body = json.loads(raw)
        ts_ns, event_id = body["t"], body["e"]
        ok = (
            body["v"] == _CURSOR_VERSION
            and type(ts_ns) is int
            and type(event_id) is int
            and 0 <= event_id < 2**64
            and -(2**63) <= ts_ns < 2**63
        )
    except (ValueError, binascii.Error, TypeError, KeyError) as exc:
        raise NotFound(
            "no page at this cursor: it is not one this server issued; pass the next_cursor of the previous page"
            " or none",
            field="cursor",
        ) from exc
    if not ok:
        raise NotFound(
            "no page at this cursor: it is not one this server issued; pass the next_cursor of the previous page"
            " or none",
            field="cursor",
        )
    if body.get("o") != q.order or body.get("f") != q.filter_fingerprint():
        raise NotFound(
            "no page at this cursor: it belongs to a query with other filters or order; repeat that query or start"
            " without one",
            field="cursor",
        )
    return ts_ns, event_id


def keyset_clause(q: LogQuery, after: tuple[int, int], params: list[Any]) -> str:
    """Rows strictly after (ts_ns, event_id) in the query's order."""
    ts_ns, event_id = after
    params.extend([ts_ns, ts_ns, event_id])
    if q.order == "asc":
        return "ts_ns >= ? AND (ts_ns > ? OR event_id > ?)"
    return "ts_ns <= ? AND (ts_ns < ? OR event_id < ?)"


def log_page(q: LogQuery, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> LogPage:
    """The page of `q` from the at most `q.limit + 1` rows read for it (one more than a page says there is a
    next one)."""
    events = [log_row(list(columns), r) for r in rows[: q.limit]]
    next_cursor = None
    if len(rows) > q.limit:
        last = events[-1]
        next_cursor = encode_cursor(q, last["ts_ns"], last["event_id"])
    return LogPage(events=events, next_cursor=next_cursor)


PAGE_PROBE_S = 60
"""Seconds of a query's range nearest where its page starts that are read first (`page_probe`)."""


def page_probe(q: LogQuery, after: tuple[int, int] | None) -> tuple[int, int] | None:
    """The slice of `q`'s time range nearest where its next page starts, `PAGE_PROBE_S` long, when the range is
    bounded and more than twice as wide (else None). Every line in it comes before every line outside it in the
    query's order, so when it holds more than a page, the page is in it. Trace lookups have an index of their
    own and are not narrowed."""
    if q.trace_id is not None or q.start_ns is None or q.end_ns is None:
        return None
    width = PAGE_PROBE_S * 1_000_000_000
    if q.order == "asc":
        edge = q.start_ns if after is None else max(q.start_ns, after[0])
        lo, hi = edge, min(q.end_ns, edge + width)
    else:
        edge = q.end_ns if after is None else min(q.end_ns, after[0] + 1)
        lo, hi = max(q.start_ns, edge - width), edge
    if hi - lo < width or q.end_ns - q.start_ns <= 2 * width:
        return None
    return lo, hi


def matches(q: LogQuery, event: dict[str, Any]) -> bool:
    """Whether one stored line (as returned by the store) passes `q`'s filters; the same rules as SQL."""
    ts = event["ts_ns"]
    if q.start_ns is not None and ts < q.start_ns:
        return False
    if q.end_ns is not None and ts >= q.end_ns:
        return False
    for name in _LIST_FIELDS:
        value = getattr(q, name)
        if value is not None and event[name] not in _as_list(value):
            return False
    if q.level is not None and event["level"] not in _as_list(q.level):
        return False
    if q.min_level is not None and event["level"] not in levels_at_least(q.min_level):
        return False
    if q.trace_id is not None and event["trace_id"] != q.trace_id:
        return False
    return q.contains is None or q.contains.lower() in event["message"].lower()


def query_from_args(names: Mapping[str, str], **args: Any) -> LogQuery:
    """A LogQuery from front-end arguments: `since`/`until` as times (ISO, epoch, '15m' = that long ago),
    `level` as the minimum level, lists as they are; empty values are left out. A bad value is InvalidInput
    naming the argument as the front end calls it (`names` maps since, until, level, ... to those names)."""
    fields: dict[str, Any] = {}
    for arg, value in args.items():
        if value is None or value == [] or value == "":
            continue
        key = {"since": "start_ns", "until": "end_ns", "level": "min_level"}.get(arg, arg)
        if arg in ("since", "until"):
            try:
                value = parse_time_arg(value)
            except InvalidInput as exc:
                raise InvalidInput(exc.message, field=names.get(arg, arg)) from exc
        fields[key] = value
    try:
        return LogQuery(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "body"
        arg = {"start_ns": "since", "end_ns": "until", "min_level": "level"}.get(key, key)
        problem = str(err["msg"]).removeprefix("Value error, ")
        raise InvalidInput(problem, field=names.get(arg, arg)) from exc
