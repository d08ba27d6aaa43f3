"""Values as the graph stores them: keys, strings, numbers and property maps checked and cleaned before
they travel as query parameters (InvalidInput names the field when one cannot be stored)."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from core.errors import InvalidInput

# FalkorDB 4.16's range index does not find string keys that begin or end with these characters
# (MERGE then makes a duplicate every time; measured, and see FalkorDB issues #1340, #647), so key
# values are stripped of them. Other properties are stored verbatim.
KEY_STRIP: Final = " \t\n\v\f\r\x01"
_PROP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT64 = 2**63


def clean_value(value: Any, *, field: str = "value") -> Any:
    """A value FalkorDB stores as given: NUL in strings becomes U+FFFD (the server cannot take NUL),
    non-finite floats become null, nested maps become JSON text."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise InvalidInput(f"{field}: integer {value} does not fit in 64 bits", field=field)
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [clean_value(v, field=field) for v in value]
    if isinstance(value, dict):
        return json.dumps(value, default=str, sort_keys=True).replace("\x00", "\ufffd")
    raise InvalidInput(f"{field}: cannot store a {type(value).__name__} in the graph", field=field)


def clean_props(props: dict[str, Any], *, where: str) -> dict[str, Any]:
    """Properties for `SET n += $props`: names must be plain identifiers."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        if not isinstance(key, str) or not _PROP_NAME.match(key):
            raise InvalidInput(
                f"{where}: property name {key!r} must be letters, digits and _ (not starting with a digit)",
                field=where,
            )
        out[key] = clean_value(value, field=f"{where}.{key}")
    return out


def clean_str(value: Any, field: str) -> str:
    """A string property as stored (NUL replaced); InvalidInput for anything but a string."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, got {type(value).__name__}", field=field)
    return clean_value(value)  # type: ignore[no-any-return]


def clean_key(value: Any, field: str = "key") -> str:
    """A node key as stored and looked up: a string, NUL replaced, edge whitespace stripped."""
    return clean_str(value, field).strip(KEY_STRIP)


def clean_number(value: Any, field: str, *, integer: bool = False) -> float | int:
    """A number property: an int when `integer`, else a float (non-finite becomes 0.0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{field} must be a number, got {value!r}", field=field)
    if integer:
        return int(value)
    return float(value) if math.isfinite(value) else 0.0
