"""JSON Schema's own types for request models, so a model accepts exactly what its published schema allows.

Pydantic's lax mode reads "5" as an integer and 0 as false, which the schema (integer, boolean) forbids; its
strict mode refuses 5.0, which JSON Schema counts as an integer. `json_integer` is JSON Schema's integer (a
number with no fraction, never a string or a boolean): use it as a `mode="before"` field validator on `int`
fields, which keeps their constraints in the schema (an `Annotated` validator would drop them); `JsonBool`
is JSON Schema's boolean (true or false).
"""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator, StrictBool


def json_integer(value: Any) -> Any:
    """`value` as JSON Schema's integer: an int, or a float with no fraction; None passes; else refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a valid integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("Input should be a valid integer, got a number with a fractional part")
        return int(value)
    return value


JsonBool = StrictBool


def strip_text(value: Any) -> Any:
    """A string without its surrounding white space; anything else as it is."""
    return value.strip() if isinstance(value, str) else value


StripText = BeforeValidator(strip_text)
"""Put after `Query(pattern=...)` (or use `strip_text` as a `mode="before"` field validator) on a patterned
text field. A schema's `^...$` pattern also matches a text with one trailing newline under Python's `re` (what
schemathesis and Hypothesis generate from), but not under pydantic's regex engine: without the strip, a
request the published schema allows ("2023-01-29\\n") would be refused. Surrounding blanks mean nothing in a
time or a level, so they are dropped before the pattern is checked."""
