"""OTLP metrics (ExportMetricsServiceRequest, protobuf or JSON) -> rows of the `metrics` event-store table.

Gauge and sum data points give one row each. Histogram, exponential histogram and summary points give
`<name>.count` and `<name>.sum` rows, plus `<name>.p50`, `.p95`, `.p99` estimated from the buckets
(histograms) or the reported quantiles (summaries, `.p<quantile*100>`). `rejected` counts data points.
"""

from __future__ import annotations

import math
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from ingest import batch
from ingest.otlp_common import (
    Columns,
    Invalid,
    ParsedBatch,
    Rejects,
    ResourceInfo,
    check_text,
    dumps,
    j_double,
    j_i64,
    j_list,
    j_obj,
    j_str,
    j_u64,
    jget,
    json_attrs,
    json_leaves,
    parse_request,
    path,
    pb_attrs,
    pb_leaves,
)

METRIC_COLUMNS = batch.COLUMNS["metrics"]  # the event store's columns (ingest/batch.py)
QUANTILES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
_NAMES = ("resourceMetrics", "scopeMetrics", "metrics")
_SNAKES = ("resource_metrics", "scope_metrics", "metrics")
_DATA_KINDS = (
    ("gauge", "gauge"),
    ("sum", "sum"),
    ("histogram", "histogram"),
    ("exponentialHistogram", "exponential_histogram"),
    ("summary", "summary"),
)
_JSON_KIND = {snake: camel for camel, snake in _DATA_KINDS}
_NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_INF = math.inf

Values = list[tuple[str, float]]


# ------------------------------------------------------------------------------ value estimation


def bucket_quantile(
    buckets: list[tuple[float, float, int]], total: int, q: float, lo: float | None, hi: float | None
) -> float:
    """The q-quantile of (lower, upper, count) buckets in ascending order, interpolated linearly.

    An open first bucket starts at the reported min (else at 0 when its upper bound is positive); an open
    last bucket ends at the reported max (else the estimate is its lower bound), as Prometheus does.
    """
    rank = q * total
    cum = 0
    est = 0.0
    for lower, upper, n in buckets:
        if n <= 0:
            continue
        if cum + n >= rank:
            if lower == -_INF:
                lower = lo if lo is not None else (0.0 if upper > 0 else upper)
            if upper == _INF:
                upper = hi if hi is not None else lower
            est = lower + (upper - lower) * max(rank - cum, 0) / n
            break
        cum += n
    if lo is not None:
        est = max(est, lo)
    if hi is not None:
        est = min(est, hi)
    return est


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and v - v == 0 else None


def histogram_values(
    count: int,
    total_sum: float | None,
    counts: list[int],
    bounds: list[float],
    lo: float | None,
    hi: float | None,
) -> Values:
    vals: Values = [("count", float(count))]
    if total_sum is not None:
        vals.append(("sum", total_sum))
    if not counts:
        return vals
    if len(counts) != len(bounds) + 1:
        raise Invalid(f"bucketCounts has {len(counts)} entries for {len(bounds)} explicitBounds (need +1)")
    if any(not a < b for a, b in zip(bounds, bounds[1:], strict=False)):
        raise Invalid("explicitBounds must be strictly increasing")
    total = sum(counts)
    if total > 0:
        edges = [-_INF, *bounds, _INF]
        buckets = [(edges[i], edges[i + 1], n) for i, n in enumerate(counts)]
        lo, hi = _finite_or_none(lo), _finite_or_none(hi)
        vals.extend((label, bucket_quantile(buckets, total, q, lo, hi)) for q, label in QUANTILES)
    return vals


def _power(base: float, k: int) -> float:
    try:
        return base**k
    except OverflowError:
        return _INF


def exponential_values(
    count: int,
    total_sum: float | None,
    scale: int,
    zero_count: int,
    zero_threshold: float,
    positive: tuple[int, list[int]],
    negative: tuple[int, list[int]],
    lo: float | None,
    hi: float | None,
) -> Values:
    vals: Values = [("count", float(count))]
    if total_sum is not None:
        vals.append(("sum", total_sum))
    if not -10 <= scale <= 20:
        raise Invalid(f"scale {scale} is outside -10..20")
    base = 2.0 ** (2.0**-scale)
    buckets: list[tuple[float, float, int]] = []
    neg_offset, neg_counts = negative
    for i in range(len(neg_counts) - 1, -1, -1):
        k = neg_offset + i
        buckets.append((-_power(base, k + 1), -_power(base, k), neg_counts[i]))
    if zero_count:
        buckets.append((-zero_threshold, zero_threshold, zero_count))
    pos_offset, pos_counts = positive
    for i, n in enumerate(pos_counts):
        k = pos_offset + i
        buckets.append((_power(base, k), _power(base, k + 1), n))
    total = sum(n for _, _, n in buckets)
    if total > 0:
        lo, hi = _finite_or_none(lo), _finite_or_none(hi)
        vals.extend((label, bucket_quantile(buckets, total, q, lo, hi)) for q, label in QUANTILES)
    return vals


def summary_values(count: int, total_sum: float, quantiles: list[tuple[float, float]]) -> Values:
    vals: Values = [("count", float(count)), ("sum", total_sum)]
    for q, v in quantiles:
        if not 0.0 <= q <= 1.0:
            raise Invalid(f"quantile {q} is outside 0..1")
        vals.append((f"p{round(q * 100, 6):g}", v))
    return vals


# ----------------------------------------------------------------------------------------- rows


class _MetricColumns(Columns):
    names = METRIC_COLUMNS

    def add(self, name: str, ts: int, values: Values, attrs: dict[str, Any], res: ResourceInfo) -> None:
        if not name:
            raise Invalid("metric name is empty")
        self.bounds.check(ts, "timeUnixNano")
        for label, v in values:
            if v - v != 0:
                raise Invalid(f"{label or 'value'} {v} is not a finite number")
        attrs_text = dumps(attrs)
        if self.from_json:
            check_text(name)
        c = self.cols
        for label, v in values:
            c["ts_ns"].append(ts)
            c["name"].append(f"{name}.{label}" if label else name)
            c["value"].append(v)
            c["service"].append(res.service)
            c["pod"].append(res.pod)
            c["host"].append(res.host)
            c["attributes"].append(attrs_text)


def parse_metrics(
    body: bytes | dict[str, Any],
    content_type: str,
    *,
    now_ns: int,
    min_year: int,
    max_future_skew_s: int,
) -> ParsedBatch:
    """Rows of the `metrics` table from an ExportMetricsServiceRequest (bytes, or the dict `decode_body` gave).

    Points flagged "no recorded value" are skipped (not rejected); metrics with no data are ignored.
    """
    return parse_request(
        body,
        content_type,
        message=ExportMetricsServiceRequest,
        columns=_MetricColumns,
        walk_json=_walk_json,
        walk_pb=_walk_pb,
        now_ns=now_ns,
        min_year=min_year,
        max_future_skew_s=max_future_skew_s,
    )


# ------------------------------------------------------------------------------------- protobuf


def _pb_opt(p: Any, name: str) -> float | None:
    return getattr(p, name) if p.HasField(name) else None  # type: ignore[no-any-return]


def _pb_values(kind: str, p: Any) -> Values | None:
    if p.flags & _NO_RECORDED_VALUE:
        return None
    if kind == "gauge" or kind == "sum":
        which = p.WhichOneof("value")
        if which is None:
            raise Invalid("data point has neither asDouble nor asInt")
        return [("", float(getattr(p, which)))]
    if kind == "histogram":
        return histogram_values(
            p.count,
            _pb_opt(p, "sum"),
            list(p.bucket_counts),
            list(p.explicit_bounds),
            _pb_opt(p, "min"),
            _pb_opt(p, "max"),
        )
    if kind == "exponential_histogram":
        return exponential_values(
            p.count,
            _pb_opt(p, "sum"),
            p.scale,
            p.zero_count,
            p.zero_threshold,
            (p.positive.offset, list(p.positive.bucket_counts)),
            (p.negative.offset, list(p.negative.bucket_counts)),
            _pb_opt(p, "min"),
            _pb_opt(p, "max"),
        )
    return summary_values(p.count, p.sum, [(q.quantile, q.value) for q in p.quantile_values])


def _pb_count_points(metrics: Any) -> int:
    n = 0
    for m in metrics:
        kind = m.WhichOneof("data")
        n += len(getattr(m, kind).data_points) if kind else 0
    return n


def _walk_pb(req: Any, out: _MetricColumns, rej: Rejects) -> None:
    add = out.add
    for res, _scope, idx, m in pb_leaves(req, _SNAKES, _NAMES, rej, _pb_count_points):
        kind = m.WhichOneof("data")
        if kind is None:
            continue
        name = m.name
        json_kind = _JSON_KIND[kind]
        for pi, p in enumerate(getattr(m, kind).data_points):
            try:
                values = _pb_values(kind, p)
                if values is not None:
                    add(name, p.time_unix_nano, values, pb_attrs(p.attributes), res)
            except Invalid as exc:
                rej.add(path(_NAMES, idx, json_kind, f"dataPoints[{pi}]"), str(exc))


# ----------------------------------------------------------------------------------------- JSON


def _json_data(m: Any) -> tuple[str, list[Any]] | None:
    """(kind, data points) of a JSON metric; None for a metric without data."""
    if type(m) is not dict:
        raise Invalid(f"a metric must be an object, got {type(m).__name__}")
    for camel, snake in _DATA_KINDS:
        data = jget(m, camel, snake)
        if data is not None:
            points = j_list(jget(j_obj(data, camel), "dataPoints", "data_points"), f"{camel}.dataPoints")
            return camel, points
    return None


def _count_points(metrics: list[Any]) -> int:
    n = 0
    for m in metrics:
        try:
            found = _json_data(m)
        except Invalid:
            n += 1
            continue
        n += len(found[1]) if found else 0
    return n


def _j_opt(p: dict[str, Any], name: str) -> float | None:
    v = p.get(name)
    return None if v is None else j_double(v, name)


def _j_buckets(v: Any, name: str) -> tuple[int, list[int]]:
    b = j_obj(v, name)
    counts = j_list(jget(b, "bucketCounts", "bucket_counts"), f"{name}.bucketCounts")
    return j_i64(b.get("offset"), f"{name}.offset"), [j_u64(n, f"{name}.bucketCounts") for n in counts]


def _json_values(kind: str, p: Any) -> Values | None:
    if type(p) is not dict:
        raise Invalid(f"a data point must be an object, got {type(p).__name__}")
    if j_u64(p.get("flags"), "flags") & _NO_RECORDED_VALUE:
        return None
    if kind == "gauge" or kind == "sum":
        v = jget(p, "asDouble", "as_double")
        if v is not None:
            return [("", j_double(v, "asDouble"))]
        v = jget(p, "asInt", "as_int")
        if v is not None:
            return [("", float(j_i64(v, "asInt")))]
        raise Invalid("data point has neither asDouble nor asInt")
    count = j_u64(p.get("count"), "count")
    if kind == "histogram":
        counts = j_list(jget(p, "bucketCounts", "bucket_counts"), "bucketCounts")
        bounds = j_list(jget(p, "explicitBounds", "explicit_bounds"), "explicitBounds")
        return histogram_values(
            count,
            _j_opt(p, "sum"),
            [j_u64(n, "bucketCounts") for n in counts],
            [j_double(b, "explicitBounds") for b in bounds],
            _j_opt(p, "min"),
            _j_opt(p, "max"),
        )
    if kind == "exponentialHistogram":
        return exponential_values(
            count,
            _j_opt(p, "sum"),
            j_i64(p.get("scale"), "scale"),
            j_u64(jget(p, "zeroCount", "zero_count"), "zeroCount"),
            j_double(jget(p, "zeroThreshold", "zero_threshold"), "zeroThreshold"),
            _j_buckets(p.get("positive"), "positive"),
            _j_buckets(p.get("negative"), "negative"),
            _j_opt(p, "min"),
            _j_opt(p, "max"),
        )
    quantiles = []
    for qv in j_list(jget(p, "quantileValues", "quantile_values"), "quantileValues"):
        qv = j_obj(qv, "quantileValues[]")
        quantiles.append((j_double(qv.get("quantile"), "quantile"), j_double(qv.get("value"), "value")))
    return summary_values(count, j_double(p.get("sum"), "sum"), quantiles)


def _walk_json(doc: dict[str, Any], out: _MetricColumns, rej: Rejects) -> None:
    add = out.add
    for res, _scope, idx, m in json_leaves(doc, _NAMES, _SNAKES, rej, _count_points):
        try:
            found = _json_data(m)
            name = j_str(m.get("name"), "name")
        except Invalid as exc:
            rej.add(path(_NAMES, idx), str(exc), max(1, _count_points([m])))
            continue
        if found is None:
            continue
        kind, points = found
        for pi, p in enumerate(points):
            try:
                values = _json_values(kind, p)
                if values is not None:
                    ts = j_u64(jget(p, "timeUnixNano", "time_unix_nano"), "timeUnixNano")
                    add(name, ts, values, json_attrs(p.get("attributes")), res)
            except Invalid as exc:
                rej.add(path(_NAMES, idx, kind, f"dataPoints[{pi}]"), str(exc))
