"""Log signals: templates that are new, much more frequent, or gone, per request of what writes them.

A template's count is compared with its *exposure* on each side: the number of requests of the
operation whose spans the lines belong to (when logs carry span ids and traces exist), else the
requests of the service, else the service's log volume, else the time covered. So a service that
simply gets more traffic does not look anomalous, while one whose code takes another path does.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field

from core.rca import Modality, Signal, SignalKind
from detect.signals.common import (
    SignalOptions,
    TableLike,
    add_evidence,
    columns,
    count_change,
    is_error_line,
    text,
)
from detect.signals.traces import TraceIndex

_LOG_COLUMNS = (
    "event_id",
    "ts_ns",
    "service",
    "pod",
    "level",
    "message",
    "trace_id",
    "span_id",
    "template_id",
)
_VARIABLE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}|\b[0-9a-fA-F]{12,}\b|\d+")


@dataclass
class TemplateStats:
    count: int = 0
    errors: int = 0
    ops: Counter[str] = field(default_factory=Counter)
    pods: Counter[str] = field(default_factory=Counter)
    example: str = ""
    ids: list[str] = field(default_factory=list)
    traces: set[str] = field(default_factory=set)


@dataclass
class LogWindow:
    templates: dict[tuple[str, str], TemplateStats] = field(default_factory=dict)
    lines: Counter[str] = field(default_factory=Counter)
    seconds: int = 0
    rows: int = 0


def _fallback_template(message: str) -> str:
    """Only when a row has no template id: mask numbers and hex so ids stay comparable."""
    return "masked:" + hashlib.blake2b(_VARIABLE.sub("*", message[:300]).encode(), digest_size=8).hexdigest()


def fold_logs(data: TableLike, traces: TraceIndex | None, opt: SignalOptions) -> LogWindow:
    c = columns(data, _LOG_COLUMNS)
    n = len(c["message"])
    lw = LogWindow(rows=n)
    seconds: set[int] = set()
    for i in range(n):
        svc = text(c["service"][i])
        if not svc:
            continue
        msg = text(c["message"][i])
        tid = text(c["template_id"][i]) or _fallback_template(msg)
        st = lw.templates.get((svc, tid))
        if st is None:
            st = lw.templates[(svc, tid)] = TemplateStats(example=msg[:300])
        st.count += 1
        lw.lines[svc] += 1
        if is_error_line(text(c["level"][i]), msg):
            st.errors += 1
        pod = text(c["pod"][i])
        if pod:
            st.pods[pod] += 1
        ts = c["ts_ns"][i]
        if isinstance(ts, int):
            seconds.add(ts // 1_000_000_000)
        trace_id = text(c["trace_id"][i])
        if trace_id:
            st.traces.add(trace_id)
        if traces is not None:
            entry = traces.span_entry.get((text(c["trace_id"][i]), text(c["span_id"][i])))
            if entry is not None and entry[0] == svc:
                st.ops[entry[1]] += 1
        eid = c["event_id"][i]
        ref = f"log:{eid}" if eid not in ("", None) else f"log:{ts}:{pod or svc}"
        add_evidence(st.ids, ref, opt.max_evidence)
    lw.seconds = len(seconds)
    return lw


def _exposure(
    svc: str,
    op: str | None,
    win: LogWindow,
    base: LogWindow,
    tw: TraceIndex | None,
    tb: TraceIndex | None,
    opt: SignalOptions,
) -> tuple[float, float, str]:
    if tw is not None and tb is not None:
        if op is not None:
            # lines tied to an operation are judged per request of that operation, however few:
            # an operation that ran more (or only) in one window explains its lines
            nw, nb = len(tw.requests.get((svc, op), [])), len(tb.requests.get((svc, op), []))
            return nw, nb, f"requests of {op}"
        nw, nb = tw.by_service.get(svc, 0), tb.by_service.get(svc, 0)
        if nw >= opt.min_samples and nb >= opt.min_samples:
            return nw, nb, "requests"
    if win.lines[svc] >= opt.min_samples and base.lines[svc] >= opt.min_samples:
        return win.lines[svc], base.lines[svc], "log lines"
    return float(win.seconds), float(base.seconds), "seconds"


def log_signals(
    win_data: TableLike,
    base_data: TableLike,
    tw: TraceIndex | None,
    tb: TraceIndex | None,
    opt: SignalOptions,
) -> tuple[list[Signal], dict[str, set[str]]]:
    """Template signals, and per service the window trace ids of lines behind rising templates."""
    win = fold_logs(win_data, tw, opt)
    base = fold_logs(base_data, tb, opt)
    traces: dict[str, set[str]] = {}
    if win.rows == 0 or base.rows == 0:
        return [], traces
    best: dict[tuple[str, SignalKind], list[Signal]] = {}
    for key in sorted(set(win.templates) | set(base.templates)):
        svc, tid = key
        sw = win.templates.get(key) or TemplateStats()
        sb = base.templates.get(key) or TemplateStats()
        ops = sw.ops + sb.ops
        op = ops.most_common(1)[0][0] if ops else None
        ew, eb, unit = _exposure(svc, op, win, base, tw, tb, opt)
        z, fold, direction = count_change(sw.count, ew, sb.count, eb)
        if z < opt.min_z:
            continue
        if not (fold >= opt.min_fold or fold <= 1.0 / opt.min_fold):
            continue
        error_like = (sw.errors + sb.errors) * 2 >= (sw.count + sb.count)
        kind = SignalKind.LOG_ERROR_TEMPLATE if error_like and direction == "up" else SignalKind.LOG_TEMPLATE_SHIFT
        shown = sw if direction == "up" else sb
        ev = [f"template:{tid}"] + shown.ids[: opt.max_evidence - 1]
        pods = sw.pods if sw.pods else sb.pods
        new = sb.count == 0
        gone = sw.count == 0
        what = "new" if new else "gone" if gone else f"x{fold:.1f} per {unit}"
        sig = Signal(
            service=svc,
            pod=pods.most_common(1)[0][0] if pods else "",
            modality=Modality.LOGS,
            kind=kind,
            key=tid,
            family="error" if error_like else "template",
            direction=direction,
            score=z,
            baseline=sb.count / eb if eb else 0.0,
            observed=sw.count / ew if ew else 0.0,
            fold=fold,
            description=f"{svc} log template {what} ({sb.count} -> {sw.count}): {shown.example[:160]}",
            evidence_ids=ev,
        )
        best.setdefault((svc, kind), []).append(sig)
        if direction == "up":
            traces.setdefault(svc, set()).update(sw.traces)
    out: list[Signal] = []
    for sigs in best.values():
        sigs.sort(key=lambda s: -s.score)
        out.extend(sigs[:5])
    return out, traces
