"""Explanations as Slack Block Kit, within Slack's limits, and the block builders every Slack answer uses.

Limits kept (Slack rejects a message over them): 50 blocks a message, 3000 characters of section text,
150 of a header, 10 context elements, 75 characters of button and option text, 2000 of a button value,
150 of an option value, 255 of a block id. Text from telemetry is untrusted: control characters are
removed and `&`, `<`, `>` escaped, so it cannot mention people (`<!channel>`), add links or break
out of a code block.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from agents.explain_fallback import path_services
from api.render.text import mode_line, plain
from core.explanation import Explanation, RunbookLink

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_OPTIONS = 100
MAX_BLOCK_ID = 255
MAX_FALLBACK_TEXT = 3000

EVIDENCE_SHOWN = 8
EVIDENCE_TEXT_CHARS = 200

FEEDBACK_BLOCK_PREFIX = "devmesh_feedback:"
ACTION_RIGHT = "devmesh_feedback_right"
ACTION_WRONG = "devmesh_feedback_wrong"
ACTION_ACTUAL = "devmesh_feedback_actual"

Block = dict[str, Any]


# -- text ----------------------------------------------------------------------------------------


def esc(text: str, limit: int | None = None) -> str:
    """Untrusted text for mrkdwn: one line, no control characters, `&<>` escaped, cut to `limit`."""
    return _escape(plain(text, limit))


def esc_multiline(text: str, limit: int | None = None) -> str:
    lines = [plain(line) for line in text.splitlines()]
    out = "\n".join(lines)
    if limit is not None and len(out) > limit:
        out = out[: limit - 1] + "…"
    return _escape(out)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """Inline code of untrusted text (backticks cannot close it)."""
    return "`" + esc(text).replace("`", "'") + "`"


def link(url: str, label: str) -> str:
    """A mrkdwn link for http(s) URLs; anything else is shown as escaped text."""
    u = plain(url).strip()
    if not u.lower().startswith(("http://", "https://")):
        return esc(label) + (f" ({esc(u)})" if u else "")
    for ch, rep in (("|", "%7C"), ("<", "%3C"), (">", "%3E"), (" ", "%20")):
        u = u.replace(ch, rep)
    return f"<{u}|{esc(label).replace('|', '¦')}>"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- blocks ----------------------------------------------------------------------------------------


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": _cut(plain(text) or "DevMesh", MAX_HEADER_TEXT)}}


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_SECTION_TEXT)}}


def context(*texts: str) -> Block:
    elements = [{"type": "mrkdwn", "text": _cut(t, MAX_SECTION_TEXT)} for t in texts if t][:MAX_CONTEXT_ELEMENTS]
    return {"type": "context", "elements": elements}


def sections(title: str, lines: Iterable[str]) -> list[Block]:
    """`title` and `lines` packed into as few sections as the 3000-character limit allows."""
    out: list[Block] = []
    current = f"*{title}*" if title else ""
    for line in lines:
        line = _cut(line, MAX_SECTION_TEXT - 2)
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > MAX_SECTION_TEXT:
            out.append(section(current))
            current = line
        else:
            current = candidate
    if current:
        out.append(section(current))
    return out


def code_sections(title: str, lines: Sequence[str]) -> list[Block]:
    """Lines in code blocks (``` fences), split to fit; the lines must already be escaped."""
    budget = MAX_SECTION_TEXT - len(title) - 20
    chunks: list[list[str]] = [[]]
    size = 0
    for line in lines:
        line = _cut(line.replace("```", "'''"), budget)
        if chunks[-1] and size + len(line) + 1 > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line) + 1
    out: list[Block] = []
    for i, chunk in enumerate(chunks):
        fence = "```\n" + "\n".join(chunk) + "\n```"
        out.append(section(f"*{title}*\n{fence}" if i == 0 else fence))
    return out


def fit(blocks: list[Block], *, note: str = "") -> list[Block]:
    """At most 50 blocks: trailing actions kept, the overflow replaced by a context note."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    tail = [b for b in blocks[-1:] if b.get("type") == "actions"]
    body = blocks[: MAX_BLOCKS - 1 - len(tail)]
    dropped = len(blocks) - len(tail) - len(body)
    return [*body, context(f"_{dropped} more blocks not shown._ {note}".strip()), *tail]


# -- explanations ------------------------------------------------------------------------------------


def title_of(expl: Explanation) -> str:
    if expl.incident_id:
        return f"Incident {expl.incident_id}"
    if expl.root_causes:
        return f"Explanation: {expl.root_causes[0].service}"
    return "Explanation"


def fallback_text(expl: Explanation) -> str:
    """The message `text` (notifications, screen readers): title, then the summary."""
    top = expl.root_causes[0] if expl.root_causes else None
    cause = f" Top cause: {esc(top.service)} ({top.confidence:.0%})." if top else ""
    return _cut(f"{esc(title_of(expl))}: {esc(expl.summary)}{cause}", MAX_FALLBACK_TEXT)


def _window_text(expl: Explanation) -> str:
    return f"Window {expl.window.start} to {expl.window.end}" if expl.window else ""


def cause_lines(expl: Explanation, *, reasoning: bool = True) -> list[str]:
    lines = []
    for rc in expl.root_causes:
        pod = f" ({esc(rc.pod)})" if rc.pod else ""
        kind = rc.fault_kind.value.replace("_", " ")
        line = f"{rc.rank}. *{esc(rc.service)}*{pod} · {rc.confidence:.0%} · {kind}"
        if reasoning and rc.reasoning:
            line += f"\n      {esc(rc.reasoning, 600)}"
        lines.append(line)
    return lines


def evidence_lines(expl: Explanation, ids: Iterable[str] | None = None, *, limit: int = EVIDENCE_SHOWN) -> list[str]:
    """Evidence bullets: the cited items first (or only `ids`), at most `limit`."""
    by_id = {e.id: e for e in expl.evidence}
    order = list(ids) if ids is not None else [*expl.summary_evidence_ids, *sorted(expl.cited_ids()), *by_id]
    seen: set[str] = set()
    lines: list[str] = []
    for eid in order:
        item = by_id.get(eid)
        if item is None or eid in seen:
            continue
        seen.add(eid)
        bits = [code(item.id)]
        bits += [item.time] if item.time else []
        bits += [esc(item.service)] if item.service else []
        lines.append("• " + " · ".join(bits) + f": {esc(item.text, EVIDENCE_TEXT_CHARS)}")
        if len(lines) >= limit:
            break
    rest = len([i for i in by_id if i not in seen]) if ids is None else 0
    if rest:
        lines.append(f"_…and {rest} more evidence items_")
    return lines


def runbook_blocks(runbooks: Sequence[RunbookLink]) -> list[Block]:
    out: list[Block] = []
    for rb in runbooks:
        title = link(rb.url, rb.title) if rb.url else esc(rb.title)
        lines = [f"{n}. {esc(step, 500)}" for n, step in enumerate(rb.steps, 1)]
        out += sections(f"📘 {title}{' (draft)' if rb.draft else ''}", lines)
    return out


def feedback_block(expl: Explanation) -> Block | None:
    """Right cause / wrong cause buttons and an 'it was…' menu; None when there is nothing to rate."""
    if not expl.incident_id or not expl.root_causes:
        return None
    block_id = FEEDBACK_BLOCK_PREFIX + expl.incident_id
    top = expl.root_causes[0].service
    if len(block_id) > MAX_BLOCK_ID or len(top) > MAX_BUTTON_VALUE:
        return None
    elements: list[Block] = [
        _button(ACTION_RIGHT, f"Right cause: {top}", top, "primary"),
        _button(ACTION_WRONG, "Wrong cause", top, "danger"),
    ]
    others = [rc.service for rc in expl.root_causes[1:] if len(rc.service) <= MAX_OPTION_VALUE]
    if others:
        options = [
            {"text": {"type": "plain_text", "text": _cut(plain(s), MAX_OPTION_TEXT)}, "value": s}
            for s in dict.fromkeys(others)
        ][:MAX_OPTIONS]
        elements.append(
            {
                "type": "static_select",
                "action_id": ACTION_ACTUAL,
                "placeholder": {"type": "plain_text", "text": "It was another cause…"},
                "options": options,
            }
        )
    return {"type": "actions", "block_id": block_id, "elements": elements}


def _button(action_id: str, text: str, value: str, style: str) -> Block:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": _cut(plain(text), MAX_BUTTON_TEXT)},
        "value": value,
        "style": style,
    }


def explanation_blocks(expl: Explanation, *, feedback: bool = True) -> list[Block]:
    """The whole answer: summary, top causes with confidence, evidence, runbooks, feedback buttons."""
    blocks: list[Block] = [header(title_of(expl))]
    status = "*insufficient evidence*" if expl.status != "ok" else ""
    blocks.append(context(esc(mode_line(expl), 300), esc(_window_text(expl)), status))
    blocks.append(section(f"*Summary*\n{esc_multiline(expl.summary, MAX_SECTION_TEXT - 20)}"))
    if expl.root_causes:
        blocks += sections("Top causes", cause_lines(expl))
    if expl.propagation_path:
        chain = " → ".join(esc(s) for s in path_services(expl.propagation_path))
        blocks.append(section(f"*Propagation*: {chain}"))
    if expl.evidence:
        blocks += sections("Evidence", evidence_lines(expl))
    if expl.runbooks:
        blocks.append({"type": "divider"})
        blocks += runbook_blocks(expl.runbooks)
    if expl.similar_incidents:
        similar = [
            f"{code(s.incident_id)} ({s.similarity:.2f}){' root cause ' + esc(s.root_cause) if s.root_cause else ''}"
            for s in expl.similar_incidents[:5]
        ]
        blocks.append(context("Similar past incidents: " + "; ".join(similar)))
    notes = [esc(n, 300) for n in expl.notes[:3]]
    if expl.unsupported_claims:
        notes.append(f"{len(expl.unsupported_claims)} unsupported claim(s) of the language model left out or trimmed")
    if notes:
        blocks.append(context(*notes))
    fb = feedback_block(expl) if feedback else None
    if fb is not None:
        blocks.append(fb)
    full = f"The full report: `devmesh explain {esc(expl.incident_id)}`." if expl.incident_id else ""
    return fit(blocks, note=full)


def why_blocks(expl: Explanation) -> list[Block]:
    """Why each cause was ranked where it is, with the evidence it cites."""
    blocks: list[Block] = []
    for rc in expl.root_causes[:5]:
        lines = [f"{rc.confidence:.0%} · {rc.fault_kind.value.replace('_', ' ')}"]
        if rc.reasoning:
            lines.append(esc(rc.reasoning, 1000))
        lines += evidence_lines(expl, rc.evidence_ids, limit=5) or ["_no evidence cited_"]
        blocks += sections(f"{rc.rank}. Why {esc(rc.service)}", lines)
    if not blocks:
        blocks.append(section(f"*Summary*\n{esc_multiline(expl.summary, MAX_SECTION_TEXT - 20)}"))
    blocks.append(context(esc(mode_line(expl), 300)))
    return fit(blocks)


def answer_blocks(expl: Explanation) -> list[Block]:
    """A short answer to a free question: the summary and the top causes."""
    blocks = [section(esc_multiline(expl.summary, MAX_SECTION_TEXT))]
    if expl.root_causes:
        blocks += sections("Top causes", cause_lines(expl, reasoning=False)[:5])
    blocks.append(context(esc(mode_line(expl), 300)))
    return fit(blocks)


def check_blocks(blocks: Sequence[Block]) -> list[str]:
    """Problems Slack would reject the blocks for (used by tests and the fake Slack server)."""
    problems = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks > {MAX_BLOCKS}")
    for i, b in enumerate(blocks):
        text = (b.get("text") or {}).get("text", "")
        if b.get("type") == "section" and len(text) > MAX_SECTION_TEXT:
            problems.append(f"block {i}: section text {len(text)} > {MAX_SECTION_TEXT}")
        if b.get("type") == "header" and len(text) > MAX_HEADER_TEXT:
            problems.append(f"block {i}: header text {len(text)} > {MAX_HEADER_TEXT}")
        if b.get("type") == "context" and len(b.get("elements", [])) > MAX_CONTEXT_ELEMENTS:
            problems.append(f"block {i}: {len(b['elements'])} context elements > {MAX_CONTEXT_ELEMENTS}")
        if len(b.get("block_id", "")) > MAX_BLOCK_ID:
            problems.append(f"block {i}: block_id longer than {MAX_BLOCK_ID}")
        for el in b.get("elements", []) if b.get("type") == "actions" else []:
            if len(el.get("text", {}).get("text", "")) > MAX_BUTTON_TEXT:
                problems.append(f"block {i}: button text longer than {MAX_BUTTON_TEXT}")
            if len(el.get("value", "")) > MAX_BUTTON_VALUE:
                problems.append(f"block {i}: button value longer than {MAX_BUTTON_VALUE}")
            for opt in el.get("options", []):
                if len(opt["text"]["text"]) > MAX_OPTION_TEXT or len(opt["value"]) > MAX_OPTION_VALUE:
                    problems.append(f"block {i}: option text or value too long")
    return problems
