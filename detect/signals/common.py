"""Shared pieces of the signal detectors: input tables, options, and the statistics.

The baseline is *history cut into slices* as long as the incident window: a share (k of n: requests
that took a path, that were slow) is judged against the same share in every slice. `slice_test` is a
quasi-binomial test whose base rate and over-dispersion come from the slices that agree with each
other; slices that are themselves anomalous (other incidents in the history) are set aside by the
same test at the 0.001 level, so an incident that happened before does not make the next one look
normal. Counts are tested with exact binomial tails. A robust (median/MAD) z serves the metrics. All
return z-like values (one-sided normal quantiles), so `SignalOptions.min_z` means the same thing for
every kind of telemetry; `family_z` adjusts a z for the number of tests it was the best of.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import InvalidInput

TableLike: TypeAlias = pa.Table | Sequence[Mapping[str, Any]] | None

_NORMAL = NormalDist()
Z_CAP = 30.0

ERROR_WORDS = re.compile(
    r"(?i)(\berror\b|\bexceptions?\b|exception\b|\berr\b|\bfail(?:ed|s|ure|ing)?\b|\bfatal\b|\bpanic\b"
    r"|\btraceback\b|\brefused\b|\btimed? ?out\b|\btimeout\b|\bunavailable\b|\bdenied\b|\bcritical\b"
    r"|\bstatus(?:\s*code)?[=: ]+[45]\d\d\b|\bHTTP/\d(?:\.\d)? [5]\d\d\b)"
)
ERROR_LEVELS = frozenset({"ERROR", "FATAL", "CRITICAL", "ALERT", "EMERG", "SEVERE"})


@dataclass(frozen=True)
class SignalOptions:
    """Generic knobs of the detectors. Defaults are textbook values, not fitted to any data set."""

    min_z: float = 3.0
    """A change counts as a signal when its z-like score reaches this (p ~ 0.001 one-sided), after the
    adjustment for the number of tests run on the same service (`family_z`)."""
    min_fold: float = 2.0
    """Count signals also need this fold change per request ('new or much more frequent')."""
    min_latency_ratio: float = 1.5
    """Duration signals also need the window median (or p90) this many times the baseline one."""
    min_latency_delta_us: float = 1000.0
    """... and at least this much absolute growth, so sub-millisecond jitter never counts."""
    min_samples: int = 3
    """Fewest requests on each side for a test; the tests themselves account for small counts."""
    max_evidence: int = 8
    """Most example ids kept per signal."""
    metric_min_baseline_points: int = 3
    metric_rel_floor: float = 0.05
    """Metric scale is at least this fraction of the baseline median (flat series)."""
    min_slice_s: int = 60
    """History slices are as long as the incident window, but never shorter than this."""
    min_slice_requests: int = 3
    """A history slice takes part in a test only with at least this many requests (or lines) at stake."""
    statement_words: int = 8
    """A log statement is named by the first words of its lines (numbers and ids masked): templates that
    differ only in data written later in the line count as one statement."""
    latency_quantile: float = 0.9
    """A request is slow when its time exceeds this quantile of the same operation's history."""
    latency_recent_slices: int = 0
    """When > 0, timings are judged against the history slices at the nearest this many distances
    only (timings drift with data and load; paths do not); 0 uses all history."""
    max_signals_per_service: int = 6


def columns(data: TableLike, names: Iterable[str]) -> dict[str, list[Any]]:
    """Columns of a pyarrow Table or a list of dicts, as Python lists; absent columns are empty strings."""
    names = list(names)
    if data is None:
        return {n: [] for n in names}
    if isinstance(data, pa.Table):
        n_rows = data.num_rows
        out: dict[str, list[Any]] = {}
        for n in names:
            out[n] = data.column(n).to_pylist() if n in data.column_names else [""] * n_rows
        return out
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        rows = list(data)
        for i, r in enumerate(rows[:1]):
            if not isinstance(r, Mapping):
                raise InvalidInput(f"row {i} is a {type(r).__name__}, expected a mapping of columns")
        return {n: [r.get(n, "") for r in rows] for n in names}
    raise InvalidInput(f"telemetry must be a pyarrow Table or a list of dicts, not {type(data).__name__}")


def check_table(data: object, name: str) -> None:
    """InvalidInput unless `data` is None, a pyarrow Table or a list of mappings."""
    if data is None or isinstance(data, pa.Table):
        return
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        for i, row in enumerate(data):
            if not isinstance(row, Mapping):
                raise InvalidInput(
                    f"{name}: row {i} is a {type(row).__name__}, expected a mapping of columns", field=name
                )
        return
    raise InvalidInput(f"{name} must be a pyarrow Table or a list of dicts, not {type(data).__name__}", field=name)


def n_rows(data: TableLike) -> int:
    if data is None:
        return 0
    if isinstance(data, pa.Table):
        return data.num_rows
    return len(data)


def text(v: Any) -> str:
    return "" if v is None else str(v)


def is_error_line(level: str, message: str) -> bool:
    """An error-like log line: by level when there is one, else (or also) by its words."""
    lv = level.upper()
    if lv in ERROR_LEVELS:
        return True
    return bool(ERROR_WORDS.search(message[:2000]))


def z_from_p(p: float) -> float:
    """One-sided z for a p-value, capped at Z_CAP."""
    if p <= 0.0:
        return Z_CAP
    if p >= 0.5:
        return 0.0
    return min(Z_CAP, -_NORMAL.inv_cdf(p))


def _log_binom_pmf(k: int, n: int, lp: float, lq: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq


def binom_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if n > 3000:
        mu, sd = n * p, math.sqrt(n * p * (1 - p))
        return 1.0 - _NORMAL.cdf((k - 0.5 - mu) / sd)
    lp, lq = math.log(p), math.log1p(-p)
    logs = [_log_binom_pmf(i, n, lp, lq) for i in range(k, n + 1)]
    m = max(logs)
    return min(1.0, math.exp(m) * sum(math.exp(v - m) for v in logs))


def count_change(k_win: int, e_win: float, k_base: int, e_base: float) -> tuple[float, float, str]:
    """(z, fold, direction) for a count seen k_win times over exposure e_win vs k_base over e_base.

    Conditional binomial test: given n = k_win + k_base events, each falls in the window with
    probability e_win / (e_win + e_base) if the rate per unit of exposure did not change.
    `fold` is the ratio of rates with half an event added to each side (so 'new' is finite).
    """
    if e_win <= 0 or e_base <= 0:
        return 0.0, 1.0, "up"
    n = k_win + k_base
    if n == 0:
        return 0.0, 1.0, "up"
    p = e_win / (e_win + e_base)
    fold = ((k_win + 0.5) / e_win) / ((k_base + 0.5) / e_base)
    if k_win / e_win >= k_base / e_base:
        return z_from_p(binom_upper_tail(k_win, n, p)), fold, "up"
    return z_from_p(binom_upper_tail(k_base, n, 1.0 - p)), fold, "down"


def mann_whitney_z(base: np.ndarray, win: np.ndarray) -> float:
    """z of the Mann-Whitney U test that `win` tends to be larger than `base` (normal approximation)."""
    n1, n2 = len(base), len(win)
    if n1 == 0 or n2 == 0:
        return 0.0
    allv = np.concatenate([base, win])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv), dtype=float)
    sorted_v = allv[order]
    # average ranks for ties
    i = 0
    n = len(allv)
    while i < n:
        j = i
        while j + 1 < n and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    r2 = ranks[n1:].sum()
    u2 = r2 - n2 * (n2 + 1) / 2.0
    mu = n1 * n2 / 2.0
    _, counts = np.unique(sorted_v, return_counts=True)
    tie = float(((counts**3) - counts).sum())
    var = n1 * n2 / 12.0 * ((n + 1) - tie / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return 0.0
    return float(max(-Z_CAP, min(Z_CAP, (u2 - mu - 0.5) / math.sqrt(var))))


def robust_center_scale(values: np.ndarray, rel_floor: float) -> tuple[float, float]:
    """Median and a scale that is never zero: max(1.4826*MAD, IQR/1.349, rel_floor*|median|)."""
    med = float(np.median(values))
    mad = float(np.median(np.abs(values - med))) * 1.4826
    q75, q25 = np.percentile(values, [75, 25])
    iqr = float(q75 - q25) / 1.349
    floor = rel_floor * abs(med)
    scale = max(mad, iqr, floor)
    if scale <= 0:
        scale = max(abs(med) * rel_floor, 1e-9)
    return med, scale


def add_evidence(bucket: list[str], item: str, limit: int) -> None:
    if len(bucket) < limit and item not in bucket:
        bucket.append(item)


# ---- history slices --------------------------------------------------------------------------

CHI2_1_999 = 10.828
"""0.999 quantile of chi-square with one degree of freedom: a slice this far off is an outlier."""
_MEDIAN_CHI2_1 = 0.4549


EXCLUDED_SLICE = -(2**62)
"""Slice number of history rows that fall inside the window: neither window nor baseline."""


def slice_of(ts: np.ndarray, start_ns: int, width_ns: int) -> np.ndarray:
    """Slice number of each time: 0 is [start, start + width), -1 the slice before, and so on."""
    return np.floor_divide(ts.astype(np.int64) - np.int64(start_ns), np.int64(max(width_ns, 1)))


@dataclass(frozen=True)
class SliceTest:
    z: float
    """Signed: > 0 when the window's share is above the baseline's."""
    p0: float
    """Baseline share, from the slices that agree with each other."""
    phi: float
    """Over-dispersion of the agreeing slices (1 = binomial)."""
    outliers: int
    """History slices set aside as anomalous."""

    @property
    def direction(self) -> str:
        return "up" if self.z >= 0 else "down"


def robust_share(k: np.ndarray, n: np.ndarray) -> tuple[float, float, int]:
    """(p0, phi, outliers) of shares k/n over history slices, leaving out slices that disagree.

    p0 is pooled over the kept slices (with half an event of prior); phi is the median squared
    Pearson residual over its chi-square median (>= 1). A slice whose residual exceeds phi times the
    0.999 chi-square quantile is set aside and the estimate repeated.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    keep = np.ones(len(k), dtype=bool)
    p0, phi = 0.5, 1.0
    for _ in range(4):
        p0 = (float(k[keep].sum()) + 0.5) / (float(n[keep].sum()) + 1.0)
        var = np.maximum(n * p0 * (1.0 - p0), 1e-12)
        r2 = (k - n * p0) ** 2 / var
        phi = max(1.0, float(np.median(r2[keep])) / _MEDIAN_CHI2_1) if keep.sum() >= 3 else 1.0
        new = r2 <= phi * CHI2_1_999
        if new.sum() < max(1, (len(k) + 1) // 2):
            break  # most slices disagree with each other: keep them all
        if bool((new == keep).all()):
            break
        keep = new
    return p0, phi, int((~keep).sum())


def binom_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact in log space (vectorised), normal beyond n = 20000."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if n > 20000:
        mu, sd = n * p, math.sqrt(n * p * (1 - p))
        return float(min(1.0, 1.0 - _NORMAL.cdf((k - 0.5 - mu) / sd)))
    lp, lq = math.log(p), math.log1p(-p)
    first = _log_binom_pmf(k, n, lp, lq)
    i = np.arange(k, n, dtype=float)
    steps = np.log(n - i) - np.log(i + 1.0) + (lp - lq)
    logs = np.concatenate([[first], first + np.cumsum(steps)])
    m = float(logs.max())
    return float(min(1.0, math.exp(m) * float(np.exp(logs - m).sum())))


def outcome_tests(
    by_outcome: Mapping[str, Mapping[int, int]], opt: SignalOptions
) -> list[tuple[str, int, int, SliceTest]]:
    """Each outcome's share of all outcomes, window (slice 0) against the history slices.

    `by_outcome[outcome][slice]` counts; the exposure of a slice is the sum over outcomes. Slices with
    fewer than `min_slice_requests` are left out; nothing is tested when the window has fewer than
    `min_samples` or no history slice remains. Returns (outcome, k in window, n in window, test)."""
    expo: dict[int, int] = defaultdict(int)
    for by_slice in by_outcome.values():
        for sl, c in by_slice.items():
            expo[sl] += c
    n_win = expo.get(0, 0)
    hist = sorted(sl for sl, c in expo.items() if sl != 0 and c >= opt.min_slice_requests)
    if n_win < opt.min_samples or not hist:
        return []
    n_hist = np.array([expo[sl] for sl in hist], dtype=float)
    out = []
    for outcome, by_slice in by_outcome.items():
        k_win = by_slice.get(0, 0)
        k_hist = np.array([by_slice.get(sl, 0) for sl in hist], dtype=float)
        out.append((outcome, k_win, n_win, slice_test(k_win, n_win, k_hist, n_hist)))
    return out


def slice_test(k_win: int, n_win: int, k_hist: np.ndarray, n_hist: np.ndarray) -> SliceTest:
    """Is k_win of n_win unusual, given k of n in each history slice? (see `robust_share`)

    The window counts are divided by phi before an exact binomial tail (the usual quasi-likelihood
    scaling), so an over-dispersed share needs a larger change to count.
    """
    p0, phi, out = robust_share(k_hist, n_hist)
    n = max(1, int(round(n_win / phi)))
    k = min(n, int(round(k_win / phi)))
    if k_win >= p0 * n_win:
        z = z_from_p(binom_tail(k, n, p0)) if k > 0 else 0.0
    else:
        z = -z_from_p(binom_tail(n - k, n, 1.0 - p0))
    return SliceTest(z=z, p0=p0, phi=phi, outliers=out)


def poisson_lower_tail(k: int, mu: float) -> float:
    """P(X <= k) for X ~ Poisson(mu)."""
    if mu <= 0:
        return 1.0
    i = np.arange(0, k + 1, dtype=float)
    logs = i * math.log(mu) - mu - np.array([math.lgamma(x + 1) for x in i])
    return float(min(1.0, np.exp(logs).sum()))


def family_z(z: float, tests: int) -> float:
    """z of the smallest of `tests` p-values, Bonferroni-adjusted (so a busy service with many
    templates or operations does not stand out just because more was tested)."""
    if tests <= 1 or z <= 0:
        return max(z, 0.0)
    p = _NORMAL.cdf(-z) if z < 8 else math.exp(-z * z / 2) / (z * math.sqrt(2 * math.pi))
    return z_from_p(min(0.5, p * tests))


def share_fold(k_win: int, n_win: int, p0: float) -> float:
    """Window share over baseline share, with half an event added so 'new' and 'gone' stay finite."""
    pw = (k_win + 0.5) / (n_win + 1.0)
    return pw / max(p0, 1e-9)


def as_table(data: TableLike, schema: pa.Schema) -> pa.Table:
    """`data` as an Arrow table with exactly the columns of `schema` (absent ones '' or 0; nulls too)."""
    if data is None:
        return schema.empty_table()
    if not isinstance(data, pa.Table):
        check_table(data, "telemetry")
        rows = list(data)  # type: ignore[arg-type]
        cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
        data = pa.table({f.name: _column(cols[f.name], f.type) for f in schema})
        return data
    out = {}
    for f in schema:
        if f.name in data.column_names:
            col = data.column(f.name)
            if col.type != f.type:
                col = _cast(col, f.type)
            if col.null_count:
                col = pc.fill_null(col, _default(f.type))
            out[f.name] = col
        else:
            out[f.name] = pa.array([_default(f.type)] * data.num_rows, f.type)
    return pa.table(out)


def _default(t: pa.DataType) -> Any:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return ""
    if pa.types.is_floating(t):
        return float("nan")
    return 0


def _column(values: list[Any], t: pa.DataType) -> pa.Array:
    if pa.types.is_string(t):
        return pa.array(["" if v is None else str(v) for v in values], t)
    if pa.types.is_floating(t):
        return pa.array([float(v) if isinstance(v, int | float) else float("nan") for v in values], t)
    return pa.array([int(v) if isinstance(v, int | float) else 0 for v in values], t)


def _cast(col: Any, t: pa.DataType) -> Any:
    try:
        return col.cast(t)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _column(col.to_pylist(), t)
