"""History slices: the baseline of the path and share signals.

The baseline is *history cut into slices* as long as the incident window: a share (k of n: requests
that took a path, that were slow) is judged against the same share in every slice. `slice_test` is a
quasi-binomial test whose base rate and over-dispersion come from the slices that agree with each
other; slices that are themselves anomalous (other incidents in the history) are set aside by the
same test at the 0.001 level, so an incident that happened before does not make the next one look
normal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from detect.signals.common import SignalOptions
from detect.signals.stats import binom_tail, z_from_p

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
