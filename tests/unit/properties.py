"""Shared pieces of the property-based parser tests: the settings profile and hostile-input strategies.

`PROFILE` keeps them deterministic and bounded for CI: a fixed number of examples, derandomized (the
same examples every run), no deadline (the machine is noisy), no example database written to disk.
Run them alone with `pytest tests/unit/test_parsers_properties.py tests/unit/test_otlp_properties.py`.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROFILE = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Any text, lone surrogates and NULs included (Hypothesis leaves surrogates out unless asked).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["", "\ud800", "x\udfffy", "\x00", "NaN", "Infinity", "-0", "1e400", "9" * 5000, " ", "\n"]
)
# Text that survives the parsers' cleaning unchanged (no NULs, no lone surrogates, no line breaks).
clean_text = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp"), exclude_characters="\x00"), min_size=1, max_size=30
)
word = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
hex_id = st.binary(min_size=16, max_size=16).filter(any).map(bytes.hex)
span_hex = st.binary(min_size=8, max_size=8).filter(any).map(bytes.hex)

hostile_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 2**63, 2**64, -(2**63) - 1, 10**30, 1e308, -1e308]),
)
json_leaf = st.one_of(st.none(), st.booleans(), hostile_numbers, any_text)
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4), max_leaves=20
)


def dumps(value: Any) -> bytes:
    """JSON bytes the way a careless client writes them: NaN and Infinity left in, surrogates escaped."""
    return json.dumps(value, allow_nan=True).encode()


def deep(n: int, open_: str = "[", close: str = "]") -> str:
    return open_ * n + close * n


HOSTILE_DOCS = [
    b"",
    b"   ",
    b"null",
    b"[]",
    b"{}",
    b"\xff\xfe\x00",
    deep(100_000).encode(),
    ('{"a":' * 50_000 + "1" + "}" * 50_000).encode(),
    b'{"timestamp": ' + b"9" * 5000 + b', "message": "m"}',
    b'{"events": [{"timestamp": 1e23, "message": "m"}]}',
    b'{"events": [{"timestamp": NaN, "message": "m"}]}',
    b'{"events": [{"timestamp": "99999-01-01T00:00:00Z", "message": "m"}]}',
    b'{"events": [{"timestamp": "\\ud800", "message": "\\udfff"}]}',
]
"""Hand-written bodies every JSON reader meets as `@example`s: empty, not UTF-8, nested 100,000 deep,
a 5,000-digit number, a timestamp of 1e23, NaN, year 99999, lone surrogates."""
