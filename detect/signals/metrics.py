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

from dataclasses import dataclass

import numpy as np

from core.rca import Modality, Signal, SignalKind
from detect.signals.common import SignalOptions, TableLike
from detect.signals.metric_edges import call_edges, is_client_metric
from detect.signals.metric_families import DIRECTION, metric_family, parse_attrs
from detect.signals.metric_series import Points, SeriesKey, build_series
from detect.signals.stats import Z_CAP, robust_center_scale

__all__ = ["Deviation", "MetricEvidence", "metric_call_edges", "metric_evidence", "metric_family", "metric_signals"]


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


@dataclass(frozen=True)
class Deviation:
    """One series' deviation from its baseline, however small: the robust z of its persistent window level
    (`z`) and of its most extreme window point (`peak_z`), in the direction its family cares about (0 when
    it moved the other way)."""

    key: SeriesKey
    family: str
    peer: str
    z: float
    peak_z: float
    direction: str
    level: float
    median: float
    beyond_baseline: bool
    """The persistent level lies beyond everything the baseline showed (`BASELINE_TAIL`)."""
    first_ns: int
    last_ns: int
    """The first and last window points."""
    sigma_z: float
    """The most extreme window point in standard deviations of the history (0 for a constant history)."""

    @property
    def label(self) -> str:
        """The metric's name and, when it has some, its data-point attributes."""
        _, _, name, attrs = self.key
        return f"{name}{attrs}" if attrs else name

    def signal(self, *, score: float, note: str, dependency: str = "") -> Signal:
        """This deviation as a signal of `score`; `note` closes its description; `dependency`, a server the
        series measured its calls to (the signal is then about that call)."""
        service, pod, _, _ = self.key
        fold = _fold(self.level, self.median)
        effect = 1.0 - 1.0 / fold if self.direction == "up" else 1.0 - fold
        return Signal(
            service=service,
            pod=pod,
            modality=Modality.METRICS,
            kind=SignalKind.METRIC_DEVIATION,
            key=self.label,
            family=self.family,
            direction=self.direction,
            score=score,
            baseline=self.median,
            observed=self.level,
            fold=fold,
            effect=round(min(1.0, max(0.0, effect)), 6),
            group=f"metrics:{service}:{self.family}" + (f":{dependency}" if dependency else ""),
            dependency=dependency,
            dependency_via="call" if dependency else "",
            description=f"{pod or service} {self.label} {self.direction}: baseline median {self.median:.4g}, "
            f"window {self.level:.4g} ({note})",
            evidence_ids=[f"metric:{pod or service}:{self.label}@{self.first_ns}-{self.last_ns}"],
        )


def _deviations(win: dict[SeriesKey, Points], base: dict[SeriesKey, Points], opt: SignalOptions) -> list[Deviation]:
    idle = _idle(win) & _idle(base)
    peers = call_edges(set(win) | set(base))
    out: list[Deviation] = []
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
        z_up, z_dn = (hi - med) / scale, (med - lo) / scale
        peak_up, peak_dn = (float(ws[-1]) - med) / scale, (med - float(ws[0])) / scale
        mean, sd = float(b.mean()), float(b.std())
        if sd > 0:  # a constant history tells no scale to measure a change by
            sd = max(sd, opt.metric_rel_floor * abs(mean))
            sig_up, sig_dn = (float(ws[-1]) - mean) / sd, (mean - float(ws[0])) / sd
        else:
            sig_up = sig_dn = 0.0
        if want == "up":
            z_dn = peak_dn = sig_dn = 0.0
        elif want == "down":
            z_up = peak_up = sig_up = 0.0
        if z_up >= z_dn:
            z, peak, direction, level, beyond = z_up, peak_up, "up", hi, hi > float(top)
        else:
            z, peak, direction, level, beyond = z_dn, peak_dn, "down", lo, lo < float(bottom)
        out.append(
            Deviation(
                key,
                fam,
                peer,
                max(z, 0.0),
                max(peak, 0.0),
                direction,
                level,
                med,
                beyond,
                wpts[0][0],
                wpts[-1][0],
                max(sig_up, sig_dn, 0.0),
            )
        )
    return out


def metric_signals(win_data: TableLike, base_data: TableLike, opt: SignalOptions) -> list[Signal]:
    """The significant deviations (`metric_evidence`) as signals."""
    return metric_evidence(win_data, base_data, opt).signals


@dataclass(frozen=True)
class MetricEvidence:
    signals: list[Signal]
    """The deviations that count: a persistent level beyond the whole baseline and `min_z` robust scales from
    its median."""
    deviations: list[Deviation]
    """Every series' deviation (the weak evidence a ranking falls back on)."""
    edges: set[tuple[str, str]]
    """(caller, callee) pairs client-side metrics name (`metric_call_edges`)."""


def metric_evidence(win_data: TableLike, base_data: TableLike, opt: SignalOptions) -> MetricEvidence:
    """What the metrics say, from one reading of their series (see `MetricEvidence`)."""
    win, base = build_series(win_data, base_data)
    every = _deviations(win, base, opt)
    out: list[Signal] = []
    for d in every:
        if not d.beyond_baseline or d.z < opt.min_z:
            continue
        out.append(d.signal(score=min(d.z, Z_CAP), note=f"robust z {d.z:.1f}", dependency=d.peer))
    peers = call_edges(set(win) | set(base))
    return MetricEvidence(out, every, {(key[0], peer) for key, peer in peers.items()})


def _fold(level: float, med: float) -> float:
    if med > 0 and level > 0:
        return level / med
    if level == med:
        return 1.0
    return 1e6 if level > med else 1e-6
