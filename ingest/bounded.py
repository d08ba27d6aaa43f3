"""Bounded decoding that every ingest path shares: the inflater with a size cap, and a JSON item count.

`inflate` undoes a Content-Encoding (gzip, x-gzip, deflate, identity; several in order) and stops with
PayloadTooLarge as soon as the output passes `max_bytes`, so a gzip bomb costs at most the cap.
`check_json_items` counts the items of the arrays at given paths of a JSON body with a streaming parser
(ijson) and stops with PayloadTooLarge as soon as one more than the limit is seen, before the body is
loaded as a whole; a body that cannot hold that many items (fewer commas and brackets than the limit)
is not scanned at all.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import ijson

from core.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_STARTS = frozenset({"start_map", "start_array", "string", "number", "boolean", "null"})


def inflate(raw: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body with its Content-Encoding undone, at most `max_bytes` long (PayloadTooLarge beyond,
    field 'body'); an unknown encoding is UnsupportedMediaType, a corrupt stream InvalidInput."""
    data = bytes(raw)
    encodings = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
    for enc in reversed(encodings):  # the last encoding listed was applied last
        if enc in ("gzip", "x-gzip"):
            data = _inflate(data, _GZIP_WBITS, "gzip", max_bytes)
        elif enc == "deflate":
            data = _inflate(data, _ZLIB_WBITS, "deflate", max_bytes)
        elif enc != "identity":
            raise UnsupportedMediaType(
                f"Content-Encoding {enc!r} is not supported; use gzip, deflate or none",
                field="content-encoding",
            )
    return data


def _inflate(data: bytes, wbits: int, label: str, max_bytes: int) -> bytes:
    out = bytearray()
    d = zlib.decompressobj(wbits)
    buf = data
    while True:
        try:
            chunk = d.decompress(buf, max_bytes - len(out) + 1)
        except zlib.error as exc:
            raise InvalidInput(f"body is not valid {label}: {exc}", field="body") from None
        out += chunk
        if len(out) > max_bytes:
            raise PayloadTooLarge(
                f"body inflates to more than {max_bytes} bytes (Content-Encoding {label}; DEVMESH_MAX_DECODED_BYTES)",
                field="body",
            )
        if d.eof:
            buf = d.unused_data
            if not buf:
                return bytes(out)
            if wbits != _GZIP_WBITS:
                raise InvalidInput(f"body has data after the end of the {label} stream", field="body")
            d = zlib.decompressobj(wbits)  # a further gzip member
            continue
        buf = d.unconsumed_tail
        if not buf and not chunk:
            raise InvalidInput(f"body is a truncated {label} stream", field="body")


def check_json_items(
    raw: bytes,
    limit: int,
    *,
    paths: Iterable[str] = (),
    suffixes: Iterable[str] = (),
    what: str,
    field: str,
    setting: str,
) -> int:
    """Count the items of the arrays at the ijson `paths` (e.g. 'item' for a top-level array, 'events.item')
    or whose path ends with one of `suffixes` (e.g. '.logRecords.item'); PayloadTooLarge (naming `field`
    and `setting`) as soon as the count passes `limit`. Returns the count, or -1 when the body cannot
    hold more than `limit` items and was not scanned. Malformed JSON is left to the loader."""
    if raw.count(b",") + raw.count(b"[") <= limit:  # each array item but the first of its array follows a comma
        return -1
    exact = frozenset(paths)
    ends = tuple(suffixes)
    n = 0
    try:
        for prefix, event, _ in ijson.parse(raw):
            if event in _STARTS and (prefix in exact or (ends and ("." + prefix).endswith(ends))):
                n += 1
                if n > limit:
                    raise PayloadTooLarge(
                        f"more than {limit} {what} in one request; the limit is {limit} ({setting})", field=field
                    )
    except ijson.JSONError:
        pass  # not JSON: the loader says where and why
    return n
