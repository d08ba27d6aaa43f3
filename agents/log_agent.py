"""Log agent: error bursts per service, templates that are new or much more frequent than before, example
lines and the traces behind them."""

from __future__ import annotations

import time
from typing import Any

from agents.state import TeamState
from agents.toolbox import Toolbox
from core.explanation import EvidenceItem, EvidenceSource
from core.naming import level_rank
from core.steps import record
from core.timeutil import NS
from retrieval.events import LogQuery

MAX_TEMPLATES = 8
RISE = 3.0  # a template counts as risen when its rate per second is this many times the baseline's


def investigate_logs(tools: Toolbox, state: TeamState) -> dict[str, Any]:
    t0 = time.perf_counter()
    inc = state["incident"]
    ranking = state.get("ranking")
    focus = {c.service for c in ranking.candidates[:3]} if ranking is not None else set()
    start, end = inc.alert_ns - 60 * NS, inc.end_ns
    base_start, base_end = inc.start_ns - 1800 * NS, inc.alert_ns - 60 * NS
    steps = []
    window, s1 = record(
        "logs",
        "events.template_counts",
        "lines per (template, service) in the window",
        {"start_ns": start, "end_ns": end},
        lambda: tools.events.template_counts(start, end),
        default=[],
    )
    base, s2 = record(
        "logs",
        "events.template_counts",
        "lines per (template, service) in the baseline",
        {"start_ns": base_start, "end_ns": base_end},
        lambda: tools.events.template_counts(base_start, base_end),
        default=[],
    )
    bursts, s3 = record(
        "logs",
        "events.error_counts",
        "ERROR+ lines per service per minute",
        {"start_ns": base_start, "end_ns": end, "bucket_s": 60},
        lambda: tools.events.error_counts(base_start, end, bucket_s=60),
        default=[],
    )
    steps += [s1, s2, s3]
    win_s = max(1.0, (end - start) / NS)
    base_s = max(1.0, (base_end - base_start) / NS)
    before = {(b.template_id, b.service): b.count for b in base}
    window_ids = sorted({w.template_id for w in window})
    found, s4 = record(
        "logs",
        "events.templates",
        "stored templates (text, level) of the window's lines",
        {"template_ids": window_ids[:50], "count": len(window_ids)},
        lambda: tools.events.templates(window_ids) if window_ids else [],
        default=[],
    )
    steps.append(s4)
    templates = {t.template_id: t for t in found}
    scored = []
    for w in window:
        tpl = templates.get(w.template_id)
        if tpl is None:
            continue
        old = before.get((w.template_id, w.service), 0)
        rise = (w.count / win_s) / max(old / base_s, 0.5 / base_s)
        severe = level_rank(tpl.level) >= level_rank("WARN")
        if old == 0 or rise >= RISE or severe:
            weight = rise * (3 if severe else 1) * (2 if w.service in focus else 1)
            scored.append((weight, w, tpl, old))
    scored.sort(key=lambda x: -x[0])
    top = scored[:MAX_TEMPLATES]
    evidence = []
    ids = [tpl.template_id for _, _, tpl, _ in top]
    examples, s5 = record(
        "logs",
        "events.latest_examples",
        "newest lines of each template in the window",
        {"template_ids": ids, "start_ns": start, "end_ns": end},
        lambda: tools.events.latest_examples(LogQuery(start_ns=start, end_ns=end), ids, 2),
        default={},
    )
    steps.append(s5)
    for weight, w, tpl, old in top:
        what = "new" if old == 0 else f"{w.count} lines vs {old} before"
        evidence.append(
            EvidenceItem(
                id=f"template:{tpl.template_id}",
                kind="template",
                source=EvidenceSource.EVENTS,
                time_ns=w.first_ns,
                service=w.service,
                text=f"[{tpl.level}] {tpl.text} ({what}, {w.count} in the window)",
                score=round(weight, 3),
                provenance="events.template_counts window vs baseline",
            )
        )
        for ex in examples.get(tpl.template_id, []):
            evidence.append(
                EvidenceItem(
                    id=f"log:{ex['event_id']}",
                    kind="log",
                    source=EvidenceSource.EVENTS,
                    time_ns=ex["ts_ns"],
                    service=ex["service"],
                    pod=ex["pod"],
                    text=ex["message"][:1000],
                    score=round(weight, 3),
                    provenance=f"example of template:{tpl.template_id}"
                    + (f", trace {ex['trace_id']}" if ex["trace_id"] else ""),
                )
            )
    notes = []
    peak = max(bursts, key=lambda b: b.count, default=None)
    if peak is not None:
        notes.append(f"most error lines in one minute: {peak.count} from {peak.service}")
    return {
        "evidence": evidence,
        "steps": steps,
        "notes": notes,
        "timings": {"logs": round((time.perf_counter() - t0) * 1000, 2)},
    }
