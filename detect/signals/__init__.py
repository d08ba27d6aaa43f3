"""Signals for an incident window against a baseline, from whatever telemetry exists."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from core.rca import Modality, Signal
from detect.signals.common import SignalOptions, TableLike, check_table, n_rows
from detect.signals.logs import log_signals
from detect.signals.metrics import metric_signals
from detect.signals.traces import TraceIndex, index_spans, trace_signals

logger = logging.getLogger(__name__)

__all__ = ["SignalOptions", "TableLike", "WindowSignals", "compute_signals"]


@dataclass
class WindowSignals:
    """Every signal found, which kinds of telemetry took part, and the folded traces (for the graph)."""

    signals: list[Signal]
    used: list[Modality]
    missing: list[Modality]
    notes: list[str] = field(default_factory=list)
    traces_window: TraceIndex = field(default_factory=TraceIndex)
    traces_base: TraceIndex = field(default_factory=TraceIndex)
    anomalous_traces: dict[str, set[str]] = field(default_factory=dict)
    """Per service, window trace ids of the events behind its signals (for blame coupling)."""


def compute_signals(
    logs_window: TableLike,
    logs_base: TableLike,
    spans_window: TableLike,
    spans_base: TableLike,
    metrics_window: TableLike,
    metrics_base: TableLike,
    options: SignalOptions | None = None,
) -> WindowSignals:
    """Log, trace and metric signals; a modality with an empty window or baseline is skipped and named."""
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
    used: list[Modality] = []
    missing: list[Modality] = []
    notes: list[str] = []
    tw = index_spans(spans_window)
    tb = index_spans(spans_base)
    have_traces = not tw.empty and not tb.empty
    signals: list[Signal] = []
    anomalous: dict[str, set[str]] = {}
    pairs = (
        (Modality.TRACES, spans_window, spans_base),
        (Modality.LOGS, logs_window, logs_base),
        (Modality.METRICS, metrics_window, metrics_base),
    )
    for modality, win, base in pairs:
        if n_rows(win) == 0 or n_rows(base) == 0:
            missing.append(modality)
            side = "window" if n_rows(win) == 0 else "baseline"
            notes.append(f"no {modality.value} in the {side}: {modality.value} signals skipped")
            continue
        used.append(modality)
        traces: dict[str, set[str]] = {}
        if modality == Modality.TRACES:
            found, traces = trace_signals(tw, tb, opt)
        elif modality == Modality.LOGS:
            found, traces = log_signals(win, base, tw if have_traces else None, tb if have_traces else None, opt)
        else:
            found = metric_signals(win, base, opt)
        for svc, ids in traces.items():
            anomalous.setdefault(svc, set()).update(ids)
        logger.debug("signals", extra={"modality": modality.value, "count": len(found)})
        signals.extend(found)
    signals.sort(key=lambda s: (-s.score, s.service, s.kind.value, s.key))
    return WindowSignals(signals, used, missing, notes, tw, tb, anomalous)
