"""Metric series as the metric signals read them (detect/signals/metric_series, metric_families,
metric_edges): counters as rates, histogram count + sum as mean and rate, families by semantic
conventions and generic words, call edges from client-side metrics with semconv attributes."""

from __future__ import annotations

import json

import pytest

from core.rca import SignalKind
from detect.signals import SignalOptions
from detect.signals.metric_edges import call_edges, resolve_peer
from detect.signals.metric_families import metric_family, name_family, split_part
from detect.signals.metric_series import build_series, is_cumulative
from detect.signals.metrics import metric_call_edges, metric_signals

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
MIN = 60 * NS


def row(t: int, name: str, value: float, service: str = "alpha", attrs: dict | None = None) -> dict:
    return {
        "ts_ns": t,
        "name": name,
        "value": value,
        "service": service,
        "pod": f"{service}-0",
        "host": "",
        "attributes": json.dumps(attrs or {}, sort_keys=True),
    }


def test_a_cumulative_counter_is_read_as_its_rate_and_a_reset_counts_from_zero() -> None:
    values = [100.0, 160.0, 220.0, 280.0, 30.0, 90.0]  # 1/s, a restart, then 1/s again
    rows = [row(T0 + i * MIN, "jobs_total", v) for i, v in enumerate(values)]
    win, base = build_series(rows[4:], rows[:4])
    key = ("alpha", "alpha-0", "jobs_total.rate", "")
    assert base[key] == [(T0 + i * MIN, 1.0) for i in (1, 2, 3)]
    assert win[key] == [(T0 + 4 * MIN, 0.5), (T0 + 5 * MIN, 1.0)]
    assert not is_cumulative([5.0, 4.0, 5.0, 4.0, 5.0])  # a gauge going up and down


def test_cumulative_histogram_count_and_sum_give_the_mean_of_each_interval_and_the_request_rate() -> None:
    counts = [0, 60, 120, 180, 240, 300]
    sums = [0.0, 6.0, 12.0, 18.0, 24.0, 42.0]  # 0.1 s each, then 0.3 s each in the last minute
    rows = [row(T0 + i * MIN, "handler.time.count", c) for i, c in enumerate(counts)]
    rows += [row(T0 + i * MIN, "handler.time.sum", s) for i, s in enumerate(sums)]
    last = T0 + 5 * MIN
    win, base = build_series([r for r in rows if r["ts_ns"] >= last], [r for r in rows if r["ts_ns"] < last])
    mean = ("alpha", "alpha-0", "handler.time.mean", "")
    rate = ("alpha", "alpha-0", "handler.time.count.rate", "")
    assert base[mean] == [(T0 + i * MIN, pytest.approx(0.1)) for i in range(1, 5)]
    assert win[mean] == [(last, pytest.approx(0.3))]
    assert win[rate] == [(last, 1.0)]
    assert not any(k[2].endswith((".sum", ".count")) for k in {**win, **base})


def test_delta_histogram_points_give_sum_over_count() -> None:
    rows = [row(T0 + i * MIN, "h.count", 10.0 + (i % 2)) for i in range(6)]
    rows += [row(T0 + i * MIN, "h.sum", 2.0 * (10.0 + (i % 2))) for i in range(6)]
    win, base = build_series(rows[5:6] + rows[11:12], rows[:5] + rows[6:11])
    assert [v for _, v in base[("alpha", "alpha-0", "h.mean", "")]] == [2.0] * 5
    assert win[("alpha", "alpha-0", "h.count", "")] == [(T0 + 5 * MIN, 11.0)]


@pytest.mark.parametrize(
    ("name", "attrs", "family"),
    [
        ("http.server.request.duration.p95", None, "latency"),
        ("rpc.client.duration.mean", None, "latency"),
        ("http.server.request.duration.count.rate", None, "workload"),
        ("http.server.request.duration.count.rate", {"http.response.status_code": 503}, "error"),
        ("process_cpu_seconds_total.rate", None, "cpu"),
        ("rpc.server.duration.count", {"rpc.grpc.status_code": 14}, "error"),
        ("system.cpu.utilization", None, "node"),
        ("k8s.pod.cpu.usage", None, "cpu"),
        ("container.memory.working_set", None, "memory"),
        ("jvm.gc.duration.mean", None, "memory"),
        ("process.disk.io", None, "io"),
        ("queueWaitLatencyMs", None, "latency"),
        ("thing_count_weird", None, "other"),
    ],
)
def test_metric_families_follow_semantic_conventions_then_generic_words(
    name: str, attrs: dict | None, family: str
) -> None:
    assert metric_family(name, attrs) == family


def test_split_part_and_word_rules() -> None:
    assert split_part("a.b.p99") == ("a.b", "p99")
    assert split_part("latency_p99") == ("latency_p99", "")
    assert name_family("network_receive_bytes") == "network"
    assert name_family("success_rate") == "success"


def test_client_metrics_with_semconv_peer_attributes_are_calls_resolved_to_known_services() -> None:
    known = {"cartservice": "cartservice", "frontend": "frontend"}
    assert resolve_peer("cartservice.shop.svc.cluster.local:7070", known) == "cartservice"
    assert resolve_peer("http://CartService:7070/x", known) == "cartservice"
    assert resolve_peer("hipstershop.CartService", known) == "cartservice"
    assert resolve_peer("10.0.0.7:5432", known) == "10.0.0.7"
    keys = [
        ("frontend", "", "rpc.client.duration.mean", json.dumps({"rpc.service": "shop.CartService"})),
        ("frontend", "", "http.server.request.duration.mean", json.dumps({"server.address": "frontend"})),
        ("cartservice", "", "cache_calls", json.dumps({"peer.service": "redis"})),
        ("cartservice", "", "rpc.server.duration.mean", ""),
    ]
    assert call_edges(keys) == {keys[0]: "cartservice", keys[2]: "redis"}


def test_a_slower_call_seen_by_the_client_names_the_server_and_gives_the_edge() -> None:
    attrs = {"server.address": "bravo:8080"}
    base = [
        row(T0 + i * MIN, "http.client.request.duration.p95", 0.1 + 0.001 * (i % 3), attrs=attrs) for i in range(30)
    ]
    base += [row(T0 + i * MIN, "uptime_s", 5.0, service="bravo") for i in range(30)]
    win = [row(T0 + (31 + i) * MIN, "http.client.request.duration.p95", 0.9, attrs=attrs) for i in range(4)]
    win += [row(T0 + (31 + i) * MIN, "uptime_s", 5.0, service="bravo") for i in range(4)]
    sigs = metric_signals(win, base, SignalOptions())
    assert [(s.service, s.family, s.direction, s.dependency, s.dependency_via) for s in sigs] == [
        ("alpha", "latency", "up", "bravo", "call")
    ]
    assert sigs[0].kind == SignalKind.METRIC_DEVIATION
    assert metric_call_edges(win, base) == {("alpha", "bravo")}
