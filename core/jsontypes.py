"""JSON Schema's own types for request models, so a model accepts exactly what its published schema allows.

Pydantic's lax mode reads "5" as an integer and 0 as false, which the schema (integer, boolean) forbids; its
strict mode refuses 5.0, which JSON Schema counts as an integer. `json_integer` is JSON Schema's integer (a
number with no fraction, never a string or a boolean): use it as a `mode="before"` field validator on `int`
fields, which keeps their constraints in the schema (an `Annotated` validator would drop them); `JsonBool`
is JSON Schema's boolean (true or false).
"""

from __future__ import annotations

from typing import Any

from pydantic import StrictBool


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
