"""The incident window in the event store: which templates were active (by which services, since when),
the most frequent WARN+ templates with their first line, and the window's span summaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.explanation import EvidenceSource
from retrieval.evidence.context import Gathering, pick
from retrieval.evidence.fusion import Hit, RankedList
from retrieval.evidence.span_summaries import SpanSummary, summarize_window

if TYPE_CHECKING:
    from retrieval.events import TemplateCount


@dataclass
class WindowTemplate:
    """Lines of one template in the window: how many, the first one's time, the services that logged it."""

    count: int = 0
    first_ns: int = 0
    services: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class WindowFindings:
    active: dict[str, WindowTemplate]
    """Templates with lines in the window, by template id."""
    top: list[dict[str, Any]]
    """The most frequent WARN+ templates of the window (`EventStore.top_templates` rows)."""
    log_templates: dict[str, str]
    """The template of each first-line item (`log:<event_id>` -> template id)."""
    lists: list[RankedList]
    """`events:templates` and `events:logs`."""


def window_events(ctx: Gathering) -> WindowFindings:
    """Lines per template in the window, the top WARN+ templates and their first lines, as two lists."""
    start, end = ctx.window
    counts: list[TemplateCount] = ctx.log.run(
        "events.template_counts",
        "EventStore.template_counts(start_ns, end_ns): lines per (template, service) in [start_ns, end_ns)",
        ctx.win,
        lambda: ctx.events.template_counts(start, end),
        default=[],
    )
    active: dict[str, WindowTemplate] = {}
    for c in counts:
        a = active.setdefault(c.template_id, WindowTemplate())
        a.first_ns = min(a.first_ns, c.first_ns) if a.count else c.first_ns
        a.count += c.count
        a.services.add(c.service)
    n = ctx.opt.error_templates
    top: list[dict[str, Any]] = ctx.log.run(
        "events.top_templates",
        "EventStore.top_templates(min_level, limit, start_ns, end_ns): most frequent templates at min_level+",
        {"min_level": "WARN", "limit": n, **ctx.win},
        lambda: ctx.events.top_templates(min_level="WARN", limit=n, start_ns=start, end_ns=end),
        default=[],
    )
    ids = [str(t["template_id"]) for t in top]
    examples: dict[str, list[dict[str, Any]]] = {}
    if ids:
        examples = ctx.log.run(
            "events.example_lines",
            "EventStore.example_lines(template_ids, start_ns, end_ns, per_template): first lines in the window",
            {"template_ids": ids, **ctx.win, "per_template": 1},
            lambda: ctx.events.example_lines(ids, start, end, per_template=1),
            default={},
            count=lambda d: sum(len(v) for v in d.values()),
        )
    templates: list[Hit] = []
    logs: list[Hit] = []
    log_templates: dict[str, str] = {}
    for t in top:
        tid = str(t["template_id"])
        services = frozenset(t.get("services") or [])
        templates.append(
            Hit(
                id=f"template:{tid}",
                kind="template",
                text=str(t.get("text", "")),
                service=pick(services, ctx.cand_w),
                services=services,
                level=str(t.get("level", "")),
                in_window=True,
                score=float(t.get("count", 0)),
                detail="WARN+ lines in the window",
            )
        )
        for ex in examples.get(tid, [])[:1]:
            log_id = f"log:{ex['event_id']}"
            log_templates[log_id] = tid
            logs.append(
                Hit(
                    id=log_id,
                    kind="log",
                    text=str(ex.get("message", "")),
                    service=str(ex.get("service", "")),
                    pod=str(ex.get("pod", "")),
                    time_ns=int(ex["ts_ns"]),
                    level=str(ex.get("level", "")),
                    in_window=True,
                    detail=f"first line of template:{tid} in the window",
                )
            )
    lists = [
        ctx.ranked("events:templates", EvidenceSource.EVENTS, templates),
        ctx.ranked("events:logs", EvidenceSource.EVENTS, logs),
    ]
    return WindowFindings(active=active, top=top, log_templates=log_templates, lists=lists)


def window_summaries(ctx: Gathering) -> list[SpanSummary]:
    """Span summaries of the window (the most erroring and the slowest operations of each service)."""
    n = ctx.opt.summaries
    summaries: list[SpanSummary] = ctx.log.run(
        "events.span_stats",
        "EventStore.span_stats(start_ns, end_ns): spans, errors, p50/p95 per (service, operation); "
        "kept: the most erroring and the slowest operations of each service",
        {**ctx.win, "limit": n},
        lambda: summarize_window(ctx.events, ctx.window, limit=n),
        default=[],
    )
    return summaries
