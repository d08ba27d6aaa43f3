"""OTLP metrics (ExportMetricsServiceRequest, protobuf or JSON) -> rows of the `metrics` event-store table.

Gauge and sum data points give one row each. Histogram, exponential histogram and summary points give
`<name>.count` and `<name>.sum` rows, plus `<name>.p50`, `.p95`, `.p99` estimated from the buckets
(histograms) or the reported quantiles (summaries, `.p<quantile*100>`). `rejected` counts data points.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from ingest import batch
from ingest.otlp.column_text import check_text, dumps
from ingest.otlp.json_values import j_double, j_i64, j_list, j_obj, j_str, j_u64, jget, json_attrs
from ingest.otlp.pb_values import pb_attrs
from ingest.otlp.quantiles import Values, exponential_values, histogram_values, summary_values
from ingest.otlp.request import Columns, parse_request
from ingest.otlp.resources import ResourceInfo, json_leaves, path, pb_leaves
from ingest.otlp.result import Invalid, ParsedBatch, Rejects

METRIC_COLUMNS = batch.COLUMNS["metrics"]  # the event store's columns (ingest/batch.py)
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
