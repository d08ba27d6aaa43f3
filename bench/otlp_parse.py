"""Benchmark: OTLP/HTTP parsing to event-store columns, protobuf and JSON, spans/s and log records/s.

Builds synthetic requests of N records (default 10k) in one resource/scope, shaped like SDK output
(6-8 attributes a record, W3C ids), then times decode_body + parse_* over several runs and prints JSON.

    .venv/bin/python -m bench.otlp_parse [--records 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from ingest.otlp import decode_body, parse_logs, parse_metrics, parse_traces

T0 = 1_700_000_000_000_000_000
NOW = T0 + 3600 * 10**9
PB = "application/x-protobuf"
JS = "application/json"
_IDS = {"traceId", "spanId", "parentSpanId"}


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _resource() -> Resource:
    attrs = {
        "service.name": "checkout",
        "service.version": "1.4.2",
        "host.name": "node-7",
        "k8s.pod.name": "checkout-5d8f7c9b6-x2x9q",
        "k8s.namespace.name": "shop",
        "telemetry.sdk.language": "python",
    }
    return Resource(attributes=[_kv(k, v) for k, v in attrs.items()])


def _trace_id(i: int) -> bytes:
    return (0x5B8EFFF798038103D269B633813FC60C + i // 8).to_bytes(16, "big")


def _span_id(i: int) -> bytes:
    return (0xEEE19B7EC3C1B174 + i).to_bytes(8, "big")


def build_logs(n: int) -> ExportLogsServiceRequest:
    records = [
        LogRecord(
            time_unix_nano=T0 + i * 1_000_000,
            observed_time_unix_nano=T0 + i * 1_000_000 + 500,
            severity_number=SeverityNumber.SEVERITY_NUMBER_INFO if i % 10 else SeverityNumber.SEVERITY_NUMBER_ERROR,
            severity_text="INFO" if i % 10 else "ERROR",
            body=AnyValue(string_value=f"GET /api/cart/{i} completed in {i % 97} ms for user u{i % 501}"),
            trace_id=_trace_id(i),
            span_id=_span_id(i),
            attributes=[
                _kv("http.request.method", "GET"),
                _kv("http.route", "/api/cart/{id}"),
                _kv("http.response.status_code", 200 if i % 10 else 503),
                _kv("user.id", f"u{i % 501}"),
                _kv("duration_ms", float(i % 97)),
                _kv("retry", False),
            ],
        )
        for i in range(n)
    ]
    scope = ScopeLogs(scope=InstrumentationScope(name="shop.checkout"), log_records=records)
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(resource=_resource(), scope_logs=[scope])])


def build_spans(n: int) -> ExportTraceServiceRequest:
    spans = [
        Span(
            trace_id=_trace_id(i),
            span_id=_span_id(i),
            parent_span_id=_span_id(i - 1) if i % 8 else b"",
            name="GET /api/cart/{id}" if i % 8 == 0 else f"SELECT cart_{i % 5}",
            kind=Span.SPAN_KIND_SERVER if i % 8 == 0 else Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=T0 + i * 1_000_000,
            end_time_unix_nano=T0 + i * 1_000_000 + 250_000 + i,
            status=Status(code=Status.STATUS_CODE_ERROR if i % 50 == 0 else Status.STATUS_CODE_UNSET),
            attributes=[
                _kv("http.request.method", "GET"),
                _kv("http.response.status_code", 200),
                _kv("server.address", "cart-db"),
                _kv("server.port", 5432),
                _kv("peer.service", "postgres"),
                _kv("db.system", "postgresql"),
                _kv("db.statement", "SELECT * FROM cart WHERE id = $1"),
                _kv("net.sock.peer.addr", "10.0.3.17"),
            ],
        )
        for i in range(n)
    ]
    scope = ScopeSpans(scope=InstrumentationScope(name="shop.checkout"), spans=spans)
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=_resource(), scope_spans=[scope])])


def build_metrics(n: int) -> ExportMetricsServiceRequest:
    metrics = [
        Metric(
            name=f"system.cpu.utilization.{i % 50}",
            gauge=Gauge(
                data_points=[
                    NumberDataPoint(
                        time_unix_nano=T0 + i * 1_000_000,
                        as_double=(i % 100) / 100,
                        attributes=[_kv("cpu", i % 8), _kv("state", "user")],
                    )
                ]
            ),
        )
        for i in range(n)
    ]
    scope = ScopeMetrics(scope=InstrumentationScope(name="host.metrics"), metrics=metrics)
    return ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(resource=_resource(), scope_metrics=[scope])])


def to_json_bytes(msg: Message) -> bytes:
    """OTLP/JSON as the spec has it: lowerCamelCase, hex ids, int64 as strings."""

    def fix(o: Any, key: str = "") -> Any:
        if isinstance(o, dict):
            return {k: fix(v, k) for k, v in o.items()}
        if isinstance(o, list):
            return [fix(v, key) for v in o]
        if key in _IDS and isinstance(o, str):
            return base64.b64decode(o).hex()
        return o

    return json.dumps(fix(json_format.MessageToDict(msg))).encode()


def _time(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of this process (steadier on a shared machine)."""
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return statistics.median(wall), statistics.median(cpu)


def _decode_and_parse(parse: Callable[..., Any], raw: bytes, ctype: str, limits: dict[str, int]) -> Any:
    return parse(decode_body(raw, ctype, None, 1 << 30), ctype, **limits)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args(argv)
    n, runs = args.records, args.runs
    limits = {"now_ns": NOW, "min_year": 2000, "max_future_skew_s": 86_400}
    cases: list[tuple[str, Message, Callable[..., Any]]] = [
        ("logs", build_logs(n), parse_logs),
        ("spans", build_spans(n), parse_traces),
        ("metric_points", build_metrics(n), parse_metrics),
    ]
    results: dict[str, Any] = {"records_per_request": n, "runs": runs, "timing": "decode_body + parse_*"}
    for label, msg, parse in cases:
        for enc, ctype, raw in (("protobuf", PB, msg.SerializeToString()), ("json", JS, to_json_bytes(msg))):
            parsed = parse(decode_body(raw, ctype, None, 1 << 30), ctype, **limits)
            assert parsed.rejected == 0 and parsed.n_rows == n, (label, enc, parsed.errors)
            wall, cpu = _time(partial(_decode_and_parse, parse, raw, ctype, limits), runs)
            gz = gzip.compress(raw, 6)
            _, gz_cpu = _time(partial(decode_body, gz, ctype, "gzip", 1 << 30), runs)
            results[f"{label}_{enc}"] = {
                "body_bytes": len(raw),
                "gzip_bytes": len(gz),
                "wall_seconds": round(wall, 4),
                "cpu_seconds": round(cpu, 4),
                "records_per_s_wall": round(n / wall),
                "records_per_s_cpu": round(n / cpu),
                "decode_body_gzip_cpu_seconds": round(gz_cpu, 4),
            }
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
