"""Untrusted text (log lines, span names, alert text, runbook steps) as delimited data for prompts.

Every piece of data goes into a prompt as one line, `<tag attr="...">text</tag>`, where `tag` is one
of `DATA_TAGS`. The text is made inert before that:

- NFKC normalization (full-width look-alikes of `<` become `<`), then control, zero-width and
  bidirectional characters are removed and line breaks become the two characters `\\n`, so data
  never starts a line of the prompt;
- `&`, `<` and `>` are escaped as `&amp;`, `&lt;`, `&gt;`: no data can open or close a block or
  spell a model's special tokens (`<|im_start|>`, `</s>`, `<start_of_turn>`); `[INST]`-style markers
  become `(INST)`;
- an allow-list of inert tokens is put back: the template wildcard `<*>` and masking placeholders
  such as `<EMAIL_1>`;
- lengths are capped, with a visible `…[+N chars]` mark.

Attribute values (ids, service names) are escaped the same way and quoted. The model is told that
the blocks are data; code (`agents.citations`) checks every id it cites.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agents.masking import Masker
from core.explanation import EvidenceItem
from core.text import strip_unsafe

DATA_TAGS = ("evidence", "candidate", "signal", "runbook", "alert", "service")
DATA_BLOCK = re.compile(
    r"<(evidence|candidate|signal|runbook|alert|service)(?: [^<>\n]*)?>"
    r"(?:[^<\n]|<\*>|<(?:EMAIL|IP|SECRET|TOKEN|HOST)_\d{1,6}>)*</\1>"
)
"""One data block on one line (its text may hold the restored inert tokens `<*>`, `<EMAIL_1>`)."""

_NEWLINES = re.compile(r"\r\n|\r|\n")
_BRACKET_MARKERS = re.compile(
    r"\[(/?)(INST|SYS|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS|TOOL_OUTPUT)\]", re.IGNORECASE
)
_INERT = re.compile(r"&lt;(\*|(?:EMAIL|IP|SECRET|TOKEN|HOST)_\d{1,6})&gt;")


@dataclass(frozen=True)
class EvidenceLimits:
    max_items: int = 60
    max_text_chars: int = 600
    max_total_chars: int = 24_000
    compact: bool = False  # attributes: id, kind, time and service only (source, pod and score cost tokens)


@dataclass(frozen=True)
class RenderedEvidence:
    text: str = ""
    shown_ids: list[str] = field(default_factory=list)
    omitted_ids: list[str] = field(default_factory=list)
    truncated_ids: list[str] = field(default_factory=list)


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _NEWLINES.sub("\n", text).replace("\t", " ")
    text = strip_unsafe(text)
    return text


def escape_data(text: str, *, max_chars: int = 600, masker: Masker | None = None) -> str:
    """`text` made inert for the inside of a data block (see the module doc)."""
    if masker is not None:
        text = masker.mask(text)
    text = _clean(text)
    extra = len(text) - max_chars
    if extra > 0:
        text = text[:max_chars]
    text = html.escape(text, quote=False).replace("\n", "\\n")
    text = _BRACKET_MARKERS.sub(lambda m: f"({m.group(1)}{m.group(2)})", text)
    text = _INERT.sub(lambda m: f"<{m.group(1)}>", text)
    return text + (f" …[+{extra} chars]" if extra > 0 else "")


def escape_attr(value: object, *, max_chars: int = 200) -> str:
    """An attribute value: one line, quotes and angle brackets escaped, capped."""
    text = _clean(str(value)).replace("\n", " ")[:max_chars]
    return html.escape(text, quote=True)


def unescape_id(value: str) -> str:
    """An id as cited by the model (possibly in its escaped form) back to the stored id."""
    return html.unescape(value.strip())


def render_block(
    tag: str, attrs: Mapping[str, object], text: str, *, max_chars: int = 600, masker: Masker | None = None
) -> str:
    """One data block on one line. `tag` must be one of DATA_TAGS; empty attributes are left out."""
    if tag not in DATA_TAGS:
        raise ValueError(f"unknown data tag {tag!r}; use one of {DATA_TAGS}")
    parts = [tag] + [f'{k}="{escape_attr(v)}"' for k, v in attrs.items() if v not in (None, "")]
    return f"<{' '.join(parts)}>{escape_data(text, max_chars=max_chars, masker=masker)}</{tag}>"


def render_evidence(
    items: Sequence[EvidenceItem], *, limits: EvidenceLimits | None = None, masker: Masker | None = None
) -> RenderedEvidence:
    """Evidence items in the given order as data blocks, within the limits; the ids shown are citable."""
    limits = limits or EvidenceLimits()
    lines: list[str] = []
    shown: list[str] = []
    omitted: list[str] = []
    truncated: list[str] = []
    seen: set[str] = set()
    total = 0
    for item in items:
        if item.id in seen:
            continue
        seen.add(item.id)
        attrs = {
            "id": item.id,
            "kind": item.kind,
            "source": item.source.value,
            "time": item.time or "",
            "service": item.service,
            "pod": item.pod,
            "score": f"{item.score:.3g}" if item.score is not None else "",
        }
        if limits.compact:
            attrs = {k: attrs[k] for k in ("id", "kind", "time", "service")}
        line = render_block("evidence", attrs, item.text, max_chars=limits.max_text_chars, masker=masker)
        if len(shown) >= limits.max_items or total + len(line) > limits.max_total_chars:
            omitted.append(item.id)
            continue
        if len(item.text) > limits.max_text_chars:
            truncated.append(item.id)
        lines.append(line)
        shown.append(item.id)
        total += len(line) + 1
    return RenderedEvidence(text="\n".join(lines), shown_ids=shown, omitted_ids=omitted, truncated_ids=truncated)
