"""Transition signals: for every token A of a service, the share of its requests that go on to each
next token B (A -> B), window against the history slices (see `detect.signals.sequences`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.rca import Modality, Signal
from detect.signals.common import SignalOptions
from detect.signals.slices import outcome_tests
from detect.signals.stats import family_z, share_fold
from detect.signals.tokens import END, ERR_MARK, SequenceKinds, is_error_token, np_column, shorten


@dataclass
class _Test:
    service: str
    a: str
    b: str
    k: int
    n: int
    z: float
    p0: float


def transitions(events: pa.Table) -> pa.Table:
    """(service, a, b, slice, ...) for every event and its successor in the same request."""
    if events.num_rows == 0:
        return pa.table({"service": [], "a": [], "b": [], "slice": [], "i": [], "j": []})
    req_codes = events.column("req").dictionary_encode().combine_chunks().indices.to_numpy()
    ts = np_column(events, "ts")
    order = np.lexsort((ts, req_codes))
    same_next = np.zeros(len(order), dtype=bool)
    same_next[:-1] = req_codes[order[1:]] == req_codes[order[:-1]]
    tokens = events.column("token").take(pa.array(order)).combine_chunks()
    nxt_idx = np.where(same_next, np.roll(order, -1), -1)
    nxt_tok = pc.if_else(pa.array(same_next), tokens.take(pa.array(np.roll(np.arange(len(order)), -1))), END)
    return pa.table(
        {
            "service": events.column("service").take(pa.array(order)),
            "a": tokens,
            "b": nxt_tok,
            "slice": events.column("slice").take(pa.array(order)),
            "i": pa.array(order, pa.int64()),
            "j": pa.array(nxt_idx, pa.int64()),
        }
    )


def transition_signals(
    events: pa.Table, kinds: SequenceKinds, opt: SignalOptions
) -> tuple[list[Signal], list[dict[str, int]]]:
    """Signals from the transitions of `events` (EVENT_SCHEMA; slice 0 is the window, others history),
    and for each signal the window traces behind it, with the time the change showed in each."""
    tr = transitions(events)
    if tr.num_rows == 0:
        return [], []
    pairs = tr.group_by(["service", "a", "b", "slice"]).aggregate([("i", "count")])
    counts: dict[tuple[str, str], dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for s, a, b, sl, c in zip(
        pairs.column("service").to_pylist(),
        pairs.column("a").to_pylist(),
        pairs.column("b").to_pylist(),
        pairs.column("slice").to_pylist(),
        pairs.column("i_count").to_pylist(),
        strict=True,
    ):
        counts[(s, a)][b][sl] = c
    tests: dict[str, list[_Test]] = defaultdict(list)
    for (service, a), succ in counts.items():
        for b, k_win, n_win, t in outcome_tests(succ, opt):
            tests[service].append(_Test(service, a, b, k_win, n_win, t.z, t.p0))
    return _signals(events, tr, tests, kinds, opt)


def _signals(
    events: pa.Table,
    tr: pa.Table,
    tests: dict[str, list[_Test]],
    kinds: SequenceKinds,
    opt: SignalOptions,
) -> tuple[list[Signal], list[dict[str, int]]]:
    wt = tr.filter(pc.equal(tr.column("slice"), 0))
    w_service = np_column(wt, "service")
    w_a = np_column(wt, "a")
    w_b = np_column(wt, "b")
    w_i = np_column(wt, "i")
    w_j = np_column(wt, "j")
    a_ev = events.select(["ref", "trace", "pod"]).take(pa.array(w_i, pa.int64()))
    b_ev = events.select(["dep", "ref", "ts"]).take(pa.array(np.where(w_j >= 0, w_j, w_i), pa.int64()))
    b_dep = np.where(w_j >= 0, np_column(b_ev, "dep"), "")
    refs_a, refs_b = np_column(a_ev, "ref"), np_column(b_ev, "ref")
    trace_a = np_column(a_ev, "trace")
    ts_b = np_column(b_ev, "ts")
    pods_a = np_column(a_ev, "pod")
    out: list[Signal] = []
    blamed: list[dict[str, int]] = []
    for service, ts in tests.items():
        m = len(ts)
        found: list[tuple[float, _Test]] = []
        for t in ts:
            za = family_z(abs(t.z), m)
            if za >= opt.min_z:
                found.append((za, t))
        if not found:
            continue
        found.sort(key=lambda x: -x[0])
        mine = w_service == service
        # a change at A whose strongest new successor is an error naming another service is about that service
        dep_of: dict[str, str] = {}
        for _, t in found:
            if t.z > 0 and t.a not in dep_of and is_error_token(t.b):
                names = [d for d in b_dep[mine & (w_a == t.a) & (w_b == t.b)] if d]
                if names:
                    dep_of[t.a] = max(set(names), key=names.count)
        for za, t in found[: opt.max_signals_per_service]:
            sel = mine & (w_a == t.a)
            if t.z > 0:
                rows = np.nonzero(sel & (w_b == t.b))[0]
                shown = np.where(w_j[rows] >= 0, refs_b[rows], refs_a[rows])
            else:
                rows = np.nonzero(sel & (w_b != t.b))[0]
                shown = refs_a[rows]
            ids: list[str] = []
            for r in shown:
                if r and r not in ids:
                    ids.append(r)
                if len(ids) >= opt.max_evidence:
                    break
            when = ts_b[rows]  # when the path took its new turn (the step taken instead)
            first: dict[str, int] = {}
            for tr_id, ts_ in zip(trace_a[rows].tolist(), when.tolist(), strict=True):
                if tr_id and (tr_id not in first or ts_ < first[tr_id]):
                    first[tr_id] = ts_
            blamed.append(first)
            pod_list = [p for p in pods_a[rows] if p]
            is_err = t.z > 0 and is_error_token(t.b)
            pw = t.k / t.n if t.n else 0.0
            dep, via = dep_of.get(t.a, ""), "error" if t.a in dep_of else ""
            if not dep and kinds.call_prefix and t.a.startswith(kinds.call_prefix):
                dep, via = t.a[len(kinds.call_prefix) :].split(ERR_MARK)[0].strip(), "call"
            verb = "now" if t.z > 0 else "no longer"
            out.append(
                Signal(
                    service=service,
                    pod=max(set(pod_list), key=pod_list.count) if pod_list else "",
                    modality=kinds.modality,
                    kind=kinds.error if is_err else kinds.shift,
                    key=f"{t.a} -> {t.b}",
                    family="error" if is_err else "structure" if kinds.modality == Modality.TRACES else "template",
                    direction="up" if t.z > 0 else "down",
                    score=za,
                    baseline=round(t.p0, 6),
                    observed=round(pw, 6),
                    fold=share_fold(t.k, t.n, t.p0),
                    effect=round(min(1.0, abs(pw - t.p0)), 6),
                    group=f"{kinds.modality.value}:{service}:{t.a}",
                    dependency=dep,
                    dependency_via=via,
                    description=_describe(service, t, kinds, verb),
                    evidence_ids=ids,
                )
            )
    return out, blamed


def _describe(service: str, t: _Test, kinds: SequenceKinds, verb: str) -> str:
    a = shorten(t.a)
    b = shorten(t.b)
    return (
        f"{service}: after {a!r}, {kinds.noun} {b!r} {verb} follows in {t.k} of {t.n} requests (history {t.p0:.0%})"
    )[:400]
