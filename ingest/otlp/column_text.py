"""How decoded values become column text (the "JSON output" of the OTLP decoders).

`dumps` gives the compact, key-sorted JSON stored in meta/attributes columns, `render` the text of a
single value, `nonfinite` the spelling of NaN and the infinities (JSON has none), and `check_text`
rejects strings that cannot be stored as UTF-8 (lone surrogates from JSON escapes).
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from ingest.otlp.result import Invalid


def dumps(value: Any) -> str:
    """Compact, key-sorted JSON text (the canonical form stored in meta/attributes columns)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError as exc:  # lone surrogates from JSON escapes
        raise Invalid(f"attributes cannot be stored as JSON text: {exc}") from None


def render(value: Any) -> str:
    """A value as column text: strings as they are, '' for nothing, anything else as compact JSON."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    return dumps(value)


def nonfinite(d: float) -> str:
    # JSON has no NaN/Infinity; store them as the strings the protobuf JSON mapping uses.
    return "NaN" if math.isnan(d) else ("Infinity" if d > 0 else "-Infinity")


def check_text(*texts: str) -> None:
    """Reject lone surrogates (from JSON \\ud800 escapes): they cannot be stored as UTF-8."""
    for t in texts:
        if not t.isascii():
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:
                raise Invalid("a string is not valid UTF-8 (lone surrogate escape)") from None
