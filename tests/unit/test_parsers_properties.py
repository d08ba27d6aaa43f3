"""Property-based tests of the file and batch readers: DevMesh JSON, journald, runbooks, topology YAML, Nezha.

Two properties for each: on hostile input the reader returns a result or raises `InvalidInput` (a 4xx),
never anything else; and valid records, encoded in the format, come back with their fields. Examples
that once failed are kept as `@example`s. Settings: `tests/unit/properties.py`.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from api.http.ingest import decode_json
from core.errors import InvalidInput
from ingest import batch, nezha
from ingest.devmesh_json import Limits, events_of, parse_events
from ingest.journald import parse_journald
from ingest.runbooks import parse_runbook
from ingest.topology_yaml import parse_topology, read_topology
from tests.unit.properties import (
    HOSTILE_DOCS,
    PROFILE,
    any_text,
    clean_text,
    deep,
    dumps,
    hex_id,
    json_value,
    span_hex,
    word,
)

NOW = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
LIMITS = Limits(max_events=1000, max_message_chars=10_000, min_year=2000, max_future_skew_s=86_400)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
times = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2023, 11, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)
levels = st.sampled_from(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"])


def ns_of(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1) * 1000


def rows_of(cols: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]


def well_formed(cols: dict[str, list[Any]], table: str) -> None:
    """Every column as long as the others, and the batch fits the event store's Arrow types."""
    assert len({len(v) for v in cols.values()}) <= 1
    batch.to_table(table, cols)


# -- DevMesh JSON (POST /ingest/logs, `devmesh ingest --format json`) ------------------------------------


def parse_body(raw: bytes) -> Any:
    return parse_events(events_of(decode_json(raw)), LIMITS, now_ns=NOW)


@PROFILE
@given(st.one_of(st.binary(max_size=300), json_value.map(dumps), st.lists(json_value).map(dumps)))
@example(HOSTILE_DOCS[0])
@example(HOSTILE_DOCS[5])
@example(HOSTILE_DOCS[6])
@example(HOSTILE_DOCS[7])
@example(HOSTILE_DOCS[8])
@example(HOSTILE_DOCS[9])
@example(HOSTILE_DOCS[10])
@example(HOSTILE_DOCS[11])
@example(HOSTILE_DOCS[12])
def test_devmesh_json_on_hostile_bodies_gives_rows_or_invalid_input(raw: bytes) -> None:
    try:
        parsed = parse_body(raw)
    except InvalidInput:
        return
    well_formed(parsed.rows, "logs")


@PROFILE
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(
                ["timestamp", "message", "service", "level", "meta", "error_code", "trace_id", "host", "x"]
            ),
            json_value,
            max_size=6,
        ),
        max_size=5,
    )
)
@example([{"timestamp": 10**30, "message": "m"}, {"timestamp": "2023-01-01T00:00:00Z", "message": "\ud800"}])
@example([{"timestamp": -(2**63) - 1, "message": "m"}, {"timestamp": 1.5e308, "message": "m"}])
def test_devmesh_json_events_of_any_shape_are_kept_or_reported(items: list[Any]) -> None:
    parsed = parse_events(items, LIMITS, now_ns=NOW)
    assert parsed.accepted + len(parsed.errors) == len(items)
    well_formed(parsed.rows, "logs")


event = st.fixed_dictionaries(
    {
        "at": times,
        "as_iso": st.booleans(),
        "message": clean_text,
        "service": word,
        "host": word,
        "level": levels,
        "trace_id": hex_id,
        "span_id": span_hex,
        "meta": st.dictionaries(word, st.integers(-(2**53), 2**53) | st.booleans() | clean_text, max_size=3),
    }
)


@PROFILE
@given(st.lists(event, min_size=1, max_size=5))
def test_devmesh_json_round_trip(events: list[dict[str, Any]]) -> None:
    docs = [
        {
            "timestamp": e["at"].isoformat() if e["as_iso"] else ns_of(e["at"]),
            **{k: e[k] for k in ("message", "service", "host", "level", "trace_id", "span_id", "meta")},
        }
        for e in events
    ]
    parsed = parse_body(json.dumps({"events": docs}).encode())
    assert parsed.errors == []
    got = rows_of(parsed.rows)
    for e, row in zip(events, got, strict=True):
        assert row["ts_ns"] == ns_of(e["at"])
        assert {k: row[k] for k in ("message", "service", "host", "level", "trace_id", "span_id")} == {
            k: e[k] for k in ("message", "service", "host", "level", "trace_id", "span_id")
        }
        assert (json.loads(row["meta"]) if row["meta"] else {}) == e["meta"]


# -- journald (`journalctl -o json`) ---------------------------------------------------------------------


@PROFILE
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            json_value.map(dumps),
            st.dictionaries(
                st.sampled_from(
                    [
                        "__REALTIME_TIMESTAMP",
                        "MESSAGE",
                        "PRIORITY",
                        "_SYSTEMD_UNIT",
                        "SYSLOG_IDENTIFIER",
                        "_HOSTNAME",
                        "TRACE_ID",
                        "CONTAINER_NAME",
                        "_PID",
                    ]
                ),
                json_value,
                max_size=6,
            ).map(dumps),
        ),
        max_size=5,
    )
)
@example([deep(100_000).encode(), b'{"__REALTIME_TIMESTAMP": "' + b"9" * 5000 + b'", "MESSAGE": "m"}'])
@example([b'{"__REALTIME_TIMESTAMP": "1700000000000000", "MESSAGE": [255, 0, 300], "PRIORITY": "9" }'])
@example([b'{"__REALTIME_TIMESTAMP": "-9223372036854775809", "MESSAGE": "m", "_PID": NaN}'])
def test_journald_on_hostile_lines_gives_rows_or_line_errors(lines: list[bytes]) -> None:
    parsed = parse_journald(lines, LIMITS, now_ns=NOW)
    assert parsed.accepted + len(parsed.errors) <= len(lines)
    well_formed(parsed.rows, "logs")


journal_entry = st.fixed_dictionaries(
    {
        "at": times,
        "message": clean_text,
        "as_bytes": st.booleans(),
        "priority": st.sampled_from([(3, "ERROR"), (4, "WARN"), (6, "INFO"), (7, "DEBUG")]),
        "ident": word,
        "host": word,
        "trace_id": hex_id,
    }
)


@PROFILE
@given(st.lists(journal_entry, min_size=1, max_size=5))
def test_journald_round_trip(entries: list[dict[str, Any]]) -> None:
    lines = []
    for e in entries:
        message = "x " + e["message"]  # no leading severity word or time for the reader to take as the level
        lines.append(
            json.dumps(
                {
                    "__REALTIME_TIMESTAMP": str(ns_of(e["at"]) // 1000),
                    "MESSAGE": list(message.encode()) if e["as_bytes"] else message,
                    "PRIORITY": str(e["priority"][0]),
                    "SYSLOG_IDENTIFIER": e["ident"],
                    "_HOSTNAME": e["host"],
                    "TRACE_ID": e["trace_id"],
                }
            )
        )
    parsed = parse_journald(lines, LIMITS, now_ns=NOW)
    assert parsed.errors == []
    for e, row in zip(entries, rows_of(parsed.rows), strict=True):
        assert (row["ts_ns"], row["message"], row["level"], row["service"], row["host"], row["trace_id"]) == (
            ns_of(e["at"]),
            "x " + e["message"],
            e["priority"][1],
            e["ident"],
            e["host"],
            e["trace_id"],
        )


# -- Markdown runbooks -----------------------------------------------------------------------------------


@PROFILE
@given(
    st.one_of(
        any_text,
        st.lists(
            st.sampled_from(
                ["# ", "## ", "---\n", "```\n", "~~~", "\n", "title: x\n", "Meaning", "[", "{", ": ", "&a *a", "\t"]
            ),
            max_size=30,
        ).map("".join),
    ),
    any_text,
)
@example("---\n" + "[" * 5000 + "\n---\n# T\nbody", "Alert.md")
@example("---\n&a [*a, *a]\n---\nbody", "")
@example("---\nn: " + "9" * 5000 + "\n---\nbody", "x.md")
@example("---\nd: 0000-01-01\n---\nbody", "x.md")
@example("---\ntitle: !!python/object:os.system x\nurl: [1]\n---\n## Fix\nrun it", "a/../b.md")
def test_runbook_parser_takes_any_text(text: str, rel_path: str) -> None:
    rb = parse_runbook(text, rel_path)
    assert all(s.text.strip() for s in rb.sections)
    assert isinstance(rb.title, str) and isinstance(rb.url, str)


heading = st.text("abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=20).map(str.strip).filter(bool)
body = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz.,:;!?()0123456789 ", min_size=1, max_size=40).map(str.strip).filter(bool),
    min_size=1,
    max_size=3,
).map("\n".join)


@PROFILE
@given(
    heading,
    st.lists(
        st.tuples(st.sampled_from(["Meaning", "Impact", "Diagnosis", "Mitigation"]), heading, body),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["", "https://runbooks.example/"]),
)
def test_runbook_round_trip(title: str, sections: list[tuple[str, str, str]], base_url: str) -> None:
    text = f"# {title}\n\n" + "".join(f"## {kind} {name}\n\n{text}\n\n" for kind, name, text in sections)
    rb = parse_runbook(text, "group/KubePodCrashLooping.md", base_url=base_url)
    assert rb.title == title and rb.alerts == ["KubePodCrashLooping"]
    assert [(s.heading, s.kind, s.text) for s in rb.sections] == [
        (f"{kind} {name}", kind.lower(), text) for kind, name, text in sections
    ]
    assert rb.url == (base_url + "group/KubePodCrashLooping" if base_url else "")


# -- topology YAML ---------------------------------------------------------------------------------------


def read_yaml_text(text: str | bytes) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "topology.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
        return read_topology(path)


@PROFILE
@given(
    st.one_of(
        st.binary(max_size=200),
        any_text,
        json_value.map(yaml.safe_dump),
        st.dictionaries(st.just("services"), json_value).map(yaml.safe_dump),
    )
)
@example("[" * 10_000)
@example("services: &a [*a]")
@example("a: &a [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n")
@example("services:\n  - name: !!binary AAAA\n")
@example("services: " + "9" * 5000)
@example("services:\n  - name: x\n    when: 0000-01-01\n")
@example(b"services:\n  - name: \xff\n")
def test_topology_reader_on_hostile_files_gives_a_topology_or_invalid_input(text: str | bytes) -> None:
    with contextlib.suppress(InvalidInput):
        read_yaml_text(text)


@PROFILE
@given(json_value)
def test_topology_of_any_document_is_a_topology_or_invalid_input(doc: Any) -> None:
    try:
        parse_topology(doc)
    except InvalidInput as exc:
        assert exc.field


services = st.dictionaries(
    word,
    st.tuples(st.lists(word, max_size=3, unique=True), st.lists(st.tuples(word, word), max_size=2)),
    min_size=1,
    max_size=4,
)


@PROFILE
@given(services)
def test_topology_round_trip(decl: dict[str, tuple[list[str], list[tuple[str, str]]]]) -> None:
    doc = {
        "services": [
            {"name": s, "calls": calls, "pods": [{"name": p, "node": n} for p, n in pods]}
            for s, (calls, pods) in decl.items()
        ]
    }
    topo = read_yaml_text(yaml.safe_dump(doc))
    assert set(topo.services) == set(decl) | {c for calls, _ in decl.values() for c in calls}
    assert {(c.caller, c.callee) for c in topo.calls} == {(s, c) for s, (calls, _) in decl.items() for c in calls}
    assert sorted((p.pod, p.service, p.host) for p in topo.pods) == sorted(
        (p, s, n) for s, (_, pods) in decl.items() for p, n in pods
    )


# -- Nezha CSVs ------------------------------------------------------------------------------------------

LOG_HEADER = ["Timestamp", "TimeUnixNano", "Node", "PodName", "Container", "TraceID", "SpanID", "Log"]
SPAN_HEADER = ["TraceID", "SpanID", "ParentID", "PodName", "OperationName", "StartTimeUnixNano", "EndTimeUnixNano"]
METRIC_HEADER = ["Time", "TimeStamp", "PodName", "CpuUsage(m)", "MemoryUsage(Mi)"]
READERS = {
    "log.csv": (nezha.read_logs, "logs"),
    "trace.csv": (nezha.read_spans, "spans"),
    "a-b-5b67c48447-mv5hb_metric.csv": (nezha.read_metrics, "metrics"),
}


def read_nezha(name: str, data: bytes, gz: bool = False) -> dict[str, list[Any]]:
    reader, table = READERS[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data) if gz else data)
        cols = reader(path)
    well_formed(cols, table)
    return cols


def csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue().encode("utf-8", "surrogatepass")


cell = st.one_of(
    any_text,
    st.sampled_from(
        ["", "root", "nan", "inf", "-1", "1e300", "9" * 400, "18446744073709551616", "1674986401000000000"]
    ),
)


@PROFILE
@pytest.mark.parametrize("name", sorted(READERS))
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.tuples(
            st.sampled_from([LOG_HEADER, SPAN_HEADER, METRIC_HEADER]), st.lists(st.lists(cell, max_size=9), max_size=6)
        ).map(lambda t: csv_bytes(*t)),
    ),
    gz=st.booleans(),
)
@example(data=b'Timestamp,Log\n"unterminated', gz=False)
@example(data=b"\x1f\x8b\x08\x00garbage", gz=False)
@example(data=b"Timestamp,TimeUnixNano,Log\n2023-01-29T10:00:01Z,1,ok\n\xed,3,4,5\n", gz=True)  # was: file lost
def test_nezha_readers_on_hostile_files_skip_what_they_cannot_read(name: str, data: bytes, gz: bool) -> None:
    read_nezha(name, data, gz)


@PROFILE
@given(
    st.lists(
        st.tuples(times, word, st.sampled_from(["INFO", "WARN", "ERROR"]), clean_text, hex_id, span_hex),
        min_size=1,
        max_size=5,
    )
)
def test_nezha_logs_round_trip(records: list[tuple[datetime, str, str, str, str, str]]) -> None:
    pod = "ts-order-service-5b67c48447-mv5hb"
    rows = [
        [
            at.isoformat().replace("+00:00", "Z"),
            ns_of(at),
            node,
            pod,
            "server",
            trace,
            span,
            json.dumps({"log": f"{level} x {message}\n", "stream": "stdout"}),
        ]
        for at, node, level, message, trace, span in records
    ]
    got = rows_of(read_nezha("log.csv", csv_bytes(LOG_HEADER, rows)))
    assert [
        (r["ts_ns"], r["host"], r["pod"], r["service"], r["level"], r["message"], r["trace_id"], r["span_id"])
        for r in got
    ] == [
        (ns_of(at), node, pod, "ts-order-service", level, "x " + message, trace, span)
        for at, node, level, message, trace, span in records
    ]


@PROFILE
@given(st.lists(st.tuples(hex_id, span_hex, word, times, st.integers(0, 10**12)), min_size=1, max_size=5))
def test_nezha_spans_round_trip(records: list[tuple[str, str, str, datetime, int]]) -> None:
    pod = "ts-a-service-5b67c48447-mv5hb"
    rows = [[trace, span, "root", pod, op, ns_of(at), ns_of(at) + d] for trace, span, op, at, d in records]
    got = rows_of(read_nezha("trace.csv", csv_bytes(SPAN_HEADER, rows)))
    assert [
        (r["trace_id"], r["span_id"], r["parent_id"], r["operation"], r["service"], r["start_ns"], r["end_ns"])
        for r in got
    ] == [(t, s, "", op, "ts-a-service", ns_of(at), ns_of(at) + d) for t, s, op, at, d in records]


@PROFILE
@given(st.lists(st.tuples(times, st.floats(-1e12, 1e12), st.floats(0, 1e12)), min_size=1, max_size=5))
def test_nezha_metrics_round_trip(records: list[tuple[datetime, float, float]]) -> None:
    pod = "a-b-5b67c48447-mv5hb"
    rows = [["t", int(at.timestamp()), pod, repr(cpu), repr(mem)] for at, cpu, mem in records]
    got = rows_of(read_nezha("a-b-5b67c48447-mv5hb_metric.csv", csv_bytes(METRIC_HEADER, rows)))
    want = [
        (int(at.timestamp()) * 10**9, n, v)
        for at, cpu, mem in records
        for n, v in (("cpu_usage", cpu), ("memory_usage", mem))
    ]
    assert [(r["ts_ns"], r["name"], r["value"]) for r in got] == want
    assert {r["service"] for r in got} == {"a-b"}
