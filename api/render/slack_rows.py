"""The port's answers to chat follow-ups as Slack blocks: log lines, node changes, incidents, calls."""

from __future__ import annotations

from collections.abc import Sequence

from api.port import LogLine, MetricShift, Topology
from api.render.slack_blocks import Block, code, code_sections, esc, fit, section, sections
from core.incident import Incident
from core.timeutil import iso

ROW_TEXT_CHARS = 300
EDGE_FIGURES = ("calls", "errors", "error_rate", "p95_ms")


def log_line(row: LogLine) -> str:
    bits = [iso(row.ts_ns), row.level, row.service or row.pod]
    return esc(" ".join(b for b in bits if b) + f" {row.message}", ROW_TEXT_CHARS)


def change_line(shift: MetricShift) -> str:
    """'• pod: metric 12.5 → 80 (+540%)'."""
    text = f"{shift.pod}: {shift.metric} {shift.before:.3g} → {shift.during:.3g} ({shift.change:+.0%})"
    return "• " + esc(text, ROW_TEXT_CHARS)


def logs_blocks(title: str, rows: Sequence[LogLine]) -> list[Block]:
    if not rows:
        return [section(f"*{esc(title)}*\n_No log lines found._")]
    return fit(code_sections(esc(title), [log_line(r) for r in rows]))


def changes_blocks(node: str, rows: Sequence[MetricShift]) -> list[Block]:
    if not rows:
        return [section(f"*Changes on {esc(node)}*\n_Nothing changed on this node in the incident's window._")]
    return fit(sections(f"Changes on {esc(node)}", [change_line(r) for r in rows]))


def incidents_blocks(rows: Sequence[Incident]) -> list[Block]:
    if not rows:
        return [section("*Incidents*\n_No incidents._")]
    lines = []
    for inc in rows:
        bits = [code(inc.id), esc(inc.status.value), iso(inc.opened_ns or inc.alert_ns)]
        title = f": {esc(inc.title, 200)}" if inc.title else ""
        cause = f" · root cause *{esc(inc.root_cause)}*" if inc.root_cause else ""
        lines.append("• " + " · ".join(bits) + title + cause)
    return fit(sections("Incidents", lines))


def topology_blocks(service: str, topo: Topology) -> list[Block]:
    lines = []
    for e in topo.edges:
        extra = e.model_extra or {}
        stats = ", ".join(
            f"{k} {extra[k]:.3g}" if isinstance(extra[k], float) else f"{k} {extra[k]}"
            for k in EDGE_FIGURES
            if extra.get(k) is not None
        )
        lines.append(f"• {esc(e.source)} → {esc(e.target)}" + (f" ({stats})" if stats else ""))
    if not lines:
        return [section(f"*Calls around {esc(service)}*\n_No calls known._")]
    return fit(sections(f"Calls around {esc(service)}", lines))


def notice_blocks(text: str) -> list[Block]:
    return [section(text)]
