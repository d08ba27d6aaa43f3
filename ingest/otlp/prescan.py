"""Record counts of an OTLP request, taken before it is decoded, so an oversized request costs little.

`check_records(signal, body, kind, limit)` counts log records, spans or metric data points and raises
PayloadTooLarge (field 'resourceLogs...logRecords' etc., naming the setting) as soon as the count passes
the limit. Protobuf bodies are read on the wire: only the length-delimited envelope fields leading to
records are walked (request -> resource -> scope [-> metric -> gauge/sum/...]) and each record is
skipped by its length, never decoded; the walk stops at the limit, and at `max_fields` envelope fields,
so a body of millions of tiny fields is refused in a bounded time too. A corrupt envelope stops the
walk of that part (the decoder then reports it as before). JSON bodies are counted with the streaming
`ingest.bounded.check_json_items`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import PayloadTooLarge
from ingest.bounded import check_json_items

_LEAF: dict[int, Any] = {}
"""Marks a field whose every occurrence is one record."""
_POINTS: dict[int, Any] = {1: _LEAF}  # Gauge, Sum, Histogram, ExponentialHistogram, Summary: data_points = 1
_TREES: dict[str, dict[int, Any]] = {
    # ExportLogsServiceRequest.resource_logs(1) -> ResourceLogs.scope_logs(2) -> ScopeLogs.log_records(2)
    "logs": {1: {2: {2: _LEAF}}},
    # ExportTraceServiceRequest.resource_spans(1) -> ResourceSpans.scope_spans(2) -> ScopeSpans.spans(2)
    "traces": {1: {2: {2: _LEAF}}},
    # ... ScopeMetrics.metrics(2) -> Metric.gauge(5) | sum(7) | histogram(9) | exponential_histogram(10) | summary(11)
    "metrics": {1: {2: {2: {5: _POINTS, 7: _POINTS, 9: _POINTS, 10: _POINTS, 11: _POINTS}}}},
}


@dataclass(frozen=True)
class Counted:
    """What one signal's records are called: in messages, in JSON paths, and the setting that bounds them."""

    what: str
    field: str
    setting: str
    json_suffixes: tuple[str, ...]


SIGNALS: dict[str, Counted] = {
    "logs": Counted(
        "log records",
        "resourceLogs.scopeLogs.logRecords",
        "DEVMESH_MAX_BATCH_EVENTS",
        (".logRecords.item", ".log_records.item"),
    ),
    "traces": Counted("spans", "resourceSpans.scopeSpans.spans", "DEVMESH_MAX_BATCH_SPANS", (".spans.item",)),
    "metrics": Counted(
        "data points",
        "resourceMetrics.scopeMetrics.metrics.dataPoints",
        "DEVMESH_MAX_BATCH_POINTS",
        (".dataPoints.item", ".data_points.item"),
    ),
}


class _Over(Exception):
    """Internal: the walk passed a bound."""


def check_records(signal: str, body: bytes, kind: str, limit: int, *, max_fields: int | None = None) -> int:
    """The number of records of an OTLP body of `kind` 'protobuf' or 'json' (-1: a JSON body too small to
    hold more than `limit`); PayloadTooLarge as soon as it passes `limit`, or when a protobuf envelope has
    more than `max_fields` fields (default 16 per record allowed, at least 4096)."""
    c = SIGNALS[signal]
    if kind == "json":
        return check_json_items(body, limit, suffixes=c.json_suffixes, what=c.what, field=c.field, setting=c.setting)
    budget = max_fields if max_fields is not None else max(4096, 16 * limit)
    walk = _Walk(body, limit, budget)
    try:
        walk.fields(0, len(body), _TREES[signal])
    except _Over:
        if walk.count > limit:
            raise PayloadTooLarge(
                f"more than {limit} {c.what} in one request; the limit is {limit} ({c.setting})", field=c.field
            ) from None
        raise PayloadTooLarge(
            f"the request's envelope has more than {budget} protobuf fields for at most {limit} {c.what}",
            field="body",
        ) from None
    return walk.count


class _Walk:
    """A protobuf wire walk over the envelope of one body, counting leaf records."""

    def __init__(self, buf: bytes, limit: int, budget: int) -> None:
        self.buf = buf
        self.limit = limit
        self.budget = budget
        self.count = 0

    def fields(self, pos: int, end: int, tree: dict[int, Any]) -> None:
        """Walk the fields of the message in buf[pos:end]; stop quietly at corrupt wire format."""
        buf = self.buf
        while pos < end:
            self.budget -= 1
            if self.budget < 0:
                raise _Over
            key, pos = read_varint(buf, pos, end)
            if key < 0:
                return
            wire_type = key & 7
            if wire_type == 2:
                length, pos = read_varint(buf, pos, end)
                if length < 0 or pos + length > end:
                    return
                sub = tree.get(key >> 3)
                if sub is not None:
                    if sub is _LEAF:
                        self.count += 1
                        if self.count > self.limit:
                            raise _Over
                    else:
                        self.fields(pos, pos + length, sub)
                pos += length
            elif wire_type == 0:
                _, pos = read_varint(buf, pos, end)
                if pos < 0:
                    return
            elif wire_type == 1:
                pos += 8
            elif wire_type == 5:
                pos += 4
            else:  # groups (3, 4) and 6, 7 do not occur in OTLP
                return
        return


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, next position), or (-1, -1) for a varint that is truncated or longer than 10 bytes."""
    if pos < end:
        b = buf[pos]
        if b < 0x80:
            return b, pos + 1
    result = shift = 0
    while pos < end and shift < 70:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    return -1, -1
