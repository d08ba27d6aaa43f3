"""An Explanation as Markdown (MCP, chat webhooks, `devmesh explain --format markdown`).

Evidence text and names come from telemetry: they are escaped so that they cannot add links, HTML or
table cells.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agents.explain_fallback import path_services
from api.render.text import mode_line, plain
from core.explanation import Explanation

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<#|~])")
_MD_LINE_START = re.compile(r"^([>+=-])")
EVIDENCE_TEXT_CHARS = 240


def md(text: str, limit: int | None = None) -> str:
    """Untrusted text for a Markdown paragraph or table cell."""
    return _MD_LINE_START.sub(r"\\\1", _MD_SPECIAL.sub(r"\\\1", plain(text, limit)))


def code(text: str) -> str:
    return "`" + plain(text).replace("`", "'") + "`"


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
    if expl.ties:
        out += ["", "## Not separated by the evidence", ""]
        for tie in expl.ties:
            names = ", ".join(f"**{md(s)}**" for s in tie.services)
            out.append(f"- {names}: about {tie.confidence:.0%} each; what would separate them:")
            out += [f"  - {md(sep.text)}" for sep in tie.separators]
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
