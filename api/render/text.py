"""What every rendering shares: untrusted text as one plain line, the mode label, and the JSON form."""

from __future__ import annotations

from core.explanation import Explanation, ExplanationMode
from core.text import strip_unsafe


def plain(text: str, limit: int | None = None) -> str:
    """One line without control, zero-width or bidi characters (`core.text.strip_unsafe`), cut to `limit`
    characters with '…'."""
    text = strip_unsafe(text.replace("\r\n", " ").replace("\n", " ").replace("\r", "").replace("\t", " "))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def mode_line(expl: Explanation) -> str:
    """The label every rendering starts with."""
    if expl.mode is ExplanationMode.LLM:
        return f"Mode: llm ({expl.model}); every citation checked against the evidence"
    reason = f": {expl.fallback_reason}" if expl.fallback_reason else ""
    return f"Mode: evidence-only, built from the ranked candidates and the evidence alone{reason}"


def to_json(expl: Explanation, *, indent: int | None = 2) -> str:
    return expl.model_dump_json(indent=indent)
