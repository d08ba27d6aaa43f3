"""Log signals: the statements a service's requests go through, compared with its history.

Each line is named by its *statement*: the first words of the line with numbers and ids masked (so
templates that differ only in data written later in the line are one statement), marked as an error
when its level or words say so, and, for errors that name another known service, with that service.

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
from detect.signals.common import (
    ERROR_LEVELS,
    ERROR_WORDS,
    EXCLUDED_SLICE,
    SignalOptions,
    TableLike,
    as_table,
    family_z,
    share_fold,
    slice_of,
    slice_test,
)
from detect.signals.sequences import ERR_MARK, EVENT_SCHEMA, LOG_KINDS, START, sequence_signals
from detect.signals.traces import SpanFold

LOG_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts_ns", pa.int64()),
        ("service", pa.string()),
        ("pod", pa.string()),
        ("level", pa.string()),
        ("message", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("template_id", pa.string()),
    ]
)
_MASK = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}|\b[0-9a-fA-F]*\d[0-9a-fA-F]*\b|\d+")


def statement(message: str, words: int) -> str:
    """The first `words` words of a line, numbers and hex ids masked: 'GET /a/17 took 5 ms' -> 'GET /a/# took # ms'."""
    return " ".join(_MASK.sub("#", message[:600]).split()[:words])


def _tokens(t: pa.Table, services: list[str], opt: SignalOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Statement token, error flag and named dependency of every line."""
    n = t.num_rows
    msgs = t.column("message").to_numpy(zero_copy_only=False)
    tids = t.column("template_id").to_numpy(zero_copy_only=False)
    own = t.column("service").to_numpy(zero_copy_only=False)
    levels = pc.utf8_upper(t.column("level"))
    err = pc.is_in(levels, value_set=pa.array(sorted(ERROR_LEVELS))).to_numpy(zero_copy_only=False)
    err = err | pc.match_substring_regex(t.column("message"), ERROR_WORDS.pattern).to_numpy(zero_copy_only=False)
    # one statement per template (from its first line); lines without a template on their own
    key = np.where(tids != "", tids, msgs)
    uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
    names = np.array([statement(msgs[i], opt.statement_words) for i in first], dtype=object)
    tok = names[inv] if n else np.zeros(0, dtype=object)
    tok = np.where(err, tok + ERR_MARK, tok)
    dep = np.full(n, "", dtype=object)
    others = sorted((s for s in services if s), key=len, reverse=True)
    if others and err.any():
        pat = re.compile("|".join(re.escape(s) for s in others))
        for i in np.nonzero(err)[0]:
            for m in pat.finditer(msgs[i][:2000]):
                if m.group(0) != own[i]:
                    dep[i] = m.group(0)
                    break
    tok = np.where(dep != "", tok + " @" + dep, tok)
    return tok.astype(object), err, dep


def log_signals(
    logs: TableLike,
    in_window: np.ndarray | None,
    window_start: int,
    width_ns: int,
    fold: SpanFold | None,
    span_slices: np.ndarray | None,
    services: list[str],
    opt: SignalOptions,
) -> tuple[list[Signal], dict[str, set[str]]]:
    """Signals from log lines (window rows flagged by `in_window`; the rest is history) and per service
    the window trace ids of the requests behind them. `fold`/`span_slices` describe the spans of the
    same window and history, when there are any."""
    t = as_table(logs, LOG_SCHEMA)
    n = t.num_rows
    if n == 0:
        return [], {}
    win = np.ones(n, bool) if in_window is None else in_window
    ts = t.column("ts_ns").to_numpy(zero_copy_only=False)
    own_slice = np.where(win, np.int64(0), slice_of(ts, window_start, width_ns))
    own_slice = np.where(~win & (own_slice == 0), EXCLUDED_SLICE, own_slice)
    tok, err, dep = _tokens(t, services, opt)
    svc = t.column("service").to_numpy(zero_copy_only=False)
    trace = t.column("trace_id").to_numpy(zero_copy_only=False)
    eids = t.column("event_id").to_numpy(zero_copy_only=False)
    pods = t.column("pod").to_numpy(zero_copy_only=False)
    ref = np.where(
        eids != "",
        np.char.add("log:", eids.astype(str)),
        np.char.add(np.char.add(np.char.add("log:", ts.astype(str)), ":"), pods.astype(str)),
    ).astype(object)
    req = np.full(n, "", dtype=object)
    line_slice = own_slice.copy()
    start_rows = None
    if fold is not None and not fold.empty and span_slices is not None:
        root_row = _span_rows(t, fold)
        linked = root_row >= 0
        rr = fold.root[np.where(linked, root_row, 0)]
        f_trace = fold.column("trace_id")
        f_span = fold.column("span_id")
        keys = np.char.add(np.char.add(f_trace[rr].astype(str), "/"), f_span[rr].astype(str)).astype(object)
        req = np.where(linked, keys, req)
        line_slice = np.where(linked, span_slices[rr], line_slice)
        writers = set(svc.tolist())
        is_root = fold.is_root
        f_svc = fold.column("service")
        start_rows = np.nonzero(is_root & np.isin(f_svc, list(writers)))[0]
    free = req == ""
    by_trace = free & (trace != "")
    req = np.where(by_trace, np.char.add(np.char.add(svc.astype(str), "/"), trace.astype(str)).astype(object), req)
    line_events = pa.table(
        {
            "service": pa.array(svc, pa.string()),
            "pod": pa.array(pods, pa.string()),
            "req": pa.array(req, pa.string()),
            "trace": pa.array(trace, pa.string()),
            "ts": pa.array(ts, pa.int64()),
            "token": pa.array(tok, pa.string()),
            "err": pa.array(err, pa.bool_()),
            "dep": pa.array(dep, pa.string()),
            "ref": pa.array(ref, pa.string()),
            "slice": pa.array(line_slice, pa.int64()),
        }
    )
    parts = [line_events.filter(pa.array(req != ""))]
    if start_rows is not None and fold is not None and span_slices is not None and len(start_rows):
        idx = pa.array(start_rows, pa.int64())
        f = fold.spans
        parts.append(
            pa.table(
                {
                    "service": f.column("service").take(idx),
                    "pod": f.column("pod").take(idx),
                    "req": pa.array(
                        np.char.add(
                            np.char.add(fold.column("trace_id")[start_rows].astype(str), "/"),
                            fold.column("span_id")[start_rows].astype(str),
                        ).astype(object),
                        pa.string(),
                    ),
                    "trace": f.column("trace_id").take(idx),
                    "ts": pa.array(fold.column("start_ns")[start_rows] - 1, pa.int64()),
                    "token": pa.array(
                        np.char.add(START + ":", fold.column("operation")[start_rows].astype(str)).astype(object),
                        pa.string(),
                    ),
                    "err": pa.array(np.zeros(len(start_rows), bool)),
                    "dep": pa.array([""] * len(start_rows), pa.string()),
                    "ref": pa.array(
                        np.char.add(
                            np.char.add(np.char.add("span:", fold.column("trace_id")[start_rows].astype(str)), ":"),
                            fold.column("span_id")[start_rows].astype(str),
                        ).astype(object),
                        pa.string(),
                    ),
                    "slice": pa.array(span_slices[start_rows], pa.int64()),
                }
            )
        )
    events = pa.concat_tables([p.cast(EVENT_SCHEMA) for p in parts])
    events = events.filter(pc.not_equal(events.column("slice"), EXCLUDED_SLICE))
    found, traces = sequence_signals(events, LOG_KINDS, opt)
    if free.any() and (~by_trace & free).any():
        loose = ~by_trace & free & (line_slice != EXCLUDED_SLICE)
        found.extend(_share_signals(svc[loose], tok[loose], line_slice[loose], ref[loose], pods[loose], err[loose], opt))
    _cite_templates(found, ref, t.column("template_id").to_numpy(zero_copy_only=False), opt)
    return found, traces


def _span_rows(t: pa.Table, fold: SpanFold) -> np.ndarray:
    """Row of the span each line was written in (-1 when it is not among the spans)."""
    n = t.num_rows
    left = pa.table({"trace_id": t.column("trace_id"), "span_id": t.column("span_id"), "line": np.arange(n)})
    left = left.filter(pc.not_equal(left.column("span_id"), ""))
    right = pa.table(
        {"trace_id": fold.spans.column("trace_id"), "span_id": fold.spans.column("span_id"), "row": np.arange(len(fold.root))}
    )
    joined = left.join(right, keys=["trace_id", "span_id"], join_type="inner")
    out = np.full(n, -1, dtype=np.int64)
    out[joined.column("line").to_numpy()] = joined.column("row").to_numpy()
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
        expo: dict[int, int] = defaultdict(int)
        for by_slice in by_tok.values():
            for sl, c in by_slice.items():
                expo[sl] += c
        n_win = expo.get(0, 0)
        hist = sorted(sl for sl, c in expo.items() if sl != 0 and c >= opt.min_slice_requests)
        if n_win < opt.min_samples or not hist:
            continue
        n_hist = np.array([expo[sl] for sl in hist], dtype=float)
        tests = []
        for k, by_slice in by_tok.items():
            t = slice_test(by_slice.get(0, 0), n_win, np.array([by_slice.get(sl, 0) for sl in hist], float), n_hist)
            tests.append((t, k, by_slice.get(0, 0)))
        for t, k, kw in sorted(tests, key=lambda x: -abs(x[0].z))[: opt.max_signals_per_service]:
            za = family_z(abs(t.z), len(tests))
            if za < opt.min_z:
                continue
            sel = (svc == service) & (tok == k) & (slices == 0)
            ids = [r for r in ref[sel][: opt.max_evidence]]
            is_err = t.z > 0 and token_err.get(k, False)
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
                    description=f"{service}: statement {k[:90]!r} is {kw} of {n_win} lines (history {t.p0:.1%})",
                    evidence_ids=ids,
                )
            )
    return out


def _cite_templates(found: list[Signal], ref: np.ndarray, tids: np.ndarray, opt: SignalOptions) -> None:
    """Put the template of a signal's first cited line in front of its evidence."""
    where = {r: i for i, r in enumerate(ref.tolist())}
    for i, s in enumerate(found):
        if s.modality != Modality.LOGS:
            continue
        first = next((where[e] for e in s.evidence_ids if e in where and tids[where[e]]), None)
        if first is None:
            continue
        tid = f"template:{tids[first]}"
        if tid not in s.evidence_ids:
            found[i] = s.model_copy(update={"evidence_ids": [tid, *s.evidence_ids][: opt.max_evidence]})
