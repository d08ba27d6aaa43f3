"""Log signals: the statements a service's requests go through, compared with its history.

Each line is named by its *statement*: the first words of the line with numbers and ids masked (so
templates that differ only in data written later in the line are one statement), marked as an error
when its level or words say so, and, for errors that name another known service (one the writer
calls, when the spans tell), with that service.

When lines carry trace and span ids and spans are given, lines are grouped into the requests the
spans describe, and each request starts with ``START:<operation>``: the statements a request goes
through, and the ones it no longer reaches (a request that stops logging ends at START), are tested
as paths (`detect.signals.sequences`). Lines with a trace id but no spans are grouped per service and
trace. Lines without any request are judged by the share of the service's lines each statement
takes, against the same share in the history slices.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.rca import Modality, Signal, SignalKind
from core.telemetry import row_schema
from detect.signals.common import ERROR_LEVELS, ERROR_WORDS, SignalOptions, TableLike, as_table, factorize
from detect.signals.sequences import sequence_signals
from detect.signals.slices import EXCLUDED_SLICE, outcome_tests, slice_of, slice_test
from detect.signals.spans import SpanFold, lookup, span_key
from detect.signals.stats import family_z, share_fold
from detect.signals.tokens import ERR_MARK, EVENT_SCHEMA, LOG_KINDS, START

# The log columns the signals read, from the row contract; event ids as text ('' when a row has none).
LOG_SCHEMA = row_schema(
    "logs",
    ("event_id", "ts_ns", "service", "pod", "host", "level", "message", "trace_id", "span_id", "template_id"),
    as_text=("event_id",),
)
_MASK = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}|0x[0-9a-fA-F]+|\b\w*\d\w*\b|\d+")


def statement(message: str, words: int) -> str:
    """The first `words` words of a line, numbers and hex ids masked: 'GET /a/17 took 5 ms' -> 'GET /a/# took # ms'."""
    return " ".join(_MASK.sub("#", message[:600]).split()[:words])


def _tokens(
    t: pa.Table,
    services: list[str],
    callees: dict[str, set[str]] | None,
    opt: SignalOptions,
    peer_deps: list[str] | None = None,
) -> tuple[pa.Array, np.ndarray, pa.Array]:
    """Statement token, error flag and named dependency of every line. A dependency is a known service
    named in an error line; when the calls between services are known, only one the writer calls,
    else not one that took part in the same trace before the writer did (that would be its caller)."""
    n = t.num_rows
    messages = t.column("message").combine_chunks()
    levels = pc.utf8_upper(t.column("level"))
    err = pc.is_in(levels, value_set=pa.array(sorted(ERROR_LEVELS))).to_numpy(zero_copy_only=False)
    err = err | pc.match_substring_regex(messages, ERROR_WORDS.pattern).to_numpy(zero_copy_only=False)
    # one statement per template (named from its first line); a line without a template on its own
    tids = t.column("template_id").combine_chunks()
    key = pc.if_else(pc.equal(tids, ""), messages, tids).dictionary_encode()
    codes = key.indices.to_numpy(zero_copy_only=False)
    _, first = np.unique(codes, return_index=True)
    msg_list = messages.take(pa.array(first, pa.int64())).to_pylist()
    names = [""] * len(key.dictionary)
    for code, msg in zip(codes[first].tolist(), msg_list, strict=True):
        names[code] = statement(msg or "", opt.statement_words)
    tok = pa.array(names, pa.string()).take(key.indices) if n else pa.array([], pa.string())
    tok = pc.if_else(pa.array(err), pc.binary_join_element_wise(tok, ERR_MARK.strip(), " "), tok)
    dep = [""] * n
    others = sorted((s for s in services if s), key=len, reverse=True)
    if others and err.any():
        pat = re.compile(r"(?<![\w.-])(?:" + "|".join(re.escape(s) for s in others) + r")(?![\w-])")
        rows = np.nonzero(err)[0]
        idx = pa.array(rows, pa.int64())
        own = t.column("service").take(idx).to_pylist()
        traces = t.column("trace_id").take(idx).to_pylist()
        entered = _first_in_trace(t) if callees is None else {}
        for i, msg, me, tr in zip(rows.tolist(), messages.take(idx).to_pylist(), own, traces, strict=True):
            for m in pat.finditer((msg or "")[:2000]):
                name = m.group(0)
                if name == me:
                    continue
                if callees is not None:
                    ok = name in callees.get(me, ())
                else:
                    ok = not tr or entered.get((tr, name), 1 << 62) >= entered.get((tr, me), 0)
                if ok:
                    dep[i] = name
                    break
    if peer_deps is not None:  # the peer an error line names by address (detect.signals.peers)
        for i in np.nonzero(err)[0].tolist():
            dep[i] = dep[i] or peer_deps[i]
    deps = pa.array(dep, pa.string())
    named = pc.not_equal(deps, "")
    tok = pc.if_else(named, pc.binary_join_element_wise(tok, pc.binary_join_element_wise("@", deps, ""), " "), tok)
    return tok, err, deps


def _first_in_trace(t: pa.Table) -> dict[tuple[str, str], int]:
    """(trace_id, service) -> time of the service's first line in that trace."""
    g = t.filter(pc.not_equal(t.column("trace_id"), "")).group_by(["trace_id", "service"]).aggregate([("ts_ns", "min")])
    return {
        (a, b): c
        for a, b, c in zip(
            g.column("trace_id").to_pylist(),
            g.column("service").to_pylist(),
            g.column("ts_ns_min").to_pylist(),
            strict=True,
        )
    }


def log_signals(
    logs: TableLike,
    in_window: np.ndarray | None,
    window_start: int,
    width_ns: int,
    fold: SpanFold | None,
    span_slices: np.ndarray | None,
    services: list[str],
    opt: SignalOptions,
    peer_deps: list[str] | None = None,
) -> tuple[list[Signal], list[dict[str, int]]]:
    """Signals from log lines (window rows flagged by `in_window`; the rest is history) and for each
    the window trace ids of the requests behind it. `fold`/`span_slices` describe the spans of the
    same window and history, when there are any; `peer_deps` names, per row, the peer its line names."""
    t = as_table(logs, LOG_SCHEMA)
    n = t.num_rows
    if n == 0:
        return [], []
    win = np.ones(n, bool) if in_window is None else in_window
    ts = t.column("ts_ns").to_numpy(zero_copy_only=False)
    line_slice = np.where(win, np.int64(0), slice_of(ts, window_start, width_ns))
    line_slice = np.where(~win & (line_slice == 0), EXCLUDED_SLICE, line_slice)
    callees: dict[str, set[str]] | None = None
    if fold is not None and fold.edges:
        callees = {}
        for a, b in fold.edges:
            callees.setdefault(a, set()).add(b)
    tok, err, dep = _tokens(t, services, callees, opt, peer_deps)
    svc = t.column("service").combine_chunks()
    trace = t.column("trace_id").combine_chunks()
    pods = t.column("pod").combine_chunks()
    eids = t.column("event_id").combine_chunks()
    ref = pc.if_else(
        pc.equal(eids, ""),
        pc.binary_join_element_wise("log", pc.cast(t.column("ts_ns"), pa.string()).combine_chunks(), pods, ":"),
        pc.binary_join_element_wise("log", eids, ":"),
    )
    req = pa.array([""] * n, pa.string())
    starts: pa.Table | None = None
    if fold is not None and not fold.empty and span_slices is not None:
        span_row = _span_rows(t, fold)
        linked = span_row >= 0
        root = fold.root[np.where(linked, span_row, 0)]
        req = pc.if_else(pa.array(linked), fold.request_key().take(pa.array(root, pa.int64())), req)
        line_slice = np.where(linked, span_slices[root], line_slice)
        writers = pc.unique(svc)
        roots = np.nonzero(fold.is_root & pc.is_in(fold.spans.column("service"), value_set=writers).to_numpy())[0]
        starts = _start_events(fold, roots, span_slices)
    free = pc.equal(req, "").to_numpy(zero_copy_only=False)
    by_trace = free & pc.not_equal(trace, "").to_numpy(zero_copy_only=False)
    req = pc.if_else(pa.array(by_trace), pc.binary_join_element_wise(svc, trace, "/"), req)
    events = pa.table(
        {
            "service": svc,
            "pod": pods,
            "req": req,
            "trace": trace,
            "ts": pa.array(ts, pa.int64()),
            "token": tok,
            "err": pa.array(err, pa.bool_()),
            "dep": dep,
            "ref": ref,
            "slice": pa.array(line_slice, pa.int64()),
        }
    )
    parts = [events.filter(pa.array(~free | by_trace))]
    if by_trace.any():
        # requests known only by their trace: a generic START opens each (service, trace) group
        first = pa.array(_first_rows(req.to_numpy(zero_copy_only=False), ts, by_trace), pa.int64())
        head = events.take(first)
        head = head.set_column(
            head.schema.get_field_index("token"), "token", pa.array([START] * len(first), pa.string())
        )
        head = head.set_column(head.schema.get_field_index("ts"), "ts", pc.subtract(head.column("ts"), 1))
        head = head.set_column(head.schema.get_field_index("err"), "err", pa.array(np.zeros(len(first), bool)))
        head = head.set_column(head.schema.get_field_index("dep"), "dep", pa.array([""] * len(first), pa.string()))
        parts.append(head)
    if starts is not None:
        parts.append(starts)
    events_all = pa.concat_tables([p.cast(EVENT_SCHEMA) for p in parts])
    events_all = events_all.filter(pc.not_equal(events_all.column("slice"), EXCLUDED_SLICE))
    found, traces = sequence_signals(events_all, LOG_KINDS, opt)
    loose = ~(~free | by_trace) & (line_slice != EXCLUDED_SLICE)
    if loose.any():
        sel = pa.array(loose)
        shares = _share_signals(
            svc.filter(sel).to_numpy(zero_copy_only=False),
            tok.filter(sel).to_numpy(zero_copy_only=False),
            line_slice[loose],
            ref.filter(sel).to_numpy(zero_copy_only=False),
            pods.filter(sel).to_numpy(zero_copy_only=False),
            err[loose],
            opt,
        )
        found.extend(shares)
        traces.extend({} for _ in shares)
    quiet = _quiet_signals(svc, line_slice, opt)
    found.extend(quiet)
    traces.extend({} for _ in quiet)
    _cite_templates(found, ref, t.column("template_id"), opt)
    return found, traces


def _start_events(fold: SpanFold, roots: np.ndarray, span_slices: np.ndarray) -> pa.Table:
    """``START:<operation>`` opening each request of the given entry-span rows."""
    idx = pa.array(roots, pa.int64())
    f = fold.spans
    return pa.table(
        {
            "service": f.column("service").take(idx),
            "pod": f.column("pod").take(idx),
            "req": fold.request_key().take(idx),
            "trace": f.column("trace_id").take(idx),
            "ts": pa.array(fold.column("start_ns")[roots] - 1, pa.int64()),
            "token": pc.binary_join_element_wise(START, f.column("operation").take(idx), ":"),
            "err": pa.array(np.zeros(len(roots), bool)),
            "dep": pa.array([""] * len(roots), pa.string()),
            "ref": pc.binary_join_element_wise(
                "span", f.column("trace_id").take(idx), f.column("span_id").take(idx), ":"
            ),
            "slice": pa.array(span_slices[roots], pa.int64()),
        }
    )


def _first_rows(req: np.ndarray, ts: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row of the earliest line of each request among the masked rows."""
    rows = np.nonzero(mask)[0]
    codes = pa.array(req[rows], pa.string()).dictionary_encode().indices.to_numpy()
    order = np.lexsort((ts[rows], codes))
    first = np.ones(len(order), dtype=bool)
    first[1:] = codes[order][1:] != codes[order][:-1]
    return rows[order[first]]


def _span_rows(t: pa.Table, fold: SpanFold) -> np.ndarray:
    """Row of the span each line was written in (-1 when it is not among the spans)."""
    keys = span_key(t.column("trace_id"), t.column("span_id"))
    return lookup(keys, pc.not_equal(t.column("span_id"), ""), fold.span_key())


def _quiet_signals(svc: pa.Array, slices: np.ndarray, opt: SignalOptions) -> list[Signal]:
    """Services whose share of all lines fell, window against history slices (they went quiet)."""
    keep = slices != EXCLUDED_SLICE
    svc, slices = svc.filter(pa.array(keep)), slices[keep]
    if len(svc) == 0:
        return []
    sl_ids, sl_inv = np.unique(slices, return_inverse=True)
    totals = np.bincount(sl_inv, minlength=len(sl_ids)).astype(float)
    win = sl_ids == 0
    if not win.any() or (~win).sum() == 0:
        return []
    codes, texts = factorize(svc)
    order = sorted(range(len(texts)), key=texts.__getitem__)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    names, s_inv = [texts[i] for i in order], rank[codes]
    counts = np.bincount(s_inv * len(sl_ids) + sl_inv, minlength=len(names) * len(sl_ids))
    counts = counts.reshape(len(names), len(sl_ids)).astype(float)
    hist = ~win & (totals >= opt.min_slice_requests)
    n_win = int(totals[win][0])
    out: list[Signal] = []
    tests = []
    for i, name in enumerate(names):
        k_win = int(counts[i, win][0])
        t = slice_test(k_win, n_win, counts[i, hist], totals[hist])
        tests.append((t, name, k_win))
    for t, name, k_win in tests:
        za = family_z(-t.z, len(tests))
        if t.z >= 0 or za < opt.min_z:
            continue
        pw = k_win / n_win if n_win else 0.0
        out.append(
            Signal(
                service=str(name),
                modality=Modality.LOGS,
                kind=SignalKind.LOG_VOLUME,
                key="lines",
                family="template",
                direction="down",
                score=za,
                baseline=round(t.p0, 6),
                observed=round(pw, 6),
                fold=share_fold(k_win, n_win, t.p0),
                effect=round(min(1.0, max(0.0, 1.0 - pw / max(t.p0, 1e-9))), 6),
                group=f"logs:{name}:volume",
                description=f"{name} wrote {k_win} of {n_win} lines in the window (history {t.p0:.1%} of all lines)",
            )
        )
    return out


def _share_signals(
    svc: np.ndarray,
    tok: np.ndarray,
    slices: np.ndarray,
    ref: np.ndarray,
    pods: np.ndarray,
    err: np.ndarray,
    opt: SignalOptions,
) -> list[Signal]:
    """Lines without requests: each statement's share of its service's lines, window against history."""
    counts: dict[str, dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for s, k, sl in zip(svc.tolist(), tok.tolist(), slices.tolist(), strict=True):
        counts[s][k][sl] += 1
    token_err = {k: bool(e) for k, e in zip(tok.tolist(), err.tolist(), strict=True) if e}
    out: list[Signal] = []
    for service, by_tok in counts.items():
        found = outcome_tests(by_tok, opt)
        if not found:
            continue
        n_win = found[0][2]
        tests = [(t, k, kw) for k, kw, _n, t in found]
        for t, k, kw in sorted(tests, key=lambda x: -abs(x[0].z))[: opt.max_signals_per_service]:
            za = family_z(abs(t.z), len(tests))
            if za < opt.min_z:
                continue
            sel = (svc == service) & (tok == k) & (slices == 0)
            ids = [r for r in ref[sel][: opt.max_evidence]]
            is_err = t.z > 0 and token_err.get(k, False)
            dep = k.rsplit(" @", 1)[1] if is_err and " @" in k else ""  # an error naming a failing dependency
            pw = kw / n_win
            pod_list = [p for p in pods[sel] if p]
            out.append(
                Signal(
                    service=service,
                    pod=max(set(pod_list), key=pod_list.count) if pod_list else "",
                    modality=Modality.LOGS,
                    kind=SignalKind.LOG_ERROR_TEMPLATE if is_err else SignalKind.LOG_TEMPLATE_SHIFT,
                    key=k,
                    family="error" if is_err else "template",
                    direction=t.direction,
                    score=za,
                    baseline=round(t.p0, 6),
                    observed=round(pw, 6),
                    fold=share_fold(kw, n_win, t.p0),
                    effect=round(min(1.0, abs(pw - t.p0)), 6),
                    group=f"logs:{service}:share",
                    dependency=dep,
                    dependency_via="error" if dep else "",
                    description=f"{service}: statement {k[:90]!r} is {kw} of {n_win} lines (history {t.p0:.1%})",
                    evidence_ids=ids,
                )
            )
    return out


def _cite_templates(found: list[Signal], ref: pa.Array, tids: pa.ChunkedArray, opt: SignalOptions) -> None:
    """Put the template of a signal's first cited line in front of its evidence."""
    cited = {e for s in found if s.modality == Modality.LOGS for e in s.evidence_ids}
    if not cited:
        return
    hit = pc.is_in(ref, value_set=pa.array(sorted(cited), pa.string()))
    where = dict(zip(ref.filter(hit).to_pylist(), tids.filter(hit).to_pylist(), strict=True))
    for i, s in enumerate(found):
        if s.modality != Modality.LOGS:
            continue
        first = next((where[e] for e in s.evidence_ids if where.get(e)), None)
        if first is None:
            continue
        tid = f"template:{first}"
        if tid not in s.evidence_ids:
            found[i] = s.model_copy(update={"evidence_ids": [tid, *s.evidence_ids][: opt.max_evidence]})
