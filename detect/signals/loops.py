"""Loop signals: a loop cut short, judged by counts within a request (B per A, whatever the order),
so that loops whose steps run in parallel and interleave are seen too (see `loop_signals`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from core.rca import Modality, Signal, SignalKind
from detect.signals.common import SignalOptions, factorize
from detect.signals.slices import slice_test
from detect.signals.stats import family_z, share_fold
from detect.signals.tokens import ERR_MARK, START, SequenceKinds, is_error_token, np_column, shorten


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
    ev_slice = np_column(events, "slice")
    ev_service, service_names = factorize(events.column("service"))
    # each request: its entry token (START:<op>), service and slice
    entry = np.full(n_req, -1, dtype=np.int64)
    st_rows = np.nonzero(is_start[tok])[0]
    entry[req[st_rows]] = tok[st_rows]
    r_slice = np.zeros(n_req, dtype=np.int64)
    r_slice[req] = ev_slice
    r_service = np.zeros(n_req, dtype=np.int64)
    r_service[req] = ev_service
    body = ~is_start[tok] & ~is_err[tok] & (entry[req] >= 0)
    if not body.any():
        return [], []
    key = req[body] * n_tok + tok[body]
    uniq, cnt = np.unique(key, return_counts=True)
    c_req, c_tok = uniq // n_tok, uniq % n_tok
    # requests grouped by (service, entry)
    grp_uniq, grp = _groups(r_service, service_names, entry)
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


def _groups(service: np.ndarray, names: list[str], entry: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Requests grouped by service (a code into `names`) and entry token: the '<service>\x1f<entry code>' name of
    each group, in text order, and each request's group."""
    m = int(entry.max()) + 2 if len(entry) else 1
    pairs, inv = np.unique(service * m + (entry + 1), return_inverse=True)
    texts = [f"{names[p // m]}\x1f{p % m - 1}" for p in pairs.tolist()]
    order = sorted(range(len(texts)), key=texts.__getitem__)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return [texts[i] for i in order], rank[inv.reshape(-1)]


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
            at = events.select(["ref", "trace", "ts", "pod"]).take(pa.array(rows, pa.int64()))
            refs, traces, ts, pods = (np_column(at, c) for c in ("ref", "trace", "ts", "pod"))
            ids: list[str] = []
            for r in refs[np.argsort(ts)]:
                if r and r not in ids:
                    ids.append(r)
                if len(ids) >= opt.max_evidence:
                    break
            last: dict[str, int] = {}
            for tr_id, when in zip(traces.tolist(), ts.tolist(), strict=True):
                if tr_id and when > last.get(tr_id, -(1 << 62)):
                    last[tr_id] = when  # the loop's last A: where it ended
            blamed.append(last)
            pod_list = [p for p in pods if p]
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
                        f"{service} {shorten(t.entry)}: {kinds.noun} {shorten(t.b)!r} follows each {shorten(t.a)!r} "
                        f"in {t.k} of {t.n} requests (history {t.p0:.0%}): a loop ends early"
                    )[:400],
                    evidence_ids=ids,
                )
            )
    return out, blamed
