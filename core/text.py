"""The one sanitizer for untrusted text (log lines, span names, alert and runbook text).

`strip_unsafe` takes out every character that can hide, reorder or spoof what a reader (a person at a
terminal, a Markdown viewer, a language model) sees, while leaving the words alone:

- C0 controls other than tab, line feed and carriage return (ANSI escapes start with ESC, U+001B),
  DEL and the C1 controls (U+0080-U+009F);
- zero-width characters (U+200B-U+200D, U+2060-U+2064, the BOM U+FEFF) and the invisible operators;
- bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069) and the line and
  paragraph separators U+2028, U+2029;
- lone surrogates (U+D800-U+DFFF), which cannot be written as UTF-8.

Tab, line feed and carriage return are kept: each caller lays lines out its own way (one line per
data block, a space in a table cell, a token break in a log template).
"""

from __future__ import annotations

import re

UNSAFE = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)
"""The characters `strip_unsafe` takes out (module doc)."""


def strip_unsafe(text: str, replacement: str = "") -> str:
    """`text` without control, zero-width, bidi and lone-surrogate characters (module doc).

    `replacement` is put in place of each one: "" (the default) removes them; " " keeps words that
    they separated apart; "\\ufffd" leaves a visible mark where one was (log templates do that, so
    that a template shows where its lines held something unprintable).
    """
    return UNSAFE.sub(replacement, text)
