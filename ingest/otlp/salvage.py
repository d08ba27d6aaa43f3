"""Protobuf request decoding that salvages the valid records of a body upb refuses as a whole.

`decode_pb` decodes with the generated class; when that fails it splits the envelope by hand along its
length-delimited fields (a small protobuf wire reader, `_fields`/`_varint`), decodes each part alone and
counts the undecodable records, or the records under an undecodable resource or scope, as rejected.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from core.errors import InvalidInput
from ingest.otlp.prescan import read_varint
from ingest.otlp.result import Rejects

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
    value, after = read_varint(buf, pos, len(buf))
    if after < 0:
        raise InvalidInput(f"body is not valid protobuf: corrupt varint in {where}", field="body")
    return value, after


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
