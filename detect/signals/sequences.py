"""Path signals: what a service does next, per request, compared with its history.

A request is one visit of a trace to a service (its entry span and the spans below it in the same
service). Its *events* are tokens in time order: ``START:<operation>``, then log statements or
internal operations and calls, then ``END``. For every token A of a service we count what follows
it (A -> B), in the incident window and in each history slice, and test each share P(B | A) with
`slice_test`. Conditioning on A is what makes this robust to traffic: a busier hour sends more
requests down every path, but the share that turns from A to B stays put unless the code now
behaves differently. A return value that is suddenly wrong (a new error after A), an exception
that cuts a loop short (A no longer followed by A), a statement that no longer runs: each moves
one share at the point where the service's behaviour changed.

A loop whose steps run in parallel interleaves its tokens, so a loop cut short is also judged by
counts within the request (`loop_signals`: B per A, whatever the order).

Tokens that are errors naming another service (``... no instances available for svc-b``) make the
whole change at A evidence about that dependency: the signals carry `dependency`, and the ranking
decides how much of it to pass on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.rca import Modality, Signal, SignalKind
from detect.signals.common import SignalOptions, family_z, outcome_tests, share_fold, slice_test

START = "START"
END = "END"
ERR_MARK = " !ERR"

EVENT_SCHEMA = pa.schema(
    [
        ("service", pa.string()),
        ("pod", pa.string()),
        ("req", pa.string()),
        ("trace", pa.string()),
        ("ts", pa.int64()),
        ("token", pa.string()),
        ("err", pa.bool_()),
        ("dep", pa.string()),
        ("ref", pa.string()),
        ("slice", pa.int64()),
    ]
)


@dataclass(frozen=True)
class SequenceKinds:
    modality: Modality
    shift: SignalKind
    error: SignalKind
    noun: str
    """What a token is, for descriptions: 'log statement' or 'step'."""
    call_prefix: str = ""
    """Tokens that are calls to another service start with this; a change right after one is
    about that service's response."""


LOG_KINDS = SequenceKinds(Modality.LOGS, SignalKind.LOG_TEMPLATE_SHIFT, SignalKind.LOG_ERROR_TEMPLATE, "log")
SPAN_KINDS = SequenceKinds(Modality.TRACES, SignalKind.SPAN_STRUCTURE, SignalKind.SPAN_ERROR, "step", "-> ")


@dataclass
class _Test:
    service: str
    a: str
    b: str
    k: int
    n: int
    z: float
    p0: float


def _np(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def transitions(events: pa.Table) -> pa.Table:
    """(service, a, b, slice, ...) for every event and its successor in the same request."""
    if events.num_rows == 0:
        return pa.table({"service": [], "a": [], "b": [], "slice": [], "i": [], "j": []})
    req_codes = events.column("req").dictionary_encode().combine_chunks().indices.to_numpy()
    ts = _np(events, "ts")
    order = np.lexsort((ts, req_codes))
    same_next = np.zeros(len(order), dtype=bool)
    same_next[:-1] = req_codes[order[1:]] == req_codes[order[:-1]]
    tokens = events.column("token").take(pa.array(order))
    nxt_idx = np.where(same_next, np.roll(order, -1), -1)
    nxt_tok = np.where(same_next, np.roll(tokens.to_numpy(zero_copy_only=False), -1), END)
    return pa.table(
        {
            "service": events.column("service").take(pa.array(order)),
            "a": tokens,
            "b": pa.array(nxt_tok, pa.string()),
            "slice": events.column("slice").take(pa.array(order)),
            "i": pa.array(order, pa.int64()),
            "j": pa.array(nxt_idx, pa.int64()),
        }
    )


def sequence_signals(
    events: pa.Table, kinds: SequenceKinds, opt: SignalOptions
) -> tuple[list[Signal], list[dict[str, int]]]:
    """Signals from `events` (EVENT_SCHEMA; slice 0 is the window, others history), and for each
    signal the window traces behind it, with the time the change showed in each."""
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
    found, behind = _signals(events, tr, tests, kinds, opt)
    loops, loop_behind = loop_signals(events, kinds, opt)
    return found + loops, behind + loop_behind


def is_error_token(token: str) -> bool:
    return ERR_MARK in token


def _signals(
    events: pa.Table,
    tr: pa.Table,
    tests: dict[str, list[_Test]],
    kinds: SequenceKinds,
    opt: SignalOptions,
) -> tuple[list[Signal], list[dict[str, int]]]:
    wt = tr.filter(pc.equal(tr.column("slice"), 0))
    w_service = _np(wt, "service")
    w_a = _np(wt, "a")
    w_b = _np(wt, "b")
    w_i = _np(wt, "i")
    w_j = _np(wt, "j")
    a_ev = events.take(pa.array(w_i, pa.int64()))
    b_ev = events.take(pa.array(np.where(w_j >= 0, w_j, w_i), pa.int64()))
    b_dep = np.where(w_j >= 0, _np(b_ev, "dep"), "")
    refs_a, refs_b = _np(a_ev, "ref"), _np(b_ev, "ref")
    trace_a = _np(a_ev, "trace")
    ts_b = _np(b_ev, "ts")
    pods_a = _np(a_ev, "pod")
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
    a = _short(t.a)
    b = _short(t.b)
    return (
        f"{service}: after {a!r}, {kinds.noun} {b!r} {verb} follows in {t.k} of {t.n} requests (history {t.p0:.0%})"
    )[:400]


def _short(token: str) -> str:
    return token if len(token) <= 90 else token[:87] + "..."


# ---- loops: B per A within a request ------------------------------------------------------------


@dataclass
class _LoopTest:
    service: str
    entry: str
    a: str
    b: str
    k: int
    n: int
    z: float
    p0: float
    short: np.ndarray
    """Window request codes whose loop ended early (fewer B than A)."""


def loop_signals(
    events: pa.Table, kinds: SequenceKinds, opt: SignalOptions
) -> tuple[list[Signal], list[dict[str, int]]]:
    """Loops cut short: per request, how many times each step of a loop is written or made.

    A *loop step* of a service's requests with one entry operation is a token that some history
    request repeats. For two loop steps A and B, a request is *complete* when B occurs at least as
    often as A (B per A, counted within the request, whatever the order: a loop run in parallel
    threads interleaves its lines, so transitions blur it while counts do not). The share of complete
    requests among those with A is tested against the history slices (`slice_test`; requests are
    the units, so a loop's repetitions within one request are not counted as independent). A drop
    means the loop now ends before B for some requests (an exception inside the loop body): a
    signal about the service itself, `LOOP_SHORTENED`. Tests are adjusted per service for the
    number of (entry, A, B) triples tested.
    """
    if events.num_rows == 0:
        return [], []
    req_enc = events.column("req").dictionary_encode().combine_chunks()
    req = req_enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    tok_enc = events.column("token").dictionary_encode().combine_chunks()
    tok = tok_enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    tok_names = np.asarray(tok_enc.dictionary.to_pylist(), dtype=object)
    n_req, n_tok = len(req_enc.dictionary), len(tok_names)
    is_start = np.array([str(t).startswith(START) for t in tok_names], dtype=bool)
    is_err = np.array([is_error_token(str(t)) for t in tok_names], dtype=bool)
    ev_slice = _np(events, "slice")
    ev_service = _np(events, "service")
    # each request: its entry token (START:<op>), service and slice
    entry = np.full(n_req, -1, dtype=np.int64)
    st_rows = np.nonzero(is_start[tok])[0]
    entry[req[st_rows]] = tok[st_rows]
    r_slice = np.zeros(n_req, dtype=np.int64)
    r_slice[req] = ev_slice
    r_service = np.empty(n_req, dtype=object)
    r_service[req] = ev_service
    body = ~is_start[tok] & ~is_err[tok] & (entry[req] >= 0)
    if not body.any():
        return [], []
    key = req[body] * n_tok + tok[body]
    uniq, cnt = np.unique(key, return_counts=True)
    c_req, c_tok = uniq // n_tok, uniq % n_tok
    # requests grouped by (service, entry)
    grp_names = np.char.add(np.char.add(r_service.astype(str), "\x1f"), entry.astype(str))
    grp_uniq, grp = np.unique(grp_names, return_inverse=True)
    has_entry = entry >= 0
    tests: dict[str, list[_LoopTest]] = defaultdict(list)
    c_grp = grp[c_req]
    order = np.argsort(c_grp, kind="stable")
    bounds = np.searchsorted(c_grp[order], np.arange(len(grp_uniq) + 1))
    for g in range(len(grp_uniq)):
        rows = order[bounds[g] : bounds[g + 1]]
        if len(rows) == 0:
            continue
        reqs_g = np.nonzero((grp == g) & has_entry)[0]
        sl = r_slice[reqs_g]
        win = sl == 0
        if win.sum() < opt.min_samples:
            continue
        hist_req = ~win
        toks_g, t_idx = np.unique(c_tok[rows], return_inverse=True)
        r_pos = np.searchsorted(reqs_g, c_req[rows])
        mat = np.zeros((len(reqs_g), len(toks_g)), dtype=np.int64)
        mat[r_pos, t_idx] = cnt[rows]
        loop = (mat[hist_req].max(axis=0) >= 2) if hist_req.any() else np.zeros(len(toks_g), bool)
        cols = np.nonzero(loop)[0]
        if len(cols) < 2:
            continue
        sl_ids, sl_inv = np.unique(sl, return_inverse=True)
        w_pos = int(np.searchsorted(sl_ids, 0))
        service = str(grp_uniq[g]).split("\x1f", 1)[0]
        entry_name = str(tok_names[int(str(grp_uniq[g]).split("\x1f", 1)[1])])
        for ai in cols:
            has_a = mat[:, ai] >= 1
            n_sl = np.bincount(sl_inv[has_a], minlength=len(sl_ids))
            n_win = int(n_sl[w_pos]) if w_pos < len(sl_ids) and sl_ids[w_pos] == 0 else 0
            hist_ok = (sl_ids != 0) & (n_sl >= opt.min_slice_requests)
            if n_win < opt.min_samples or not hist_ok.any():
                continue
            for bi in cols:
                if bi == ai:
                    continue
                done = has_a & (mat[:, bi] >= mat[:, ai])
                k_sl = np.bincount(sl_inv[done], minlength=len(sl_ids))
                t = slice_test(int(k_sl[w_pos]), n_win, k_sl[hist_ok].astype(float), n_sl[hist_ok].astype(float))
                short = reqs_g[win & has_a & ~done]
                tests[service].append(
                    _LoopTest(
                        service,
                        entry_name,
                        str(tok_names[toks_g[ai]]),
                        str(tok_names[toks_g[bi]]),
                        int(k_sl[w_pos]),
                        n_win,
                        t.z,
                        t.p0,
                        short,
                    )
                )
    return _loop_out(events, req, tok_names, tok, tests, kinds, opt)


def _loop_out(
    events: pa.Table,
    req: np.ndarray,
    tok_names: np.ndarray,
    tok: np.ndarray,
    tests: dict[str, list[_LoopTest]],
    kinds: SequenceKinds,
    opt: SignalOptions,
) -> tuple[list[Signal], list[dict[str, int]]]:
    out: list[Signal] = []
    blamed: list[dict[str, int]] = []
    if not tests:
        return out, blamed
    refs = _np(events, "ref")
    traces = _np(events, "trace")
    ts = _np(events, "ts")
    pods = _np(events, "pod")
    tok_str = tok_names[tok]
    for service, ts_ in tests.items():
        found = [(family_z(-t.z, len(ts_)), t) for t in ts_ if t.z < 0]
        found = [(za, t) for za, t in found if za >= opt.min_z]
        if not found:
            continue
        found.sort(key=lambda x: -x[0])
        seen: set[tuple[str, str]] = set()
        for za, t in found:
            if (t.entry, t.b) in seen:  # one signal per step no longer reached: the A it fell behind most
                continue
            if len(seen) >= opt.max_signals_per_service:
                break
            seen.add((t.entry, t.b))
            rows = np.nonzero(np.isin(req, t.short) & (tok_str == t.a))[0]
            ids: list[str] = []
            for r in refs[rows[np.argsort(ts[rows])]]:
                if r and r not in ids:
                    ids.append(r)
                if len(ids) >= opt.max_evidence:
                    break
            last: dict[str, int] = {}
            for tr_id, when in zip(traces[rows].tolist(), ts[rows].tolist(), strict=True):
                if tr_id and when > last.get(tr_id, -(1 << 62)):
                    last[tr_id] = when  # the loop's last A: where it ended
            blamed.append(last)
            pod_list = [p for p in pods[rows] if p]
            dep, via = "", ""
            if kinds.call_prefix and t.a.startswith(kinds.call_prefix):
                dep, via = t.a[len(kinds.call_prefix) :].split(ERR_MARK)[0].strip(), "call"
            pw = t.k / t.n if t.n else 0.0
            out.append(
                Signal(
                    service=service,
                    pod=max(set(pod_list), key=pod_list.count) if pod_list else "",
                    modality=kinds.modality,
                    kind=SignalKind.LOOP_SHORTENED,
                    key=f"{t.entry} | {t.b} per {t.a}",
                    family="structure" if kinds.modality == Modality.TRACES else "template",
                    direction="down",
                    score=za,
                    baseline=round(t.p0, 6),
                    observed=round(pw, 6),
                    fold=share_fold(t.k, t.n, t.p0),
                    effect=round(min(1.0, abs(pw - t.p0)), 6),
                    group=f"{kinds.modality.value}:{service}:loop:{t.entry}",
                    dependency=dep,
                    dependency_via=via,
                    description=(
                        f"{service} {_short(t.entry)}: {kinds.noun} {_short(t.b)!r} follows each {_short(t.a)!r} "
                        f"in {t.k} of {t.n} requests (history {t.p0:.0%}): a loop ends early"
                    )[:400],
                    evidence_ids=ids,
                )
            )
    return out, blamed
