"""Metric rows as the series the metric signals compare: what each series means is read from the data
and the OTLP data model, never from a team's metric names.

- A series is one (service, pod, name, data-point attributes): a histogram per route or per status
  code is a series of its own. Points at the same time keep the last.
- A cumulative counter (an OTLP sum with cumulative temporality, a cumulative histogram's count and
  sum: any series that never goes down except for resets, and rises at least half of the time) is
  read as its per-second rate between points; a reset (a drop) counts from zero, as Prometheus does.
- A histogram or summary arrives as `<name>.count`, `<name>.sum` and `<name>.pNN` rows
  (`ingest.otlp.metrics`). Count and sum of the same series give `<name>.mean`, the mean of the
  interval (delta sum / delta count; sum / count for delta points), only where requests happened;
  the count stays as the request count (`<name>.count.rate`, per second, when it was cumulative; a
  plain counter's rate is `<name>.rate`); the sum alone is dropped
  (it is mean x requests). Quantiles stay as they are, except those of a cumulative histogram: they
  describe everything since its start, and an incident of minutes hardly moves them.

`build_series` derives from the window and the history together, so that a counter's first window
point has the last history point before it.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from detect.signals.common import TableLike, columns, text
from detect.signals.metric_families import split_part

NS = 1_000_000_000
SeriesKey = tuple[str, str, str, str]
"""(service, pod, name, attributes JSON)."""
Points = list[tuple[int, float]]


_RAW_COLUMNS = ("ts_ns", "name", "value", "service", "pod", "host", "attributes")


def _raw(data: TableLike) -> dict[SeriesKey, dict[int, float]]:
    """Per series, its points (time -> value; of two at the same time, the later row's)."""
    if isinstance(data, pa.Table) and _plain(data):
        return _raw_arrow(data)
    c = columns(data, _RAW_COLUMNS)
    out: dict[SeriesKey, dict[int, float]] = defaultdict(dict)
    for ts, name, value, svc, pod, host, attrs in zip(
        c["ts_ns"], c["name"], c["value"], c["service"], c["pod"], c["host"], c["attributes"], strict=True
    ):
        if not isinstance(value, int | float) or not math.isfinite(value) or not isinstance(ts, int | float):
            continue
        service = text(svc) or text(host)
        if not service:
            continue
        a = text(attrs)
        out[(service, text(pod), text(name), "" if a == "{}" else a)][int(ts)] = float(value)
    return out


def _plain(t: pa.Table) -> bool:
    """Every column of the metric row contract, with its types: read column-wise (`_raw_arrow`)."""
    types = {f.name: f.type for f in t.schema}
    text = (pa.string(), pa.large_string())
    return (
        all(n in types for n in _RAW_COLUMNS)
        and pa.types.is_integer(types["ts_ns"])
        and pa.types.is_floating(types["value"])
        and all(types[n] in text for n in ("name", "service", "pod", "host", "attributes"))
    )


def _raw_arrow(t: pa.Table) -> dict[SeriesKey, dict[int, float]]:
    """`_raw` over Arrow columns: the same rows kept, the same keys, the same last value per time."""
    value = t.column("value")
    keep = pc.and_(pc.and_(pc.is_valid(value), pc.is_finite(value)), pc.is_valid(t.column("ts_ns")))
    t = t.filter(pc.fill_null(keep, False))
    blank = {n: pc.fill_null(t.column(n), "") for n in ("name", "service", "pod", "host", "attributes")}
    service = pc.if_else(pc.equal(blank["service"], ""), blank["host"], blank["service"])
    t = pa.table(
        {
            "service": service,
            "pod": blank["pod"],
            "name": blank["name"],
            "attributes": pc.if_else(pc.equal(blank["attributes"], "{}"), "", blank["attributes"]),
            "ts_ns": t.column("ts_ns"),
            "value": t.column("value"),
        }
    ).filter(pc.not_equal(service, ""))
    if t.num_rows == 0:
        return {}
    code = np.zeros(t.num_rows, np.int64)
    for n in ("service", "pod", "name", "attributes"):
        enc = t.column(n).combine_chunks().dictionary_encode()
        code = code * len(enc.dictionary) + enc.indices.to_numpy(zero_copy_only=False)
        code = np.unique(code, return_inverse=True)[1].reshape(-1)
    order = np.argsort(code, kind="stable")  # rows of a series in their order: the later row wins a time
    cols = {n: t.column(n).take(pa.array(order)).to_pylist() for n in t.column_names}
    starts = np.flatnonzero(np.r_[True, np.diff(code[order]) != 0]).tolist() + [t.num_rows]
    out: dict[SeriesKey, dict[int, float]] = {}
    for a, b in zip(starts, starts[1:], strict=False):
        key = (cols["service"][a], cols["pod"][a], cols["name"][a], cols["attributes"][a])
        out[key] = dict(zip(cols["ts_ns"][a:b], cols["value"][a:b], strict=True))
    return out


def is_cumulative(values: list[float]) -> bool:
    """Rises at least half of the time and goes down at most once in 20 steps (once in short series:
    a reset); a counter."""
    if len(values) < 5:
        return False
    steps = [b - a for a, b in zip(values, values[1:], strict=False)]
    ups = sum(1 for d in steps if d > 0)
    downs = sum(1 for d in steps if d < 0)
    return ups * 2 >= len(steps) and downs <= max(1, len(steps) // 20)


def _deltas(pts: Points) -> Points:
    """(ts, increase since the point before) of a cumulative series; after a reset, the value itself."""
    return [(t, v - pv if v >= pv else v) for (_, pv), (t, v) in zip(pts, pts[1:], strict=False)]


def _rate(pts: Points) -> Points:
    out = []
    for (pt, _), (t, d) in zip(pts, _deltas(pts), strict=False):
        if t > pt:
            out.append((t, d * NS / (t - pt)))
    return out


def build_series(win: TableLike, base: TableLike) -> tuple[dict[SeriesKey, Points], dict[SeriesKey, Points]]:
    """The (window, history) series, derived as the module doc says. A series left as it is keeps the
    points of each table; a derived point is in the window when its time is one of the window's times
    of the same pod (the later of the two points it was derived from)."""
    w_raw, b_raw = _raw(win), _raw(base)
    merged = {key: sorted({**b_raw.get(key, {}), **w_raw.get(key, {})}.items()) for key in set(w_raw) | set(b_raw)}
    w_times: dict[tuple[str, str], set[int]] = defaultdict(set)
    for raw_key, raw_pts in w_raw.items():
        w_times[raw_key[:2]].update(raw_pts)
    w_out: dict[SeriesKey, Points] = {}
    b_out: dict[SeriesKey, Points] = {}
    for key, pts in derive(merged).items():
        if pts is merged.get(key):
            w_pts, b_pts = sorted(w_raw.get(key, {}).items()), sorted(b_raw.get(key, {}).items())
        else:
            times = w_times.get(key[:2], set())
            w_pts = [p for p in pts if p[0] in times]
            b_pts = [p for p in pts if p[0] not in times]
        if w_pts:
            w_out[key] = w_pts
        if b_pts:
            b_out[key] = b_pts
    return w_out, b_out


def derive(series: dict[SeriesKey, Points]) -> dict[SeriesKey, Points]:
    """Counters as rates, count + sum as mean and rate (see the module doc); other series unchanged."""
    out: dict[SeriesKey, Points] = {}
    cumulative: set[SeriesKey] = set()  # histograms whose quantiles describe everything since their start
    for key, pts in series.items():
        service, pod, name, attrs = key
        if name.endswith(".sum") and (service, pod, name[:-4] + ".count", attrs) in series:
            continue  # read with its count
        if name.endswith(".count") and (service, pod, name[:-6] + ".sum", attrs) in series:
            base = name[:-6]
            sums = series[(service, pod, base + ".sum", attrs)]
            parts = _histogram(service, pod, base, attrs, pts, sums)
            if (service, pod, base + ".count.rate", attrs) in parts:
                cumulative.add((service, pod, base, attrs))
            out.update(parts)
            continue
        values = [v for _, v in pts]
        if is_cumulative(values):
            rate = _rate(pts)
            if rate:
                out[(service, pod, name + ".rate", attrs)] = rate
        else:
            out[key] = pts
    return {k: v for k, v in out.items() if not _quantile_of(k, cumulative)}


def _quantile_of(key: SeriesKey, cumulative: set[SeriesKey]) -> bool:
    service, pod, name, attrs = key
    base, part = split_part(name)
    return part.startswith("p") and (service, pod, base, attrs) in cumulative


def _histogram(service: str, pod: str, base: str, attrs: str, counts: Points, sums: Points) -> dict[SeriesKey, Points]:
    out: dict[SeriesKey, Points] = {}
    by_ts = dict(sums)
    both = [(t, c, by_ts[t]) for t, c in counts if t in by_ts]
    if is_cumulative([c for _, c, _ in both]):
        rate = _rate([(t, c) for t, c, _ in both])
        dc = _deltas([(t, c) for t, c, _ in both])
        ds = _deltas([(t, s) for t, _, s in both])
        mean = [(t, s / c) for (t, c), (_, s) in zip(dc, ds, strict=True) if c > 0]
        out[(service, pod, base + ".count.rate", attrs)] = rate
    else:
        mean = [(t, s / c) for t, c, s in both if c > 0]
        out[(service, pod, base + ".count", attrs)] = counts
    if mean:
        out[(service, pod, base + ".mean", attrs)] = mean
    return out
