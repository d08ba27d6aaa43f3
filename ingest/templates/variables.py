"""Masking of variable parts of log lines, in two stages.

`mask_fast` runs on every line: one regular expression that replaces each word holding a digit
(numbers, IPs, ids, hex, versions, timestamps) with `<*>`. Its result is the key of the miner's
exact-line cache, so it has to be cheap: one pass of one pattern (about 10 us for a 300-char line).

`normalize` runs only when that key is new. It works on the masked text and goes further: dates
written with month and day names, absolute paths (Unix and Windows), URLs, MAC-like hex pairs, long
hex words, and runs of variables joined by `:.-/` become one `<*>` each; control, zero-width and
bidi characters and lone surrogates (`core.text.strip_unsafe`) become U+FFFD, so that template text
is always valid UTF-8 and shows where a line held something unprintable. It returns the tokens (split on white
space) that the miner groups.

Nothing here is specific to one system: the patterns describe kinds of values, not products.
"""

from __future__ import annotations

import re

from core.text import strip_unsafe

WILDCARD = "<*>"

# A word (from a word boundary) made of letters/underscore up to a digit, then any word characters,
# dots, dashes and slashes. Possessive loops keep it linear.
_FAST = re.compile(r"\b[A-Za-z_]*+\d[\w.\-/]*+")

_W = r"<\*>"
_MON = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*\.?"
_HEXPAIR = rf"(?:[0-9A-Fa-f]{{2}}|{_W})"

_NORMALIZE = re.compile(
    "|".join(
        [
            # MAC-like: FF:<*>:9F:<*>:... (digits already masked)
            rf"(?<![\w:]){_HEXPAIR}(?:[:-]{_HEXPAIR}){{3,}}(?![\w:])",
            # URL
            r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s,;\"'<>()\[\]{}]+",
            # absolute path with two or more segments
            r"(?<![\w./<>*])/[\w.\-]+(?:/[\w.\-<>*]*)+",
            # Windows path (drive letter)
            r"\b[A-Za-z]:\\[^\s,;\"'()\[\]{}]*",
            # long hex word without digits (rare ids)
            r"\b[0-9a-fA-F]{16,}\b",
        ]
    )
)
# Variables glued by separators (IP:port, times, dates): one variable.
_JOINED = re.compile(rf"{_W}(?:[:.\-/,@#+]*{_W})+")
# Dates written with names: [Fri] Jun <*> [<*>] [PDT] [<*>]
_NAMED_DATE = re.compile(rf"\b(?:{_DAY},?\s+)?{_MON},?\s+{_W}(?:,?\s+{_W})*(?:\s+[A-Z]{{2,5}}\s+{_W})?(?![\w*])")


def mask_fast(text: str) -> str:
    """Replace every word holding a digit with `<*>` (the cache key of a line)."""
    return _FAST.sub(WILDCARD, text)


def normalize(masked: str) -> list[str]:
    """Tokens of a masked line after the slower, rarer masks (see module doc)."""
    text = strip_unsafe(masked, "\ufffd")
    text = _NORMALIZE.sub(WILDCARD, text)
    text = _JOINED.sub(WILDCARD, text)
    text = _NAMED_DATE.sub(WILDCARD, text)
    return text.split()
