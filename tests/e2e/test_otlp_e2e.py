"""OTLP/HTTP end to end: the real OpenTelemetry SDK exporters against a uvicorn server on 127.0.0.1.

The SDK's OTLPLogExporter, OTLPSpanExporter and OTLPMetricExporter (protobuf over HTTP, gzip on and off)
send to the DevMesh API; the test then reads back what the stores hold. JSON bodies, partial success,
bad bodies and unsupported media types go through httpx.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from api.http.app import create_app
from api.wiring import Services
from core.settings import Settings
from retrieval.events import LogQuery

NS = 10**9
T0 = (time.time_ns() // NS - 600) * NS  # ten minutes ago, whole seconds: inside the accepted window
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
COMPRESSIONS = [pytest.param(Compression.Gzip, id="gzip"), pytest.param(Compression.NoCompression, id="plain")]


class RequestLog:
    """ASGI wrapper that notes each request's path and headers, in front of the DevMesh app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.requests.append((scope["path"], headers))
        await self.app(scope, receive, send)


class Server:
    def __init__(self, url: str, app: Any, log: RequestLog) -> None:
        self.url = url
        self.app = app
        self.log = log

    @property
    def services(self) -> Services:
        svc: Services = self.app.state.services
        return svc


@pytest.fixture
def server(
    settings: Settings, open_fn: Callable[[Settings], Services], serve: Callable[[Any], Any]
) -> Iterator[Server]:
    app = create_app(settings, open_fn=open_fn)
    log = RequestLog(app)
    live = serve(log)
    yield Server(live.url, app, log)


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # straight to 127.0.0.1, whatever proxy the environment names
    return s


def resource(service: str, pod: str) -> Resource:
    return Resource.create(
        {"service.name": service, "host.name": "node-7", "k8s.pod.name": pod, "service.version": "2.1"}
    )


# -- the real SDK exporters -----------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_sdk_log_exporter(server: Server, compression: Compression) -> None:
    provider = LoggerProvider(resource=resource("checkout", "checkout-5d8f7"))
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("shop.checkout")
    span_ctx = trace.SpanContext(TRACE_ID, 0x00F067AA0BA902B7, is_remote=True)
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(span_ctx))
    logger.emit(
        timestamp=T0,
        severity_number=SeverityNumber.ERROR,
        severity_text="ERROR",
        body="cart query failed for user 7",
        attributes={"user.id": "u7", "http.response.status_code": 503},
        context=ctx,
    )
    logger.emit(timestamp=T0 + NS, severity_number=SeverityNumber.WARN, body="cart query failed for user 9")
    logger.emit(timestamp=T0 + 2 * NS, severity_number=SeverityNumber.INFO, body={"cart": "c9", "items": 2})
    records = memory.get_finished_logs()
    assert len(records) == 3

    exporter = OTLPLogExporter(endpoint=f"{server.url}/v1/logs", compression=compression, timeout=20, session=session())
    assert exporter.export(records) == LogRecordExportResult.SUCCESS
    exporter.shutdown()
    provider.shutdown()

    (path, headers), *_ = server.log.requests
    assert path == "/v1/logs" and headers["content-type"] == "application/x-protobuf"
    assert headers.get("content-encoding") == ("gzip" if compression == Compression.Gzip else None)

    with httpx.Client(base_url=server.url, trust_env=False) as http:
        events = http.get("/query/logs", params={"order": "asc"}).json()["events"]
    common = {"source": "otlp", "service": "checkout", "host": "node-7", "pod": "checkout-5d8f7"}
    assert [
        {k: e[k] for k in (*common, "ts_ns", "level", "message", "trace_id", "span_id", "error_code")} for e in events
    ] == [
        {
            **common,
            "ts_ns": T0,
            "level": "ERROR",
            "message": "cart query failed for user 7",
            "trace_id": f"{TRACE_ID:032x}",
            "span_id": "00f067aa0ba902b7",
            "error_code": "503",
        },
        {
            **common,
            "ts_ns": T0 + NS,
            "level": "WARN",
            "message": "cart query failed for user 9",
            "trace_id": "",
            "span_id": "",
            "error_code": "",
        },
        {
            **common,
            "ts_ns": T0 + 2 * NS,
            "level": "INFO",
            "message": '{"cart":"c9","items":2}',
            "trace_id": "",
            "span_id": "",
            "error_code": "",
        },
    ]
    assert events[0]["meta"]["user.id"] == "u7" and events[0]["meta"]["service.version"] == "2.1"
    assert events[0]["template_id"] == events[1]["template_id"] != events[2]["template_id"]

    # the exporter retrying the same batch stores nothing twice
    again = OTLPLogExporter(endpoint=f"{server.url}/v1/logs", compression=compression, timeout=20, session=session())
    assert again.export(records) == LogRecordExportResult.SUCCESS
    assert len(server.services.events.query_logs(LogQuery(limit=100)).events) == 3


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_sdk_span_exporter_and_the_call_graph(server: Server, compression: Compression) -> None:
    memory = InMemorySpanExporter()
    checkout = TracerProvider(resource=resource("checkout", "checkout-5d8f7"))
    payment = TracerProvider(resource=resource("payment", "payment-6c9f1"))
    for p in (checkout, payment):
        p.add_span_processor(SimpleSpanProcessor(memory))

    tracer = checkout.get_tracer("shop.checkout")
    root = tracer.start_span("GET /cart", kind=SpanKind.SERVER, start_time=T0)
    client = tracer.start_span(
        "POST /pay", context=trace.set_span_in_context(root), kind=SpanKind.CLIENT, start_time=T0 + 1_000_000
    )
    paid = payment.get_tracer("shop.payment").start_span(
        "charge", context=trace.set_span_in_context(client), kind=SpanKind.SERVER, start_time=T0 + 2_000_000
    )
    paid.set_status(Status(StatusCode.ERROR, "card declined"))
    paid.end(end_time=T0 + 6_000_000)
    client.end(end_time=T0 + 7_000_000)
    root.set_attribute("http.response.status_code", 402)
    root.end(end_time=T0 + 9_000_000)
    spans = memory.get_finished_spans()
    assert len(spans) == 3

    exporter = OTLPSpanExporter(
        endpoint=f"{server.url}/v1/traces", compression=compression, timeout=20, session=session()
    )
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    (path, headers), *_ = server.log.requests
    assert path == "/v1/traces" and headers.get("content-encoding") == (
        "gzip" if compression == Compression.Gzip else None
    )

    trace_id = f"{root.get_span_context().trace_id:032x}"
    sid = {
        name: f"{s.get_span_context().span_id:016x}" for name, s in (("root", root), ("client", client), ("paid", paid))
    }
    stored = server.services.events.trace_spans(trace_id)
    got = [
        (
            s["operation"],
            s["service"],
            s["pod"],
            s["host"],
            s["span_id"],
            s["parent_id"],
            s["start_ns"] - T0,
            s["duration_us"],
            s["status"],
            s["kind"],
        )
        for s in stored
    ]
    assert got == [
        ("GET /cart", "checkout", "checkout-5d8f7", "node-7", sid["root"], "", 0, 9000.0, "UNSET", "SERVER"),
        (
            "POST /pay",
            "checkout",
            "checkout-5d8f7",
            "node-7",
            sid["client"],
            sid["root"],
            1_000_000,
            6000.0,
            "UNSET",
            "CLIENT",
        ),
        (
            "charge",
            "payment",
            "payment-6c9f1",
            "node-7",
            sid["paid"],
            sid["client"],
            2_000_000,
            4000.0,
            "ERROR",
            "SERVER",
        ),
    ]
    assert stored[0]["attributes"] == {"http.response.status_code": 402}
    assert stored[2]["attributes"]["otel.status_description"] == "card declined"

    topo = server.services.pipeline.refresh_topology()
    assert [(c.caller, c.callee, c.calls, c.errors, c.mean_ms) for c in topo.calls] == [
        ("checkout", "payment", 1, 1, 4.0)
    ]
    assert server.services.graph is not None
    assert [(c.caller, c.callee, c.calls) for c in server.services.graph.call_edges()] == [("checkout", "payment", 1)]
    assert [p.pod for p in server.services.graph.pods_of("payment")] == ["payment-6c9f1"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_sdk_metric_exporter(server: Server, compression: Compression) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=resource("checkout", "checkout-5d8f7"), metric_readers=[reader])
    meter = provider.get_meter("shop.checkout")
    meter.create_counter("orders").add(5, {"status": "ok"})
    meter.create_gauge("queue.depth").set(12.5)
    hist = meter.create_histogram("http.server.duration", unit="ms")
    for v in (1, 5, 7, 20, 60, 300, 900):
        hist.record(v, {"http.route": "/cart"})
    before = time.time_ns()
    data = reader.get_metrics_data()
    after = time.time_ns()
    assert data is not None

    exporter = OTLPMetricExporter(
        endpoint=f"{server.url}/v1/metrics", compression=compression, timeout=20, session=session()
    )
    assert exporter.export(data) == MetricExportResult.SUCCESS
    exporter.shutdown()
    provider.shutdown()
    (path, headers), *_ = server.log.requests
    assert path == "/v1/metrics" and headers.get("content-encoding") == (
        "gzip" if compression == Compression.Gzip else None
    )

    _, rows = server.services.events.sql(
        "SELECT name, value, service, pod, host, attributes, ts_ns FROM metrics ORDER BY name"
    )
    assert all(before - 60 * NS <= r[6] <= after for r in rows)
    where = ("checkout", "checkout-5d8f7", "node-7")
    route = '{"http.route":"/cart"}'
    assert [r[:6] for r in rows] == [
        ("http.server.duration.count", 7.0, *where, route),
        ("http.server.duration.p50", 17.5, *where, route),
        ("http.server.duration.p95", 900.0, *where, route),
        ("http.server.duration.p99", 900.0, *where, route),
        ("http.server.duration.sum", 1293.0, *where, route),
        ("orders", 5.0, *where, '{"status":"ok"}'),
        ("queue.depth", 12.5, *where, "{}"),
    ]


# -- JSON, partial success and bad requests via httpx ----------------------------------------------------


def json_logs(*records: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
                "scopeLogs": [{"scope": {"name": "t"}, "logRecords": list(records)}],
            }
        ]
    }


def rec(ts_ns: int, body: str, severity: str = "SEVERITY_NUMBER_INFO") -> dict[str, Any]:
    return {"timeUnixNano": str(ts_ns), "severityNumber": severity, "body": {"stringValue": body}}


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_otlp_json_with_partial_success(server: Server, gzipped: bool) -> None:
    doc = json_logs(
        rec(T0, "stock low for item 4", "SEVERITY_NUMBER_WARN"),
        rec(1, "from 1970"),
        rec(T0 + NS, "stock low for item 5", "SEVERITY_NUMBER_WARN"),
    )
    body = json.dumps(doc).encode()
    headers = {"content-type": "application/json"}
    if gzipped:
        body, headers = gzip.compress(body), {**headers, "content-encoding": "gzip"}
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        r = http.post("/v1/logs", content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        answer = r.json()
        assert answer["partialSuccess"]["rejectedLogRecords"] == "1"  # int64 as a string, per the JSON mapping
        assert "resourceLogs[0].scopeLogs[0].logRecords[1]" in answer["partialSuccess"]["errorMessage"]
        assert "before 2000" in answer["partialSuccess"]["errorMessage"]

        events = http.get("/query/logs", params={"order": "asc"}).json()["events"]
        assert [(e["ts_ns"], e["service"], e["level"], e["message"]) for e in events] == [
            (T0, "cart", "WARN", "stock low for item 4"),
            (T0 + NS, "cart", "WARN", "stock low for item 5"),
        ]

        # all good: no partialSuccess at all
        r = http.post("/v1/logs", json=json_logs(rec(T0 + 2 * NS, "fine")))
        assert (r.status_code, r.json()) == (200, {})


def test_otlp_protobuf_partial_success(server: Server) -> None:
    good = LogRecord(time_unix_nano=T0, severity_number=9, body=AnyValue(string_value="ok"))
    bad = LogRecord(time_unix_nano=T0 + 10**18, body=AnyValue(string_value="from the future"))
    req = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=PbResource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="cart"))]),
                scope_logs=[ScopeLogs(log_records=[good, bad])],
            )
        ]
    )
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        r = http.post("/v1/logs", content=req.SerializeToString(), headers={"content-type": "application/x-protobuf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    answer = ExportLogsServiceResponse.FromString(r.content)
    assert answer.partial_success.rejected_log_records == 1
    assert "in the future" in answer.partial_success.error_message
    assert [e["message"] for e in server.services.events.query_logs(LogQuery()).events] == ["ok"]


BAD = [
    pytest.param(
        "/v1/traces",
        b"\xff\xff\xff\xff garbage",
        {"content-type": "application/x-protobuf"},
        422,
        "body",
        id="bad-protobuf",
    ),
    pytest.param("/v1/logs", b"{not json", {"content-type": "application/json"}, 422, "body", id="bad-json"),
    pytest.param("/v1/logs", b"[1, 2]", {"content-type": "application/json"}, 422, "body", id="json-not-an-object"),
    pytest.param(
        "/v1/logs", b'{"resourceLogs": 5}', {"content-type": "application/json"}, 422, "resourceLogs", id="wrong-shape"
    ),
    pytest.param(
        "/v1/metrics",
        b"not gzip",
        {"content-type": "application/x-protobuf", "content-encoding": "gzip"},
        422,
        "body",
        id="bad-gzip",
    ),
    pytest.param(
        "/v1/logs",
        b"{}",
        {"content-type": "application/json", "content-encoding": "br"},
        415,
        "content-encoding",
        id="brotli",
    ),
    pytest.param("/v1/logs", b"hello", {"content-type": "text/plain"}, 415, "content-type", id="text-plain"),
    pytest.param("/v1/traces", b"{}", {}, 415, "content-type", id="no-content-type"),
]


@pytest.mark.parametrize(("path", "body", "headers", "status", "field"), BAD)
def test_bad_otlp_requests_are_refused_with_the_field(
    server: Server, path: str, body: bytes, headers: dict[str, str], status: int, field: str
) -> None:
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        assert http.post("/v1/logs", json=json_logs(rec(T0, "kept"))).status_code == 200
        r = http.post(path, content=body, headers=headers)
        assert r.status_code == status, r.text
        assert r.json()["field"] == field
        assert 400 <= r.status_code < 500
        events = http.get("/query/logs").json()["events"]
    assert [e["message"] for e in events] == ["kept"]
    stats = server.services.events.stats()["tables"]
    assert (stats["spans"]["rows"], stats["metrics"]["rows"]) == (0, 0)
