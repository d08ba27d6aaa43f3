"""Aggregations over the stored events: row counts by column and time bucket, lines per template,
error lines per service, span statistics per operation, calls between services, metric means.

`Aggregations` is mixed into `EventStore` and works on its DuckDB file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput
from core.telemetry import KINDS, TIME_COLUMN, Kind
from core.timeutil import NS
from retrieval.events.db import Database
from retrieval.events.query import LogQuery, in_clause, levels_at_least, where_clause

# Columns that count_by may group or filter on (identifiers are only ever taken from here).
GROUPABLE: dict[Kind, frozenset[str]] = {
    "logs": frozenset(
        {"source", "service", "host", "pod", "level", "trace_id", "event_type", "error_code", "template_id"}
    ),
    "spans": frozenset({"trace_id", "service", "pod", "host", "operation", "status", "kind", "parent_id"}),
    "metrics": frozenset({"name", "service", "pod", "host"}),
}


@dataclass(frozen=True)
class TemplateCount:
    template_id: str
    service: str
    count: int
    first_ns: int
    last_ns: int


@dataclass(frozen=True)
class BucketCount:
    bucket_ns: int
    service: str
    count: int


@dataclass(frozen=True)
class SpanStat:
    service: str
    operation: str
    count: int
    errors: int
    mean_ms: float
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class EdgeStat:
    caller: str
    callee: str
    calls: int
    errors: int
    mean_ms: float
    p50_ms: float
    p95_ms: float


class Aggregations:
    """Counts and statistics over logs, spans and metrics; mixed into `EventStore`, which sets `_db`."""

    _db: Database

    def count_by(
        self,
        kind: Kind,
        group_by: Sequence[str],
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        where: LogQuery | Mapping[str, str | Sequence[str]] | None = None,
        bucket_s: int | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        """Row counts per group (and per time bucket of `bucket_s`, key `bucket_ns`), largest first.

        `where` is a LogQuery (logs only; its window, filters and level rules apply) or a mapping
        of column -> value or list of values. Empty buckets are not returned.
        """
        if kind not in KINDS:
            raise InvalidInput(f"unknown event kind {kind!r}; use one of {', '.join(KINDS)}", field="kind")
        allowed = GROUPABLE[kind]
        bad = [c for c in group_by if c not in allowed]
        if bad:
            raise InvalidInput(
                f"cannot group {kind} by {', '.join(bad)}; use any of {', '.join(sorted(allowed))}",
                field="group_by",
            )
        tcol = TIME_COLUMN[kind]
        clauses: list[str] = []
        params: list[Any] = []
        keys = list(group_by)
        select = list(group_by)
        if bucket_s is not None:
            if bucket_s < 1:
                raise InvalidInput("bucket_s must be at least 1", field="bucket_s")
            select.insert(0, f"({tcol} // ?) * ? AS bucket_ns")
            params += [bucket_s * NS, bucket_s * NS]
            keys.insert(0, "bucket_ns")
        if start_ns is not None:
            clauses.append(f"{tcol} >= ?")
            params.append(start_ns)
        if end_ns is not None:
            clauses.append(f"{tcol} < ?")
            params.append(end_ns)
        if isinstance(where, LogQuery):
            if kind != "logs":
                raise InvalidInput("a LogQuery filter applies to logs only", field="where")
            more, more_params = where_clause(where)
            clauses += more
            params += more_params
        elif where:
            for column, value in where.items():
                if column not in allowed:
                    raise InvalidInput(f"cannot filter {kind} on {column!r}", field="where")
                clauses.append(in_clause(column, [value] if isinstance(value, str) else list(value), params))
        where_sql = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        group_sql = f"GROUP BY {', '.join(keys)}" if keys else ""
        order = ", ".join(["count DESC", *keys]) if bucket_s is None else ", ".join([*keys, "count DESC"])
        columns, rows = self._db.all(
            f"SELECT {', '.join([*select, 'count(*) AS count'])} FROM {kind} {where_sql} {group_sql}"
            f" ORDER BY {order} LIMIT ?",
            [*params, limit],
        )
        return [dict(zip(columns, r, strict=True)) for r in rows]

    def template_counts(
        self, start_ns: int, end_ns: int, *, services: Sequence[str] | None = None
    ) -> list[TemplateCount]:
        """Lines per (template, service) in [start_ns, end_ns), most frequent first; untemplated skipped."""
        params: list[Any] = [start_ns, end_ns]
        cond = f" AND {in_clause('service', list(services), params)}" if services is not None else ""
        # lines pruned by retention count from their per-minute rollup (buckets starting in the window)
        _, rows = self._db.all(
            "SELECT template_id, service, sum(n) AS n, min(lo), max(hi) FROM"
            " (SELECT template_id, service, count(*) AS n, min(ts_ns) AS lo, max(ts_ns) AS hi FROM logs"
            f" WHERE ts_ns >= ? AND ts_ns < ? AND template_id <> ''{cond} GROUP BY template_id, service"
            " UNION ALL SELECT template_id, service, sum(count), min(first_ns), max(last_ns) FROM log_rollup"
            f" WHERE bucket_ns >= ? AND bucket_ns < ? AND template_id <> ''{cond} GROUP BY template_id, service)"
            " GROUP BY template_id, service ORDER BY n DESC, template_id, service",
            params + params,
        )
        return [TemplateCount(*r) for r in rows]

    def error_counts(
        self,
        start_ns: int,
        end_ns: int,
        *,
        bucket_s: int = 60,
        min_level: str = "ERROR",
        services: Sequence[str] | None = None,
    ) -> list[BucketCount]:
        """Lines at `min_level` or above per service per time bucket (buckets aligned to the epoch)."""
        if bucket_s < 1:
            raise InvalidInput("bucket_s must be at least 1", field="bucket_s")
        width = bucket_s * NS
        params: list[Any] = [width, width, start_ns, end_ns]
        cond = in_clause("level", levels_at_least(min_level), params)
        if services is not None:
            cond += f" AND {in_clause('service', list(services), params)}"
        _, rows = self._db.all(  # pruned lines count from their per-minute rollup
            "SELECT b AS bucket_ns, service, sum(n) FROM"
            " (SELECT (ts_ns // ?) * ? AS b, service, count(*) AS n FROM logs"
            f" WHERE ts_ns >= ? AND ts_ns < ? AND {cond} GROUP BY b, service"
            " UNION ALL SELECT (bucket_ns // ?) * ? AS b, service, sum(count) FROM log_rollup"
            f" WHERE bucket_ns >= ? AND bucket_ns < ? AND {cond} GROUP BY b, service)"
            " GROUP BY bucket_ns, service ORDER BY bucket_ns, service",
            params + params,
        )
        return [BucketCount(*r) for r in rows]

    def span_stats(self, start_ns: int, end_ns: int, *, services: Sequence[str] | None = None) -> list[SpanStat]:
        """Per (service, operation): spans starting in the window, errors, mean/p50/p95 duration."""
        params: list[Any] = [start_ns, end_ns]
        cond = f" AND {in_clause('service', list(services), params)}" if services is not None else ""
        _, rows = self._db.all(
            "SELECT service, operation, count(*), count(*) FILTER (WHERE status = 'ERROR'),"
            " avg(duration_us) / 1000, quantile_cont(duration_us, 0.5) / 1000,"
            " quantile_cont(duration_us, 0.95) / 1000"
            f" FROM spans WHERE start_ns >= ? AND start_ns < ?{cond}"
            " GROUP BY service, operation ORDER BY service, operation",
            params,
        )
        return [SpanStat(*r) for r in rows]

    def call_edges(self, start_ns: int, end_ns: int, *, parent_slack_s: int = 600) -> list[EdgeStat]:
        """Calls from one service to another: a span whose parent span belongs to another service.

        Counts the child spans starting in the window; errors and durations are the child's (the
        callee's view). Parents are looked for within `parent_slack_s` around the window.
        """
        slack = parent_slack_s * NS
        _, rows = self._db.all(
            "SELECT p.service AS caller, c.service AS callee, count(*) AS calls,"
            " count(*) FILTER (WHERE c.status = 'ERROR'), avg(c.duration_us) / 1000,"
            " quantile_cont(c.duration_us, 0.5) / 1000, quantile_cont(c.duration_us, 0.95) / 1000"
            " FROM spans c JOIN spans p ON p.trace_id = c.trace_id AND p.span_id = c.parent_id"
            " WHERE c.start_ns >= ? AND c.start_ns < ? AND p.start_ns >= ? AND p.start_ns < ?"
            " AND c.parent_id <> '' AND p.service <> c.service"
            " GROUP BY caller, callee ORDER BY caller, callee",
            [start_ns, end_ns, start_ns - slack, end_ns + slack],
        )
        return [EdgeStat(*r) for r in rows]

    def metric_means(
        self, start_ns: int, end_ns: int, *, pods: Sequence[str] | None = None
    ) -> dict[tuple[str, str], float]:
        """Mean of each (pod, metric name) in [start_ns, end_ns)."""
        params: list[Any] = [start_ns, end_ns]
        cond = f" AND {in_clause('pod', list(pods), params)}" if pods is not None else ""
        _, rows = self._db.all(
            f"SELECT pod, name, avg(value) FROM metrics WHERE ts_ns >= ? AND ts_ns < ?{cond} GROUP BY pod, name",
            params,
        )
        return {(r[0], r[1]): float(r[2]) for r in rows if r[2] is not None}

    def latest_placements(self, pods: Sequence[str] | None = None) -> list[tuple[str, str, str]]:
        """(pod, service, host) of each pod (all, or those named) as its latest row of any kind says:
        the service and host of its newest row that names one ('' for a host never named). Pods never
        named with a service are left out."""
        params: list[Any] = []
        parts = []
        for kind in KINDS:
            cond = f" AND {in_clause('pod', list(pods), params)}" if pods is not None else ""
            parts.append(f"SELECT pod, service, host, {TIME_COLUMN[kind]} AS t FROM {kind} WHERE pod <> ''{cond}")
        _, rows = self._db.all(
            "SELECT pod, arg_max(service, t) FILTER (WHERE service <> ''),"
            " coalesce(arg_max(host, t) FILTER (WHERE host <> ''), '')"
            f" FROM ({' UNION ALL '.join(parts)}) GROUP BY pod ORDER BY pod",
            params,
        )
        return [(pod, service, host) for pod, service, host in rows if service]
