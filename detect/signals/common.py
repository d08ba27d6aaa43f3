"""Shared pieces of the signal detectors: input tables as columns, options, and the statistics.

The statistics are plain and generic: a conditional binomial test for count changes (how surprising
is it that k of n events fell in the window, given how much exposure each side had), a Mann-Whitney
test for duration shifts, and a robust (median/MAD) z-score for metrics. All return z-like values so
one threshold (`SignalOptions.min_z`) means the same thing everywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from core.errors import InvalidInput

TableLike: TypeAlias = pa.Table | Sequence[Mapping[str, Any]] | None

_NORMAL = NormalDist()
Z_CAP = 12.0

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
    """A change counts as a signal when its z-like score reaches this (p ~ 0.001 one-sided)."""
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
