"""The values of histogram, exponential histogram and summary data points: count, sum and quantiles.

`histogram_values`, `exponential_values` and `summary_values` turn one point into (label, value) pairs
(`count`, `sum`, `p50`, `p95`, `p99`, or the summary's own quantiles); `bucket_quantile` estimates a
quantile from buckets by linear interpolation, as Prometheus does.
"""

from __future__ import annotations

import math

from ingest.otlp.result import Invalid

QUANTILES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
_INF = math.inf

Values = list[tuple[str, float]]


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
