"""journald export as JSON (`journalctl -o json`): one JSON object a line.

MESSAGE may be a string, null, or an array of byte values (journald's form for non-UTF-8 text).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from core.timeutil import check_sane
from ingest import batch
from ingest.canonical import clean_text, dump_meta, short
from ingest.devmesh_json import EventError, Limits, ParsedEvents
from ingest.lineparse import split_head

_PRIORITY = {0: "FATAL", 1: "FATAL", 2: "FATAL", 3: "ERROR", 4: "WARN", 5: "INFO", 6: "INFO", 7: "DEBUG"}
_META_FIELDS = ("_PID", "_SYSTEMD_UNIT", "_BOOT_ID", "_TRANSPORT", "__CURSOR", "_COMM", "CONTAINER_ID")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", "replace")
    return None


def _field(doc: dict[str, Any], key: str) -> str:
    """A journald field as text: strings as they are, byte arrays decoded, numbers written out, else ''."""
    value = doc.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _text(value) or ""


def _pod_of_container(name: str) -> str:
    """Docker-shim names 'k8s_<container>_<pod>_<namespace>_<uid>_<n>' -> pod."""
    parts = name.split("_")
    return parts[2] if len(parts) >= 4 and parts[0] == "k8s" else ""


def parse_journald(lines: Iterable[str | bytes], limits: Limits, *, now_ns: int, first_line: int = 1) -> ParsedEvents:
    """Parse journald JSON lines; bad lines are reported by line number (as `index`)."""
    out = ParsedEvents(rows=batch.empty("logs"))
    for n, raw in enumerate(lines, start=first_line):
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            out.errors.append(EventError(n, f"line {n}", f"not JSON: {exc.msg}"))
            continue
        except RecursionError:
            out.errors.append(EventError(n, f"line {n}", "not JSON: nested too deeply"))
            continue
        _add_entry(out, doc, n, f"line {n}", limits, now_ns)
    return out


def parse_journald_entries(entries: Iterable[Any], limits: Limits, *, now_ns: int) -> ParsedEvents:
    """Parse decoded journald entries (a JSON array of `journalctl -o json` objects, as `POST /ingest/journald`
    takes them); bad entries are reported by their index, as `entries[i]`."""
    out = ParsedEvents(rows=batch.empty("logs"))
    for i, doc in enumerate(entries):
        _add_entry(out, doc, i, f"entries[{i}]", limits, now_ns)
    return out


def _add_entry(out: ParsedEvents, doc: Any, n: int, where: str, limits: Limits, now_ns: int) -> None:
    """One decoded entry: a row of `out`, or an error naming `where` (index `n`)."""
    if not isinstance(doc, dict):
        out.errors.append(EventError(n, where, "must be a JSON object"))
        return
    try:
        ts = int(str(doc.get("__REALTIME_TIMESTAMP", ""))) * 1000
    except ValueError:
        out.errors.append(EventError(n, f"{where}.__REALTIME_TIMESTAMP", "missing or not microseconds"))
        return
    bad = check_sane(ts, min_year=limits.min_year, max_future_skew_s=limits.max_future_skew_s, now=now_ns)
    if bad:
        out.errors.append(EventError(n, f"{where}.__REALTIME_TIMESTAMP", bad))
        return
    msg = _text(doc.get("MESSAGE"))
    if msg is None:
        out.errors.append(EventError(n, f"{where}.MESSAGE", "missing or not text"))
        return
    level_word, _ = split_head(msg)
    try:
        level = _PRIORITY.get(int(str(doc.get("PRIORITY", "6"))), "INFO")
    except ValueError:
        level = "INFO"
    if level_word and level == "INFO":
        level = level_word
    unit = _field(doc, "_SYSTEMD_UNIT")
    service = _field(doc, "SYSLOG_IDENTIFIER") or (unit[:-8] if unit.endswith(".service") else unit)
    message, cut = clean_text(msg, limits.max_message_chars)
    meta = {k: doc[k] for k in _META_FIELDS if k in doc}
    if cut:
        meta["truncated"] = True
    batch.append_row(
        out.rows,
        {
            "ts_ns": ts,
            "source": "journald",
            "service": short(service or _field(doc, "_COMM")),
            "host": short(_field(doc, "_HOSTNAME")),
            "pod": short(_pod_of_container(_field(doc, "CONTAINER_NAME"))),
            "level": level,
            "message": message,
            "trace_id": short(_field(doc, "TRACE_ID").lower(), 64),
            "span_id": short(_field(doc, "SPAN_ID").lower(), 32),
            "event_type": "journald",
            "error_code": "",
            "meta": clean_text(dump_meta(meta))[0],
        },
    )


def chunks(lines: Iterable[str | bytes], size: int) -> Iterator[tuple[int, list[str | bytes]]]:
    """(first line number, lines) chunks of a stream, for batching large files and stdin."""
    buf: list[str | bytes] = []
    start = 1
    for n, line in enumerate(lines, start=1):
        if not buf:
            start = n
        buf.append(line)
        if len(buf) >= size:
            yield start, buf
            buf = []
    if buf:
        yield start, buf
