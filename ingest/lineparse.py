"""Generic parsing of a log line's head: a leading timestamp and a severity word."""

from __future__ import annotations

import re

from core.naming import normalize_level

_HEAD = re.compile(
    r"^\s*"
    r"(?:\[?(?:\d{4}[-/]\d{2}[-/]\d{2}[T ])?\d{1,2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?\]?\s+)?"
    r"(?:\[?(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|SEVERE|CRITICAL|FATAL|PANIC)\]?[:\s]\s*)",
    re.IGNORECASE,
)
_TIME_ONLY = re.compile(
    r"^\s*(?:\d{4}[-/]\d{2}[-/]\d{2}[T ])?\d{1,2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?\s+"
)
_ERRORISH = re.compile(r"\b(?:exception|error|failed|failure|fatal|panic|traceback|refused|timed? ?out)\b", re.I)


def split_head(line: str) -> tuple[str | None, str]:
    """('ERROR', rest) for '16:42:22.418 ERROR f.s.Foo#302 ...'; (None, line minus time) without a level."""
    m = _HEAD.match(line)
    if m:
        return normalize_level(m.group("level")), line[m.end() :].rstrip("\n")
    t = _TIME_ONLY.match(line)
    if t:
        return None, line[t.end() :].rstrip("\n")
    return None, line.rstrip("\n")


def looks_like_error(message: str) -> bool:
    """True when a line without a level reads like an error (for sources that give no severity)."""
    return _ERRORISH.search(message) is not None
