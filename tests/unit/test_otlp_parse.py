"""OTLP/HTTP decoding: SDK-encoded and hand-built requests, both encodings, gzip, rejects, responses."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import zlib
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Summary,
    SummaryDataPoint,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ingest.otlp import (
    LOG_COLUMNS,
    METRIC_COLUMNS,
    SPAN_COLUMNS,
    ParsedBatch,
    decode_body,
    parse_logs,
    parse_metrics,
    parse_traces,
    partial_success_response,
)
from ingest.otlp.quantiles import bucket_quantile, exponential_values

PB = "application/x-protobuf"
JS = "application/json"
T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
NOW = T0 + 3600 * 10**9
LIMITS = {"now_ns": NOW, "min_year": 2000, "max_future_skew_s": 86_400}
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")
PARENT = bytes.fromhex("eee19b7ec3c1b173")
MB = 1 << 20

_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
_INT64_KEYS = {
    "timeUnixNano",
    "observedTimeUnixNano",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "intValue",
    "asInt",
    "count",
    "bucketCounts",
    "zeroCount",
}
_INT64_KEYS |= {"".join("_" + c.lower() if c.isupper() else c for c in k) for k in _INT64_KEYS}


# ------------------------------------------------------------------------------------------ helpers


def rows(parsed: ParsedBatch) -> list[dict[str, Any]]:
    return [dict(zip(parsed.rows, values, strict=True)) for values in zip(*parsed.rows.values(), strict=True)]


def otlp_json(msg: Message, *, snake: bool = False, enum_ints: bool = False, int_numbers: bool = False) -> dict:
    """OTLP/JSON of a message as the spec has it: hex ids (not the base64 of the protobuf JSON mapping).

    snake: original proto field names; enum_ints: enums as numbers; int_numbers: int64 as JSON numbers.
    """
    doc = json_format.MessageToDict(msg, preserving_proto_field_name=snake, use_integers_for_enums=enum_ints)

    def fix(o: Any, key: str = "") -> Any:
        if isinstance(o, dict):
            return {k: fix(v, k) for k, v in o.items()}
        if isinstance(o, list):
            return [fix(v, key) for v in o]
        if key in _ID_KEYS and isinstance(o, str):
            return base64.b64decode(o).hex()
        if int_numbers and key in _INT64_KEYS and isinstance(o, str):
            return int(o)
        return o

    return fix(doc)


def kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[kv(k, v) for k, v in value.items()]))
    return AnyValue(string_value=value)


def resource(**attrs: Any) -> Resource:
    return Resource(attributes=[kv(k.replace("_", "."), v) for k, v in attrs.items()])


RES = {"service_name": "cart", "host_name": "node-1", "k8s_pod_name": "cart-0"}


def logs_request(*records: LogRecord, res: Resource | None = None) -> ExportLogsServiceRequest:
    scope = ScopeLogs(scope=InstrumentationScope(name="app"), log_records=list(records))
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(resource=res or resource(**RES), scope_logs=[scope])])


def spans_request(*spans: Span, res: Resource | None = None) -> ExportTraceServiceRequest:
    scope = ScopeSpans(scope=InstrumentationScope(name="app"), spans=list(spans))
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=res or resource(**RES), scope_spans=[scope])]
    )


def metrics_request(*metrics: Metric) -> ExportMetricsServiceRequest:
    scope = ScopeMetrics(scope=InstrumentationScope(name="app"), metrics=list(metrics))
    return ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(resource=resource(**RES), scope_metrics=[scope])]
    )


def span(**over: Any) -> Span:
    fields: dict[str, Any] = {
        "trace_id": TRACE,
        "span_id": SPAN,
        "name": "GET /cart",
        "kind": Span.SPAN_KIND_SERVER,
        "start_time_unix_nano": T0,
        "end_time_unix_nano": T0 + 2_500_000,
    }
    fields.update(over)
    return Span(**fields)


def gauge(name: str, *points: NumberDataPoint) -> Metric:
    return Metric(name=name, gauge=Gauge(data_points=list(points)))


def patch_bytes(raw: bytes, marker: bytes, replacement: bytes) -> bytes:
    """Swap a same-length marker inside an encoded message (keeps the wire format valid)."""
    assert len(marker) == len(replacement) and raw.count(marker) == 1
    return raw.replace(marker, replacement)


# ------------------------------------------------------------------------------ SDK-made requests

SDK_RESOURCE = {
    "service.name": "checkout",
    "service.version": "2.1.0",
    "host.name": "node-7",
    "k8s.pod.name": "checkout-5d8f7",
    "k8s.namespace.name": "shop",
}


def sdk_traces_and_logs() -> tuple[ExportTraceServiceRequest, ExportLogsServiceRequest, dict[str, str]]:
    """A server span with a failing client child, and two logs inside them, all made by the SDK."""
    res = SdkResource.create(SDK_RESOURCE)
    spans_out = InMemorySpanExporter()
    tp = TracerProvider(resource=res)
    tp.add_span_processor(SimpleSpanProcessor(spans_out))
    logs_out = InMemoryLogRecordExporter()
    lp = LoggerProvider(resource=res)
    lp.add_log_record_processor(SimpleLogRecordProcessor(logs_out))
    tracer = tp.get_tracer("shop.checkout")
    logger = lp.get_logger("shop.checkout.log")

    server = tracer.start_span("GET /cart", kind=trace.SpanKind.SERVER, start_time=T0)
    server.set_attribute("http.response.status_code", 500)
    ctx = trace.set_span_in_context(server)
    client = tracer.start_span(
        "SELECT cart",
        context=ctx,
        kind=trace.SpanKind.CLIENT,
        start_time=T0 + 1_000,
        attributes={"peer.service": "postgres", "server.address": "db-1"},
    )
    try:
        raise TimeoutError("pool exhausted")
    except TimeoutError as exc:
        client.record_exception(exc, timestamp=T0 + 2_000)
    client.set_status(trace.Status(trace.StatusCode.ERROR, "db down"))
    logger.emit(
        timestamp=T0 + 3_000,
        context=trace.set_span_in_context(client),
        severity_number=SeverityNumber.ERROR,
        severity_text="ERROR",
        body="cart query failed",
        attributes={"http.response.status_code": 503, "user.id": "u1"},
    )
    client.end(end_time=T0 + 5_000)
    logger.emit(
        timestamp=T0 + 4_000,
        context=ctx,
        severity_number=SeverityNumber.WARN2,
        body={"items": [1, 2.5, True], "cart": "c9"},
        event_name="cart.retry",
    )
    server.end(end_time=T0 + 10_000)
    ids = {
        "trace": format(server.get_span_context().trace_id, "032x"),
        "server": format(server.get_span_context().span_id, "016x"),
        "client": format(client.get_span_context().span_id, "016x"),
    }
    return encode_spans(spans_out.get_finished_spans()), encode_logs(logs_out.get_finished_logs()), ids


def sdk_metrics() -> ExportMetricsServiceRequest:
    res = SdkResource.create(SDK_RESOURCE)
    reader = InMemoryMetricReader()
    meter = MeterProvider(resource=res, metric_readers=[reader]).get_meter("shop.metrics")
    latency = meter.create_histogram("http.server.duration", unit="ms")
    for v in (1, 5, 7, 20, 60, 300, 900):
        latency.record(v, {"http.route": "/cart"})
    meter.create_counter("orders").add(5, {"status": "ok"})
    meter.create_gauge("queue.depth").set(12.5)
    data = reader.get_metrics_data()
    assert data is not None
    return encode_metrics(data)


def test_sdk_spans_give_exact_rows() -> None:
    req, _, ids = sdk_traces_and_logs()
    parsed = parse_traces(req.SerializeToString(), PB, **LIMITS)
    assert (parsed.rejected, parsed.errors) == (0, [])
    assert tuple(parsed.rows) == SPAN_COLUMNS
    common = {"trace_id": ids["trace"], "service": "checkout", "pod": "checkout-5d8f7", "host": "node-7"}
    assert rows(parsed) == [
        {
            **common,
            "span_id": ids["client"],
            "parent_id": ids["server"],
            "operation": "SELECT cart",
            "start_ns": T0 + 1_000,
            "end_ns": T0 + 5_000,
            "duration_us": 4.0,
            "status": "ERROR",
            "kind": "CLIENT",
            "attributes": '{"exception.message":"pool exhausted","exception.type":"TimeoutError",'
            '"otel.status_description":"db down","peer.service":"postgres","server.address":"db-1"}',
        },
        {
            **common,
            "span_id": ids["server"],
            "parent_id": "",
            "operation": "GET /cart",
            "start_ns": T0,
            "end_ns": T0 + 10_000,
            "duration_us": 10.0,
            "status": "UNSET",
            "kind": "SERVER",
            "attributes": '{"http.response.status_code":500}',
        },
    ]


def test_sdk_logs_give_exact_rows() -> None:
    _, req, ids = sdk_traces_and_logs()
    parsed = parse_logs(req.SerializeToString(), PB, **LIMITS)
    assert (parsed.rejected, parsed.errors) == (0, [])
    assert tuple(parsed.rows) == LOG_COLUMNS
    common = {
        "source": "otlp",
        "service": "checkout",
        "host": "node-7",
        "pod": "checkout-5d8f7",
        "trace_id": ids["trace"],
        "template_id": "",
    }
    resource_meta = '"k8s.namespace.name":"shop","otel.scope.name":"shop.checkout.log","service.version":"2.1.0"'
    assert rows(parsed) == [
        {
            **common,
            "ts_ns": T0 + 3_000,
            "level": "ERROR",
            "message": "cart query failed",
            "span_id": ids["client"],
            "event_type": "log",
            "error_code": "503",
            "meta": '{"http.response.status_code":503,' + resource_meta + ',"user.id":"u1"}',
        },
        {
            **common,
            "ts_ns": T0 + 4_000,
            "level": "WARN",
            "message": '{"cart":"c9","items":[1,2.5,true]}',
            "span_id": ids["server"],
            "event_type": "cart.retry",
            "error_code": "",
            "meta": "{" + resource_meta + "}",
        },
    ]


def test_sdk_metrics_give_exact_rows() -> None:
    req = sdk_metrics()
    ts = {m.name: m for sm in req.resource_metrics[0].scope_metrics for m in sm.metrics}
    t_hist = ts["http.server.duration"].histogram.data_points[0].time_unix_nano
    t_orders = ts["orders"].sum.data_points[0].time_unix_nano
    t_queue = ts["queue.depth"].gauge.data_points[0].time_unix_nano
    limits = {**LIMITS, "now_ns": max(t_hist, t_orders, t_queue)}
    parsed = parse_metrics(req.SerializeToString(), PB, **limits)
    assert (parsed.rejected, parsed.errors) == (0, [])
    assert tuple(parsed.rows) == METRIC_COLUMNS
    where = {"service": "checkout", "pod": "checkout-5d8f7", "host": "node-7"}
    route = '{"http.route":"/cart"}'
    # SDK default bounds 0,5,10,25,50,75,100,250,500,750,1000,...: values 1,5 | 7 | 20 | 60 | 300 | 900
    # p50: rank 3.5 falls in (10,25] holding 1 of 7 after 3 -> 10 + 15*0.5; p95/p99 land in (750,1000],
    # clamped to the reported max 900.
    assert rows(parsed) == [
        {"ts_ns": t_hist, "name": "http.server.duration.count", "value": 7.0, **where, "attributes": route},
        {"ts_ns": t_hist, "name": "http.server.duration.sum", "value": 1293.0, **where, "attributes": route},
        {"ts_ns": t_hist, "name": "http.server.duration.p50", "value": 17.5, **where, "attributes": route},
        {"ts_ns": t_hist, "name": "http.server.duration.p95", "value": 900.0, **where, "attributes": route},
        {"ts_ns": t_hist, "name": "http.server.duration.p99", "value": 900.0, **where, "attributes": route},
        {"ts_ns": t_orders, "name": "orders", "value": 5.0, **where, "attributes": '{"status":"ok"}'},
        {"ts_ns": t_queue, "name": "queue.depth", "value": 12.5, **where, "attributes": "{}"},
    ]


JSON_VARIANTS = [
    pytest.param({}, id="camelCase"),
    pytest.param({"snake": True, "enum_ints": True, "int_numbers": True}, id="snake_case-enum-ints-int64-numbers"),
]


@pytest.mark.parametrize("variant", JSON_VARIANTS)
def test_json_equivalents_give_the_same_rows(variant: dict[str, bool]) -> None:
    spans_req, logs_req, _ = sdk_traces_and_logs()
    metrics_req = sdk_metrics()
    now = {**LIMITS, "now_ns": NOW + 10**18}  # metric timestamps are the SDK's clock
    for parse, req in ((parse_traces, spans_req), (parse_logs, logs_req), (parse_metrics, metrics_req)):
        from_pb = parse(req.SerializeToString(), PB, **now)
        doc = otlp_json(req, **variant)
        from_dict = parse(doc, JS, **now)
        from_bytes = parse(json.dumps(doc).encode(), JS, **now)
        assert from_pb.n_rows > 0
        assert from_dict == from_pb
        assert from_bytes == from_pb


def test_json_example_by_hand() -> None:
    """A hand-written OTLP/JSON log as the spec shows it: hex ids, int64 strings, enum names."""
    doc = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "cart"}},
                        {"key": "k8s.node.name", "value": {"stringValue": "node-9"}},
                    ]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "my.library", "version": "1.0.0"},
                        "logRecords": [
                            {
                                "timeUnixNano": "1544712660300000000",
                                "observedTimeUnixNano": "1544712660300000000",
                                "severityNumber": "SEVERITY_NUMBER_FATAL",
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "body": {"stringValue": "Example log record"},
                                "attributes": [
                                    {"key": "bool.attribute", "value": {"boolValue": True}},
                                    {"key": "int.attribute", "value": {"intValue": "10"}},
                                    {"key": "double.attribute", "value": {"doubleValue": 637}},
                                    {"key": "nan.attribute", "value": {"doubleValue": "NaN"}},
                                    {"key": "bytes.attribute", "value": {"bytesValue": "aGk_"}},
                                    {"key": "exception.type", "value": {"stringValue": "OOMKilled"}},
                                    {
                                        "key": "array.attribute",
                                        "value": {"arrayValue": {"values": [{"stringValue": "many"}, {"intValue": 2}]}},
                                    },
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    parsed = parse_logs(doc, JS, **{**LIMITS, "min_year": 2018})
    assert (parsed.rejected, parsed.errors) == (0, [])
    assert rows(parsed) == [
        {
            "ts_ns": 1544712660300000000,
            "source": "otlp",
            "service": "cart",
            "host": "node-9",
            "pod": "",
            "level": "FATAL",
            "message": "Example log record",
            "trace_id": "5b8efff798038103d269b633813fc60c",
            "span_id": "eee19b7ec3c1b174",
            "event_type": "log",
            "error_code": "OOMKilled",
            "template_id": "",
            "meta": '{"array.attribute":["many",2],"bool.attribute":true,"bytes.attribute":"aGk/",'
            '"double.attribute":637.0,"exception.type":"OOMKilled","int.attribute":10,'
            '"nan.attribute":"NaN","otel.scope.name":"my.library"}',
        }
    ]


# ------------------------------------------------------------------------- hand-built protobuf


def test_log_field_mapping_from_protobuf() -> None:
    req = logs_request(
        # no time: observed time is used; text-only severity; zero ids mean "no trace"
        LogRecord(
            observed_time_unix_nano=T0 + 7,
            severity_text="warning",
            body=any_value("disk almost full"),
            trace_id=bytes(16),
            span_id=bytes(8),
        ),
        # neither time: the receive time; no severity at all: INFO; event.name attribute -> event_type
        LogRecord(body=any_value(b"\x00\x01"), attributes=[kv("event.name", "k8s.oom"), kv("http.status_code", 404)]),
        # severity number wins over the text; bodies of other kinds become JSON
        LogRecord(
            time_unix_nano=T0,
            severity_number=SeverityNumber.DEBUG3.value,
            severity_text="ERROR",
            body=any_value({"a": {"b": [1.5, "x"]}}),
        ),
        res=resource(service_name="cart", k8s_node_name="node-3", k8s_pod_name="cart-1"),
    )
    parsed = parse_logs(req.SerializeToString(), PB, **LIMITS)
    assert parsed.rejected == 0
    got = [
        {k: r[k] for k in ("ts_ns", "host", "level", "message", "trace_id", "event_type", "error_code", "meta")}
        for r in rows(parsed)
    ]
    assert got == [
        {
            "ts_ns": T0 + 7,
            "host": "node-3",
            "level": "WARN",
            "message": "disk almost full",
            "trace_id": "",
            "event_type": "log",
            "error_code": "",
            "meta": '{"otel.scope.name":"app"}',
        },
        {
            "ts_ns": NOW,
            "host": "node-3",
            "level": "INFO",
            "message": "AAE=",  # bytes bodies as base64 text
            "trace_id": "",
            "event_type": "k8s.oom",
            "error_code": "404",
            "meta": '{"http.status_code":404,"otel.scope.name":"app"}',
        },
        {
            "ts_ns": T0,
            "host": "node-3",
            "level": "DEBUG",
            "message": '{"a":{"b":[1.5,"x"]}}',
            "trace_id": "",
            "event_type": "log",
            "error_code": "",
            "meta": '{"otel.scope.name":"app"}',
        },
    ]
    assert parse_logs(otlp_json(req), JS, **LIMITS) == parsed


# ------------------------------------------------------------------------------------- gzip


@pytest.mark.parametrize("content_type", [PB, JS, "application/json; charset=utf-8", "Application/X-Protobuf"])
def test_gzip_and_deflate_bodies_give_the_same_rows(content_type: str) -> None:
    req, _, _ = sdk_traces_and_logs()
    is_json = "json" in content_type.lower()
    raw = json.dumps(otlp_json(req)).encode() if is_json else req.SerializeToString()
    plain = parse_traces(decode_body(raw, content_type, None, MB), content_type, **LIMITS)
    assert plain.n_rows == 2
    half = len(raw) // 2
    two_members = gzip.compress(raw[:half]) + gzip.compress(raw[half:])
    for body, encoding in (
        (gzip.compress(raw), "gzip"),
        (gzip.compress(raw), "x-gzip"),
        (two_members, "gzip"),
        (zlib.compress(raw), "deflate"),
        (raw, "identity"),
    ):
        decoded = decode_body(body, content_type, encoding, MB)
        assert parse_traces(decoded, content_type, **LIMITS) == plain, encoding


def test_gzip_bomb_is_stopped_at_the_limit() -> None:
    bomb = gzip.compress(bytes(64 * MB), 9)  # 64 MB of zeros in ~64 KB
    assert len(bomb) < MB
    with pytest.raises(PayloadTooLarge) as err:
        decode_body(bomb, PB, "gzip", MB)
    assert err.value.field == "body" and err.value.status_code == 413
    # exactly at the limit is fine, one byte over is not
    assert decode_body(gzip.compress(b"\x00" * 1024), PB, "gzip", 1024) == b"\x00" * 1024
    with pytest.raises(PayloadTooLarge):
        decode_body(gzip.compress(b"\x00" * 1025), PB, "gzip", 1024)
    with pytest.raises(PayloadTooLarge):
        decode_body(b"x" * 2048, PB, None, 1024)


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "error", "field", "says"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f\x01", PB, None, InvalidInput, "body", "not valid protobuf"),
        (b"hello", PB, None, InvalidInput, "body", "not valid protobuf"),
        (b'{"resourceLogs": [', JS, None, InvalidInput, "body", "not valid JSON"),
        (b"\xff\xfe{}", JS, None, InvalidInput, "body", "not valid JSON"),
        (b"[1, 2]", JS, None, InvalidInput, "body", "must be a JSON object"),
        (b"not gzip", PB, "gzip", InvalidInput, "body", "not valid gzip"),
        (gzip.compress(b"\x0a\x00" * 100)[:-12], PB, "gzip", InvalidInput, "body", "truncated gzip"),
        (gzip.compress(b"") + b"junk", PB, "gzip", InvalidInput, "body", "not valid gzip"),
        (b"", PB, "br", UnsupportedMediaType, "content-encoding", "'br' is not supported"),
        (b"", "text/plain", None, UnsupportedMediaType, "content-type", "not an OTLP/HTTP encoding"),
        (b"", None, None, UnsupportedMediaType, "content-type", "not an OTLP/HTTP encoding"),
    ],
)
def test_undecodable_bodies_raise(
    body: bytes, content_type: str | None, encoding: str | None, error: type, field: str, says: str
) -> None:
    with pytest.raises(error) as err:
        decoded = decode_body(body, content_type, encoding, MB)
        parse_logs(decoded, content_type or "", **LIMITS)
    assert type(err.value) is error
    assert err.value.field == field
    assert says in err.value.message


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"resourceLogs": "nope"}, "resourceLogs"),
        ({"resourceLogs": [1]}, "resourceLogs[0]"),
        ({"resourceLogs": [{"scopeLogs": {}}]}, "resourceLogs[0].scopeLogs"),
        ({"resourceLogs": [{"scopeLogs": [{"logRecords": 5}]}]}, "resourceLogs[0].scopeLogs[0].logRecords"),
    ],
)
def test_json_envelope_of_the_wrong_shape_is_invalid_input(doc: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_logs(doc, JS, **LIMITS)
    assert err.value.field == field


# ---------------------------------------------------------------------------------- partial rejects


def test_log_rejects_are_counted_and_the_rest_kept() -> None:
    req = logs_request(
        LogRecord(time_unix_nano=T0, body=any_value("ok 1")),
        LogRecord(time_unix_nano=T0, body=any_value("short trace"), trace_id=b"\x01" * 5),
        LogRecord(time_unix_nano=T0, body=any_value("long span"), span_id=b"\x01" * 9),
        LogRecord(time_unix_nano=946684799 * 10**9, body=any_value("1999")),  # before min_year 2000
        LogRecord(time_unix_nano=NOW + 86_401 * 10**9, body=any_value("future")),
        LogRecord(time_unix_nano=T0, body=any_value("ok 2"), severity_text="MARK"),
        LogRecord(time_unix_nano=T0, body=any_value("ok 3")),
    )
    raw = patch_bytes(req.SerializeToString(), b"MARK", b"\xc3\x28\xff\xfe")  # not UTF-8
    parsed = parse_logs(raw, PB, **LIMITS)
    assert [r["message"] for r in rows(parsed)] == ["ok 1", "ok 3"]
    assert parsed.rejected == 5
    assert parsed.errors == [
        "resourceLogs[0].scopeLogs[0].logRecords[5]: not valid protobuf (String field had bad UTF-8)",
        "resourceLogs[0].scopeLogs[0].logRecords[1]: traceId must be 16 bytes, got 5",
        "resourceLogs[0].scopeLogs[0].logRecords[2]: spanId must be 8 bytes, got 9",
        "resourceLogs[0].scopeLogs[0].logRecords[3]: timeUnixNano 946684799000000000: timestamp is before 2000",
        "resourceLogs[0].scopeLogs[0].logRecords[4]: timeUnixNano 1700090001000000000: "
        "timestamp is more than 86400s in the future",
    ]


def test_bad_utf8_in_a_resource_rejects_all_its_records() -> None:
    good = ResourceLogs(
        resource=resource(service_name="ok"),
        scope_logs=[ScopeLogs(log_records=[LogRecord(time_unix_nano=T0, body=any_value("kept"))])],
    )
    bad = ResourceLogs(
        resource=resource(service_name="MARK"),
        scope_logs=[
            ScopeLogs(log_records=[LogRecord(time_unix_nano=T0), LogRecord(time_unix_nano=T0)]),
            ScopeLogs(log_records=[LogRecord(time_unix_nano=T0)]),
        ],
    )
    req = ExportLogsServiceRequest(resource_logs=[bad, good])
    raw = patch_bytes(req.SerializeToString(), b"MARK", b"\xff\xff\xff\xff")
    parsed = parse_logs(raw, PB, **LIMITS)
    assert [(r["service"], r["message"]) for r in rows(parsed)] == [("ok", "kept")]
    assert parsed.rejected == 3
    assert parsed.errors == ["resourceLogs[0]: resource: not valid protobuf (String field had bad UTF-8)"]


def test_corrupt_record_inside_a_valid_envelope_is_rejected_alone() -> None:
    req = logs_request(LogRecord(time_unix_nano=T0, body=any_value("kept")))
    good = req.SerializeToString()
    # a second resource whose only record is a length-delimited blob that is not a LogRecord
    scope_logs = b"\x12\x03\xff\xff\xff"  # ScopeLogs.log_records (2): 3 bytes, a varint never ending
    resource_logs = b"\x12" + bytes([len(scope_logs)]) + scope_logs  # ResourceLogs.scope_logs (2)
    raw = good + b"\x0a" + bytes([len(resource_logs)]) + resource_logs  # request.resource_logs (1)
    parsed = parse_logs(raw, PB, **LIMITS)
    assert [r["message"] for r in rows(parsed)] == ["kept"]
    assert parsed.rejected == 1
    assert parsed.errors[0].startswith("resourceLogs[1].scopeLogs[0].logRecords[0]: not valid protobuf")


def test_span_rejects_are_counted_and_the_rest_kept() -> None:
    req = spans_request(
        span(name="ok 1"),
        span(name="backwards", end_time_unix_nano=T0 - 1),
        span(name="zero trace", trace_id=bytes(16)),
        span(name="no span id", span_id=b""),
        span(name="bad parent", parent_span_id=b"\x01\x02"),
        span(name="odd kind", kind=9),
        span(name="no start", start_time_unix_nano=0),
        span(name="ok 2", parent_span_id=PARENT, status=Status(code=Status.STATUS_CODE_OK)),
    )
    parsed = parse_traces(req.SerializeToString(), PB, **LIMITS)
    assert [(r["operation"], r["status"], r["parent_id"]) for r in rows(parsed)] == [
        ("ok 1", "UNSET", ""),
        ("ok 2", "OK", PARENT.hex()),
    ]
    assert parsed.rejected == 6
    assert [e.split(": ", 1)[1] for e in parsed.errors] == [
        f"endTimeUnixNano {T0 - 1} is before startTimeUnixNano {T0}",
        "traceId is missing or all zeros",
        "spanId is missing or all zeros",
        "parentSpanId must be 8 bytes, got 2",
        "kind 9 is not a span kind",
        "startTimeUnixNano 0: timestamp is before 2000",
    ]
    from_json = parse_traces(otlp_json(req, enum_ints=True), JS, **LIMITS)
    assert (from_json.rows, from_json.rejected) == (parsed.rows, parsed.rejected)
    assert from_json.errors[3].endswith("parentSpanId must be 16 hex characters, got 4")


def test_json_records_of_the_wrong_types_are_rejected_one_by_one() -> None:
    good = otlp_json(spans_request(span(name="kept")))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    broken: list[tuple[str, Any, str]] = [
        ("name", 42, "name must be a string, got int"),
        ("traceId", "zz" * 16, "is not hex"),
        ("spanId", "abc", "spanId must be 16 hex characters, got 3"),
        ("startTimeUnixNano", "soon", "startTimeUnixNano must be an unsigned integer"),
        ("kind", "SPAN_KIND_SIDEWAYS", "kind 'SPAN_KIND_SIDEWAYS' is not a known value"),
        ("attributes", {"k": "v"}, "attributes must be a list"),
        ("attributes", [{"key": "k", "value": "bare"}], "must be an AnyValue object"),
        ("attributes", [{"key": "n", "value": {"intValue": "1e3"}}], "intValue must be an integer"),
        ("attributes", [{"key": "n", "value": {"intValue": str(2**63)}}], "outside the int64 range"),
        ("name", "\ud800", "not valid UTF-8"),
        ("attributes", [{"key": "s", "value": {"stringValue": "\udfff"}}], "cannot be stored as JSON"),
        ("status", "ERROR", "status must be an object"),
    ]
    spans = [good]
    for key, value, _ in broken:
        bad = copy.deepcopy(good)
        bad[key] = value
        spans.append(bad)
    spans.append("not a span")
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    parsed = parse_traces(doc, JS, **LIMITS)
    assert [r["operation"] for r in rows(parsed)] == ["kept"]
    assert parsed.rejected == len(broken) + 1
    assert len(parsed.errors) == 10  # the first ten reasons are kept
    for i, (error, (_, _, says)) in enumerate(zip(parsed.errors, broken, strict=False)):
        assert error.startswith(f"resourceSpans[0].scopeSpans[0].spans[{i + 1}]: ")
        assert says in error


def test_json_resource_of_the_wrong_type_rejects_its_records() -> None:
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": "service.name=cart"},
                "scopeLogs": [{"logRecords": [{}, {}]}, {"logRecords": [{}]}],
            },
            {
                "resource": {},
                "scopeLogs": [{"scope": {"name": 7}, "logRecords": [{}, {}]}, {"logRecords": [{"body": {}}]}],
            },
        ]
    }
    parsed = parse_logs(doc, JS, **LIMITS)
    assert parsed.rejected == 5
    assert parsed.n_rows == 1
    assert parsed.errors == [
        "resourceLogs[0].resource: attributes must be a list of key/value objects, got str",
        "resourceLogs[1].scopeLogs[0].scope: scope.name must be a string, got int",
    ]


def test_metric_kinds_and_rejects() -> None:
    attrs = [kv("host.cpu", 1)]
    req = metrics_request(
        gauge(
            "cpu",
            NumberDataPoint(time_unix_nano=T0, as_double=0.5, attributes=attrs),
            NumberDataPoint(time_unix_nano=T0, as_int=3),
            NumberDataPoint(time_unix_nano=T0, flags=1),  # no recorded value: skipped, not rejected
            NumberDataPoint(time_unix_nano=T0),  # no value: rejected
            NumberDataPoint(time_unix_nano=0, as_int=1),  # no time: rejected
            NumberDataPoint(time_unix_nano=T0, as_double=float("nan")),  # rejected
        ),
        gauge("", NumberDataPoint(time_unix_nano=T0, as_int=1), NumberDataPoint(time_unix_nano=T0, as_int=2)),
        Metric(
            name="lat",
            histogram=Histogram(
                data_points=[
                    HistogramDataPoint(
                        time_unix_nano=T0, count=10, sum=55.0, bucket_counts=[2, 6, 2], explicit_bounds=[1, 10]
                    ),
                    HistogramDataPoint(
                        time_unix_nano=T0, count=3, bucket_counts=[1, 2], explicit_bounds=[1, 10]
                    ),  # one bucket short: rejected
                ]
            ),
        ),
        Metric(
            name="rpc",
            summary=Summary(
                data_points=[
                    SummaryDataPoint(
                        time_unix_nano=T0,
                        count=4,
                        sum=2.0,
                        quantile_values=[
                            SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=0.4),
                            SummaryDataPoint.ValueAtQuantile(quantile=0.999, value=1.2),
                        ],
                    )
                ]
            ),
        ),
        Metric(
            name="size",
            exponential_histogram=ExponentialHistogram(
                data_points=[
                    ExponentialHistogramDataPoint(
                        time_unix_nano=T0,
                        count=4,
                        sum=10.0,
                        scale=0,
                        zero_count=0,
                        positive=ExponentialHistogramDataPoint.Buckets(offset=1, bucket_counts=[2, 2]),
                    )
                ]
            ),
        ),
    )
    parsed = parse_metrics(req.SerializeToString(), PB, **LIMITS)
    got = [(r["name"], r["value"], r["attributes"]) for r in rows(parsed)]
    # lat: rank 5 of 10 in (1,10] holding 6 after 2 -> 1 + 9*3/6; p95 rank 9.5 in (10,inf) -> its lower bound
    # size: base 2, buckets (2,4]:2 (4,8]:2; p50 rank 2 -> 4; p95 rank 3.8 -> 4 + 4*1.8/2
    assert got == [
        ("cpu", 0.5, '{"host.cpu":1}'),
        ("cpu", 3.0, "{}"),
        ("lat.count", 10.0, "{}"),
        ("lat.sum", 55.0, "{}"),
        ("lat.p50", 5.5, "{}"),
        ("lat.p95", 10.0, "{}"),
        ("lat.p99", 10.0, "{}"),
        ("rpc.count", 4.0, "{}"),
        ("rpc.sum", 2.0, "{}"),
        ("rpc.p50", 0.4, "{}"),
        ("rpc.p99.9", 1.2, "{}"),
        ("size.count", 4.0, "{}"),
        ("size.sum", 10.0, "{}"),
        ("size.p50", 4.0, "{}"),
        ("size.p95", 7.6, "{}"),
        ("size.p99", 7.92, "{}"),
    ]
    assert parsed.rejected == 6
    assert [e.split(": ", 1) for e in parsed.errors] == [
        [
            "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[3]",
            "data point has neither asDouble nor asInt",
        ],
        [
            "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[4]",
            "timeUnixNano 0: timestamp is before 2000",
        ],
        ["resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[5]", "value nan is not a finite number"],
        ["resourceMetrics[0].scopeMetrics[0].metrics[1].gauge.dataPoints[0]", "metric name is empty"],
        ["resourceMetrics[0].scopeMetrics[0].metrics[1].gauge.dataPoints[1]", "metric name is empty"],
        [
            "resourceMetrics[0].scopeMetrics[0].metrics[2].histogram.dataPoints[1]",
            "bucketCounts has 2 entries for 2 explicitBounds (need +1)",
        ],
    ]
    for variant in ({}, {"snake": True, "enum_ints": True, "int_numbers": True}):
        assert parse_metrics(otlp_json(req, **variant), JS, **LIMITS) == parsed


def test_quantile_estimates() -> None:
    buckets = [(-float("inf"), 0.0, 1), (0.0, 10.0, 8), (10.0, float("inf"), 1)]
    assert bucket_quantile(buckets, 10, 0.5, None, None) == 5.0
    assert bucket_quantile(buckets, 10, 0.05, None, None) == 0.0  # open first bucket, upper bound 0
    assert bucket_quantile(buckets, 10, 0.05, -4.0, None) == -2.0  # starts at the reported min
    assert bucket_quantile(buckets, 10, 0.99, None, 30.0) == pytest.approx(10.0 + 20.0 * 0.9)
    vals = dict(exponential_values(2, None, 1, 0, 0.0, (0, []), (0, [2]), None, None))
    assert vals["p50"] == pytest.approx(-(2**0.5) + (2**0.5 - 1) * 0.5)  # bucket [-sqrt2, -1)


# ---------------------------------------------------------------------------------- responses


@pytest.mark.parametrize(
    ("kind", "cls", "count_field"),
    [
        ("logs", ExportLogsServiceResponse, "rejected_log_records"),
        ("traces", ExportTraceServiceResponse, "rejected_spans"),
        ("metrics", ExportMetricsServiceResponse, "rejected_data_points"),
    ],
)
def test_partial_success_response_round_trips(kind: str, cls: type[Message], count_field: str) -> None:
    parsed = ParsedBatch(rows={}, rejected=3, errors=["a[0]: bad id", "a[2]: bad time"])
    body, media = partial_success_response(kind, parsed, PB)
    assert media == PB
    resp = cls.FromString(body)
    assert getattr(resp.partial_success, count_field) == 3
    unit = {"logs": "log records", "traces": "spans", "metrics": "data points"}[kind]
    assert resp.partial_success.error_message == f"3 {unit} rejected: a[0]: bad id; a[2]: bad time; ..."

    body, media = partial_success_response(kind, parsed, "application/json; charset=utf-8")
    assert media == JS
    assert json_format.Parse(body, cls()) == resp
    camel = "".join(w.capitalize() if i else w for i, w in enumerate(count_field.split("_")))
    assert json.loads(body)["partialSuccess"][camel] == "3"  # int64 as a string, as the JSON mapping says

    nothing_rejected = ParsedBatch(rows={}, rejected=0, errors=[])
    assert partial_success_response(kind, nothing_rejected, PB) == (b"", PB)
    assert partial_success_response(kind, nothing_rejected, JS) == (b"{}", JS)


def test_rejects_flow_into_the_response() -> None:
    req = spans_request(span(name="ok"), span(name="bad", span_id=b"\x01"))
    parsed = parse_traces(req.SerializeToString(), PB, **LIMITS)
    resp = ExportTraceServiceResponse.FromString(partial_success_response("traces", parsed, PB)[0])
    assert resp.partial_success.rejected_spans == 1
    assert resp.partial_success.error_message == (
        "1 spans rejected: resourceSpans[0].scopeSpans[0].spans[1]: spanId must be 8 bytes, got 1"
    )


def test_empty_requests_give_empty_columns() -> None:
    for parse, columns in ((parse_logs, LOG_COLUMNS), (parse_traces, SPAN_COLUMNS), (parse_metrics, METRIC_COLUMNS)):
        for body, ctype in ((b"", PB), ({}, JS), (b"{}", JS)):
            parsed = parse(body, ctype, **LIMITS)
            assert parsed == ParsedBatch(rows={c: [] for c in columns}, rejected=0, errors=[])


def test_values_nested_too_deep_are_rejected() -> None:
    deep: Any = "bottom"
    for _ in range(40):  # arrays: upb itself stops at 100 message levels, kvlists use 3 a level
        deep = [deep]
    too_deep = resource(service_name="cart", nested=deep)
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=too_deep, scope_spans=[ScopeSpans(spans=[span(), span(name="other")])]),
            ResourceSpans(resource=resource(**RES), scope_spans=[ScopeSpans(spans=[span(name="kept")])]),
        ]
    )
    for body, ctype in ((req.SerializeToString(), PB), (otlp_json(req), JS)):
        parsed = parse_traces(body, ctype, **LIMITS)
        assert [r["operation"] for r in rows(parsed)] == ["kept"]
        assert parsed.rejected == 2
        assert parsed.errors == ["resourceSpans[0].resource: attribute value nested deeper than 32 levels"]
    nested_body = logs_request(LogRecord(time_unix_nano=T0, body=any_value(deep)))
    parsed = parse_logs(otlp_json(nested_body), JS, **LIMITS)
    assert (parsed.n_rows, parsed.rejected) == (0, 1)
