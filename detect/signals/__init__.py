"""Signals for an incident window against its history, from whatever telemetry exists.

The history (`*_base` tables) is cut into slices as long as the window, counted back and forth from
the window's start (see `detect.signals.slices`); for metrics it is simply the series before.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from core.rca import Modality, Signal
from detect.signals.common import SignalOptions, TableLike, as_table, check_table, n_rows
from detect.signals.faulttext import Phrase
from detect.signals.logs import LOG_SCHEMA, log_signals
from detect.signals.metrics import Deviation, metric_evidence
from detect.signals.peers import PeerCalls, read_peers
from detect.signals.slices import EXCLUDED_SLICE, slice_of
from detect.signals.spans import SPAN_SCHEMA, SpanFold, fold_spans, span_slices
from detect.signals.stats import poisson_lower_tail, z_from_p
from detect.signals.traces import trace_signals

logger = logging.getLogger(__name__)

__all__ = ["SignalOptions", "TableLike", "WindowSignals", "compute_signals", "infer_window"]


@dataclass
class WindowSignals:
    """Every signal found, which kinds of telemetry took part, and what the graph step needs."""

    signals: list[Signal]
    used: list[Modality]
    missing: list[Modality]
    notes: list[str] = field(default_factory=list)
    edges: set[tuple[str, str]] = field(default_factory=set)
    """(caller, callee) service pairs seen in the spans."""
    anomalous_traces: dict[str, set[str]] = field(default_factory=dict)
    """Per service, window trace ids of the requests behind its signals (for blame coupling)."""
    activity: dict[str, float] = field(default_factory=dict)
    """Per service, how silent it went: (1 - window rate / history rate), weighted by how significant
    the drop is; 0 for a service as busy as usual (see `_activity`)."""
    window: tuple[int, int] = (0, 0)
    slice_ns: int = 0
    peers: PeerCalls = field(default_factory=PeerCalls)
    """Without spans: the calls log lines name (`detect.signals.peers`), hosts of the services, callees
    nobody here owns."""
    text_kinds: dict[str, Phrase] = field(default_factory=dict)
    """Per service (or host, or callee nobody owns), the fault its own window lines name."""
    deviations: list[Deviation] = field(default_factory=list)
    """Every metric series' deviation from its history, significant or not (the ranking's weak evidence)."""


def infer_window(*tables: tuple[TableLike, str]) -> tuple[int, int]:
    """[first, last + 1) of the time columns of the given (table, column) pairs; (0, 0) when empty."""
    lo, hi = None, None
    for data, col in tables:
        if n_rows(data) == 0:
            continue
        if isinstance(data, pa.Table):
            if col not in data.column_names:
                continue
            values = np.asarray(data.column(col).to_numpy(zero_copy_only=False), dtype=np.int64)
        else:
            values = np.array([r.get(col) for r in data if isinstance(r.get(col), int)], dtype=np.int64)  # type: ignore[union-attr]
        if len(values) == 0:
            continue
        lo = int(values.min()) if lo is None else min(lo, int(values.min()))
        hi = int(values.max()) + 1 if hi is None else max(hi, int(values.max()) + 1)
    return (lo or 0, hi or 0)


def compute_signals(
    logs_window: TableLike,
    logs_base: TableLike,
    spans_window: TableLike,
    spans_base: TableLike,
    metrics_window: TableLike,
    metrics_base: TableLike,
    options: SignalOptions | None = None,
    *,
    window: tuple[int, int] | None = None,
) -> WindowSignals:
    """Log, trace and metric signals; a modality with an empty window or history is skipped and named.

    `window` is the incident window [start_ns, end_ns); by default the time the window tables cover.
    """
    opt = options or SignalOptions()
    inputs = {
        "logs_window": logs_window,
        "logs_base": logs_base,
        "spans_window": spans_window,
        "spans_base": spans_base,
        "metrics_window": metrics_window,
        "metrics_base": metrics_base,
    }
    for name, data in inputs.items():
        check_table(data, name)
    if window is None:
        window = infer_window((logs_window, "ts_ns"), (spans_window, "start_ns"), (metrics_window, "ts_ns"))
    width = max(window[1] - window[0], opt.min_slice_s * 1_000_000_000)
    used: list[Modality] = []
    missing: list[Modality] = []
    notes: list[str] = []

    def have(win: TableLike, base: TableLike, modality: Modality) -> bool:
        if n_rows(win) and n_rows(base):
            used.append(modality)
            return True
        missing.append(modality)
        side = "window" if n_rows(win) == 0 else "history"
        notes.append(f"no {modality.value} in the {side}: {modality.value} signals skipped")
        return False

    sw = as_table(spans_window, SPAN_SCHEMA)
    sb = as_table(spans_base, SPAN_SCHEMA)
    spans = pa.concat_tables([sw, sb])
    fold = fold_spans(spans) if spans.num_rows else SpanFold()
    span_in_window = np.arange(spans.num_rows) < sw.num_rows
    s_slices = span_slices(fold, span_in_window, window[0], width)
    signals: list[Signal] = []
    behind: list[dict[str, int]] = []
    services: set[str] = set()
    for data in (sw, sb):
        services.update(data.column("service").unique().to_pylist())
    if have(spans_window, spans_base, Modality.TRACES):
        found, traces = trace_signals(fold, s_slices, opt)
        signals += found
        behind += traces
    lw = as_table(logs_window, LOG_SCHEMA)
    lb = as_table(logs_base, LOG_SCHEMA)
    # without spans, who calls whom is read from the lines, which are given to what they are about first
    lw, lb, peers, kinds, phrases = read_peers(
        lw, lb, width_ns=window[1] - window[0], min_z=opt.min_z, spans=not fold.empty
    )
    for data in (lw, lb):
        services.update(data.column("service").unique().to_pylist())
    metric_services: set[str] = set()
    for data in (metrics_window, metrics_base):
        if isinstance(data, pa.Table) and "service" in data.column_names:
            metric_services.update(data.column("service").unique().to_pylist())
        elif data:
            metric_services.update(str(r.get("service", "")) for r in data)  # type: ignore[union-attr]
    services |= metric_services
    names = sorted(s for s in services if s)
    if have(logs_window, logs_base, Modality.LOGS):
        logs = pa.concat_tables([lw, lb])
        in_window = np.arange(logs.num_rows) < lw.num_rows
        found, traces = log_signals(
            logs,
            in_window,
            window[0],
            width,
            fold if not fold.empty else None,
            s_slices,
            names,
            opt,
            peers.deps or None,
        )
        signals += found + phrases
        behind += traces + [{} for _ in phrases]
    signals = _inherit_dependencies(signals, behind, fold.edges)
    anomalous: dict[str, set[str]] = {}
    first_seen: dict[str, dict[str, int]] = {}
    for sig, ids in zip(signals, behind, strict=True):
        if ids and sig.dependency_via != "error":
            anomalous.setdefault(sig.service, set()).update(ids)
            mine = first_seen.setdefault(sig.service, {})
            for tr, ts in ids.items():
                mine[tr] = min(ts, mine.get(tr, ts))
    edges = set(fold.edges) if not fold.empty else precedence_edges(first_seen) | peers.edges
    if peers.edges:
        notes.append(f"no spans: {len(peers.edges)} call(s) read from the peers log lines name")
    if fold.empty and edges - peers.edges:
        notes.append(
            f"no spans: {len(edges - peers.edges)} call(s) inferred from which service's change came first in "
            "shared traces"
        )
    if have(metrics_window, metrics_base, Modality.METRICS):
        metric = metric_evidence(metrics_window, metrics_base, opt)
        signals.extend(metric.signals)
        edges |= metric.edges
        deviations = metric.deviations
    else:
        deviations = []
    activity = _activity(fold, s_slices, lw, lb, window, width)
    signals.sort(key=lambda s: (-s.score, s.service, s.kind.value, s.key))
    logger.debug("signals", extra={"count": len(signals), "window": window})
    return WindowSignals(
        signals, used, missing, notes, edges, anomalous, activity, window, width, peers, kinds, deviations
    )


def precedence_edges(first_seen: dict[str, dict[str, int]], min_shared: int = 3) -> set[tuple[str, str]]:
    """(later, earlier) service pairs: in most traces where both changed, `earlier` changed first.

    Without spans there is no call graph, but a fault shows first where it starts and then in the
    services that call it, so the later one is taken as the caller (blame may flow from it)."""
    out: set[tuple[str, str]] = set()
    names = sorted(first_seen)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = first_seen[a].keys() & first_seen[b].keys()
            if len(shared) < min_shared:
                continue
            a_first = sum(1 for t in shared if first_seen[a][t] < first_seen[b][t])
            b_first = sum(1 for t in shared if first_seen[b][t] < first_seen[a][t])
            if a_first * 3 >= 2 * len(shared):
                out.add((b, a))
            elif b_first * 3 >= 2 * len(shared):
                out.add((a, b))
    return out


def _inherit_dependencies(
    signals: list[Signal], behind: list[dict[str, int]], edges: set[tuple[str, str]]
) -> list[Signal]:
    """A signal whose requests are mostly ones in which the same service, or a service it calls,
    reported a failing dependency (an error naming that service) describes the same failure as it
    travels up the calls: it names the dependency too. Repeated until nothing changes."""
    callees: dict[str, set[str]] = {}
    for a, b in edges:
        callees.setdefault(a, set()).add(b)
    out = list(signals)
    for _ in range(8):
        named: dict[str, list[tuple[str, set[str]]]] = {}
        for sig, ids in zip(out, behind, strict=True):
            if sig.dependency and sig.dependency_via == "error" and ids:
                named.setdefault(sig.service, []).append((sig.dependency, set(ids)))
        changed = False
        for i, (sig, ids) in enumerate(zip(out, behind, strict=True)):
            if sig.dependency_via == "error" or not ids:
                continue
            near = [d for s in {sig.service} | callees.get(sig.service, set()) for d in named.get(s, [])]
            near = [d for d in near if d[0] != sig.service]
            if not near:
                continue
            mine = set(ids)
            dep, theirs = max(near, key=lambda d: len(mine & d[1]))
            if len(mine & theirs) * 2 >= len(mine):
                out[i] = sig.model_copy(update={"dependency": dep, "dependency_via": "error"})
                changed = True
        if not changed:
            break
    return out


def _activity(
    fold: SpanFold, s_slices: np.ndarray, lw: pa.Table, lb: pa.Table, window: tuple[int, int], width: int
) -> dict[str, float]:
    """Window rate over history rate, per service: requests when there are spans, else log lines.
    History is the slices where some service has data."""
    start = window[0]
    if not fold.empty:
        roots = fold.is_root
        svc = fold.column("service")[roots]
        sl = s_slices[roots]
    else:
        logs = pa.concat_tables([lw, lb])
        if logs.num_rows == 0:
            return {}
        svc = logs.column("service").to_numpy(zero_copy_only=False)
        ts = logs.column("ts_ns").to_numpy(zero_copy_only=False)
        sl = np.where(np.arange(logs.num_rows) < lw.num_rows, 0, slice_of(ts, start, width))
    hist = (sl != 0) & (sl != EXCLUDED_SLICE)
    n_hist = len(np.unique(sl[hist]))
    win_s = max(window[1] - window[0], 1)
    if n_hist == 0:
        return {}
    out: dict[str, float] = {}
    for s in np.unique(svc):
        mine = svc == s
        w = int((mine & (sl == 0)).sum())
        expected = int((mine & hist).sum()) / (n_hist * width) * win_s
        if expected <= 0 or w >= expected:
            out[str(s)] = 0.0
            continue
        z = z_from_p(poisson_lower_tail(w, expected))
        out[str(s)] = (1.0 - w / expected) * (1.0 - math.exp(-z / 4.0))
    return out
