"""Trace signals: per service, what changed in its own requests between baseline and incident window.

Spans are folded into *requests*: an entry span of a service (its parent is missing or in another
service) and the spans below it in the same service. For each request we keep the time spent in the
service's own code (self times of its spans, with client-span time moved to the call edge), the
end-to-end duration, its error spans and the calls it made to other services. Signals compare these
per request, so a service that merely receives more or less traffic does not look anomalous.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.rca import Modality, Signal, SignalKind
from detect.signals.common import (
    ERROR_WORDS,
    SignalOptions,
    TableLike,
    add_evidence,
    columns,
    count_change,
    mann_whitney_z,
    text,
)

_SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "service",
    "pod",
    "operation",
    "start_ns",
    "end_ns",
    "duration_us",
    "status",
    "kind",
    "attributes",
)
_HTTP_STATUS = re.compile(r'"(?:http\.)?(?:response\.)?status_code"\s*:\s*"?(\d{3})')


@dataclass
class Request:
    trace_id: str
    service: str
    operation: str
    pod: str
    span_ref: str
    local_us: float
    total_us: float
    errors: int
    calls: Counter[str] = field(default_factory=Counter)


@dataclass
class TraceIndex:
    """Requests per service and operation in one window, and how spans map onto them."""

    requests: dict[tuple[str, str], list[Request]] = field(default_factory=dict)
    by_service: Counter[str] = field(default_factory=Counter)
    span_entry: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    edge_gaps: dict[tuple[str, str], list[tuple[float, str]]] = field(default_factory=dict)
    edge_calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    spans: int = 0

    @property
    def empty(self) -> bool:
        return self.spans == 0


def _is_error_span(status: str, operation: str, attributes: str) -> bool:
    if status.upper() == "ERROR":
        return True
    if attributes and "status_code" in attributes:
        m = _HTTP_STATUS.search(attributes)
        if m and int(m.group(1)) >= 500:
            return True
    # error handlers show up as their own spans (e.g. a framework's /error controller)
    return bool(ERROR_WORDS.search(operation))


def _duration_ns(start: Any, end: Any, dur_us: Any) -> tuple[int, int]:
    s = int(start) if isinstance(start, int | float) else 0
    e = int(end) if isinstance(end, int | float) else 0
    if e <= s and isinstance(dur_us, int | float) and dur_us > 0:
        e = s + int(dur_us * 1000)
    return s, max(e, s)


def _union_length(intervals: list[tuple[int, int]], lo: int, hi: int) -> int:
    total = 0
    cur_s = cur_e = None
    for s, e in sorted(intervals):
        s, e = max(s, lo), min(e, hi)
        if e <= s:
            continue
        if cur_e is None or s > cur_e:
            if cur_e is not None and cur_s is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None and cur_s is not None:
        total += cur_e - cur_s
    return total


def index_spans(data: TableLike) -> TraceIndex:
    """Fold spans into requests (see module doc). Spans whose parent is not in the data start a request."""
    c = columns(data, _SPAN_COLUMNS)
    n = len(c["span_id"])
    idx = TraceIndex(spans=n)
    if n == 0:
        return idx
    key_of: dict[tuple[str, str], int] = {}
    for i in range(n):
        key_of[(text(c["trace_id"][i]), text(c["span_id"][i]))] = i
    parent = [-1] * n
    children: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        pid = text(c["parent_id"][i])
        if pid:
            j = key_of.get((text(c["trace_id"][i]), pid), -1)
            if j >= 0 and j != i:
                parent[i] = j
                children[j].append(i)
    service = [text(s) for s in c["service"]]
    times = [_duration_ns(c["start_ns"][i], c["end_ns"][i], c["duration_us"][i]) for i in range(n)]
    kinds = [text(k).upper() for k in c["kind"]]
    self_us = [0.0] * n
    client = [False] * n
    for i in range(n):
        s, e = times[i]
        kids = children[i]
        covered = _union_length([times[k] for k in kids], s, e) if kids else 0
        self_us[i] = max(0, (e - s) - covered) / 1000.0
        remote = [k for k in kids if service[k] != service[i]]
        client[i] = kinds[i] == "CLIENT" or (bool(kids) and len(remote) == len(kids))
        for k in remote:
            edge = (service[i], service[k])
            idx.edge_calls[edge] += 1
            if client[i]:
                ref = f"span:{text(c['trace_id'][i])}:{text(c['span_id'][i])}"
                idx.edge_gaps.setdefault(edge, []).append((self_us[i], ref))
    errors = [_is_error_span(text(c["status"][i]), text(c["operation"][i]), text(c["attributes"][i])) for i in range(n)]
    requests: dict[tuple[str, str], list[Request]] = defaultdict(list)
    for i in range(n):
        p = parent[i]
        if p >= 0 and service[p] == service[i]:
            continue
        svc, op = service[i], text(c["operation"][i])
        s, e = times[i]
        req = Request(
            trace_id=text(c["trace_id"][i]),
            service=svc,
            operation=op,
            pod=text(c["pod"][i]),
            span_ref=f"span:{text(c['trace_id'][i])}:{text(c['span_id'][i])}",
            local_us=0.0,
            total_us=(e - s) / 1000.0,
            errors=0,
        )
        stack = [i]
        while stack:
            j = stack.pop()
            idx.span_entry[(text(c["trace_id"][j]), text(c["span_id"][j]))] = (svc, op)
            if not client[j]:
                req.local_us += self_us[j]
            if errors[j]:
                req.errors += 1
            for k in children[j]:
                if service[k] == svc:
                    stack.append(k)
                else:
                    req.calls[service[k]] += 1
        requests[(svc, op)].append(req)
        idx.by_service[svc] += 1
    idx.requests = dict(requests)
    return idx


def _mode_pod(reqs: list[Request]) -> str:
    cnt = Counter(r.pod for r in reqs if r.pod)
    return cnt.most_common(1)[0][0] if cnt else ""


def _latency_signal(
    service: str,
    kind: SignalKind,
    base: dict[str, list[Request]],
    win: dict[str, list[Request]],
    attr: str,
    opt: SignalOptions,
    traces: set[str],
) -> Signal | None:
    """Pooled test over a service's operations: each request's time divided by its operation's
    baseline median, window ratios against baseline ratios."""
    b_ratios: list[float] = []
    w_ratios: list[tuple[float, Request]] = []
    b_abs: list[float] = []
    w_abs: list[float] = []
    ops_changed: list[tuple[float, str]] = []
    for op, breqs in base.items():
        wreqs = win.get(op, [])
        if len(breqs) < opt.min_samples or not wreqs:
            continue
        bv = np.array([getattr(r, attr) for r in breqs])
        med = float(np.median(bv))
        ref = max(med, opt.min_latency_delta_us / 2)
        b_ratios.extend((bv / ref).tolist())
        b_abs.extend(bv.tolist())
        wv = [getattr(r, attr) for r in wreqs]
        w_abs.extend(wv)
        w_ratios.extend((v / ref, r) for v, r in zip(wv, wreqs, strict=True))
        ops_changed.append((float(np.median(wv)) / ref, op))
    if len(b_ratios) < opt.min_samples or len(w_ratios) < opt.min_samples:
        return None
    bw = np.array(b_ratios)
    ww = np.array([x for x, _ in w_ratios])
    z = mann_whitney_z(bw, ww)
    b_med, w_med = float(np.median(b_abs)), float(np.median(w_abs))
    b_p90, w_p90 = float(np.percentile(b_abs, 90)), float(np.percentile(w_abs, 90))
    ratio_med = float(np.median(ww)) / max(float(np.median(bw)), 1e-9)
    ratio_p90 = float(np.percentile(ww, 90)) / max(float(np.percentile(bw, 90)), 1e-9)
    grew = (ratio_med >= opt.min_latency_ratio and w_med - b_med >= opt.min_latency_delta_us) or (
        ratio_p90 >= opt.min_latency_ratio and w_p90 - b_p90 >= opt.min_latency_delta_us
    )
    if z < opt.min_z or not grew:
        return None
    cut = float(np.percentile(bw, 90))
    traces.update(r.trace_id for x, r in w_ratios if x > cut)
    slow = sorted(w_ratios, key=lambda x: -x[0])
    ev: list[str] = []
    ops_changed.sort(reverse=True)
    for _, op in ops_changed[:2]:
        add_evidence(ev, f"operation:{service}:{op}", opt.max_evidence)
    for _, r in slow:
        add_evidence(ev, r.span_ref, opt.max_evidence)
    what = "own time per request" if kind == SignalKind.SPAN_SELF_LATENCY else "request duration"
    return Signal(
        service=service,
        pod=_mode_pod([r for _, r in slow[: max(1, len(slow) // 4)]]),
        modality=Modality.TRACES,
        kind=kind,
        key=ops_changed[0][1] if ops_changed else "",
        family="latency",
        direction="up",
        score=z,
        baseline=b_med / 1000.0,
        observed=w_med / 1000.0,
        fold=ratio_med,
        description=f"{service} {what}: median {b_med / 1000:.1f} -> {w_med / 1000:.1f} ms, "
        f"p90 {b_p90 / 1000:.1f} -> {w_p90 / 1000:.1f} ms",
        evidence_ids=ev,
    )


def trace_signals(win: TraceIndex, base: TraceIndex, opt: SignalOptions) -> tuple[list[Signal], dict[str, set[str]]]:
    """Signals per service from two folded windows (see `index_spans`), and per service the window
    trace ids behind its signals (slow, failing or re-routed requests)."""
    out: list[Signal] = []
    traces: dict[str, set[str]] = defaultdict(set)
    if win.empty or base.empty:
        return out, dict(traces)
    by_svc_b: dict[str, dict[str, list[Request]]] = defaultdict(dict)
    by_svc_w: dict[str, dict[str, list[Request]]] = defaultdict(dict)
    for (svc, op), reqs in base.requests.items():
        by_svc_b[svc][op] = reqs
    for (svc, op), reqs in win.requests.items():
        by_svc_w[svc][op] = reqs
    for svc in sorted(set(by_svc_b) & set(by_svc_w)):
        b, w = by_svc_b[svc], by_svc_w[svc]
        for kind, attr in ((SignalKind.SPAN_SELF_LATENCY, "local_us"), (SignalKind.SPAN_LATENCY, "total_us")):
            sig = _latency_signal(svc, kind, b, w, attr, opt, traces[svc])
            if sig is not None:
                out.append(sig)
        out.extend(_error_signals(svc, b, w, opt, traces[svc]))
        out.extend(_structure_signals(svc, b, w, opt, traces[svc]))
    out.extend(_edge_signals(win, base, opt))
    return out, {k: v for k, v in traces.items() if v}


def _error_signals(
    svc: str,
    b: dict[str, list[Request]],
    w: dict[str, list[Request]],
    opt: SignalOptions,
    traces: set[str],
) -> list[Signal]:
    nb = sum(len(v) for v in b.values())
    nw = sum(len(v) for v in w.values())
    kb = sum(r.errors for v in b.values() for r in v)
    kw = sum(r.errors for v in w.values() for r in v)
    if kw == 0:
        return []
    z, fold, direction = count_change(kw, nw, kb, nb)
    if direction != "up" or z < opt.min_z or fold < opt.min_fold:
        return []
    bad = [r for v in w.values() for r in v if r.errors]
    traces.update(r.trace_id for r in bad)
    ops = Counter(r.operation for r in bad)
    ev: list[str] = [f"operation:{svc}:{op}" for op, _ in ops.most_common(2)]
    for r in bad:
        add_evidence(ev, r.span_ref, opt.max_evidence)
    return [
        Signal(
            service=svc,
            pod=_mode_pod(bad),
            modality=Modality.TRACES,
            kind=SignalKind.SPAN_ERROR,
            key=ops.most_common(1)[0][0],
            family="error",
            direction="up",
            score=z,
            baseline=kb / max(nb, 1),
            observed=kw / max(nw, 1),
            fold=fold,
            description=f"{svc} error spans per request {kb}/{nb} -> {kw}/{nw}",
            evidence_ids=ev,
        )
    ]


def _structure_signals(
    svc: str,
    b: dict[str, list[Request]],
    w: dict[str, list[Request]],
    opt: SignalOptions,
    traces: set[str],
) -> list[Signal]:
    best: Signal | None = None
    best_traces: set[str] = set()
    for op in sorted(set(b) & set(w)):
        breqs, wreqs = b[op], w[op]
        if len(breqs) < opt.min_samples or len(wreqs) < opt.min_samples:
            continue
        cb: Counter[str] = Counter()
        cw: Counter[str] = Counter()
        for r in breqs:
            cb.update(r.calls)
        for r in wreqs:
            cw.update(r.calls)
        for callee in sorted(set(cb) | set(cw)):
            z, fold, direction = count_change(cw[callee], len(wreqs), cb[callee], len(breqs))
            big = fold >= opt.min_fold or fold <= 1.0 / opt.min_fold
            if z < opt.min_z or not big or (best is not None and z <= best.score):
                continue
            ev = [f"operation:{svc}:{op}", f"edge:{svc}->{callee}"]
            mean_b = cb[callee] / len(breqs)
            odd = [r for r in wreqs if (r.calls[callee] > mean_b) == (direction == "up")]
            best_traces = {r.trace_id for r in odd}
            for r in odd:
                add_evidence(ev, r.span_ref, opt.max_evidence)
            best = Signal(
                service=svc,
                pod=_mode_pod(wreqs),
                modality=Modality.TRACES,
                kind=SignalKind.SPAN_STRUCTURE,
                key=f"{op}->{callee}",
                family="structure",
                direction=direction,
                score=z,
                baseline=cb[callee] / len(breqs),
                observed=cw[callee] / len(wreqs),
                fold=fold,
                description=f"{svc} {op} calls {callee} {cb[callee] / len(breqs):.2f} -> "
                f"{cw[callee] / len(wreqs):.2f} times per request",
                evidence_ids=ev,
            )
    traces.update(best_traces)
    return [best] if best is not None else []


def _edge_signals(win: TraceIndex, base: TraceIndex, opt: SignalOptions) -> list[Signal]:
    """Slower client-to-server gaps on a call edge. The gap belongs to either end (a slow network,
    a starved caller, a callee that queues before its span starts), so both ends get the signal."""
    out: list[Signal] = []
    for edge in sorted(set(win.edge_gaps) & set(base.edge_gaps)):
        bg, wg = base.edge_gaps[edge], win.edge_gaps[edge]
        if len(bg) < opt.min_samples or len(wg) < opt.min_samples:
            continue
        bv = np.array([g for g, _ in bg])
        wv = np.array([g for g, _ in wg])
        z = mann_whitney_z(bv, wv)
        b_med, w_med = float(np.median(bv)), float(np.median(wv))
        grew = w_med >= opt.min_latency_ratio * b_med and w_med - b_med >= opt.min_latency_delta_us
        if z < opt.min_z or not grew:
            continue
        caller, callee = edge
        ev = [f"edge:{caller}->{callee}"]
        slow = sorted(wg, key=lambda x: -x[0])
        for _, ref in slow:
            add_evidence(ev, ref, opt.max_evidence)
        # no trace ids recorded: the edge is shared by both ends, so it says nothing about who blames whom
        for end in (caller, callee):
            out.append(
                Signal(
                    service=end,
                    modality=Modality.TRACES,
                    kind=SignalKind.EDGE_LATENCY,
                    key=f"{caller}->{callee}",
                    family="network",
                    direction="up",
                    score=z,
                    baseline=b_med / 1000.0,
                    observed=w_med / 1000.0,
                    fold=w_med / max(b_med, 1.0),
                    description=f"calls {caller} -> {callee}: time outside the callee "
                    f"{b_med / 1000:.1f} -> {w_med / 1000:.1f} ms (median)",
                    evidence_ids=ev,
                )
            )
    return out
