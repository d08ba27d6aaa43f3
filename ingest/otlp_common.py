"""Shared pieces of the OTLP/HTTP decoders: the result type, value conversion, record walking.

Both encodings of a request walk to the same rows: the protobuf path reads the generated (upb) classes,
the JSON path reads what the stdlib `json` module returns; both hand the same Python values to the
per-signal column builders in `otlp_logs`, `otlp_traces` and `otlp_metrics`.

Record-level problems raise `Invalid` (internal): the walker counts the record as rejected and goes on.
Problems with the body as a whole raise `core.errors.InvalidInput` naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from core.errors import InvalidInput, UnsupportedMediaType
from core.timeutil import NS, check_sane

MAX_ERRORS = 10
"""How many rejection messages a batch keeps (the count covers all of them)."""

MAX_DEPTH = 32
"""Deepest nesting of array/kvlist attribute values accepted."""

JSON_MEDIA = "application/json"
PROTOBUF_MEDIA = "application/x-protobuf"
_PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})

# Leaf record types: one of these is what `rejected*` counts.
_LEAF_TYPES = frozenset(
    {
        "opentelemetry.proto.logs.v1.LogRecord",
        "opentelemetry.proto.trace.v1.Span",
        "opentelemetry.proto.metrics.v1.NumberDataPoint",
        "opentelemetry.proto.metrics.v1.HistogramDataPoint",
        "opentelemetry.proto.metrics.v1.ExponentialHistogramDataPoint",
        "opentelemetry.proto.metrics.v1.SummaryDataPoint",
    }
)


class Invalid(Exception):
    """One record cannot be accepted; the message says why (internal to the OTLP decoders)."""


@dataclass
class ParsedBatch:
    """Rows decoded from one OTLP request.

    rows: column name -> values, named like the event-store columns (no event_id), ready for pyarrow.
    rejected: records (log records, spans or data points) not accepted; the valid ones are in `rows`.
    errors: the first `MAX_ERRORS` reasons, each "where: why" with the record's path in the request.
    """

    rows: dict[str, list[Any]]
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.rows.values()), []))


class Rejects:
    """Counts rejected records and keeps the first `MAX_ERRORS` reasons."""

    def __init__(self) -> None:
        self.count = 0
        self.errors: list[str] = []

    def add(self, where: str, why: str, n: int = 1) -> None:
        self.count += n
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{where}: {why}")


class TimeBounds:
    """`core.timeutil.check_sane` with its bounds computed once per request."""

    def __init__(self, *, now_ns: int, min_year: int, max_future_skew_s: int) -> None:
        self.now_ns = now_ns
        self.min_year = min_year
        self.max_future_skew_s = max_future_skew_s
        self.low = int(datetime(min_year, 1, 1, tzinfo=UTC).timestamp()) * NS
        self.high = now_ns + max_future_skew_s * NS

    def check(self, ts: int, what: str) -> None:
        if self.low <= ts <= self.high:
            return
        why = check_sane(ts, min_year=self.min_year, max_future_skew_s=self.max_future_skew_s, now=self.now_ns)
        if why is not None:
            raise Invalid(f"{what} {ts}: {why}")


# ---------------------------------------------------------------------------------------------- media


class Columns:
    """The rows of one table being built from a request; a subclass validates one decoded record and
    appends its row (`add`), the same for both encodings."""

    names: tuple[str, ...] = ()

    def __init__(self, bounds: TimeBounds, *, from_json: bool) -> None:
        self.bounds = bounds
        self.from_json = from_json
        self.cols: dict[str, list[Any]] = {c: [] for c in self.names}


C = TypeVar("C", bound=Columns)


def parse_request(
    body: bytes | dict[str, Any],
    content_type: str,
    *,
    message: type[Message],
    columns: type[C],
    walk_json: Callable[[dict[str, Any], C, Rejects], None],
    walk_pb: Callable[[Any, C, Rejects], None],
    now_ns: int,
    min_year: int,
    max_future_skew_s: int,
) -> ParsedBatch:
    """Decode a request in either encoding and walk its records into `columns`; invalid records are
    counted in `rejected` and the rest kept; an undecodable body is InvalidInput."""
    bounds = TimeBounds(now_ns=now_ns, min_year=min_year, max_future_skew_s=max_future_skew_s)
    rej = Rejects()
    doc = request_doc(body, content_type)
    out = columns(bounds, from_json=isinstance(doc, dict))
    if isinstance(doc, dict):
        walk_json(doc, out, rej)
    else:
        walk_pb(decode_pb(message, doc, rej), out, rej)
    return ParsedBatch(rows=out.cols, rejected=rej.count, errors=rej.errors)


def media_kind(content_type: str | None) -> str:
    """'json' or 'protobuf' for an OTLP/HTTP Content-Type; anything else is a 415."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == JSON_MEDIA:
        return "json"
    if media in _PROTOBUF_TYPES:
        return "protobuf"
    raise UnsupportedMediaType(
        f"Content-Type {content_type!r} is not an OTLP/HTTP encoding; send {PROTOBUF_MEDIA} or {JSON_MEDIA}",
        field="content-type",
    )


def request_doc(body: bytes | dict[str, Any], content_type: str) -> dict[str, Any] | bytes:
    """The JSON document or the protobuf bytes of a request body (as `decode_body` returned it)."""
    if isinstance(body, dict):
        return body
    if media_kind(content_type) == "json":
        return load_json(body)
    return bytes(body)


def load_json(raw: bytes | str) -> dict[str, Any]:
    """The JSON object of an OTLP/JSON body, or InvalidInput(field='body')."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidInput(f"body is not valid JSON: {exc}", field="body") from None
    if type(doc) is not dict:
        raise InvalidInput(f"an OTLP/JSON body must be a JSON object, got {type(doc).__name__}", field="body")
    return doc


# ------------------------------------------------------------------------------------- JSON output


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


def _nonfinite(d: float) -> str:
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


# ------------------------------------------------------------------------------ protobuf AnyValue


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
        return d if d - d == 0 else _nonfinite(d)
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


# ---------------------------------------------------------------------------------- JSON values


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


def pb_id(b: bytes, n_bytes: int, name: str) -> str:
    if not b:
        return ""
    if len(b) != n_bytes:
        raise Invalid(f"{name} must be {n_bytes} bytes, got {len(b)}")
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
            return d if d - d == 0 else _nonfinite(d)
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


# -------------------------------------------------------------------------------------- resources

# Resource attributes that logs keep in `meta` (service/host/pod have their own columns).
RESOURCE_META_KEYS = (
    "deployment.environment.name",
    "deployment.environment",
    "service.namespace",
    "service.version",
    "k8s.namespace.name",
    "container.name",
)


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    service: str
    host: str
    pod: str
    extras: dict[str, Any]


def resource_info(attrs: dict[str, Any]) -> ResourceInfo:
    host = attrs.get("host.name")
    if host is None or host == "":
        host = attrs.get("k8s.node.name")
    return ResourceInfo(
        service=render(attrs.get("service.name")),
        host=render(host),
        pod=render(attrs.get("k8s.pod.name")),
        extras={k: attrs[k] for k in RESOURCE_META_KEYS if k in attrs},
    )


# ------------------------------------------------------------------------------------ walking

Index = tuple[int, int, int]
Leaf = tuple[ResourceInfo, str, Index, Any]
Counter = Callable[[Any], int]  # how many leaf records a list of records holds


def path(names: tuple[str, str, str], idx: Index, *more: str) -> str:
    p = f"{names[0]}[{idx[0]}].{names[1]}[{idx[1]}].{names[2]}[{idx[2]}]"
    return ".".join((p, *more)) if more else p


def pb_leaves(
    req: Message, fields: tuple[str, str, str], names: tuple[str, str, str], rej: Rejects, count: Counter = len
) -> Iterator[Leaf]:
    """(resource, scope name, indices, record) for every record of a decoded request.

    A resource whose attributes cannot be read (nested too deep) rejects the records under it.
    """
    f_res, f_scope, f_rec = fields
    for ri, rr in enumerate(getattr(req, f_res)):
        scopes = getattr(rr, f_scope)
        try:
            res = resource_info(pb_attrs(rr.resource.attributes))
        except Invalid as exc:
            rej.add(f"{names[0]}[{ri}].resource", str(exc), sum(count(getattr(ss, f_rec)) for ss in scopes))
            continue
        for si, ss in enumerate(scopes):
            scope_name = ss.scope.name
            for li, rec in enumerate(getattr(ss, f_rec)):
                yield res, scope_name, (ri, si, li), rec


def json_leaves(
    doc: dict[str, Any],
    names: tuple[str, str, str],
    snakes: tuple[str, str, str],
    rej: Rejects,
    count: Counter = len,
) -> Iterator[Leaf]:
    """Same as `pb_leaves` over an OTLP/JSON document.

    A container of the wrong type (say `scopeLogs` is a string) makes the body malformed; a resource or
    scope whose own fields are wrong rejects the records under it, counted with `count`.
    """
    top = jget(doc, names[0], snakes[0])
    if top is None:
        return
    if type(top) is not list:
        raise InvalidInput(f"{names[0]} must be a list", field=names[0])
    for ri, rr in enumerate(top):
        where = f"{names[0]}[{ri}]"
        if type(rr) is not dict:
            raise InvalidInput(f"{where} must be an object", field=where)
        scopes = jget(rr, names[1], snakes[1])
        if scopes is None:
            continue
        if type(scopes) is not list:
            raise InvalidInput(f"{where}.{names[1]} must be a list", field=f"{where}.{names[1]}")
        try:
            res = resource_info(json_attrs(j_obj(rr.get("resource"), "resource").get("attributes")))
            check_text(res.service, res.host, res.pod)
        except Invalid as exc:
            rej.add(f"{where}.resource", str(exc), _count_scopes(scopes, names[2], snakes[2], count))
            continue
        for si, ss in enumerate(scopes):
            swhere = f"{where}.{names[1]}[{si}]"
            if type(ss) is not dict:
                raise InvalidInput(f"{swhere} must be an object", field=swhere)
            recs = jget(ss, names[2], snakes[2])
            if recs is None:
                continue
            if type(recs) is not list:
                raise InvalidInput(f"{swhere}.{names[2]} must be a list", field=f"{swhere}.{names[2]}")
            try:
                scope_name = j_str(j_obj(ss.get("scope"), "scope").get("name"), "scope.name")
                check_text(scope_name)
            except Invalid as exc:
                rej.add(f"{swhere}.scope", str(exc), count(recs))
                continue
            for li, rec in enumerate(recs):
                yield res, scope_name, (ri, si, li), rec


def _count_scopes(scopes: list[Any], name: str, snake: str, count: Counter) -> int:
    n = 0
    for ss in scopes:
        recs = jget(ss, name, snake) if type(ss) is dict else None
        if type(recs) is list:
            n += count(recs)
    return n


# ----------------------------------------------------------------- protobuf decoding with salvage


def decode_pb(cls: type[Message], raw: bytes, rej: Rejects) -> Message:
    """Decode a request; if that fails, keep what can be decoded and reject records one by one.

    upb refuses a whole message for one bad string (non-UTF-8) or one corrupt record. On failure the
    envelope (resource -> scope -> records) is split by hand along its length-delimited fields, each part
    decoded alone, and the undecodable records (or the records under an undecodable resource or scope)
    counted as rejected. A body whose envelope itself is corrupt is InvalidInput. The indices in these
    rejections are those of the request as sent; later rejections index the request without them.
    """
    try:
        return cls.FromString(raw)
    except DecodeError:
        pass
    root_name = cls.DESCRIPTOR.full_name.rsplit(".", 1)[-1]
    msg = _salvage(cls.DESCRIPTOR, raw, "", rej, root_name)
    if msg is None:  # pragma: no cover - the root has no leaf-free fields to fail on
        return cls()
    return msg


def _reason(exc: DecodeError) -> str:
    text = str(exc)
    return text.split("': ", 1)[1] if "': " in text else text


_DESCEND: dict[str, dict[int, FieldDescriptor]] = {}


def _descend_fields(desc: Descriptor, visiting: frozenset[str] = frozenset()) -> dict[int, FieldDescriptor]:
    """Message fields of `desc` that lead down to leaf records (cached; only complete results are kept)."""
    found = _DESCEND.get(desc.full_name)
    if found is None:
        inside = visiting | {desc.full_name}  # AnyValue nests itself; it leads to no records
        found = {}
        for fd in desc.fields:
            mt = fd.message_type
            if mt is None or mt.full_name in inside:
                continue
            if mt.full_name in _LEAF_TYPES or _descend_fields(mt, inside):
                found[fd.number] = fd
        _DESCEND[desc.full_name] = found
    return found


def _salvage(desc: Descriptor, raw: bytes, where: str, rej: Rejects, root: str) -> Message | None:
    cls = message_factory.GetMessageClass(desc)
    try:
        return cls.FromString(raw)
    except DecodeError as exc:
        first = _reason(exc)
    if desc.full_name in _LEAF_TYPES:
        rej.add(where, f"not valid protobuf ({first})")
        return None
    msg = cls()
    descend = _descend_fields(desc)
    seen: dict[int, int] = {}
    broken: str | None = None
    for number, wire_type, start, end, payload in _fields(raw, where or root):
        fd = descend.get(number)
        if fd is not None and wire_type == 2:
            i = seen.get(number, 0)
            seen[number] = i + 1
            child_where = f"{where}.{fd.json_name}" if where else fd.json_name
            if fd.is_repeated:
                child_where += f"[{i}]"
            child = _salvage(fd.message_type, payload, child_where, rej, root)
            if child is not None:
                if fd.is_repeated:
                    getattr(msg, fd.name).append(child)
                else:
                    getattr(msg, fd.name).MergeFrom(child)
            continue
        try:
            msg.MergeFromString(raw[start:end])
        except DecodeError as exc:
            field_desc = desc.fields_by_number.get(number)
            name = field_desc.json_name if field_desc is not None else f"field {number}"
            broken = broken or f"{name}: not valid protobuf ({_reason(exc)})"
    if broken is not None:
        n = _count_leaves(msg)
        if n:
            rej.add(where or root, broken, n)
        return None
    return msg


def _count_leaves(msg: Message) -> int:
    n = 0
    for fd in _descend_fields(msg.DESCRIPTOR).values():
        leaf = fd.message_type.full_name in _LEAF_TYPES
        if fd.is_repeated:
            items = getattr(msg, fd.name)
            n += len(items) if leaf else sum(_count_leaves(c) for c in items)
        elif msg.HasField(fd.name):
            n += 1 if leaf else _count_leaves(getattr(msg, fd.name))
    return n


def _varint(buf: bytes, pos: int, where: str) -> tuple[int, int]:
    result = shift = 0
    while pos < len(buf) and shift < 64:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    raise InvalidInput(f"body is not valid protobuf: corrupt varint in {where}", field="body")


def _fields(buf: bytes, where: str) -> Iterator[tuple[int, int, int, int, bytes]]:
    """(field number, wire type, start, end, payload) of each top-level field of an encoded message."""
    pos = 0
    n = len(buf)
    while pos < n:
        start = pos
        key, pos = _varint(buf, pos, where)
        number, wire_type = key >> 3, key & 7
        payload = b""
        if wire_type == 0:
            _, pos = _varint(buf, pos, where)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        elif wire_type == 2:
            length, pos = _varint(buf, pos, where)
            payload = buf[pos : pos + length]
            pos += length
        else:
            pos = n + 1
        if pos > n or number == 0:
            raise InvalidInput(f"body is not valid protobuf: wire format is corrupt in {where}", field="body")
        yield number, wire_type, start, pos, payload
