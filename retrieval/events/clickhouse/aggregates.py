"""Aggregations over the ClickHouse event store, with the same answers as
`retrieval.events.aggregates` on DuckDB: counts by column and time bucket, lines per template, error
lines per service, span statistics, calls between services, metric means, pod placements.

Quantiles are `quantileExactInclusive`, the linear interpolation DuckDB's `quantile_cont` uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core.errors import InvalidInput
from core.telemetry import KINDS, TIME_COLUMN, Kind
from core.timeutil import NS
from retrieval.events.aggregates import GROUPABLE, BucketCount, EdgeStat, SpanStat, TemplateCount
from retrieval.events.clickhouse.binder import Binder, log_where
from retrieval.events.query import LogQuery, levels_at_least

if TYPE_CHECKING:
    import pyarrow as pa


def _ms(expr: str) -> str:
    return f"{expr} / 1000"


class ClickHouseAggregations:
    """Mixed into `ClickHouseEventStore`, which provides `_rows`."""

    def _rows(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        raise NotImplementedError

    def _table(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        raise NotImplementedError

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
        """Row counts per group (and per time bucket of `bucket_s`, key `bucket_ns`), largest first."""
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
        b = Binder()
        keys = list(group_by)
        select = list(group_by)
        if bucket_s is not None:
            if bucket_s < 1:
                raise InvalidInput("bucket_s must be at least 1", field="bucket_s")
            w = b.int(bucket_s * NS)
            select.insert(0, f"intDiv({tcol}, {w}) * {w} AS bucket_ns")
            keys.insert(0, "bucket_ns")
        clauses: list[str] = []
        if start_ns is not None:
            clauses.append(f"{tcol} >= {b.int(start_ns)}")
        if end_ns is not None:
            clauses.append(f"{tcol} < {b.int(end_ns)}")
        if isinstance(where, LogQuery):
            if kind != "logs":
                raise InvalidInput("a LogQuery filter applies to logs only", field="where")
            clauses += log_where(where, b)
        elif where:
            for column, value in where.items():
                if column not in allowed:
                    raise InvalidInput(f"cannot filter {kind} on {column!r}", field="where")
                clauses.append(b.one_of(column, [value] if isinstance(value, str) else list(value)))
        where_sql = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        group_sql = f"GROUP BY {', '.join(keys)}" if keys else ""
        order = ", ".join(["count DESC", *keys]) if bucket_s is None else ", ".join([*keys, "count DESC"])
        columns, rows = self._rows(
            f"SELECT {', '.join([*select, 'toInt64(count()) AS count'])} FROM {kind} {where_sql} {group_sql}"
            f" ORDER BY {order} LIMIT {b.bind(limit, 'UInt64')}",
            b.params,
        )
        return [dict(zip(columns, r, strict=True)) for r in rows]

    def template_counts(
        self, start_ns: int, end_ns: int, *, services: Sequence[str] | None = None
    ) -> list[TemplateCount]:
        """Lines per (template, service) in [start_ns, end_ns), most frequent first; untemplated skipped."""
        b = Binder()
        cond = f" AND {b.one_of('service', list(services))}" if services is not None else ""
        lo, hi = b.int(start_ns), b.int(end_ns)
        # lines pruned by retention count from their per-minute rollup (buckets starting in the window)
        _, rows = self._rows(
            "SELECT template_id, svc, toInt64(sum(c)) AS n, min(lo), max(hi) FROM ("
            "SELECT template_id, toString(service) AS svc, toInt64(count()) AS c, min(ts_ns) AS lo, max(ts_ns) AS hi"
            " FROM logs"
            f" WHERE ts_ns >= {lo} AND ts_ns < {hi} AND template_id != ''{cond} GROUP BY template_id, svc"
            " UNION ALL SELECT template_id, service AS svc, toInt64(sum(count)) AS c, min(first_ns) AS lo,"
            " max(last_ns) AS hi"
            f" FROM log_rollup FINAL WHERE bucket_ns >= {lo} AND bucket_ns < {hi} AND template_id != ''{cond}"
            " GROUP BY template_id, svc) GROUP BY template_id, svc ORDER BY n DESC, template_id, svc",
            b.params,
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
        b = Binder()
        w = b.int(bucket_s * NS)
        cond = b.one_of("level", levels_at_least(min_level))
        if services is not None:
            cond += f" AND {b.one_of('service', list(services))}"
        lo, hi = b.int(start_ns), b.int(end_ns)
        _, rows = self._rows(  # pruned lines count from their per-minute rollup
            "SELECT bucket, svc, toInt64(sum(c)) FROM ("
            f"SELECT intDiv(ts_ns, {w}) * {w} AS bucket, toString(service) AS svc, toInt64(count()) AS c FROM logs"
            f" WHERE ts_ns >= {lo} AND ts_ns < {hi} AND {cond} GROUP BY bucket, svc"
            f" UNION ALL SELECT intDiv(bucket_ns, {w}) * {w} AS bucket, service AS svc, toInt64(sum(count)) AS c"
            f" FROM log_rollup FINAL WHERE bucket_ns >= {lo} AND bucket_ns < {hi} AND {cond} GROUP BY bucket, svc)"
            " GROUP BY bucket, svc ORDER BY bucket, svc",
            b.params,
        )
        return [BucketCount(*r) for r in rows]

    def span_stats(self, start_ns: int, end_ns: int, *, services: Sequence[str] | None = None) -> list[SpanStat]:
        """Per (service, operation): spans starting in the window, errors, mean/p50/p95 duration."""
        b = Binder()
        cond = f" AND {b.one_of('service', list(services))}" if services is not None else ""
        _, rows = self._rows(
            "SELECT toString(service) AS svc, operation, toInt64(count()), toInt64(countIf(status = 'ERROR')),"
            f" {_ms('avg(duration_us)')}, {_ms('quantileExactInclusive(0.5)(duration_us)')},"
            f" {_ms('quantileExactInclusive(0.95)(duration_us)')}"
            f" FROM spans WHERE start_ns >= {b.int(start_ns)} AND start_ns < {b.int(end_ns)}{cond}"
            " GROUP BY svc, operation ORDER BY svc, operation",
            b.params,
        )
        return [SpanStat(*r) for r in rows]

    def call_edges(self, start_ns: int, end_ns: int, *, parent_slack_s: int = 600) -> list[EdgeStat]:
        """Calls from one service to another: a span whose parent span belongs to another service."""
        slack = parent_slack_s * NS
        b = Binder()
        _, rows = self._rows(
            "SELECT toString(p.service) AS caller, toString(c.service) AS callee, toInt64(count()) AS calls,"
            f" toInt64(countIf(c.status = 'ERROR')), {_ms('avg(c.duration_us)')},"
            f" {_ms('quantileExactInclusive(0.5)(c.duration_us)')},"
            f" {_ms('quantileExactInclusive(0.95)(c.duration_us)')}"
            " FROM spans AS c INNER JOIN spans AS p ON p.trace_id = c.trace_id AND p.span_id = c.parent_id"
            f" WHERE c.start_ns >= {b.int(start_ns)} AND c.start_ns < {b.int(end_ns)}"
            f" AND p.start_ns >= {b.int(start_ns - slack)} AND p.start_ns < {b.int(end_ns + slack)}"
            " AND c.parent_id != '' AND p.service != c.service"
            " GROUP BY caller, callee ORDER BY caller, callee",
            b.params,
        )
        return [EdgeStat(*r) for r in rows]

    def metric_means(
        self, start_ns: int, end_ns: int, *, pods: Sequence[str] | None = None
    ) -> dict[tuple[str, str], float]:
        """Mean of each (pod, metric name) in [start_ns, end_ns)."""
        b = Binder()
        cond = f" AND {b.one_of('pod', list(pods))}" if pods is not None else ""
        _, rows = self._rows(
            f"SELECT pod, toString(name), avg(value) FROM metrics WHERE ts_ns >= {b.int(start_ns)}"
            f" AND ts_ns < {b.int(end_ns)}{cond} GROUP BY pod, name",
            b.params,
        )
        return {(r[0], r[1]): float(r[2]) for r in rows if r[2] is not None}

    def latest_placements(self, pods: Sequence[str] | None = None) -> list[tuple[str, str, str]]:
        """(pod, service, host) of each pod as its latest row of any kind says (see the DuckDB store)."""
        b = Binder()
        parts = []
        for kind in KINDS:
            cond = f" AND {b.one_of('pod', list(pods))}" if pods is not None else ""
            parts.append(
                f"SELECT toString(pod) AS pod, toString(service) AS service, toString(host) AS host,"
                f" {TIME_COLUMN[kind]} AS t FROM {kind} WHERE pod != ''{cond}"
            )
        _, rows = self._rows(
            "SELECT pod, argMaxIf(service, t, service != ''), argMaxIf(host, t, host != '')"
            f" FROM ({' UNION ALL '.join(parts)}) GROUP BY pod ORDER BY pod",
            b.params,
        )
        return [(pod, service, host or "") for pod, service, host in rows if service]
