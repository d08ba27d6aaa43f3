"""The symptom text of an incident: what the vector searches look for.

Built from the ranking's strongest signals and the window's top error templates (or given by the
caller). It is only ever embedded, never sent to a language model as instructions; if shown to one,
render it as delimited data (`agents.evidence_text`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from core.naming import level_rank, normalize_level
from core.rca import RankingResult
from core.text import strip_unsafe

_PLACEHOLDER = re.compile(r"<\*>")
_SPACES = re.compile(r"\s+")


def as_data(lines: Sequence[str], *, max_chars: int = 2000, max_line: int = 300) -> str:
    """Lines of untrusted text made plain: no control or invisible characters, one line each, capped,
    repeats dropped."""
    out: list[str] = []
    for raw in lines:
        line = _SPACES.sub(" ", strip_unsafe(raw, " ")).strip()[:max_line]
        if line and line not in out:
            out.append(line)
    return "\n".join(out)[:max_chars]


def build_symptoms(
    ranking: RankingResult, error_templates: Sequence[Mapping[str, Any]], *, per_part: int = 5, max_chars: int = 2000
) -> str:
    """The ranking's strongest signals in their own words, then the window's top error templates
    (ERROR and above, or WARN when there are none), placeholders removed."""
    signals = list(ranking.signals) or [s for c in ranking.candidates for s in c.signals]
    lines = [s.description or f"{s.service} {s.kind.value} {s.key}" for s in signals[:per_part]]
    errors = [t for t in error_templates if level_rank(normalize_level(str(t.get("level", "")))) >= level_rank("ERROR")]
    for t in (errors or list(error_templates))[:per_part]:
        services = ", ".join(t.get("services") or [])
        text = _PLACEHOLDER.sub(" ", str(t.get("text", "")))
        lines.append(f"{services}: {text}" if services else text)
    return as_data(lines, max_chars=max_chars)
