"""Trace signals: per service, what changed in its own requests between history and incident window.

Spans are folded into *requests* (`detect.signals.spans`): an entry span of a service (its parent
is missing or in another service) and the spans below it in the same service. For each request we
keep the time spent in the service's own code (self times of its spans; a client span's time
belongs to the call), the end-to-end duration, and its steps in time order: internal operations,
calls to other services (``-> service``) and error spans (``!ERR``). Three kinds of signal come out:

- paths (`detect.signals.sequences`): after a step, the share of requests taking each next step
  (a call no longer made, an error handler now reached);
- latency: the share of an operation's requests slower than that operation's history allows (its
  `latency_quantile`), in the service's own time (SPAN_SELF_LATENCY) and end to end (SPAN_LATENCY,
  which callees also explain);
- calls seen from both ends (`detect.signals.network`): the caller's view of a call against the
  callee's own time, blamed on one end (EDGE_LATENCY, EDGE_ERROR: a network fault).

Everything is computed on Arrow columns with numpy, so a day of history folds in well under a second.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.rca import Modality, Signal, SignalKind
from detect.signals.common import SignalOptions
from detect.signals.network import network_signals
from detect.signals.sequences import sequence_signals
from detect.signals.slices import EXCLUDED_SLICE
from detect.signals.slow import slow_shares
from detect.signals.spans import SpanFold
from detect.signals.stats import family_z, share_fold
from detect.signals.tokens import ERR_MARK, EVENT_SCHEMA, SPAN_KINDS, START


def span_events(fold: SpanFold, slices: np.ndarray) -> pa.Table:
    """Steps of every request as sequence events (START, internal operations, calls, errors)."""
    if fold.empty:
        return EVENT_SCHEMA.empty_table()
    t = fold.spans
    n = t.num_rows
    rows = np.arange(n)
    is_root = fold.is_root
    parent = fold.parent
    trace = t.column("trace_id").combine_chunks()
    span = t.column("span_id").combine_chunks()
    ops = t.column("operation").combine_chunks()
    svc = t.column("service").combine_chunks()
    pods = t.column("pod").combine_chunks()
    start = fold.column("start_ns")
    err = pa.array(fold.error)
    err_tag = pc.if_else(err, ERR_MARK, "")
    req_key = fold.request_key()
    ref = pc.binary_join_element_wise("span", trace, span, ":")
    tok_start = pc.binary_join_element_wise(START, ops, ":")
    tok_internal = pc.binary_join_element_wise(ops, err_tag, "")
    tok_call = pc.binary_join_element_wise(pc.binary_join_element_wise("->", svc, " "), err_tag, "")
    psafe = np.where(parent >= 0, parent, 0)
    roots = rows[is_root]
    internal = rows[~is_root]
    calls = rows[is_root & (parent >= 0)]
    callers = psafe[calls]

    def part(idx: np.ndarray, owner: np.ndarray, tok: pa.Array, ts: np.ndarray, e: pa.Array, dep: pa.Array) -> pa.Table:
        i, o = pa.array(idx, pa.int64()), pa.array(owner, pa.int64())
        return pa.table(
            {
                "service": svc.take(o),
                "pod": pods.take(o),
                "req": req_key.take(o),
                "trace": trace.take(i),
                "ts": pa.array(ts, pa.int64()),
                "token": tok.take(i),
                "err": e,
                "dep": dep,
                "ref": ref.take(i),
                "slice": pa.array(slices[owner], pa.int64()),
            }
        )

    blank = pa.array([""] * len(roots), pa.string())
    parts = [
        part(roots, roots, tok_start, start[roots] - 1, pa.array(np.zeros(len(roots), bool)), blank),
        part(
            internal,
            internal,
            tok_internal,
            start[internal],
            err.take(pa.array(internal, pa.int64())),
            pa.array([""] * len(internal), pa.string()),
        ),
        part(
            calls,
            callers,
            tok_call,
            start[calls],
            err.take(pa.array(calls, pa.int64())),
            pc.if_else(err.take(pa.array(calls, pa.int64())), svc.take(pa.array(calls, pa.int64())), ""),
        ),
    ]
    return pa.concat_tables([p.cast(EVENT_SCHEMA) for p in parts])


def trace_signals(fold: SpanFold, slices: np.ndarray, opt: SignalOptions) -> tuple[list[Signal], list[dict[str, int]]]:
    """Path and latency signals (see module doc) and for each the window trace ids behind it.
    `slices` gives each span's request slice (`span_slices`)."""
    if fold.empty:
        return [], []
    events = span_events(fold, slices)
    events = events.filter(pc.not_equal(events.column("slice"), EXCLUDED_SLICE))
    found, traces = sequence_signals(events, SPAN_KINDS, opt)
    reqs = fold.requests()
    req_slice = slices[reqs.column("row").to_numpy()]
    for kind, col in ((SignalKind.SPAN_SELF_LATENCY, "local_us"), (SignalKind.SPAN_LATENCY, "total_us")):
        sigs, tr = _latency_signals(reqs, req_slice, kind, col, opt)
        found.extend(sigs)
        traces.extend(tr)
    sigs, tr = network_signals(fold, slices, opt)
    found.extend(sigs)
    traces.extend(tr)
    return found, traces


def _latency_signals(
    reqs: pa.Table, slices: np.ndarray, kind: SignalKind, col: str, opt: SignalOptions
) -> tuple[list[Signal], list[dict[str, int]]]:
    tests = slow_shares(reqs.column("service"), reqs.column("operation"), reqs.column(col).to_numpy(), slices, opt)
    out: list[Signal] = []
    blamed: list[dict[str, int]] = []
    for svc, ts in tests.items():
        best = max(ts, key=lambda x: x.z)
        za = family_z(best.z, len(ts))
        if za < opt.min_z or best.window_median < best.median:
            continue
        at = reqs.select(["trace_id", "span_id", "pod", "start_ns"]).take(pa.array(best.rows, pa.int64()))
        traces, spans, pods, starts = (at.column(c).to_pylist() for c in at.column_names)
        blamed.append(dict(zip(traces, starts, strict=True)))
        shown = zip(traces[: opt.max_evidence - 1], spans, strict=False)
        ids = [f"operation:{svc}:{best.key}"] + [f"span:{tr}:{sp}" for tr, sp in shown]
        pod_list = [p for p in pods if p]
        what = "own time" if kind == SignalKind.SPAN_SELF_LATENCY else "duration"
        out.append(
            Signal(
                service=svc,
                pod=max(set(pod_list), key=pod_list.count) if pod_list else "",
                modality=Modality.TRACES,
                kind=kind,
                key=best.key,
                family="latency",
                direction="up",
                score=za,
                baseline=round(best.median / 1000.0, 4),
                observed=round(best.window_median / 1000.0, 4),
                fold=share_fold(best.k, best.n, best.p0),
                effect=round(min(1.0, max(0.0, best.k / best.n - best.p0)), 6),
                group=f"latency:{svc}:{kind.value}",
                description=f"{svc} {best.key}: {best.k} of {best.n} requests slower in {what} than "
                f"{1 - best.p0:.0%} of history (median {best.median / 1000:.1f} -> {best.window_median / 1000:.1f} ms)",
                evidence_ids=ids,
            )
        )
    return out, blamed
