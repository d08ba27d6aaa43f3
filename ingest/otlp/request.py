"""An OTLP/HTTP request: media types, body loading, and the decode-and-walk skeleton of `parse_*`.

`media_kind` maps a Content-Type to 'json' or 'protobuf' (anything else is a 415); `decode_body` undoes
the Content-Encoding (gzip, deflate; capped while inflating), counts the records against a limit
before decoding (`prescan`) and loads a JSON body. `parse_request` is
what every signal's `parse_*` runs: it decodes the body in either encoding (protobuf with salvage) and
hands the decoded request to the signal's walker, which fills a `Columns` subclass, one row per record
that passes its checks (`TimeBounds` for timestamps).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.message import Message

from core.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from core.timeutil import NS, check_sane
from ingest.bounded import inflate
from ingest.otlp.prescan import check_records
from ingest.otlp.result import Invalid, ParsedBatch, Rejects
from ingest.otlp.salvage import decode_pb

JSON_MEDIA = "application/json"
PROTOBUF_MEDIA = "application/x-protobuf"
_PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})


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


def decode_body(
    raw: bytes,
    content_type: str | None,
    content_encoding: str | None,
    max_bytes: int,
    *,
    max_decoded_bytes: int | None = None,
    signal: str | None = None,
    max_records: int | None = None,
) -> bytes | dict[str, Any]:
    """The request body ready for `parse_*`: protobuf bytes, or the parsed JSON object.

    Content-Encoding gzip (or x-gzip), deflate and identity are undone by the shared bounded inflater
    (`ingest.bounded.inflate`): the decompressed size is capped at `max_decoded_bytes` (default
    `max_bytes`) while inflating, so a gzip bomb stops at the cap with PayloadTooLarge. With `signal`
    ('logs', 'traces', 'metrics') and `max_records`, the records are counted before anything is decoded
    (`prescan.check_records`) and a request with more is PayloadTooLarge.
    Raises UnsupportedMediaType for other content types or encodings, InvalidInput for a body that
    cannot be decoded (bad gzip, bad JSON).
    """
    kind = media_kind(content_type)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"body is {len(raw)} bytes; the limit is {max_bytes}", field="body")
    data = inflate(raw, content_encoding, max_decoded_bytes or max_bytes)
    if signal is not None and max_records is not None:
        check_records(signal, data, kind, max_records)
    return load_json(data) if kind == "json" else data
