"""Metric signals: robust deviations of each metric series from its own baseline.

The series are built by `detect.signals.metric_series` (one per service, pod, name and data-point
attributes; counters read as rates, histograms and summaries as mean, rate and quantiles), sorted into
families by `detect.signals.metric_families` (OpenTelemetry semantic conventions first, then generic
words; no team's own metric names). A deviation counts when the window's *persistent* level (the value
at least half of its samples reach, so a spike or two is not enough) is `min_z` robust scales past the
baseline median and beyond the baseline's `BASELINE_TAIL` quantile (its maximum). Idle series (their workload all
zero) do not count for latency, success and errors. A client-side series that names the server it
called (`detect.signals.metric_edges`) is evidence about that call: the signal names the server as its
dependency (`dependency_via="call"`), and `metric_call_edges` gives the calls. A client-side latency
that names no server measures the service's callees, not the service: its family is `callees` (the
ranking weighs a family it does not list as little as `other`).
"""

from __future__ import annotations

import numpy as np

from core.rca import Modality, Signal, SignalKind
from detect.signals.common import SignalOptions, TableLike
from detect.signals.metric_edges import call_edges, is_client_metric
from detect.signals.metric_families import DIRECTION, metric_family, parse_attrs
from detect.signals.metric_series import Points, SeriesKey, build_series
from detect.signals.stats import Z_CAP, robust_center_scale

__all__ = ["metric_call_edges", "metric_family", "metric_signals"]


def _idle(series: dict[SeriesKey, Points]) -> set[tuple[str, str]]:
    """(service, pod) whose workload series exist and are all zero: their latency and success
    figures describe no traffic (idle pods report placeholder latencies of seconds to hours)."""
    seen: dict[tuple[str, str], bool] = {}
    for (service, pod, name, attrs), pts in series.items():
        if metric_family(name, parse_attrs(attrs)) == "workload":
            busy = any(v > 0 for _, v in pts)
            seen[(service, pod)] = seen.get((service, pod), False) or busy
    return {k for k, busy in seen.items() if not busy}


def metric_call_edges(win_data: TableLike, base_data: TableLike) -> set[tuple[str, str]]:
    """(caller, callee) pairs named by client-side metrics (`detect.signals.metric_edges`)."""
    win, base = build_series(win_data, base_data)
    return {(key[0], peer) for key, peer in call_edges(set(win) | set(base)).items()}


_TRAFFIC_FAMILIES = frozenset({"latency", "success", "error"})
BASELINE_TAIL = 1.0
"""The window's level must lie beyond this quantile of the baseline (1.0: beyond everything it showed).
Kept at 1.0, as chosen on TrainTicket: 0.95 scored the same on TT metrics-only, worse on TT with every
modality and moved the sample's scheduled detection to the wrong root cause; it helped OnlineBoutique
metrics-only, the check set (docs/research/rca.md, "Metrics only (session 4)")."""


def metric_signals(win_data: TableLike, base_data: TableLike, opt: SignalOptions) -> list[Signal]:
    win, base = build_series(win_data, base_data)
    idle = _idle(win) & _idle(base)
    peers = call_edges(set(win) | set(base))
    out: list[Signal] = []
    for key in sorted(set(win) & set(base)):
        service, pod, name, attrs = key
        fam = metric_family(name, parse_attrs(attrs))
        if (service, pod) in idle and fam in _TRAFFIC_FAMILIES:
            continue
        peer = peers.get(key, "")
        if fam == "latency" and not peer and is_client_metric(name):
            fam = "callees"
        b = np.array([v for _, v in base[key]])
        wpts = win[key]
        w = np.array([v for _, v in wpts])
        if len(b) < opt.metric_min_baseline_points or len(w) == 0:
            continue
        med, scale = robust_center_scale(b, opt.metric_rel_floor)
        # the level at least half of the window's samples reach: one or two spikes are not enough
        ws = np.sort(w)
        hi = float(ws[(len(ws) - 1) // 2])
        lo = float(ws[len(ws) // 2])
        want = DIRECTION[fam]
        top, bottom = np.quantile(b, [BASELINE_TAIL, 1.0 - BASELINE_TAIL])
        z_up = (hi - med) / scale if hi > float(top) else 0.0
        z_dn = (med - lo) / scale if lo < float(bottom) else 0.0
        if want == "up":
            z_dn = 0.0
        elif want == "down":
            z_up = 0.0
        z, direction, level = (z_up, "up", hi) if z_up >= z_dn else (z_dn, "down", lo)
        if z < opt.min_z:
            continue
        label = f"{name}{attrs}" if attrs else name
        ref = f"metric:{pod or service}:{label}@{wpts[0][0]}-{wpts[-1][0]}"
        fold = _fold(level, med)
        effect = 1.0 - 1.0 / fold if direction == "up" else 1.0 - fold
        out.append(
            Signal(
                service=service,
                pod=pod,
                modality=Modality.METRICS,
                kind=SignalKind.METRIC_DEVIATION,
                key=label,
                family=fam,
                direction=direction,
                score=min(z, Z_CAP),
                baseline=med,
                observed=level,
                fold=fold,
                effect=round(min(1.0, max(0.0, effect)), 6),
                group=f"metrics:{service}:{fam}" + (f":{peer}" if peer else ""),
                dependency=peer,
                dependency_via="call" if peer else "",
                description=f"{pod or service} {label} {direction}: baseline median {med:.4g}, "
                f"window {level:.4g} (robust z {z:.1f})",
                evidence_ids=[ref],
            )
        )
    return out


def _fold(level: float, med: float) -> float:
    if med > 0 and level > 0:
        return level / med
    if level == med:
        return 1.0
    return 1e6 if level > med else 1e-6
