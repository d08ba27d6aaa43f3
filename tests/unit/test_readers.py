"""Readers: the bundled Nezha fault, journald JSON, DevMesh JSON batches, runbooks, topology YAML, line heads.

Expected figures for the sample and for the Nezha excerpt in tests/data were counted independently of the reader
(csv, gzip and json modules over the raw files).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.errors import DatasetError, InvalidInput, PayloadTooLarge
from core.naming import service_of_pod
from ingest import batch, nezha
from ingest.canonical import TRUNCATED_MARK, clean_text, short
from ingest.devmesh_json import Limits, events_of, parse_events
from ingest.journald import chunks, parse_journald
from ingest.lineparse import looks_like_error, split_head
from ingest.runbooks import parse_runbook, read_runbooks, services_mentioned
from ingest.topology_yaml import parse_topology, read_topology

REPO = Path(__file__).resolve().parents[2]
NEZHA = REPO / "samples" / "nezha"
DAY = NEZHA / "2023-01-29"
RUNBOOKS = REPO / "samples" / "runbooks"
EXCERPT = REPO / "tests" / "data" / "nezha_log_excerpt" / "10_06_log.csv.gz"
NOW = 1_760_000_000 * 10**9  # 2025-10-09, a fixed "now" for the time-window checks
LIMITS = Limits(max_events=50, max_message_chars=300, min_year=2000, max_future_skew_s=86_400)


def rows_of(cols: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(cols, values, strict=True)) for values in zip(*cols.values(), strict=True)]


# -- Nezha: the bundled real fault ----------------------------------------------------------------------


def test_nezha_plan_finds_every_file_of_the_sample() -> None:
    p = nezha.plan(NEZHA)
    assert p.dates == ["2023-01-29"]
    assert (p.count("logs"), p.count("spans"), p.count("metrics")) == (4, 4, 47)
    assert p.fault_lists == [DAY / "2023-01-29-fault_list.json"]
    assert p.warnings == []
    baseline = sorted(str(f.path.relative_to(NEZHA)) for f in p.files if f.baseline)
    assert baseline == [
        "construct_data/2023-01-29/log/08_50_log.csv.gz",
        "construct_data/2023-01-29/trace/08_50_trace.csv.gz",
    ]
    # a date folder given directly is read the same way, baseline included
    assert len(nezha.plan(DAY).files) == 55


def test_nezha_fault_list() -> None:
    assert nezha.load_faults(nezha.plan(NEZHA)) == [
        nezha.NezhaFault(
            inject_ns=1_674_985_774_000_000_000,  # 2023-01-29 09:49:34 UTC
            pod="ts-verification-code-service-7b6dc75c45-2z9p2",
            service="ts-verification-code-service",
            fault_type="return",
            date="2023-01-29",
        )
    ]


def test_nezha_logs_counts_and_rows() -> None:
    per_file = {
        f.path.name: batch.num_rows(nezha.read_logs(f.path)) for f in nezha.plan(NEZHA).files if f.kind == "logs"
    }
    # every row of the sample's log files is well formed: all are read
    assert per_file == {
        "09_49_log.csv.gz": 2001,
        "09_50_log.csv.gz": 2760,
        "09_51_log.csv.gz": 1515,
        "08_50_log.csv.gz": 2489,
    }

    first = rows_of(nezha.read_logs(DAY / "log" / "09_49_log.csv.gz"))[0]
    assert first == {
        "ts_ns": 1_674_985_731_143_717_856,
        "source": "nezha",
        "service": "ts-payment-service",
        "host": "33.33.33.82",
        "pod": "ts-payment-service-7fc6f5476f-cr76x",
        "level": "INFO",
        "message": "c.t.c.PaymentController#34 TraceID: 6df62e29a83368f77075fb49b83fca52 SpanID: b31c979a8919c3a8 "
        "[pay][Pay][PaymentId: null]",
        "trace_id": "6df62e29a83368f77075fb49b83fca52",
        "span_id": "b31c979a8919c3a8",
        "event_type": "log",
        "error_code": "",
        "meta": "",
    }

    levels: Counter[str] = Counter()
    services: set[str] = set()
    errors_of_faulty: list[tuple[str, dict[str, Any]]] = []
    for f in nezha.plan(NEZHA).files:
        if f.kind != "logs":
            continue
        cols = nezha.read_logs(f.path)
        levels.update(cols["level"])
        services.update(cols["service"])
        for row in rows_of(cols):
            if row["level"] == "ERROR" and row["service"] == "ts-verification-code-service":
                errors_of_faulty.append((f.path.name, row))
    assert levels == {"INFO": 8342, "WARN": 372, "ERROR": 51}
    assert sorted(services) == [
        "ts-assurance-service",
        "ts-auth-service",
        "ts-basic-service",
        "ts-cancel-service",
        "ts-config-service",
        "ts-contacts-service",
        "ts-delivery-service",
        "ts-execute-service",
        "ts-food-service",
        "ts-inside-payment-service",
        "ts-order-other-service",
        "ts-order-service",
        "ts-payment-service",
        "ts-preserve-other-service",
        "ts-preserve-service",
        "ts-price-service",
        "ts-route-service",
        "ts-seat-service",
        "ts-security-service",
        "ts-station-food-service",
        "ts-station-service",
        "ts-train-food-service",
        "ts-train-service",
        "ts-travel-service",
        "ts-travel2-service",
        "ts-user-service",
        "ts-verification-code-service",
    ]
    # the faulty service logs seven error lines, all in 09_51 (logged 09:50:11-09:51:01, after the fault)
    assert [name for name, _ in errors_of_faulty] == ["09_51_log.csv.gz"] * 7
    error_row = errors_of_faulty[0][1]
    assert error_row["ts_ns"] == 1_674_985_820_924_329_835
    assert error_row["pod"] == "ts-verification-code-service-7b6dc75c45-2z9p2"
    assert error_row["message"] == (
        "v.s.i.VerifyCodeServiceImpl#129 TraceID: 225e834d45d961d154253e1934051bfa SpanID: a02848d5b114413a "
        "[verifyCode][Get image code warn][Code not found]"
    )


def test_nezha_logs_skip_malformed_rows_of_a_real_file() -> None:
    # 40 rows of a real Nezha log file (tests/data/nezha_log_excerpt/SOURCE.md): one with ten fields (two records
    # run together) and one whose Docker JSON has trailing data are skipped; the 38 others are read
    cols = nezha.read_logs(EXCERPT)
    assert batch.num_rows(cols) == 38
    stamps = set(cols["ts_ns"])
    assert 1_674_986_763_361_647_039 not in stamps and 1_674_986_738_423_784_498 not in stamps  # the malformed rows
    # the rows right after each malformed one are read
    assert 1_674_986_763_254_554_238 in stamps and 1_674_986_738_232_241_687 in stamps
    rows = rows_of(cols)
    assert (rows[0]["ts_ns"], rows[0]["service"], rows[-1]["ts_ns"], rows[-1]["service"]) == (
        1_674_986_762_730_878_456,
        "ts-food-service",
        1_674_986_738_250_451_391,
        "ts-train-service",
    )
    assert Counter(cols["level"]) == {"INFO": 37, "WARN": 1}
    assert Counter(cols["service"])["ts-travel-service"] == 9


def test_nezha_spans_counts_and_rows() -> None:
    per_file = {f.path.name: nezha.read_spans(f.path) for f in nezha.plan(NEZHA).files if f.kind == "spans"}
    assert {k: batch.num_rows(v) for k, v in per_file.items()} == {
        "09_49_trace.csv.gz": 3834,
        "09_50_trace.csv.gz": 5193,
        "09_51_trace.csv.gz": 2901,
        "08_50_trace.csv.gz": 4890,
    }
    spans = per_file["09_49_trace.csv.gz"]
    assert rows_of(spans)[0] == {
        "trace_id": "67fc0087fda35de44e39dbf9627fdd74",
        "span_id": "981bd04d869671f9",
        "parent_id": "",  # 'root' in the file
        "service": "ts-gateway-service",
        "pod": "ts-gateway-service-6f6cfc45b-h5m2n",
        "host": "",
        "operation": "/*",
        "start_ns": 1_674_985_738_502_000_000,
        "end_ns": 1_674_985_738_723_070_578,
        "duration_us": 221_070.578,
        "status": "UNSET",
        "kind": "",
        "attributes": "",
    }
    assert spans["parent_id"].count("") == 52


def test_nezha_metrics_counts_and_rows() -> None:
    total = sum(batch.num_rows(nezha.read_metrics(f.path)) for f in nezha.plan(NEZHA).files if f.kind == "metrics")
    assert total == 60_196

    pod = nezha.read_metrics(DAY / "metric" / "ts-order-service-5b67c48447-mv5hb_metric.csv")
    assert batch.num_rows(pod) == 1330
    assert sorted(set(pod["name"])) == [
        "client_latency_p90",
        "client_latency_p95",
        "client_latency_p99",
        "cpu_usage",
        "cpu_usage_rate",
        "memory_usage",
        "memory_usage_rate",
        "network_receive_bytes",
        "network_transmit_bytes",
        "node_cpu_usage_rate",
        "node_memory_usage_rate",
        "node_network_receive_bytes",
        "server_latency_p90",
        "server_latency_p95",
        "server_latency_p99",
        "success_rate",
        "syscall_read",
        "syscall_write",
        "workload",
    ]
    assert rows_of(pod)[1] == {
        "ts_ns": 1_674_982_210_000_000_000,
        "name": "cpu_usage_rate",
        "value": 1.4105875749999086,
        "service": "ts-order-service",
        "pod": "ts-order-service-5b67c48447-mv5hb",
        "host": "",
        "attributes": "",
    }
    front = nezha.read_metrics(DAY / "metric" / "front_service.csv")
    assert batch.num_rows(front) == 350
    assert sorted(set(front["name"])) == ["latency_p50", "latency_p90", "latency_p95", "latency_p99", "success_rate"]
    assert set(front["service"]) == {"frontend"} and set(front["pod"]) == {""}


@pytest.mark.parametrize(
    ("column", "name"),
    [
        ("CpuUsageRate(%)", "cpu_usage_rate"),
        ("PodServerLatencyP95(s)", "server_latency_p95"),
        ("PodWorkload(Ops)", "workload"),
        ("PodSuccessRate(%)", "success_rate"),
        ("NodeNetworkReceiveBytes", "node_network_receive_bytes"),
    ],
)
def test_nezha_metric_names(column: str, name: str) -> None:
    assert nezha.metric_name(column) == name


@pytest.mark.parametrize(
    ("pod", "service"),
    [
        ("ts-order-service-5b67c48447-mv5hb", "ts-order-service"),
        ("ts-ui-dashboard-5477b965f-2chkr", "ts-ui-dashboard"),
        ("ts-travel2-service-5c66d57d58-6mp2b", "ts-travel2-service"),
        ("kafka-0", "kafka"),
        ("redis", "redis"),
    ],
)
def test_service_from_pod(pod: str, service: str) -> None:
    assert service_of_pod(pod) == service


# -- Nezha: hand-made files for the edge cases ----------------------------------------------------------

LOG_HEADER = "Timestamp,TimeUnixNano,Node,PodName,Container,TraceID,SpanID,Log\n"


def docker(line: str) -> str:
    """A Docker JSON log record as a quoted CSV field."""
    return '"' + json.dumps({"log": line + "\n", "stream": "stdout"}).replace('"', '""') + '"'


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_nezha_log_timestamps_fall_back_when_time_unix_nano_is_wrong(tmp_path: Path) -> None:
    pod = "ts-order-service-5b67c48447-mv5hb"
    lines = [
        f"2023-01-29T10:00:01.5Z,1674986401500000000,n1,{pod},server,t1,s1,{docker('10:00:01.500 ERROR boom')}",
        # overflowed int64 in the exporter: use the Timestamp column
        f"2023-01-29T10:00:02.25Z,99999999999999999999,n1,{pod},server,t1,s1,{docker('INFO overflow')}",
        # wrapped to a negative number: more than a day from Timestamp
        f"2023-01-29T10:00:03Z,-6795364578871345152,n1,{pod},server,t1,s1,{docker('WARN wrapped')}",
        f"2023-01-29T10:00:04Z,,n1,kafka-0,server,,,{docker('no unix time')}",
        # overflowed and no Timestamp: nothing to go by, skipped
        f",99999999999999999999,n1,{pod},server,t1,s1,{docker('INFO lost')}",
        f"not a time,,n1,{pod},server,t1,s1,{docker('INFO lost too')}",
        f"2023-01-29T10:00:05Z,1674986405000000000,n1,{pod},server,t1,s1,{docker('')}",  # empty line
        f'2023-01-29T10:00:06Z,1674986406000000000,n1,{pod},server,t1,s1,"{{""log"": 5}}"',  # log not text
        f"2023-01-29T10:00:07Z,1674986407000000000,n1,{pod},server,t1,s1,plain text line",  # not Docker JSON
        "2023-01-29T10:00:08Z,1674986408000000000,too,few,fields",
    ]
    path = write(tmp_path / "2023-01-29" / "log" / "10_00_log.csv.gz", LOG_HEADER + "\n".join(lines) + "\n")
    got = [(r["ts_ns"], r["service"], r["level"], r["message"]) for r in rows_of(nezha.read_logs(path))]
    assert got == [
        (1_674_986_401_500_000_000, "ts-order-service", "ERROR", "boom"),
        (1_674_986_402_250_000_000, "ts-order-service", "INFO", "overflow"),
        (1_674_986_403_000_000_000, "ts-order-service", "WARN", "wrapped"),
        (1_674_986_404_000_000_000, "kafka", "INFO", "no unix time"),
        (1_674_986_407_000_000_000, "ts-order-service", "INFO", "plain text line"),
    ]
    batch.to_table("logs", nezha.read_logs(path))  # every value fits the event store's types


def test_nezha_bytes_that_are_not_utf8_spoil_one_value_not_the_file(tmp_path: Path) -> None:
    body = LOG_HEADER.encode() + (
        b"2023-01-29T10:00:01Z,1674986401000000000,n1,a-1,server,,,bad \xff byte\n"
        b"2023-01-29T10:00:02Z,1674986402000000000,n1,a-1,server,,,fine\n"
    )
    path = write(tmp_path / "2023-01-29" / "log" / "10_00_log.csv", body)
    assert nezha.read_logs(path)["message"] == ["bad \ufffd byte", "fine"]


def test_nezha_spans_and_metrics_skip_values_that_do_not_fit(tmp_path: Path) -> None:
    spans = write(
        tmp_path / "trace.csv",
        "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration\n"
        "t1,a,root,ts-a-service-5b67c48447-mv5hb,GET /a,1674986401000000000,1674986401002000000,2000\n"
        "t1,b,a,ts-b-service-5b67c48447-mv5hb,GET /b,99999999999999999999,99999999999999999999,0\n"
        "t1,c,a,ts-b-service-5b67c48447-mv5hb,GET /c,1674986401000000000,1674986400000000000,0\n"
        "t1,d,a,ts-b-service-5b67c48447-mv5hb,GET /d,x,1674986400000000000,0\n",
    )
    cols = nezha.read_spans(spans)
    assert cols["span_id"] == ["a"] and cols["duration_us"] == [2000.0] and cols["parent_id"] == [""]
    batch.to_table("spans", cols)

    metrics = write(
        tmp_path / "ts-a-service-5b67c48447-mv5hb_metric.csv",
        "Time,TimeStamp,PodName,CpuUsage(m),MemoryUsage(Mi)\n"
        "t,1674986401,ts-a-service-5b67c48447-mv5hb,1.5,\n"
        "t,inf,ts-a-service-5b67c48447-mv5hb,2.5,3\n"
        "t,1e300,ts-a-service-5b67c48447-mv5hb,2.5,3\n"
        "t,1674986461,ts-a-service-5b67c48447-mv5hb,nan,x\n",
    )
    cols = nezha.read_metrics(metrics)
    assert rows_of(cols) == [
        {
            "ts_ns": 1_674_986_401_000_000_000,
            "name": "cpu_usage",
            "value": 1.5,
            "service": "ts-a-service",
            "pod": "ts-a-service-5b67c48447-mv5hb",
            "host": "",
            "attributes": "",
        }
    ]
    batch.to_table("metrics", cols)


def test_nezha_plan_reports_what_it_skips_and_refuses_other_folders(tmp_path: Path) -> None:
    day = tmp_path / "2023-01-29"
    write(day / "log" / "10_00_log.csv", LOG_HEADER)
    write(day / "log" / "notes.txt", "x")
    write(day / "metric" / "summary.csv", "a,b\n")
    write(day / "pictures" / "x.png", b"\x89PNG")
    p = nezha.plan(tmp_path)
    assert p.count("logs") == 1
    assert sorted(w.rsplit("/", 1)[-1] for w in p.warnings) == sorted(
        [
            "2023-01-29: no fault list (2023-01-29-fault_list.json)",
            "no metrics found",
            "no spans found",
            "notes.txt: unknown file, skipped",
            "pictures: not a Nezha folder, skipped",
            "summary.csv: not a per-pod metric file, skipped",
        ]
    )
    with pytest.raises(DatasetError) as exc:
        nezha.plan(tmp_path / "2023-01-29" / "log")
    assert exc.value.field == "DIR" and "no YYYY-MM-DD folders" in exc.value.message
    with pytest.raises(DatasetError):
        nezha.plan(tmp_path / "missing")


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        '{"10": [{"inject_time": "2023-01-29 10:04:34"}]}',
        '{"10": {"inject_pod": "a"}}',
        '{"10": [{"inject_pod": "a-1", "inject_time": "yesterday"}]}',
    ],
)
def test_nezha_bad_fault_lists_are_dataset_errors(tmp_path: Path, doc: str) -> None:
    write(tmp_path / "2023-01-29" / "log" / "10_00_log.csv", LOG_HEADER)
    write(tmp_path / "2023-01-29" / "2023-01-29-fault_list.json", doc)
    with pytest.raises(DatasetError) as exc:
        nezha.load_faults(nezha.plan(tmp_path))
    assert exc.value.field == "fault_list" and "2023-01-29-fault_list.json" in exc.value.message


# -- journald ---------------------------------------------------------------------------------------------

T0 = 1_700_000_000_000_000  # µs: 2023-11-14T22:13:20Z


def jline(**fields: Any) -> str:
    doc = {"__REALTIME_TIMESTAMP": str(T0), "_HOSTNAME": "node-1", "MESSAGE": "hello", **fields}
    return json.dumps({k: v for k, v in doc.items() if v is not None})


def test_journald_lines_become_log_rows() -> None:
    lines = [
        jline(SYSLOG_IDENTIFIER="kubelet", PRIORITY="3", MESSAGE="Failed to pull image", _PID="812", _BOOT_ID="b1"),
        jline(_SYSTEMD_UNIT="containerd.service", PRIORITY="4", MESSAGE=list(b"disk \xe2\x80\x9cfull\xe2\x80\x9d")),
        jline(_COMM="sshd", PRIORITY=7, MESSAGE=list(b"bad \xff byte")),
        jline(SYSLOG_IDENTIFIER="app", MESSAGE="ERROR: payment declined", PRIORITY="6"),
        jline(SYSLOG_IDENTIFIER="app", MESSAGE="notice", PRIORITY="5"),
        jline(SYSLOG_IDENTIFIER="app", MESSAGE="crit", PRIORITY="2"),
        jline(SYSLOG_IDENTIFIER="app", MESSAGE="no priority", PRIORITY=None),
        jline(
            SYSLOG_IDENTIFIER="checkout",
            CONTAINER_NAME="k8s_server_checkout-7d9f8b6c5d-x2x9z_shop_0b1c_0",
            TRACE_ID="ABCDEF0123456789ABCDEF0123456789",
        ),
    ]
    parsed = parse_journald(lines, LIMITS, now_ns=NOW)
    assert parsed.errors == []
    rows = rows_of(parsed.rows)
    assert [(r["service"], r["level"], r["message"]) for r in rows] == [
        ("kubelet", "ERROR", "Failed to pull image"),
        ("containerd", "WARN", "disk \u201cfull\u201d"),
        ("sshd", "DEBUG", "bad \ufffd byte"),
        ("app", "ERROR", "ERROR: payment declined"),
        ("app", "INFO", "notice"),
        ("app", "FATAL", "crit"),
        ("app", "INFO", "no priority"),
        ("checkout", "INFO", "hello"),
    ]
    assert {r["ts_ns"] for r in rows} == {T0 * 1000}
    assert {(r["source"], r["event_type"], r["host"]) for r in rows} == {("journald", "journald", "node-1")}
    assert json.loads(rows[0]["meta"]) == {"_PID": "812", "_BOOT_ID": "b1"}
    assert rows[-1]["pod"] == "checkout-7d9f8b6c5d-x2x9z"
    assert rows[-1]["trace_id"] == "abcdef0123456789abcdef0123456789"


def test_journald_bad_lines_are_reported_by_line_number() -> None:
    lines = [
        jline(MESSAGE="ok 1"),
        "",  # blank lines are skipped but counted
        "{not json",
        "[1, 2]",
        jline(__REALTIME_TIMESTAMP="soon"),
        jline(__REALTIME_TIMESTAMP=None),
        jline(__REALTIME_TIMESTAMP="1000"),  # 1970
        jline(__REALTIME_TIMESTAMP=str(10**17)),  # year 5138
        jline(MESSAGE=None),
        jline(MESSAGE=[300, 1]),
        jline(MESSAGE={"a": 1}),
        "[" * 100_000,
        jline(MESSAGE="ok 2").encode(),
    ]
    parsed = parse_journald(lines, LIMITS, now_ns=NOW, first_line=10)
    assert parsed.rows["message"] == ["ok 1", "ok 2"]
    assert [(e.index, e.field) for e in parsed.errors] == [
        (12, "line 12"),
        (13, "line 13"),
        (14, "line 14.__REALTIME_TIMESTAMP"),
        (15, "line 15.__REALTIME_TIMESTAMP"),
        (16, "line 16.__REALTIME_TIMESTAMP"),
        (17, "line 17.__REALTIME_TIMESTAMP"),
        (18, "line 18.MESSAGE"),
        (19, "line 19.MESSAGE"),
        (20, "line 20.MESSAGE"),
        (21, "line 21"),
    ]
    assert parsed.errors[4].problem == "timestamp is before 2000"


def test_journald_cleans_and_truncates_and_chunks_keep_line_numbers() -> None:
    long = "x" * 1000
    parsed = parse_journald(
        [jline(MESSAGE="a\x00b \ud800", SYSLOG_IDENTIFIER="sv\x00c"), jline(MESSAGE=long)], LIMITS, now_ns=NOW
    )
    assert parsed.rows["message"][0] == "ab ?"
    assert parsed.rows["service"][0] == "svc"
    assert parsed.rows["message"][1] == "x" * 300 + TRUNCATED_MARK
    assert json.loads(parsed.rows["meta"][1]) == {"truncated": True}

    got = [(first, len(lines)) for first, lines in chunks(iter(["a"] * 7), 3)]
    assert got == [(1, 3), (4, 3), (7, 1)]


# -- DevMesh JSON batches --------------------------------------------------------------------------------


def ev(**fields: Any) -> dict[str, Any]:
    return {"timestamp": "2025-10-09T00:00:00Z", "message": "hello", **fields}


def test_devmesh_json_valid_events_and_their_fields() -> None:
    items = [
        ev(
            service="checkout",
            host="node-1",
            pod="checkout-1",
            level="warning",
            trace_id="ABCDEF0123456789ABCDEF0123456789",
            span_id="00F067AA0BA902B7",
            error_code=503,
            meta={"region": "eu"},
            team="payments",  # an extra field: kept in meta
            retries=3,
        ),
        ev(timestamp=1_760_000_000, message="epoch seconds", source="fluentbit"),
        ev(timestamp=1_760_000_000_123, message="epoch ms"),
        ev(timestamp=1_760_000_000_123_456, message="epoch us"),
        ev(timestamp=1_760_000_000_123_456_789, message="epoch ns", level="LOUD"),
        ev(timestamp="2025-10-09T02:00:00+02:00", message="offset", event_type="audit", error_code="E42"),
    ]
    parsed = parse_events(items, LIMITS, now_ns=NOW)
    assert parsed.errors == [] and parsed.accepted == 6
    rows = rows_of(parsed.rows)
    assert rows[0] == {
        "ts_ns": 1_759_968_000_000_000_000,
        "source": "api",
        "service": "checkout",
        "host": "node-1",
        "pod": "checkout-1",
        "level": "WARN",
        "message": "hello",
        "trace_id": "abcdef0123456789abcdef0123456789",
        "span_id": "00f067aa0ba902b7",
        "event_type": "log",
        "error_code": "503",
        "meta": '{"region":"eu","team":"payments","retries":3}',
    }
    assert [r["ts_ns"] for r in rows[1:]] == [
        1_760_000_000_000_000_000,
        1_760_000_000_123_000_000,
        1_760_000_000_123_456_000,
        1_760_000_000_123_456_789,
        1_759_968_000_000_000_000,
    ]
    assert rows[1]["source"] == "fluentbit"
    assert rows[4]["level"] == "INFO"  # an unknown level word is INFO
    assert (rows[5]["event_type"], rows[5]["error_code"]) == ("audit", "E42")


def test_devmesh_json_invalid_events_are_reported_by_index_and_field() -> None:
    items = [
        ev(),
        {"message": "no time"},
        {"timestamp": "2025-10-09T00:00:00Z"},
        ev(timestamp=True),
        ev(timestamp=None),
        ev(timestamp=[2025]),
        ev(timestamp="next tuesday"),
        ev(timestamp=float("nan")),
        ev(timestamp=float("inf")),
        ev(timestamp="1999-12-31T23:59:59Z"),
        ev(timestamp=NOW // 10**9 + 2 * 86_400),
        ev(timestamp=10**30),
        ev(message=42),
        ev(message=None),
        ev(service=["a"]),
        ev(level=3),
        ev(error_code=True),
        ev(error_code=1.5),
        ev(meta="not an object"),
        "not an object",
        ev(message="last, valid"),
    ]
    parsed = parse_events(items, LIMITS, now_ns=NOW, index_offset=100)
    assert parsed.rows["message"] == ["hello", "last, valid"]
    got = [(e.index, e.field, e.problem) for e in parsed.errors]
    assert got == [
        (101, "events[101].timestamp", "required field is missing"),
        (102, "events[102].message", "required field is missing"),
        (103, "events[103].timestamp", "must be an ISO-8601 string or an epoch number, not a boolean"),
        (104, "events[104].timestamp", "must be an ISO-8601 string or an epoch number, not null"),
        (105, "events[105].timestamp", "must be an ISO-8601 string or an epoch number, not an array"),
        (106, "events[106].timestamp", "not a timestamp: 'next tuesday' (use ISO-8601 or epoch seconds)"),
        (107, "events[107].timestamp", "must be a finite epoch number (not NaN or Infinity)"),
        (108, "events[108].timestamp", "must be a finite epoch number (not NaN or Infinity)"),
        (109, "events[109].timestamp", "timestamp is before 2000"),
        (110, "events[110].timestamp", "timestamp is more than 86400s in the future"),
        (111, "events[111].timestamp", "timestamp out of range (DevMesh stores the years 1677 to 2262)"),
        (112, "events[112].message", "Input should be a valid string"),
        (113, "events[113].message", "Input should be a valid string"),
        (114, "events[114].service", "Input should be a valid string"),
        (115, "events[115].level", "Input should be a valid string"),
        (116, "events[116].error_code", "must be a string or an integer, not a boolean"),
        (117, "events[117].error_code", "must be a string or an integer, not a number"),
        (118, "events[118].meta", "Input should be a valid dictionary"),
        (119, "events[119]", "must be a JSON object"),
    ]


def test_devmesh_json_cleans_text_and_truncates() -> None:
    items = [
        ev(message="nul\x00here", service="svc\x00", host="h\ud800", extra="x\ud800\x00y"),
        ev(message="m" * 301),
        ev(message="m" * 300),
        ev(service="s" * 1000),
    ]
    parsed = parse_events(items, LIMITS, now_ns=NOW)
    rows = rows_of(parsed.rows)
    assert rows[0]["message"] == "nulhere"
    assert (rows[0]["service"], rows[0]["host"]) == ("svc", "h?")
    assert json.loads(rows[0]["meta"]) == {"extra": "x?\x00y"}  # NUL kept as a JSON escape, surrogate replaced
    for r in rows:
        r["message"].encode("utf-8")  # storable
    assert rows[1]["message"] == "m" * 300 + TRUNCATED_MARK and json.loads(rows[1]["meta"]) == {"truncated": True}
    assert rows[2]["message"] == "m" * 300 and rows[2]["meta"] == ""
    assert rows[3]["service"] == "s" * 256


def test_devmesh_json_batch_shapes_and_limits() -> None:
    assert events_of({"events": [1, 2]}) == [1, 2]
    assert events_of([{"a": 1}]) == [{"a": 1}]
    assert events_of({"timestamp": 1, "message": "one event"}) == [{"timestamp": 1, "message": "one event"}]
    for bad, field in (({"events": "x"}, "events"), ({"foo": 1}, "body"), (42, "body"), ("text", "body")):
        with pytest.raises(InvalidInput) as exc:
            events_of(bad)
        assert exc.value.field == field
    with pytest.raises(PayloadTooLarge) as too_many:
        parse_events([ev()] * 51, LIMITS, now_ns=NOW)
    assert too_many.value.field == "events" and too_many.value.status_code == 413
    assert parse_events([], LIMITS, now_ns=NOW).accepted == 0


def test_clean_text_and_short() -> None:
    assert clean_text("plain") == ("plain", False)
    assert clean_text("a\x00b\ud83dc") == ("ab?c", False)
    assert clean_text("é" * 5, 3) == ("ééé" + TRUNCATED_MARK, True)
    assert short("id") == "id"
    assert short("a\x00b") == "ab"
    assert short("x" * 10, 4) == "xxxx"
    assert short("\ud800" * 3) == "???"


# -- line heads -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "level", "rest"),
    [
        ("16:42:22.418 ERROR f.s.Foo#302 boom\n", "ERROR", "f.s.Foo#302 boom"),
        ("2023-01-29T10:03:57.916Z  WARN  disk almost full", "WARN", "disk almost full"),
        ("2023-01-29 10:03:57,123 [INFO] started", "INFO", "started"),
        ("[WARNING]: slow", "WARN", "slow"),
        ("CRITICAL: down", "FATAL", "down"),
        ("err: short form", "ERROR", "short form"),
        ("10:00:00 no level here", None, "no level here"),
        ("INFORMATIONAL text", None, "INFORMATIONAL text"),
        ("just text", None, "just text"),
    ],
)
def test_split_head(line: str, level: str | None, rest: str) -> None:
    assert split_head(line) == (level, rest)


def test_looks_like_error() -> None:
    assert looks_like_error("java.net.ConnectException: Connection refused")
    assert looks_like_error("request timed out after 3s")
    assert not looks_like_error("user logged in")


# -- runbooks ---------------------------------------------------------------------------------------------


def test_runbooks_of_the_sample() -> None:
    books, warnings = read_runbooks(RUNBOOKS, base_url="https://runbooks.example/")
    assert warnings == []
    assert [(b.id, b.title, b.alerts) for b in books] == [
        ("rb:kubernetes/CPUThrottlingHigh", "CPU Throttling High", ["CPUThrottlingHigh"]),
        ("rb:kubernetes/KubeContainerWaiting", "Kube Container Waiting", ["KubeContainerWaiting"]),
        (
            "rb:kubernetes/KubeDeploymentReplicasMismatch",
            "Kube Deployment Replicas Mismatch",
            ["KubeDeploymentReplicasMismatch"],
        ),
        ("rb:kubernetes/KubePodCrashLooping", "Kube Pod Crash Looping", ["KubePodCrashLooping"]),
        ("rb:kubernetes/KubePodNotReady", "Kube Pod Not Ready", ["KubePodNotReady"]),
        ("rb:node/NodeNetworkReceiveErrs", "Node Network Receive Errors", ["NodeNetworkReceiveErrs"]),
    ]
    for b in books:
        assert [(s.heading, s.kind) for s in b.sections] == [
            ("Meaning", "meaning"),
            ("Impact", "impact"),
            ("Diagnosis", "diagnosis"),
            ("Mitigation", "mitigation"),
        ]
        assert [s.id for s in b.sections] == [f"{b.id}#{i}" for i in range(4)]
    crash = books[3]
    assert crash.url == "https://runbooks.example/kubernetes/KubePodCrashLooping"
    assert crash.path == "kubernetes/KubePodCrashLooping.md"
    assert crash.sections[0].text == (
        "Pod is in CrashLoop which means the app dies or is unresponsive and \n"
        "kubernetes tries to restart it automatically."
    )
    assert services_mentioned(crash, ["pod", "kubelet", "node", "app", ""]) == ["pod", "app"]
    assert services_mentioned(books[5], ["node", "network"]) == ["node", "network"]


def test_runbook_parsing_edge_cases(tmp_path: Path) -> None:
    text = (
        "Intro before any heading.\n\n"
        "# Payment Latency\n\n"
        "## Diagnosis\n\n"
        "```sh\n# not a heading: a shell comment\nkubectl logs checkout-api\n```\n\n"
        "## Mitigation\n\n"
        "### Option A: restart\n\nRestart payment-db.\n\n"
        "### Option B\n\nScale checkout.\n\n"
        "## Links\n\nSee the wiki.\n"
    )
    rb = parse_runbook(text, "team/payment-latency.md")
    assert rb.title == "payment-latency" and rb.alerts == []
    assert [(s.heading, s.kind) for s in rb.sections] == [
        ("payment-latency", "other"),
        ("Diagnosis", "diagnosis"),
        ("Option A: restart", "mitigation"),
        ("Option B", "mitigation"),
        ("Links", "other"),
    ]
    assert "# not a heading" in rb.sections[1].text
    # services are matched as whole names: "checkout" is not found in "checkout-api"
    assert services_mentioned(rb, ["checkout", "payment-db", "payment", "checkout-api"]) == [
        "checkout",
        "payment-db",
        "checkout-api",
    ]

    (tmp_path / "README.md").write_text("# Index\n\nnot a runbook")
    (tmp_path / "_index.md").write_text("# Index")
    (tmp_path / "Empty.md").write_text("---\ntitle: x\n---\n# Empty\n")
    (tmp_path / "KubeAPIDown.md").write_text("---\n: bad: yaml: [\n---\n# KubeAPIDown\n\n## Meaning\n\nAPI down.\n")
    books, warnings = read_runbooks(tmp_path)
    assert [(b.id, b.alerts, len(b.sections)) for b in books] == [("rb:KubeAPIDown", ["KubeAPIDown"], 1)]
    assert [w.rsplit("/", 1)[-1] for w in warnings] == ["Empty.md: no text, skipped"]

    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(DatasetError):
        read_runbooks(empty)
    with pytest.raises(DatasetError):
        read_runbooks(tmp_path / "missing")


# -- topology YAML ----------------------------------------------------------------------------------------


def test_topology_yaml(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(
        "services:\n"
        "  - name: checkout\n"
        "    calls: [payment, inventory]\n"
        "    pods:\n"
        "      - {name: checkout-7d9f-abcde, node: node-1}\n"
        "      - {name: checkout-7d9f-fghij}\n"
        "  - name: payment\n"
        "    calls: [bank]\n"
    )
    topo = read_topology(path)
    assert topo.services == ["bank", "checkout", "inventory", "payment"]
    assert [(p.pod, p.service, p.host) for p in topo.pods] == [
        ("checkout-7d9f-abcde", "checkout", "node-1"),
        ("checkout-7d9f-fghij", "checkout", ""),
    ]
    assert [(c.caller, c.callee, c.calls) for c in topo.calls] == [
        ("checkout", "payment", 0),
        ("checkout", "inventory", 0),
        ("payment", "bank", 0),
    ]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "services"),
        ("- a\n- b\n", "services"),
        ("just text", "services"),
        ("other: 1\n", "services"),
        ("services: 3\n", "services"),
        ("services:\n  - calls: [a]\n", "services[0].name"),
        ("services:\n  - name: ''\n", "services[0].name"),
        ("services:\n  - name: a\n    calls: ['']\n", "services[0].calls[0]"),
        ("services:\n  - name: a\n    calls: [[x]]\n", "services[0].calls[0]"),
        ("services:\n  - name: a\n    pods: [{node: n1}]\n", "services[0].pods[0].name"),
        ("services: [\n", "FILE"),
    ],
)
def test_topology_yaml_invalid_documents(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as exc:
        read_topology(path)
    assert exc.value.field == field


def test_topology_yaml_unreadable_files(tmp_path: Path) -> None:
    binary = tmp_path / "t.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    for path in (binary, tmp_path / "missing.yaml", tmp_path):
        with pytest.raises(InvalidInput) as exc:
            read_topology(path)
        assert exc.value.field == "FILE"
    assert parse_topology({"services": []}).services == []
