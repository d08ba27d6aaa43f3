"""Metric signals: robust deviations of each (pod, metric) series from its own baseline.

Metric names differ between sources, so they are sorted into families by pattern (cpu, memory,
latency, error, success, workload, network, io, node). A deviation counts when the window's
*persistent* level (the value at least half of its samples reach, so a spike or two is not
enough) is `min_z` robust scales past the baseline median and outside everything the baseline
showed. Idle series that jump from milliseconds to minutes now and then have shown such jumps in
their baseline, so they do not count.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import numpy as np

from core.rca import Modality, Signal, SignalKind
from detect.signals.common import SignalOptions, TableLike, columns, text
from detect.signals.stats import Z_CAP, robust_center_scale

_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("node", re.compile(r"(?i)^(node|host|machine)[_.]")),
    ("success", re.compile(r"(?i)success|availability|\bok_rate")),
    ("error", re.compile(r"(?i)error|fail|5xx|exception")),
    ("latency", re.compile(r"(?i)latency|duration|response_?time|\brt\b|_rt_|elapsed")),
    ("cpu", re.compile(r"(?i)cpu|throttl")),
    ("memory", re.compile(r"(?i)mem|heap|rss|oom|gc_")),
    ("network", re.compile(r"(?i)network|net_|bytes|packet|tcp|conn")),
    ("workload", re.compile(r"(?i)workload|throughput|qps|rps|requests?|ops\b|calls")),
    ("io", re.compile(r"(?i)disk|io_|syscall|fs_|read|write")),
)
# which way is bad, per family ("both" = either way is worth a look)
_DIRECTION = {
    "node": "up",
    "success": "down",
    "error": "up",
    "latency": "up",
    "cpu": "up",
    "memory": "up",
    "network": "both",
    "workload": "both",
    "io": "both",
    "other": "both",
}


def metric_family(name: str) -> str:
    for fam, pat in _FAMILIES:
        if pat.search(name):
            return fam
    return "other"


def _series(data: TableLike) -> dict[tuple[str, str, str], list[tuple[int, float]]]:
    c = columns(data, ("ts_ns", "name", "value", "service", "pod", "host"))
    out: dict[tuple[str, str, str], list[tuple[int, float]]] = defaultdict(list)
    for ts, name, value, svc, pod, host in zip(
        c["ts_ns"], c["name"], c["value"], c["service"], c["pod"], c["host"], strict=True
    ):
        if not isinstance(value, int | float) or not math.isfinite(value):
            continue
        service = text(svc) or text(host)
        if not service:
            continue
        out[(service, text(pod), text(name))].append((int(ts) if isinstance(ts, int | float) else 0, float(value)))
    return out


def _idle(series: dict[tuple[str, str, str], list[tuple[int, float]]]) -> set[tuple[str, str]]:
    """(service, pod) whose workload series exist and are all zero: their latency and success
    figures describe no traffic (idle pods report placeholder latencies of seconds to hours)."""
    seen: dict[tuple[str, str], bool] = {}
    for (service, pod, name), pts in series.items():
        if metric_family(name) == "workload":
            busy = any(v > 0 for _, v in pts)
            seen[(service, pod)] = seen.get((service, pod), False) or busy
    return {k for k, busy in seen.items() if not busy}


_TRAFFIC_FAMILIES = frozenset({"latency", "success", "error"})


def metric_signals(win_data: TableLike, base_data: TableLike, opt: SignalOptions) -> list[Signal]:
    win = _series(win_data)
    base = _series(base_data)
    idle = _idle(win) & _idle(base)
    out: list[Signal] = []
    for key in sorted(set(win) & set(base)):
        service, pod, name = key
        if (service, pod) in idle and metric_family(name) in _TRAFFIC_FAMILIES:
            continue
        b = np.array([v for _, v in base[key]])
        wpts = sorted(win[key])
        w = np.array([v for _, v in wpts])
        if len(b) < opt.metric_min_baseline_points or len(w) == 0:
            continue
        fam = metric_family(name)
        med, scale = robust_center_scale(b, opt.metric_rel_floor)
        # the level at least half of the window's samples reach: one or two spikes are not enough
        ws = np.sort(w)
        hi = float(ws[(len(ws) - 1) // 2])
        lo = float(ws[len(ws) // 2])
        want = _DIRECTION[fam]
        z_up = (hi - med) / scale if hi > float(b.max()) else 0.0
        z_dn = (med - lo) / scale if lo < float(b.min()) else 0.0
        if want == "up":
            z_dn = 0.0
        elif want == "down":
            z_up = 0.0
        z, direction, level = (z_up, "up", hi) if z_up >= z_dn else (z_dn, "down", lo)
        if z < opt.min_z:
            continue
        ref = f"metric:{pod or service}:{name}@{wpts[0][0]}-{wpts[-1][0]}"
        fold = _fold(level, med)
        effect = 1.0 - 1.0 / fold if direction == "up" else 1.0 - fold
        out.append(
            Signal(
                service=service,
                pod=pod,
                modality=Modality.METRICS,
                kind=SignalKind.METRIC_DEVIATION,
                key=name,
                family=fam,
                direction=direction,
                score=min(z, Z_CAP),
                baseline=med,
                observed=level,
                fold=fold,
                effect=round(min(1.0, max(0.0, effect)), 6),
                group=f"metrics:{service}:{fam}",
                description=f"{pod or service} {name} {direction}: baseline median {med:.4g}, "
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
