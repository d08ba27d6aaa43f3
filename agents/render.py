"""An Explanation as JSON, as Markdown (API, chat) and as a terminal report (rich).

Evidence text and names come from telemetry: in Markdown they are escaped so that they cannot add
links, HTML or table cells; in the terminal they are printed as plain `Text` (no rich markup) with
control characters (ANSI escapes included) removed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agents.explain_fallback import path_services
from core.explanation import Explanation, ExplanationMode
from core.text import strip_unsafe

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<#|~])")
_MD_LINE_START = re.compile(r"^([>+=-])")
EVIDENCE_TEXT_CHARS = 240


def to_json(expl: Explanation, *, indent: int | None = 2) -> str:
    return expl.model_dump_json(indent=indent)


def plain(text: str, limit: int | None = None) -> str:
    """One line without control, zero-width or bidi characters (`core.text.strip_unsafe`), cut to `limit`
    characters with '…'."""
    text = strip_unsafe(text.replace("\r\n", " ").replace("\n", " ").replace("\r", "").replace("\t", " "))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def md(text: str, limit: int | None = None) -> str:
    """Untrusted text for a Markdown paragraph or table cell."""
    return _MD_LINE_START.sub(r"\\\1", _MD_SPECIAL.sub(r"\\\1", plain(text, limit)))


def code(text: str) -> str:
    return "`" + plain(text).replace("`", "'") + "`"


def mode_line(expl: Explanation) -> str:
    """The label every rendering starts with."""
    if expl.mode is ExplanationMode.LLM:
        return f"Mode: llm ({expl.model}); every citation checked against the evidence"
    reason = f": {expl.fallback_reason}" if expl.fallback_reason else ""
    return f"Mode: evidence-only, built from the ranked candidates and the evidence alone{reason}"


def _ids(ids: Iterable[str]) -> str:
    return ", ".join(code(i) for i in ids)


def _md_table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def to_markdown(expl: Explanation) -> str:
    out: list[str] = [f"# Incident explanation{': ' + md(expl.incident_id) if expl.incident_id else ''}", ""]
    out += [f"> **{md(mode_line(expl))}**", ""]
    if expl.window:
        out += [f"Window: {expl.window.start} to {expl.window.end}", ""]
    if expl.status != "ok":
        out += ["Status: **insufficient evidence**", ""]
    out += ["## Summary", "", md(expl.summary)]
    if expl.summary_evidence_ids:
        out += ["", f"Evidence: {_ids(expl.summary_evidence_ids)}"]
    if expl.root_causes:
        out += ["", "## Root causes", ""]
        out += _md_table(
            ["#", "Service", "Pod", "Confidence", "Fault kind", "Evidence"],
            (
                [
                    str(rc.rank),
                    md(rc.service),
                    md(rc.pod),
                    f"{rc.confidence:.0%}",
                    rc.fault_kind.value.replace("_", " "),
                    _ids(rc.evidence_ids),
                ]
                for rc in expl.root_causes
            ),
        )
        out.append("")
        out += [f"{rc.rank}. **{md(rc.service)}**: {md(rc.reasoning)}" for rc in expl.root_causes]
    if expl.propagation_path:
        out += ["", "## Propagation path", "", " → ".join(md(s) for s in path_services(expl.propagation_path)), ""]
        for step in expl.propagation_path:
            line = f"- {md(step.source)} → {md(step.target)}"
            line += f": {md(step.description)}" if step.description else ""
            line += f" ({_ids(step.evidence_ids)})" if step.evidence_ids else ""
            out.append(line)
    if expl.evidence:
        out += ["", "## Evidence", ""]
        out += _md_table(
            ["Id", "Kind", "Source", "Time", "Service", "Text"],
            (
                [code(e.id), md(e.kind), e.source.value, e.time or "", md(e.service), md(e.text, EVIDENCE_TEXT_CHARS)]
                for e in expl.evidence
            ),
        )
    if expl.runbooks:
        out += ["", "## Runbooks"]
        for rb in expl.runbooks:
            title = f"[{md(rb.title)}](<{plain(rb.url).replace('>', '%3E')}>)" if rb.url else md(rb.title)
            out += ["", f"### {title}{' (draft)' if rb.draft else ''}", "", f"Id: {code(rb.id)}"]
            if rb.steps:
                out += [""] + [f"{n}. {md(s)}" for n, s in enumerate(rb.steps, 1)]
    if expl.similar_incidents:
        out += ["", "## Similar past incidents", ""]
        for inc in expl.similar_incidents:
            bits = [f"similarity {inc.similarity:.2f}"]
            bits += [f"root cause {md(inc.root_cause)}"] if inc.root_cause else []
            bits += [inc.time] if inc.time else []
            out.append(f"- {code(inc.incident_id)} ({', '.join(bits)}): {md(inc.summary)}")
    if expl.unsupported_claims:
        out += ["", "## Unsupported claims", ""]
        for c in expl.unsupported_claims:
            what = "dropped" if c.dropped else "kept without the unknown ids"
            unknown = f"; unknown ids {_ids(c.unknown_ids)}" if c.unknown_ids else ""
            out.append(f"- {md(c.where)} ({c.reason}, {what}{unknown}): {md(c.text, EVIDENCE_TEXT_CHARS)}")
    if expl.notes:
        out += ["", "## Notes", ""] + [f"- {md(n)}" for n in expl.notes]
    if expl.run:
        out += ["", "## Run", ""]
        out += _md_table(
            ["Agent", "Tool", "Status", "ms", "Items", "Detail"],
            (
                [md(s.agent), md(s.tool), s.status.value, f"{s.duration_ms:.0f}", str(s.items), md(s.detail, 120)]
                for s in expl.run
            ),
        )
    if expl.timings:
        out += ["", "Timings: " + ", ".join(f"{k} {v:.0f} ms" for k, v in expl.timings.items())]
    return "\n".join(out) + "\n"


def _table(*columns: str) -> Table:
    table = Table(show_edge=False, pad_edge=False, expand=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    return table


def terminal_renderable(expl: Explanation) -> RenderableType:
    """The report as a rich renderable (for `Console.print`)."""
    parts: list[RenderableType] = []
    style = "bold green" if expl.mode is ExplanationMode.LLM else "bold yellow"
    header = Text(mode_line(expl), style=style)
    if expl.window:
        header.append(f"\nWindow: {expl.window.start} to {expl.window.end}")
    if expl.status != "ok":
        header.append("\nStatus: insufficient evidence", style="bold red")
    parts.append(header)
    parts.append(Panel(Text(plain(expl.summary)), title="Summary", title_align="left"))
    if expl.root_causes:
        t = _table("#", "Service", "Pod", "Confidence", "Fault kind", "Evidence")
        for rc in expl.root_causes:
            shown = ", ".join(i.split(":", 1)[0] for i in rc.evidence_ids[:3])
            more = f" +{len(rc.evidence_ids) - 3}" if len(rc.evidence_ids) > 3 else ""
            t.add_row(
                str(rc.rank),
                Text(plain(rc.service), style="bold"),
                Text(plain(rc.pod)),
                f"{rc.confidence:.0%}",
                rc.fault_kind.value.replace("_", " "),
                Text(plain(f"{len(rc.evidence_ids)} items ({shown}{more})" if rc.evidence_ids else "-")),
            )
        parts += [Text("Root causes", style="bold underline"), t]
        parts += [Text(f"{rc.rank}. {plain(rc.service)}: {plain(rc.reasoning)}") for rc in expl.root_causes]
    if expl.propagation_path:
        chain = " -> ".join(plain(s) for s in path_services(expl.propagation_path))
        parts += [Text("Propagation path", style="bold underline"), Text(chain)]
    if expl.evidence:
        t = _table("Id", "Kind", "Source", "Time", "Text")
        for e in expl.evidence:
            t.add_row(Text(plain(e.id)), e.kind, e.source.value, e.time or "", Text(plain(e.text, EVIDENCE_TEXT_CHARS)))
        parts += [Text("Evidence", style="bold underline"), t]
    for rb in expl.runbooks:
        lines = [plain(rb.url)] if rb.url else []
        lines += [f"{n}. {plain(step)}" for n, step in enumerate(rb.steps, 1)]
        body = Text("\n".join(lines))
        title = Text(plain(rb.title) + (" (draft)" if rb.draft else ""))
        parts.append(Panel(body, title=title, title_align="left"))
    if expl.similar_incidents:
        parts.append(Text("Similar past incidents", style="bold underline"))
        for inc in expl.similar_incidents:
            parts.append(Text(f"- {plain(inc.incident_id)} ({inc.similarity:.2f}): {plain(inc.summary)}"))
    if expl.unsupported_claims:
        parts.append(Text("Unsupported claims", style="bold red underline"))
        for c in expl.unsupported_claims:
            unknown = f" unknown ids: {', '.join(c.unknown_ids)}" if c.unknown_ids else ""
            parts.append(Text(plain(f"- {c.where} ({c.reason}){unknown}: {c.text}", 300)))
    for note in expl.notes:
        parts.append(Text(plain(f"Note: {note}"), style="dim"))
    if expl.run:
        t = _table("Agent", "Tool", "Status", "ms", "Items", "Detail")
        for s in expl.run:
            t.add_row(s.agent, s.tool, s.status.value, f"{s.duration_ms:.0f}", str(s.items), Text(plain(s.detail, 120)))
        parts += [Text("Run", style="bold underline"), t]
    if expl.timings:
        parts.append(Text("Timings: " + ", ".join(f"{k} {v:.0f} ms" for k, v in expl.timings.items()), style="dim"))
    return Group(*parts)


def to_terminal(expl: Explanation, *, width: int = 100, color: bool = False) -> str:
    """The terminal report as a string (ANSI colours only with `color=True`)."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, no_color=not color, highlight=False)
    console.print(terminal_renderable(expl))
    return buf.getvalue()
