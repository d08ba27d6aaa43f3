"""The slow-share test of timings: per owner and key (a service's operation, a caller's callee), the share of
window items slower than the key's history allows, tested against the history slices. Used by the trace
latency signals (`detect.signals.traces`) and the network signals (`detect.signals.network`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from detect.signals.common import SignalOptions
from detect.signals.slices import EXCLUDED_SLICE, slice_test


@dataclass
class Slow:
    """One key's test: z, counts, history share, history and window medians, window rows that were slow."""

    z: float
    key: str
    k: int
    n: int
    p0: float
    median: float
    window_median: float
    rows: np.ndarray


def slow_shares(
    owners: np.ndarray, keys: np.ndarray, values: np.ndarray, slices: np.ndarray, opt: SignalOptions
) -> dict[str, list[Slow]]:
    """Per owner, for each key: the share of window items slower than the key's history allows
    (`latency_quantile`, and at least `min_latency_delta_us` above the median), tested per slice."""
    combined = np.char.add(np.char.add(owners.astype(str), "\x1f"), keys.astype(str))
    uniq, inv = np.unique(combined, return_inverse=True)
    win = slices == 0
    hist = ~win & (slices != EXCLUDED_SLICE)
    if opt.latency_recent_slices > 0 and hist.any():
        # timings drift (data grows, load changes): judge them against the nearest history only
        near = np.unique(np.abs(slices[hist]))[: opt.latency_recent_slices]
        hist &= np.isin(np.abs(slices), near)
    out: dict[str, list[Slow]] = defaultdict(list)
    for g in np.unique(inv[win]):
        in_g = inv == g
        hv = values[in_g & hist]
        if len(hv) < opt.min_samples * 3:
            continue
        med = float(np.median(hv))
        thr = max(float(np.quantile(hv, opt.latency_quantile)), med + opt.min_latency_delta_us)
        slow = values > thr
        wsel = in_g & win
        n_win = int(wsel.sum())
        if n_win < opt.min_samples:
            continue
        sl_ids, sl_inv = np.unique(slices[in_g & hist], return_inverse=True)
        n_h = np.bincount(sl_inv, minlength=len(sl_ids))
        k_h = np.bincount(sl_inv, weights=slow[in_g & hist].astype(float), minlength=len(sl_ids))
        ok = n_h >= opt.min_slice_requests
        if not ok.any():
            continue
        k_win = int((slow & wsel).sum())
        t = slice_test(k_win, n_win, k_h[ok], n_h[ok].astype(float))
        owner, key = uniq[g].split("\x1f", 1)
        w_med = float(np.median(values[wsel]))
        out[owner].append(Slow(t.z, key, k_win, n_win, t.p0, med, w_med, np.nonzero(slow & wsel)[0]))
    return out
