"""The statistics of the signal detectors: exact binomial and Poisson tails, a conditional test of
two counts, Mann-Whitney, a robust (median/MAD) centre and scale for the metrics. All return z-like
values (one-sided normal quantiles, capped at `Z_CAP`), so `SignalOptions.min_z` means the same thing
for every kind of telemetry; `family_z` adjusts a z for the number of tests it was the best of.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()
Z_CAP = 30.0


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
