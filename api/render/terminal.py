"""An Explanation as a terminal report (rich), readable from 80 columns up.

Sections are lists and panels, not multi-column tables: a narrow table folds ids and templates into
unreadable columns. Text wraps at word boundaries with a hanging indent; a token too long for the line
(an id, a template, a URL in a note) is cut with '…' rather than broken mid-token, and one-line
headings are cut likewise. Names and text from telemetry are printed as plain `Text` (no rich markup)
with control characters (ANSI escapes included) removed.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from agents.explain_fallback import path_services
from api.render.text import mode_line, plain
from core.explanation import AgentStep, EvidenceItem, Explanation, ExplanationMode, RootCause
from core.rca import TieGroup

EVIDENCE_TEXT_CHARS = 240
EVIDENCE_SHOWN = 30
REASONING_CHARS = 600
IDS_SHOWN = 3
INDENT = 4


class Indented:
    """Text wrapped at word boundaries `indent` columns in, or after `prefix` on its first line (a hanging
    indent: '1. ', 'Note: '); over-long words are cut with '…'."""

    def __init__(self, text: Text, indent: int | None = None, *, prefix: str = "") -> None:
        self.text = text
        self.indent = max(indent, len(prefix)) if indent is not None else (len(prefix) or INDENT)
        self.prefix = prefix.ljust(self.indent)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        width = max(options.max_width - self.indent, 12)
        for n, line in enumerate(self.text.wrap(console, width, overflow="ellipsis")):
            line.no_wrap = True
            yield Text(self.prefix if n == 0 else " " * self.indent, no_wrap=True) + line


def one_line(text: str, style: str = "") -> Text:
    """A line that is cut with '…' at the edge instead of wrapping."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def heading(title: str, style: str = "bold underline") -> Text:
    """A section title, after a blank line."""
    return Text.assemble("\n", (title, style))


def root_cause_lines(rc: RootCause) -> list[RenderableType]:
    kind = rc.fault_kind.value.replace("_", " ")
    head = Text.assemble(f"{rc.rank:>2}. ", (plain(rc.service), "bold"), f"  {rc.confidence:.0%} · {kind}")
    head.no_wrap, head.overflow = True, "ellipsis"
    out: list[RenderableType] = [head]
    if rc.pod:
        out.append(Indented(Text(f"pod {plain(rc.pod)}")))
    if rc.evidence_ids:
        shown = ", ".join(plain(i) for i in rc.evidence_ids[:IDS_SHOWN])
        more = f" +{len(rc.evidence_ids) - IDS_SHOWN} more" if len(rc.evidence_ids) > IDS_SHOWN else ""
        out.append(Indented(Text(f"evidence: {shown}{more}", style="dim")))
    if rc.reasoning:
        out.append(Indented(Text(plain(rc.reasoning, REASONING_CHARS))))
    return out


def tie_lines(tie: TieGroup) -> list[RenderableType]:
    """The tied services and their shared confidence, then what would separate them, one per line."""
    names = ", ".join(plain(s) for s in tie.services)
    out: list[RenderableType] = [Indented(Text(f"{names}: about {tie.confidence:.0%} each", style="bold"), prefix="- ")]
    out += [Indented(Text(plain(sep.text)), prefix="  · ") for sep in tie.separators]
    return out


def evidence_lines(items: Iterable[EvidenceItem], *, scores: bool = False) -> list[RenderableType]:
    """Each item: its id and service; below it its kind, source, (score,) and time; then its text."""
    out: list[RenderableType] = []
    for e in items:
        out.append(one_line(" · ".join(b for b in (plain(e.id), plain(e.service)) if b), style="bold"))
        score = f"score {e.score or 0:.3f}" if scores else ""
        about = [plain(e.kind), e.source.value, score, e.time or ""]
        out.append(Indented(Text(" · ".join(b for b in about if b), style="dim")))
        if e.text:
            out.append(Indented(Text(plain(e.text, EVIDENCE_TEXT_CHARS))))
    return out


def shown_evidence(expl: Explanation, limit: int = EVIDENCE_SHOWN) -> list[EvidenceItem]:
    """The evidence the report lists: the items the explanation cites, then the others, in their ranked order."""
    cited = set(expl.summary_evidence_ids) | expl.cited_ids()
    first = [e for e in expl.evidence if e.id in cited]
    return (first + [e for e in expl.evidence if e.id not in cited])[:limit]


def step_lines(steps: Iterable[AgentStep]) -> list[RenderableType]:
    """One line a tool call (agent, tool, status, ms, items), its detail below it when there is one."""
    out: list[RenderableType] = []
    for s in steps:
        tool = plain(s.tool)
        tool = tool if len(tool) <= 26 else tool[:25] + "…"
        out.append(
            one_line(f"{plain(s.agent):<9} {tool:<26} {s.status.value:<7} {s.duration_ms:>6.0f} ms {s.items:>6}")
        )
        if s.detail:
            out.append(Indented(Text(plain(s.detail, 120), style="dim")))
    return out


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
    parts.append(Panel(Text(plain(expl.summary), overflow="ellipsis"), title="Summary", title_align="left"))
    if expl.root_causes:
        parts.append(heading("Root causes"))
        for rc in expl.root_causes:
            parts += root_cause_lines(rc)
    if expl.ties:
        parts.append(heading("Not separated by the evidence"))
        for tie in expl.ties:
            parts += tie_lines(tie)
    if expl.propagation_path:
        chain = " -> ".join(plain(s) for s in path_services(expl.propagation_path))
        parts += [heading("Propagation path"), Text(chain, overflow="ellipsis")]
    if expl.evidence:
        shown = shown_evidence(expl)
        more = f", the {len(shown)} cited or ranked first shown" if len(shown) < len(expl.evidence) else ""
        parts.append(heading(f"Evidence ({len(expl.evidence)} items{more})"))
        parts += evidence_lines(shown)
        if more:
            ref = f"devmesh evidence {plain(expl.incident_id)}" if expl.incident_id else "--format json"
            parts.append(Text(f"… {len(expl.evidence) - len(shown)} more: {ref}", style="dim"))
    for rb in expl.runbooks:
        lines: list[RenderableType] = [Text(plain(rb.url), overflow="fold")] if rb.url else []
        lines += [Indented(Text(plain(step)), prefix=f"{n}. ") for n, step in enumerate(rb.steps, 1)]
        title = Text(plain(rb.title) + (" (draft)" if rb.draft else ""), no_wrap=True, overflow="ellipsis")
        parts.append(Panel(Group(*lines), title=title, title_align="left"))
    if expl.similar_incidents:
        parts.append(heading("Similar past incidents"))
        for inc in expl.similar_incidents:
            text = Text(f"{plain(inc.incident_id)} ({inc.similarity:.2f}): {plain(inc.summary)}")
            parts.append(Indented(text, prefix="- "))
    if expl.unsupported_claims:
        parts.append(heading("Unsupported claims", "bold red underline"))
        for c in expl.unsupported_claims:
            unknown = f" unknown ids: {', '.join(c.unknown_ids)}" if c.unknown_ids else ""
            parts.append(Indented(Text(plain(f"{c.where} ({c.reason}){unknown}: {c.text}", 300)), prefix="- "))
    for note in expl.notes:
        parts.append(Indented(Text(plain(note), style="dim"), prefix="Note: "))
    if expl.run:
        parts += [heading("Run"), one_line(f"{'agent':<9} {'tool':<26} {'status':<7} {'time':>9} {'items':>6}", "dim")]
        parts += step_lines(expl.run)
    if expl.timings:
        timings = ", ".join(f"{k} {v:.0f} ms" for k, v in expl.timings.items())
        parts.append(Indented(Text(timings, style="dim"), prefix="Timings: "))
    return Group(*parts)


def to_terminal(expl: Explanation, *, width: int = 100, color: bool = False) -> str:
    """The terminal report as a string (ANSI colours only with `color=True`)."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, no_color=not color, highlight=False)
    console.print(terminal_renderable(expl))
    return buf.getvalue()
