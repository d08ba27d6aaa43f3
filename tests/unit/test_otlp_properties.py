"""Property-based tests of the OTLP decoders (logs, traces, metrics; protobuf and JSON).

On hostile bodies (random bytes, random JSON, OTLP-shaped JSON with wrong types, NaN, huge numbers, lone
surrogates) every `parse_*` returns a batch or raises `InvalidInput`, never anything else; records built
with the opentelemetry-proto messages come back with their fields from both encodings. Settings:
`tests/unit/properties.py`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from core.errors import InvalidInput
from ingest.otlp import ParsedBatch, parse_logs, parse_metrics, parse_traces
from tests.unit.properties import HOSTILE_DOCS, PROFILE, clean_text, dumps, json_value, word

PB, JS = "application/x-protobuf", "application/json"
NOW = 1_700_000_000 * 10**9
LIMITS = {"now_ns": NOW, "min_year": 2000, "max_future_skew_s": 86_400}
PARSERS: dict[str, Callable[..., ParsedBatch]] = {"logs": parse_logs, "traces": parse_traces, "metrics": parse_metrics}
ENVELOPE = {
    "logs": ("resourceLogs", "scopeLogs", "logRecords"),
    "traces": ("resourceSpans", "scopeSpans", "spans"),
    "metrics": ("resourceMetrics", "scopeMetrics", "metrics"),
}
ts = st.integers(NOW - 7 * 10**17, NOW)  # 2001 to 2023
attrs = st.dictionaries(word, st.integers(-(2**62), 2**62) | st.booleans() | clean_text, max_size=3)


def rows(parsed: ParsedBatch) -> list[dict[str, Any]]:
    return [dict(zip(parsed.rows, values, strict=True)) for values in zip(*parsed.rows.values(), strict=True)]


def parse_or_refuse(kind: str, body: bytes | dict[str, Any], content_type: str) -> None:
    try:
        parsed = PARSERS[kind](body, content_type, **LIMITS)
    except InvalidInput:
        return
    assert len({len(v) for v in parsed.rows.values()}) == 1
    assert parsed.rejected >= 0


def kv(attributes: dict[str, Any]) -> list[KeyValue]:
    def any_value(v: Any) -> AnyValue:
        if isinstance(v, bool):
            return AnyValue(bool_value=v)
        return AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v)

    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def otlp_json(msg: Message) -> dict[str, Any]:
    """OTLP/JSON as the spec has it: the protobuf JSON mapping with hex ids instead of base64."""

    def fix(o: Any, key: str = "") -> Any:
        if isinstance(o, dict):
            return {k: fix(v, k) for k, v in o.items()}
        if isinstance(o, list):
            return [fix(v, key) for v in o]
        if key in ("traceId", "spanId", "parentSpanId") and isinstance(o, str):
            return base64.b64decode(o).hex()
        return o

    return fix(json_format.MessageToDict(msg))


def both_encodings(kind: str, req: Message) -> list[dict[str, Any]]:
    """The rows of `req` sent as protobuf, after checking that its OTLP/JSON form gives the same rows."""
    from_pb = PARSERS[kind](req.SerializeToString(), PB, **LIMITS)
    from_json = PARSERS[kind](json.dumps(otlp_json(req)).encode(), JS, **LIMITS)
    assert from_pb.rejected == 0 and from_pb == from_json
    return rows(from_pb)


# -- hostile bodies ---------------------------------------------------------------------------------------


def shaped(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """OTLP-shaped JSON whose leaves are anything: wrong types, NaN, huge numbers, surrogates."""
    res_key, scope_key, leaf_key = ENVELOPE[kind]
    record = st.dictionaries(
        st.sampled_from(
            [
                "timeUnixNano",
                "observedTimeUnixNano",
                "body",
                "attributes",
                "traceId",
                "spanId",
                "severityNumber",
                "name",
                "startTimeUnixNano",
                "endTimeUnixNano",
                "kind",
                "status",
                "gauge",
                "sum",
                "histogram",
                "dataPoints",
                "asDouble",
                "asInt",
                "value",
            ]
        ),
        json_value,
        max_size=6,
    )
    scope = st.fixed_dictionaries({leaf_key: st.lists(record, max_size=3)}, optional={"scope": json_value})
    resource = st.fixed_dictionaries(
        {scope_key: st.lists(scope, max_size=2) | json_value},
        optional={"resource": st.fixed_dictionaries({"attributes": json_value})},
    )
    return st.fixed_dictionaries({res_key: st.lists(resource, max_size=2) | json_value})


@PROFILE
@pytest.mark.parametrize("kind", sorted(PARSERS))
@given(data=st.data())
@example(data=None)
def test_otlp_on_hostile_bodies_gives_a_batch_or_invalid_input(kind: str, data: st.DataObject | None) -> None:
    if data is None:  # the hand-written bodies, once each
        for raw in HOSTILE_DOCS:
            parse_or_refuse(kind, raw, JS)
            parse_or_refuse(kind, raw, PB)
        return
    body = data.draw(st.one_of(st.binary(max_size=300), json_value.map(dumps), shaped(kind).map(dumps)))
    parse_or_refuse(kind, body, data.draw(st.sampled_from([PB, JS])))
    parse_or_refuse(kind, data.draw(shaped(kind)), JS)


@PROFILE
@pytest.mark.parametrize("kind", sorted(PARSERS))
@given(mutations=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_otlp_protobuf_with_flipped_bytes_gives_a_batch_or_invalid_input(kind: str, mutations: list[Any]) -> None:
    log = LogRecord(time_unix_nano=NOW, body=AnyValue(string_value="m"), attributes=kv({"a": 1, "b": "x"}))
    span = Span(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="GET", start_time_unix_nano=NOW, end_time_unix_nano=NOW
    )
    point = NumberDataPoint(time_unix_nano=NOW, as_double=1.5, attributes=kv({"a": 1}))
    req: Message = {
        "logs": ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[log] * 3)])]),
        "traces": ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]),
        "metrics": ExportMetricsServiceRequest(
            resource_metrics=[
                ResourceMetrics(
                    scope_metrics=[ScopeMetrics(metrics=[Metric(name="m", gauge=Gauge(data_points=[point]))])]
                )
            ]
        ),
    }[kind]
    raw = bytearray(req.SerializeToString())
    for at, value in mutations:
        raw[at % len(raw)] = value
    parse_or_refuse(kind, bytes(raw), PB)


# -- round trips ------------------------------------------------------------------------------------------

log_record = st.tuples(
    ts,
    clean_text,
    st.sampled_from([(9, "INFO"), (13, "WARN"), (17, "ERROR"), (5, "DEBUG")]),
    st.binary(min_size=16, max_size=16).filter(any),
    st.binary(min_size=8, max_size=8).filter(any),
    attrs,
)


@PROFILE
@given(word, st.lists(log_record, min_size=1, max_size=4))
@example("svc", [(NOW, "\u2028 line separator", (9, "INFO"), b"\x01" * 16, b"\x02" * 8, {"k": "\u00e9"})])
def test_otlp_logs_round_trip(service: str, records: list[Any]) -> None:
    req = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=kv({"service.name": service})),
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(
                                time_unix_nano=t,
                                body=AnyValue(string_value=body),
                                severity_number=sev,
                                trace_id=trace,
                                span_id=span,
                                attributes=kv(a),
                            )
                            for t, body, (sev, _), trace, span, a in records
                        ]
                    )
                ],
            )
        ]
    )
    got = both_encodings("logs", req)
    assert [(r["ts_ns"], r["service"], r["message"], r["level"], r["trace_id"], r["span_id"]) for r in got] == [
        (t, service, body, level, trace.hex(), span.hex()) for t, body, (_, level), trace, span, _ in records
    ]
    assert [json.loads(r["meta"]) if r["meta"] else {} for r in got] == [a for *_, a in records]


span_strategy = st.tuples(
    st.binary(min_size=16, max_size=16).filter(any),
    st.binary(min_size=8, max_size=8).filter(any),
    clean_text,
    ts,
    st.integers(0, 10**12),
    attrs,
)


@PROFILE
@given(word, st.lists(span_strategy, min_size=1, max_size=4))
def test_otlp_traces_round_trip(service: str, spans: list[Any]) -> None:
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=kv({"service.name": service})),
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=trace,
                                span_id=span,
                                name=name,
                                start_time_unix_nano=start - d,
                                end_time_unix_nano=start,
                                attributes=kv(a),
                            )
                            for trace, span, name, start, d, a in spans
                        ]
                    )
                ],
            )
        ]
    )
    got = both_encodings("traces", req)
    assert [(r["trace_id"], r["span_id"], r["service"], r["operation"], r["start_ns"], r["end_ns"]) for r in got] == [
        (trace.hex(), span.hex(), service, name, start - d, start) for trace, span, name, start, d, _ in spans
    ]
    assert [json.loads(r["attributes"]) if r["attributes"] else {} for r in got] == [a for *_, a in spans]


point_strategy = st.tuples(word, ts, st.floats(allow_nan=False, allow_infinity=False, width=64), attrs)


@PROFILE
@given(word, st.lists(point_strategy, min_size=1, max_size=4))
def test_otlp_metrics_round_trip(service: str, points: list[Any]) -> None:
    req = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(attributes=kv({"service.name": service})),
                scope_metrics=[
                    ScopeMetrics(
                        metrics=[
                            Metric(
                                name=name,
                                gauge=Gauge(
                                    data_points=[NumberDataPoint(time_unix_nano=t, as_double=v, attributes=kv(a))]
                                ),
                            )
                            for name, t, v, a in points
                        ]
                    )
                ],
            )
        ]
    )
    got = both_encodings("metrics", req)
    assert [(r["name"], r["ts_ns"], r["value"], r["service"]) for r in got] == [
        (name, t, v, service) for name, t, v, _ in points
    ]
    assert [json.loads(r["attributes"]) if r["attributes"] else {} for r in got] == [a for *_, a in points]
