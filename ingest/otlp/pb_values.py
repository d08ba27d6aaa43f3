"""Protobuf AnyValue, attribute and id conversion: generated (upb) messages to plain Python values.

`pb_any` and `pb_attrs` turn AnyValue and KeyValue lists into the values stored in attribute columns
(bytes as base64 text, non-finite doubles as their JSON-mapping names); `pb_id` turns trace/span id bytes
into hex. `MAX_DEPTH` bounds the nesting of array/kvlist values for both encodings.
"""

from __future__ import annotations

import base64
from typing import Any

from ingest.otlp.column_text import nonfinite
from ingest.otlp.result import Invalid

MAX_DEPTH = 32
"""Deepest nesting of array/kvlist attribute values accepted."""


def pb_any(v: Any, depth: int = 0) -> Any:
    """An AnyValue message as a plain Python value (bytes as base64 text)."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind is None:
        return None
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        d = v.double_value
        return d if d - d == 0 else nonfinite(d)
    if kind == "bool_value":
        return v.bool_value
    if depth >= MAX_DEPTH:
        raise Invalid(f"attribute value nested deeper than {MAX_DEPTH} levels")
    if kind == "array_value":
        return [pb_any(x, depth + 1) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: pb_any(kv.value, depth + 1) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    return None  # string_value_strindex: only meaningful inside profiles


def pb_attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        if v.WhichOneof("value") == "string_value":
            out[kv.key] = v.string_value
        else:
            out[kv.key] = pb_any(v)
    return out


def pb_id(b: bytes, n_bytes: int, name: str) -> str:
    if not b:
        return ""
    if len(b) != n_bytes:
        raise Invalid(f"{name} must be {n_bytes} bytes, got {len(b)}")
    return b.hex()
