"""Keyword search over log templates and lines in the event store: what `/search/logs` answers (mode
`text_fallback`) while the vector store or the embedder is down, so a search degrades instead of failing.

The score, as the answer's note and the OpenAPI schema say:

- the query is cut into tokens: runs of letters and digits, lower-cased, at least 2 characters, a few common
  English words dropped (unless nothing else is left), the first `MAX_TOKENS` distinct ones kept;
- a template matches a token when the token occurs (case-insensitive, as a substring: "refuse" matches
  "refused") in the template's text or in at least one of its lines under the filters;
- score = tokens matched / tokens (0 to 1); ties go to the template with the newest line, then the most lines.

Counts and examples are the same as in semantic mode: the template's lines under the filters, its newest ones.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retrieval.events import EventStore, LogQuery
    from retrieval.events.keyword import KeywordMatch

MAX_TOKENS = 8
"""Tokens of a query that count (each is one substring test per stored line under the filters)."""
MIN_TOKEN = 2
_TOKEN = re.compile(r"[^\W_]+")
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "with",
    ]
)
TEXT_SCORE = (
    "the share of the query's words (lower-cased runs of letters and digits, common English words dropped, "
    f"at most {MAX_TOKENS}) found, case-insensitively, in the template's text or in one of its lines under the "
    "filters; ties go to the newest line, then the most lines"
)


def query_tokens(text: str) -> list[str]:
    """The tokens of `text` that the keyword search looks for (module doc), in the order they come."""
    words = [w for w in _TOKEN.findall(text.lower()) if len(w) >= MIN_TOKEN]
    kept = [w for w in words if w not in STOP_WORDS] or words
    return list(dict.fromkeys(kept))[:MAX_TOKENS]


def keyword_matches(
    text: str, filters: LogQuery, *, events: EventStore, limit: int
) -> tuple[list[str], list[KeywordMatch]]:
    """The query's tokens, and the templates matching them under `filters`, best first (at most `limit`)."""
    tokens = query_tokens(text)
    return tokens, events.keyword_templates(tokens, filters, limit=limit)
