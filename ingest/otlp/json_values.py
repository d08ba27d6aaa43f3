"""OTLP/JSON value coercion: the `j_*` readers of scalar fields and the AnyValue/attribute readers.

Each `j_*` function takes a field as the stdlib `json` module returned it, accepts what the protobuf JSON
mapping allows (64-bit integers as decimal strings, enums by number or name, NaN/Infinity as strings,
lowerCamelCase or proto snake_case names via `jget`), gives the default for an absent field, and raises
`Invalid` otherwise. `json_any` and `json_attrs` give the same Python values as `pb_any` and `pb_attrs`.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from ingest.otlp.column_text import nonfinite
from ingest.otlp.pb_values import MAX_DEPTH
from ingest.otlp.result import Invalid


def jget(d: dict[str, Any], camel: str, snake: str) -> Any:
    """A field by its lowerCamelCase name, or by its original proto (snake_case) name."""
    v = d.get(camel)
    return d.get(snake) if v is None else v


_U64_MAX = 2**64 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def j_u64(v: Any, name: str) -> int:
    """A (u)int64/fixed64 field: a JSON number or a decimal string; absent is 0."""
    t = type(v)
    if t is int:
        n = v
    elif t is str and v.isascii() and v.isdigit():
        n = int(v)
    elif v is None:
        return 0
    elif t is float and v.is_integer():
        n = int(v)
    else:
        raise Invalid(f"{name} must be an unsigned integer or a decimal string, got {v!r:.40}")
    if not 0 <= n <= _U64_MAX:
        raise Invalid(f"{name} {n} is outside the uint64 range")
    return n  # type: ignore[no-any-return]


def j_i64(v: Any, name: str) -> int:
    t = type(v)
    if t is int:
        n = v
    elif t is str and v.lstrip("-").isascii() and v.lstrip("-").isdigit() and v.count("-") <= 1:
        n = int(v)
    elif v is None:
        return 0
    elif t is float and v.is_integer():
        n = int(v)
    else:
        raise Invalid(f"{name} must be an integer or a decimal string, got {v!r:.40}")
    if not _I64_MIN <= n <= _I64_MAX:
        raise Invalid(f"{name} {n} is outside the int64 range")
    return n  # type: ignore[no-any-return]


_FLOAT_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def j_double(v: Any, name: str) -> float:
    t = type(v)
    if t is float or t is int:
        return float(v)
    if t is str:
        f = _FLOAT_NAMES.get(v)
        if f is not None:
            return f
        try:
            return float(v)
        except ValueError:
            pass
    elif v is None:
        return 0.0
    raise Invalid(f"{name} must be a number, got {v!r:.40}")


def j_str(v: Any, name: str) -> str:
    if type(v) is str:
        return v  # type: ignore[no-any-return]
    if v is None:
        return ""
    raise Invalid(f"{name} must be a string, got {type(v).__name__}")


def j_bool(v: Any, name: str) -> bool:
    if v is None:
        return False
    if type(v) is bool:
        return v
    raise Invalid(f"{name} must be true or false, got {v!r:.40}")


def j_enum(v: Any, names: dict[str, int], name: str) -> int:
    """An enum field: its number or its name."""
    if type(v) is int:
        return v  # type: ignore[no-any-return]
    if v is None:
        return 0
    if type(v) is str:
        n = names.get(v)
        if n is not None:
            return n
        raise Invalid(f"{name} {v!r:.60} is not a known value")
    raise Invalid(f"{name} must be an enum number or name, got {type(v).__name__}")


def j_list(v: Any, name: str) -> list[Any]:
    if type(v) is list:
        return v  # type: ignore[no-any-return]
    if v is None:
        return []
    raise Invalid(f"{name} must be a list, got {type(v).__name__}")


def j_obj(v: Any, name: str) -> dict[str, Any]:
    if type(v) is dict:
        return v  # type: ignore[no-any-return]
    if v is None:
        return {}
    raise Invalid(f"{name} must be an object, got {type(v).__name__}")


def j_hex_id(v: Any, n_bytes: int, name: str) -> str:
    """A trace/span id: hex text (OTLP/JSON does not use base64 for ids), lowercased; '' when absent."""
    if v is None or v == "":
        return ""
    if type(v) is not str:
        raise Invalid(f"{name} must be a hex string, got {type(v).__name__}")
    if len(v) != 2 * n_bytes:
        raise Invalid(f"{name} must be {2 * n_bytes} hex characters, got {len(v)}")
    try:
        b = bytes.fromhex(v)
    except ValueError:
        raise Invalid(f"{name} {v!r:.70} is not hex") from None
    if len(b) != n_bytes:  # fromhex skips spaces
        raise Invalid(f"{name} {v!r:.70} is not hex")
    return b.hex()


_ANY_KINDS = {
    "stringValue": "s",
    "string_value": "s",
    "intValue": "i",
    "int_value": "i",
    "doubleValue": "d",
    "double_value": "d",
    "boolValue": "b",
    "bool_value": "b",
    "arrayValue": "a",
    "array_value": "a",
    "kvlistValue": "k",
    "kvlist_value": "k",
    "bytesValue": "y",
    "bytes_value": "y",
}


def json_any(v: Any, depth: int = 0) -> Any:
    """An OTLP/JSON AnyValue object as the same Python value `pb_any` gives."""
    if type(v) is not dict:
        if v is None:
            return None
        raise Invalid(f"an attribute value must be an AnyValue object, got {type(v).__name__}")
    for key, x in v.items():
        kind = _ANY_KINDS.get(key)
        if kind is None or x is None:
            continue
        if kind == "s":
            if type(x) is str:
                return x
            raise Invalid(f"stringValue must be a string, got {type(x).__name__}")
        if kind == "i":
            return j_i64(x, "intValue")
        if kind == "d":
            d = j_double(x, "doubleValue")
            return d if d - d == 0 else nonfinite(d)
        if kind == "b":
            return j_bool(x, "boolValue")
        if depth >= MAX_DEPTH:
            raise Invalid(f"attribute value nested deeper than {MAX_DEPTH} levels")
        if kind == "a":
            return [json_any(e, depth + 1) for e in j_list(j_obj(x, "arrayValue").get("values"), "values")]
        if kind == "k":
            return json_attrs(j_obj(x, "kvlistValue").get("values"), depth + 1)
        return _b64_normal(x)
    return None


def _b64_normal(x: Any) -> str:
    if type(x) is not str:
        raise Invalid("bytesValue must be a base64 string")
    s = x.replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("bytesValue is not base64") from None
    return base64.b64encode(raw).decode("ascii")


def json_attrs(v: Any, depth: int = 0) -> dict[str, Any]:
    """A JSON list of KeyValue objects as a dict."""
    if v is None:
        return {}
    if type(v) is not list:
        raise Invalid(f"attributes must be a list of key/value objects, got {type(v).__name__}")
    out: dict[str, Any] = {}
    for kv in v:
        if type(kv) is not dict:
            raise Invalid("each attribute must be an object with a string 'key'")
        key = kv.get("key")
        if type(key) is not str:
            raise Invalid("each attribute must be an object with a string 'key'")
        val = kv.get("value")
        if type(val) is dict:
            sv = val.get("stringValue")
            if type(sv) is str:
                out[key] = sv
                continue
        out[key] = json_any(val, depth)
    return out
