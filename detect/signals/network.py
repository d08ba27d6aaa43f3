"""Network signals: each call between services seen from both ends, and the blame put on one of them.

A traced call leaves two spans: the caller's client span (its view: how long the call took, whether it
failed) and below it the callee's server span, the entry of the request the callee served, whose own time
(`SpanFold.own_time`: its spans' self times, calls it made excluded) is what the callee's code spent. When the
caller's view got slower or failed and the callee's own view did not, the difference happened between them:
on the network, or in the callee's network stack (connections, queueing before its handler ran).

Per edge (caller -> callee), against the edge's history slices:

- EDGE_LATENCY: the share of calls whose time outside the callee (the client span's self time: its duration
  minus the callee's server span) is slower than history allows (`slow_shares`). It counts as a network
  change only when the median of that gap grew more than the median of the callee's own time did; otherwise
  the callee's own code explains it (a CPU-starved callee: SPAN_SELF_LATENCY on it, no network signal).
- EDGE_ERROR: the share of calls that failed at the caller (error status, HTTP 5xx) while the callee's
  request shows no error span.

Who is blamed (the convention: a network fault is placed on the side whose traffic is delayed, where the
faults are injected and named). For a changed edge a -> b, `callers_share(b)` is the share of b's tested
callers whose calls to b changed, `callees_share(a)` the share of a's tested callees whose calls from a
changed, each as (changed + 1) / (tested + 2) (the rule of succession: two of two says more than one of one):

- the callee b when callers_share(b) >= callees_share(a): many callers of one callee all see it (or b has
  only this caller, and a sees nothing else change): b's network or network stack;
- the caller a otherwise: one caller sees it on its calls to many callees while the others calling those
  callees do not, or those callees have no other caller: a's own network (its requests leave late).

Ties go to the callee: one caller with one callee cannot be told apart, and the callee is where a network
fault is named. A service whose network is delayed shows both ways (its callers wait on its answers, it
waits on its callees) and both rules then point at it. Each edge is its own group: the service blamed for
more edges gathers more evidence. No trace ids go with these signals (the ranking's blame walk couples a
service's anomalous requests with its callees'): time lost outside a service's own spans is not explained
by the services it calls, so blame must not walk on from it.

Partial traces: only calls whose client span has the callee's server span as its child are compared. A
client span with no server child (callee not traced) has no server view: no network signal, the caller's
end-to-end latency (SPAN_LATENCY) still shows it. A server span whose parent is not a client span (the
caller's client span not recorded) has no client view: the callee's own signals show what changed there.
The signal's description says which views it compared.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from core.rca import Modality, Signal, SignalKind
from detect.signals.common import SignalOptions
from detect.signals.slices import EXCLUDED_SLICE, slice_test
from detect.signals.slow import Slow, slow_shares
from detect.signals.spans import SpanFold
from detect.signals.stats import family_z, share_fold


@dataclass(frozen=True)
class EdgeChange:
    """One edge whose caller's view changed while the callee's own view did not."""

    caller: str
    callee: str
    kind: SignalKind
    test: Slow
    z: float
    calls: np.ndarray
    """Indices (into `call_rows`) of the window calls behind it: slow or failed."""
    own_ms: tuple[float, float] = (0.0, 0.0)
    """The callee's own time on this edge, history and window median (ms)."""


def call_rows(fold: SpanFold) -> tuple[np.ndarray, np.ndarray]:
    """(client span rows, server span rows) of the calls seen from both ends: a callee's entry span whose
    parent is a client span of another service."""
    parent = fold.parent
    remote = fold.is_root & (parent >= 0)
    callers = parent[remote]
    keep = fold.client[callers]
    return callers[keep], np.nonzero(remote)[0][keep]


def network_signals(
    fold: SpanFold, slices: np.ndarray, opt: SignalOptions
) -> tuple[list[Signal], list[dict[str, int]]]:
    """EDGE_LATENCY and EDGE_ERROR signals on the end each changed edge is blamed on (module doc), and the
    trace ids behind each (none: see the module doc)."""
    if fold.empty:
        return [], []
    ca, cb = call_rows(fold)
    if len(ca) == 0:
        return [], []
    services = fold.column("service")
    a, b = services[ca], services[cb]
    sl = slices[ca]
    names = fold.spans.column("service")
    a_text, b_text = names.take(pa.array(ca, pa.int64())), names.take(pa.array(cb, pa.int64()))
    gap_tests = slow_shares(a_text, b_text, fold.self_us[ca], sl, opt)
    own = fold.own_time()[cb]
    own_tests = {(o, t.key): t for o, ts in slow_shares(a_text, b_text, own, sl, opt).items() for t in ts}
    failed = fold.error[ca] & ~fold.request_error()[cb]
    err_tests = _failed_shares(a, b, failed, sl, opt)
    n_tests = sum(len(v) for v in gap_tests.values()) + sum(len(v) for v in err_tests.values())
    tested: set[tuple[str, str]] = {(o, t.key) for o, ts in gap_tests.items() for t in ts}
    tested |= {(o, t.key) for o, ts in err_tests.items() for t in ts}
    changes: list[EdgeChange] = []
    for caller, ts in gap_tests.items():
        for t in ts:
            za = family_z(t.z, n_tests)
            if za < opt.min_z or t.window_median < t.median:
                continue
            o = own_tests.get((caller, t.key))
            own_ms = (o.median / 1000.0, o.window_median / 1000.0) if o else (0.0, 0.0)
            if o is not None and o.window_median - o.median >= t.window_median - t.median:
                continue  # the callee's own time grew as much: its code explains the slower calls
            changes.append(EdgeChange(caller, t.key, SignalKind.EDGE_LATENCY, t, za, t.rows, own_ms))
    for caller, ts in err_tests.items():
        for t in ts:
            za = family_z(t.z, n_tests)
            if za >= opt.min_z:
                changes.append(EdgeChange(caller, t.key, SignalKind.EDGE_ERROR, t, za, t.rows))
    return _blame(fold, (ca, cb), changes, tested, opt)


def _blame(
    fold: SpanFold,
    calls: tuple[np.ndarray, np.ndarray],
    changes: list[EdgeChange],
    tested: set[tuple[str, str]],
    opt: SignalOptions,
) -> tuple[list[Signal], list[dict[str, int]]]:
    """Each change as a signal on the end it is blamed on (module doc)."""
    changed = {(c.caller, c.callee) for c in changes}
    callers_of: dict[str, set[str]] = defaultdict(set)
    callees_of: dict[str, set[str]] = defaultdict(set)
    for x, y in tested | changed:
        callers_of[y].add(x)
        callees_of[x].add(y)

    def share(edges_of: dict[str, set[str]], svc: str, hit: bool) -> tuple[int, int]:
        mine = edges_of[svc]
        return sum(1 for o in mine if ((o, svc) if hit else (svc, o)) in changed), len(mine)

    trace = fold.column("trace_id")
    span = fold.column("span_id")
    pods = fold.column("pod")
    out: list[Signal] = []
    behind: list[dict[str, int]] = []
    for c in changes:
        k_in, n_in = share(callers_of, c.callee, True)
        k_out, n_out = share(callees_of, c.caller, False)
        to_callee = (k_in + 1) * (n_out + 2) >= (k_out + 1) * (n_in + 2)
        end = c.callee if to_callee else c.caller
        why = (
            f"{k_in} of {n_in} callers of {c.callee} see it"
            if to_callee
            else f"{c.caller} sees it on {k_out} of {n_out} callees"
        )
        t = c.test
        client_rows = calls[0][c.calls]
        end_rows = client_rows if not to_callee else calls[1][c.calls]
        rows = client_rows[: opt.max_evidence - 1]
        ids = [f"edge:{c.caller}->{c.callee}"] + [f"span:{trace[r]}:{span[r]}" for r in rows]
        if c.kind == SignalKind.EDGE_LATENCY:
            what = (
                f"{t.k} of {t.n} slower outside {c.callee}'s own time than {1 - t.p0:.0%} of history (client view "
                f"minus server span, median {t.median / 1000:.1f} -> {t.window_median / 1000:.1f} ms; {c.callee}'s own "
                f"time {c.own_ms[0]:.1f} -> {c.own_ms[1]:.1f} ms)"
            )
            base, seen = round(t.median / 1000.0, 4), round(t.window_median / 1000.0, 4)
        else:
            what = f"{t.k} of {t.n} failed at the caller while {c.callee}'s request shows no error (history {t.p0:.0%})"
            base, seen = round(t.p0, 6), round(t.k / max(t.n, 1), 6)
        end_pods = [p for p in pods[end_rows] if p]
        out.append(
            Signal(
                service=end,
                pod=max(set(end_pods), key=end_pods.count) if end_pods else "",
                modality=Modality.TRACES,
                kind=c.kind,
                key=f"{c.caller}->{c.callee}",
                family="network",
                direction="up",
                score=c.z,
                baseline=base,
                observed=seen,
                fold=share_fold(t.k, t.n, t.p0),
                effect=round(min(1.0, max(0.0, t.k / t.n - t.p0)), 6),
                group=f"edge:{end}:{c.caller}->{c.callee}",
                description=f"calls {c.caller} -> {c.callee}: {what}; blamed on {end}: {why}",
                evidence_ids=ids,
            )
        )
        behind.append({})
    return out, behind


def _failed_shares(
    owners: np.ndarray, keys: np.ndarray, failed: np.ndarray, slices: np.ndarray, opt: SignalOptions
) -> dict[str, list[Slow]]:
    """Per caller, for each callee: the share of window calls that failed against the history slices' shares."""
    win = slices == 0
    hist = ~win & (slices != EXCLUDED_SLICE)
    out: dict[str, list[Slow]] = defaultdict(list)
    pairs = {(str(x), str(y)) for x, y in zip(owners[win & failed], keys[win & failed], strict=True)}
    for owner, key in sorted(pairs):
        mine = (owners == owner) & (keys == key)
        wsel = mine & win
        n_win = int(wsel.sum())
        if n_win < opt.min_samples or int((mine & hist).sum()) < opt.min_samples * 3:
            continue
        sl_ids, sl_inv = np.unique(slices[mine & hist], return_inverse=True)
        n_h = np.bincount(sl_inv, minlength=len(sl_ids))
        k_h = np.bincount(sl_inv, weights=failed[mine & hist].astype(float), minlength=len(sl_ids))
        ok = n_h >= opt.min_slice_requests
        if not ok.any():
            continue
        k_win = int((failed & wsel).sum())
        t = slice_test(k_win, n_win, k_h[ok], n_h[ok].astype(float))
        out[owner].append(Slow(t.z, key, k_win, n_win, t.p0, 0.0, 0.0, np.nonzero(failed & wsel)[0]))
    return out
