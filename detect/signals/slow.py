"""The slow-share test of timings: per owner and key (a service's operation, a caller's callee), the share of
window items slower than the key's history allows, tested against the history slices. Used by the trace
latency signals (`detect.signals.traces`) and the network signals (`detect.signals.network`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import pyarrow as pa

from detect.signals.common import SignalOptions, factorize
from detect.signals.slices import EXCLUDED_SLICE, slice_test

Labels: TypeAlias = np.ndarray | pa.Array | pa.ChunkedArray
"""Text per item: a numpy array, or an Arrow one (read without a copy into Python objects)."""


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
    owners: Labels, keys: Labels, values: np.ndarray, slices: np.ndarray, opt: SignalOptions
) -> dict[str, list[Slow]]:
    """Per owner, for each key: the share of window items slower than the key's history allows
    (`latency_quantile`, and at least `min_latency_delta_us` above the median), tested per slice.
    Keys are taken in the order of their '<owner>\x1f<key>' names."""
    win = slices == 0
    hist = ~win & (slices != EXCLUDED_SLICE)
    if opt.latency_recent_slices > 0 and hist.any():
        # timings drift (data grows, load changes): judge them against the nearest history only
        near = np.unique(np.abs(slices[hist]))[: opt.latency_recent_slices]
        hist &= np.isin(np.abs(slices), near)
    out: dict[str, list[Slow]] = defaultdict(list)
    groups, names = owner_key_groups(owners, keys, win)
    for rows, name in zip(groups, names, strict=True):
        h = hist[rows]
        v = values[rows]
        hv = v[h]
        if len(hv) < opt.min_samples * 3:
            continue
        med = float(np.median(hv))
        thr = max(float(np.quantile(hv, opt.latency_quantile)), med + opt.min_latency_delta_us)
        slow = v > thr
        w = win[rows]
        n_win = int(w.sum())
        if n_win < opt.min_samples:
            continue
        sl_ids, sl_inv = np.unique(slices[rows][h], return_inverse=True)
        n_h = np.bincount(sl_inv, minlength=len(sl_ids))
        k_h = np.bincount(sl_inv, weights=slow[h].astype(float), minlength=len(sl_ids))
        ok = n_h >= opt.min_slice_requests
        if not ok.any():
            continue
        k_win = int((slow & w).sum())
        t = slice_test(k_win, n_win, k_h[ok], n_h[ok].astype(float))
        owner, key = name.split("\x1f", 1)
        w_med = float(np.median(v[w]))
        out[owner].append(Slow(t.z, key, k_win, n_win, t.p0, med, w_med, rows[slow & w]))
    return out


def owner_key_groups(owners: Labels, keys: Labels, present: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
    """The (owner, key) pairs that occur where `present` holds, in the order of their '<owner>\x1f<key>' names:
    for each, its rows (ascending) and that name."""
    o_codes, o_names = factorize(owners)
    k_codes, k_names = factorize(keys)
    pair = o_codes * max(len(k_names), 1) + k_codes
    order = np.argsort(pair, kind="stable")
    ordered = pair[order]
    found = np.unique(pair[present]).tolist()
    named = sorted(
        ((f"{o_names[p // len(k_names)]}\x1f{k_names[p % len(k_names)]}", p) for p in found), key=lambda x: x[0]
    )
    lo = np.searchsorted(ordered, [p for _, p in named], side="left")
    hi = np.searchsorted(ordered, [p for _, p in named], side="right")
    return [order[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)], [n for n, _ in named]
