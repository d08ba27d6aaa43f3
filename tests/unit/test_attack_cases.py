"""The attack benchmark's hand-built requests are what they claim to be (bench/attack_cases.py).

If the bomb stopped holding empty records, or the Slack signature stopped verifying, the benchmark would
report refusals of requests that never reached the parts it means to test.
"""

from __future__ import annotations

import gzip

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from slack_sdk.signature import SignatureVerifier

from bench.attack_cases import SLACK_BODY, _slack_signed, cases, empty_records_bomb


def test_the_bomb_holds_exactly_the_empty_records_it_says() -> None:
    raw = gzip.decompress(empty_records_bomb(1234))
    logs = ExportLogsServiceRequest.FromString(raw)
    assert len(logs.resource_logs[0].scope_logs[0].log_records) == 1234
    traces = ExportTraceServiceRequest.FromString(raw)  # the same nesting: spans are field 2 of ScopeSpans
    assert len(traces.resource_spans[0].scope_spans[0].spans) == 1234


def test_the_full_bomb_is_small_on_the_wire() -> None:
    assert len(empty_records_bomb()) < 40_000


def test_slack_requests_are_signed_as_slack_signs_them() -> None:
    headers = _slack_signed("s3cret", SLACK_BODY)
    verifier = SignatureVerifier("s3cret")
    assert verifier.is_valid_request(SLACK_BODY, headers)
    assert not SignatureVerifier("other").is_valid_request(SLACK_BODY, headers)


def test_case_names_are_unique() -> None:
    names = [c.name for c in cases()]
    assert len(names) == len(set(names))
