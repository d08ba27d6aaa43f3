"""Line-delimited input files (JSON Lines of any kind): opened plain or gzip, read one numbered line at a time.

`open_input` opens a path, or takes a stream such as standard input, and undoes gzip when the first
bytes say so (whatever the file is called). `numbered_lines` yields `Line`s with their 1-based numbers,
at most `max_bytes` each: a longer line is skipped (read to its end, not kept) and reported, and a
broken gzip stream ends the input with a `Line` that says so. `loads` is `json.loads` that refuses
NaN and Infinity, which are not JSON.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from core.errors import InvalidInput

_GZIP_MAGIC = b"\x1f\x8b"


class Readable(Protocol):
    """What `numbered_lines` reads from: a binary stream (a file, standard input, a gzip reader)."""

    def readline(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Line:
    """One line of input: its number and bytes, or the problem that kept it from being read."""

    number: int
    data: bytes = b""
    problem: str = ""


def open_input(source: Path | BinaryIO) -> io.BufferedIOBase:
    """A binary stream of `source` (a path, or an open binary stream), gunzipped when it is gzip.

    The caller closes it (a file opened here is closed with it; a stream given is left open). A path
    that is not a readable file is InvalidInput(field='FILE').
    """
    if isinstance(source, Path):
        if not source.is_file():
            raise InvalidInput(f"no such file: {source}", field="FILE")
        try:
            stream = source.open("rb")
        except OSError as exc:
            raise InvalidInput(f"cannot read {source}: {exc.strerror}", field="FILE") from None
    else:
        stream = source if isinstance(source, io.BufferedReader) else io.BufferedReader(cast(Any, source))
    if stream.peek(2)[:2] != _GZIP_MAGIC:
        return stream
    if isinstance(source, Path):  # a gzip reader that owns (and closes) its file
        stream.close()
        return gzip.open(source, "rb")
    return gzip.GzipFile(fileobj=stream, mode="rb")


def numbered_lines(stream: Readable, max_bytes: int) -> Iterator[Line]:
    """Every line of `stream` (without its line break), numbered from 1; blank lines included."""
    number = 0
    while True:
        number += 1
        try:
            data = stream.readline(max_bytes + 1)
            if not data:
                return
            if len(data) > max_bytes and not data.endswith(b"\n"):
                while data and not data.endswith(b"\n"):  # skip the rest of the line, a bounded read at a time
                    data = stream.readline(max_bytes)
                yield Line(number, problem=f"longer than {max_bytes} bytes; skipped")
                continue
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            yield Line(number, problem=f"input is not readable from here on: {exc}")
            return
        yield Line(number, data.rstrip(b"\r\n"))


def loads(data: bytes | str) -> Any:
    """`json.loads`, refusing NaN and Infinity; ValueError (or RecursionError) when it is not JSON."""

    def not_json(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON value")

    return json.loads(data, parse_constant=not_json)
