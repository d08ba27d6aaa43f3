"""Limits that bound the work: the OTLP wire pre-scan, the JSON item count, the bounded inflater, the token
buckets and the alert explanation queue (issue 11)."""

from __future__ import annotations

import gzip
import json
import threading
import zlib

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from api.alert_queue import ExplainQueue
from api.http.ratelimit import TokenBuckets, caller_of, route_class
from bench.otlp_bomb import bomb
from core.errors import InvalidInput, Overloaded, PayloadTooLarge, UnsupportedMediaType
from ingest.bounded import check_json_items, inflate
from ingest.otlp import decode_body, parse_logs
from ingest.otlp.prescan import check_records

PB = "application/x-protobuf"
MB = 1024 * 1024
T = 1_760_000_000 * 10**9


def logs_request(shape: list[list[int]]) -> ExportLogsServiceRequest:
    """One resource per outer item, one scope per inner number, that many records in it."""
    req = ExportLogsServiceRequest()
    for scopes in shape:
        rl = req.resource_logs.add()
        rl.resource.attributes.add(key="service.name").value.string_value = "checkout"
        for n in scopes:
            sl = rl.scope_logs.add()
            sl.scope.name = "lib"
            for i in range(n):
                r = sl.log_records.add(time_unix_nano=T + i, severity_text="INFO")
                r.body.string_value = f"line {i}"
                r.attributes.add(key="k").value.int_value = i
    return req


def traces_request(shape: list[list[int]]) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for scopes in shape:
        rs = req.resource_spans.add()
        for n in scopes:
            ss = rs.scope_spans.add()
            for i in range(n):
                ss.spans.add(name=f"op{i}", trace_id=bytes(16), span_id=bytes(8), start_time_unix_nano=T)
    return req


def metrics_request() -> tuple[ExportMetricsServiceRequest, int]:
    """Every kind of metric, with 1 to 5 points each: (request, number of data points)."""
    req = ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    total = 0
    for k, kind in enumerate(("gauge", "sum", "histogram", "exponential_histogram", "summary")):
        m = sm.metrics.add(name=f"m.{kind}", unit="1", description="d")
        for i in range(k + 1):
            p = getattr(m, kind).data_points.add(time_unix_nano=T + i)
            p.attributes.add(key="host").value.string_value = "a"
            total += 1
    sm.metrics.append(Metric(name="no.data"))  # a metric without data has no points
    return req, total


@pytest.mark.parametrize("shape", [[[3]], [[1, 2], [0, 4]], [[0]], []])
def test_prescan_counts_log_records_exactly(shape: list[list[int]]) -> None:
    raw = logs_request(shape).SerializeToString()
    assert check_records("logs", raw, "protobuf", 100) == sum(map(sum, shape))


def test_prescan_counts_spans_and_data_points_exactly() -> None:
    assert check_records("traces", traces_request([[2, 3], [5]]).SerializeToString(), "protobuf", 100) == 10
    req, points = metrics_request()
    assert points == 15
    assert check_records("metrics", req.SerializeToString(), "protobuf", 100) == 15


@pytest.mark.parametrize(
    ("signal", "raw", "field"),
    [
        ("logs", logs_request([[2], [2]]).SerializeToString(), "resourceLogs.scopeLogs.logRecords"),
        ("traces", traces_request([[4]]).SerializeToString(), "resourceSpans.scopeSpans.spans"),
        ("metrics", metrics_request()[0].SerializeToString(), "resourceMetrics.scopeMetrics.metrics.dataPoints"),
    ],
)
def test_one_record_over_the_limit_is_413_naming_the_field_and_setting(signal: str, raw: bytes, field: str) -> None:
    limit = check_records(signal, raw, "protobuf", 100) - 1
    with pytest.raises(PayloadTooLarge) as err:
        check_records(signal, raw, "protobuf", limit)
    assert err.value.field == field
    assert "DEVMESH_MAX_BATCH_" in err.value.message
    assert check_records(signal, raw, "protobuf", limit + 1) == limit + 1


def test_the_16_kb_bomb_is_refused_before_decoding() -> None:
    body = bomb(8_300_000)
    assert len(body) < 20_000
    with pytest.raises(PayloadTooLarge) as err:
        decode_body(body, PB, "gzip", 16 * MB, max_decoded_bytes=32 * MB, signal="logs", max_records=100_000)
    assert err.value.field == "resourceLogs.scopeLogs.logRecords"


def test_a_flood_of_tiny_envelope_fields_is_refused_by_the_field_budget() -> None:
    scope = b"\x18\x00" * 50_000  # ScopeLogs field 3 as a varint (wrong type, but cheap to send): no records
    inner = b"\x12" + _len(len(scope)) + scope  # ResourceLogs.scope_logs
    raw = b"\x0a" + _len(len(inner)) + inner  # ExportLogsServiceRequest.resource_logs
    with pytest.raises(PayloadTooLarge) as err:
        check_records("logs", raw, "protobuf", 10, max_fields=1000)
    assert err.value.field == "body"


def _len(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0a",  # a key and no length
        b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # a varint longer than 10 bytes
        b"\x0a\x80",  # a truncated varint
        b"\x0a\x10\x12\x05",  # lengths past the end
        b"\x0b\x00",  # a group start
        b"\xff" * 64,
    ],
)
def test_hostile_wire_format_gives_4xx_not_a_crash(raw: bytes) -> None:
    assert check_records("logs", raw, "protobuf", 10) <= 10  # the scan stops quietly ...
    with pytest.raises(InvalidInput) as err:  # ... and the decoder says what is wrong (a 422)
        parse_logs(decode_body(raw, PB, None, MB, signal="logs", max_records=10), PB, **_BOUNDS)
    assert 400 <= err.value.status_code < 500


_BOUNDS = {"now_ns": T, "min_year": 2000, "max_future_skew_s": 86400}


def test_json_records_are_counted_while_streaming() -> None:
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}}] * 30}]}]}
    raw = json.dumps(doc).encode()
    with pytest.raises(PayloadTooLarge) as err:
        check_records("logs", raw, "json", 29)
    assert err.value.field == "resourceLogs.scopeLogs.logRecords"
    assert check_records("logs", raw, "json", 30) == 30
    assert check_records("logs", raw, "json", 1000) == -1  # too few commas to hold more: not scanned
    snake = json.dumps({"resource_logs": [{"scope_logs": [{"log_records": [{}] * 40}]}]}).encode()
    with pytest.raises(PayloadTooLarge):
        check_records("logs", snake, "json", 39)


def test_devmesh_batches_count_events_not_nested_arrays() -> None:
    events = [{"timestamp": 1, "message": "m", "meta": {"tags": list(range(50))}}] * 5
    for raw in (json.dumps(events).encode(), json.dumps({"events": events}).encode()):
        assert check_json_items(raw, 5, paths=("item", "events.item"), what="events", field="events", setting="S") == 5
        with pytest.raises(PayloadTooLarge) as err:
            check_json_items(raw, 4, paths=("item", "events.item"), what="events", field="events", setting="S")
        assert err.value.field == "events"


def test_the_shared_inflater_caps_every_encoding() -> None:
    data = b"x" * 5000
    assert inflate(gzip.compress(data), "gzip", 5000) == data
    assert inflate(zlib.compress(data), "deflate", 5000) == data
    assert inflate(gzip.compress(zlib.compress(data)), "deflate, gzip", 5000) == data
    for body, enc in ((gzip.compress(data), "gzip"), (zlib.compress(data), "deflate")):
        with pytest.raises(PayloadTooLarge):
            inflate(body, enc, 4999)
    with pytest.raises(UnsupportedMediaType):
        inflate(data, "br", 5000)
    with pytest.raises(InvalidInput):
        inflate(gzip.compress(data)[:-10], "gzip", 5000)


def test_token_buckets_allow_a_minute_then_say_when() -> None:
    now = [0.0]
    buckets = TokenBuckets(60, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(60)] == [0.0] * 60
    assert buckets.take("a") == pytest.approx(1.0)
    assert buckets.take("b") == 0.0  # another caller has its own bucket
    now[0] = 2.0
    assert buckets.take("a") == 0.0
    small = TokenBuckets(10, max_callers=2, clock=lambda: now[0])
    for c in ("x", "y", "z"):
        small.take(c)
    assert len(small._buckets) == 2


def test_callers_and_route_classes() -> None:
    key = caller_of([(b"authorization", b"Bearer s3cret")], ("10.0.0.1", 5))
    assert key.startswith("key:") and "s3cret" not in key and len(key) == 16
    assert caller_of([(b"authorization", b"Basic abc")], ("10.0.0.1", 5)) == "addr:10.0.0.1"
    assert caller_of([], None) == "addr:unknown"
    assert [route_class("POST", p) for p in ("/v1/logs", "/ingest/logs", "/explain", "/alerts/alertmanager")] == [
        "ingest",
        "ingest",
        "explain",
        "alerts",
    ]
    assert route_class("GET", "/incidents") is None and route_class("POST", "/incidents/x/feedback") is None


def test_the_queue_refuses_what_does_not_fit_and_skips_what_it_holds() -> None:
    gate = threading.Event()
    ran: list[str] = []

    def run(job: str) -> None:
        gate.wait(10)
        ran.append(job)

    q: ExplainQueue[str] = ExplainQueue(run, key_of=lambda j: j, capacity=3, timeout_s=10)
    assert q.submit(["a", "b"]) == (["a", "b"], 0)
    assert q.submit(["a", "c"]) == (["c"], 1)  # 'a' is waiting or running already
    with pytest.raises(Overloaded) as err:
        q.submit(["d"])
    assert err.value.status_code == 503 and err.value.retry_after >= 1
    gate.set()
    assert q.wait_idle(10)
    assert sorted(ran) == ["a", "b", "c"]
    assert q.submit(["d"]) == (["d"], 0)
    assert q.wait_idle(10)


def test_a_job_over_its_time_limit_is_given_up_and_keeps_its_slot_until_it_ends() -> None:
    release = threading.Event()
    timed_out: list[str] = []
    ran: list[str] = []

    def run(job: str) -> None:
        if job == "slow":
            release.wait(10)
        ran.append(job)

    q: ExplainQueue[str] = ExplainQueue(
        run, key_of=lambda j: j, capacity=2, timeout_s=0.05, on_timeout=timed_out.append
    )
    q.submit(["slow", "next"])
    for _ in range(1000):  # at most 10 s
        if "next" in ran:
            break
        threading.Event().wait(0.01)
    assert timed_out == ["slow"] and ran == ["next"]  # the worker went on after the time limit
    assert q.load() == 1  # the slow job still holds its slot
    with pytest.raises(Overloaded):
        q.submit(["x", "y"])
    release.set()
    assert q.wait_idle(10)
