"""Signal detectors: statistics, per-request normalization, and the evidence they keep."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from core.errors import InvalidInput
from core.rca import Modality, SignalKind
from detect.signals import SignalOptions, compute_signals
from detect.signals.common import count_change, is_error_line, mann_whitney_z
from detect.signals.metrics import metric_family
from detect.signals.traces import index_spans

NS = 1_000_000_000
T0 = 1_700_000_000 * NS


def _span(trace: str, sid: str, parent: str, svc: str, op: str, start: int, dur_us: float) -> dict:
    return {
        "trace_id": trace,
        "span_id": sid,
        "parent_id": parent,
        "service": svc,
        "pod": f"{svc}-0",
        "operation": op,
        "start_ns": start,
        "end_ns": start + int(dur_us * 1000),
        "duration_us": dur_us,
    }


def requests(t0: int, n: int, *, calls_cache: bool, prefix: str) -> list[dict]:
    """n requests of svc 'cart' (op /cart); each calls 'cache' when `calls_cache`, always 'db'."""
    out: list[dict] = []
    for i in range(n):
        tr = f"{prefix}{i:04d}"
        s = t0 + i * NS
        out.append(_span(tr, "c1", "", "cart", "/cart", s, 10_000))
        out.append(_span(tr, "c2", "c1", "cart", "HTTP GET", s + 1000, 3000))
        out.append(_span(tr, "d1", "c2", "db", "/get", s + 2000, 2000))
        if calls_cache:
            out.append(_span(tr, "c3", "c1", "cart", "HTTP GET", s + 5_000_000, 1000))
            out.append(_span(tr, "k1", "c3", "cache", "/k", s + 5_000_100, 500))
    return out


def logs_for(spans: list[dict], template: str, per_request: int, *, prefix: str) -> list[dict]:
    rows = []
    for sp in spans:
        if sp["operation"] != "/cart":
            continue
        for j in range(per_request):
            rows.append(
                {
                    "event_id": f"{prefix}-{sp['trace_id']}-{j}",
                    "ts_ns": sp["start_ns"] + j,
                    "service": "cart",
                    "pod": "cart-0",
                    "level": "INFO",
                    "message": f"cart loaded items={j}",
                    "template_id": template,
                    "trace_id": sp["trace_id"],
                    "span_id": "c1",
                }
            )
    return rows


def test_count_change_new_template_is_significant_and_equal_rates_are_not() -> None:
    z, fold, direction = count_change(19, 100.0, 0, 100.0)
    assert direction == "up" and z > 4 and fold > 10
    z, fold, direction = count_change(20, 100.0, 20, 100.0)
    assert z < 1 and fold == pytest.approx(1.0)
    z, fold, direction = count_change(0, 50.0, 30, 50.0)
    assert direction == "down" and z > 4 and fold < 0.1


def test_mann_whitney_z() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(10, 1, 50)
    assert mann_whitney_z(base, rng.normal(10, 1, 50)) < 2
    assert mann_whitney_z(base, rng.normal(20, 1, 50)) > 6
    assert mann_whitney_z(np.array([]), base) == 0.0


def test_error_lines_are_found_without_levels() -> None:
    assert is_error_line("", "java.lang.IllegalStateException: No instances available")
    assert is_error_line("", "request failed with status 503")
    assert is_error_line("ERROR", "anything")
    assert not is_error_line("", "served 200 items")
    assert not is_error_line("WARN", "cache warm-up slow")


def test_metric_families_match_names_from_other_sources() -> None:
    assert metric_family("container_cpu_usage_seconds_total") == "cpu"
    assert metric_family("jvm_memory_used_bytes") == "memory"
    assert metric_family("http_server_duration_p95") == "latency"
    assert metric_family("success_rate") == "success"
    assert metric_family("node_cpu_usage_rate") == "node"
    assert metric_family("workload") == "workload"


def test_more_traffic_at_the_same_rate_per_request_is_not_a_signal() -> None:
    sb = requests(T0, 20, calls_cache=True, prefix="b")
    sw = requests(T0 + 100 * NS, 60, calls_cache=True, prefix="w")
    ws = compute_signals(
        logs_for(sw, "t-load", 2, prefix="w"), logs_for(sb, "t-load", 2, prefix="b"), sw, sb, None, None
    )
    assert ws.signals == []
    assert ws.used == [Modality.TRACES, Modality.LOGS]


def test_vanished_template_and_vanished_call_are_own_behaviour_changes() -> None:
    sb = requests(T0, 30, calls_cache=True, prefix="b")
    sw = requests(T0 + 100 * NS, 30, calls_cache=False, prefix="w")
    ws = compute_signals(
        logs_for(sw, "t-other", 1, prefix="w"),
        logs_for(sb, "t-load", 1, prefix="b"),
        pa.Table.from_pylist(sw),
        pa.Table.from_pylist(sb),
        None,
        None,
    )
    by_kind = {s.kind: s for s in ws.signals if s.key != "t-other"}
    gone = by_kind[SignalKind.LOG_TEMPLATE_SHIFT]
    assert gone.service == "cart" and gone.direction == "down" and gone.key == "t-load"
    new = [s for s in ws.signals if s.key == "t-other"]
    assert [(s.kind, s.direction) for s in new] == [(SignalKind.LOG_TEMPLATE_SHIFT, "up")]
    assert gone.evidence_ids[:2] == ["template:t-load", "log:b-b0000-0"]
    st = by_kind[SignalKind.SPAN_STRUCTURE]
    assert (st.service, st.key, st.direction) == ("cart", "/cart->cache", "down")
    assert st.baseline == 1.0 and st.observed == 0.0
    assert st.evidence_ids[:2] == ["operation:cart:/cart", "edge:cart->cache"]


def test_self_time_excludes_callees() -> None:
    idx = index_spans(requests(T0, 3, calls_cache=True, prefix="x"))
    (req,) = idx.requests[("cart", "/cart")][:1]
    # 10 ms total, of which 3 ms client span to db and 1 ms to cache are not the cart's own time
    assert req.local_us == pytest.approx(6000.0)
    assert req.calls == {"db": 1, "cache": 1}
    assert idx.by_service["db"] == 3


def test_metric_signal_keeps_its_window_as_evidence() -> None:
    base = [
        {"ts_ns": T0 + i * 60 * NS, "name": "memory_usage", "value": 100.0 + i % 3, "pod": "p-0", "service": "p"}
        for i in range(20)
    ]
    win = [
        {"ts_ns": T0 + (30 + i) * 60 * NS, "name": "memory_usage", "value": v, "pod": "p-0", "service": "p"}
        for i, v in enumerate([101.0, 180.0, 190.0])
    ]
    ws = compute_signals(None, None, None, None, win, base, SignalOptions())
    (sig,) = ws.signals
    assert (sig.service, sig.pod, sig.family, sig.direction) == ("p", "p-0", "memory", "up")
    assert sig.observed == 180.0
    assert sig.evidence_ids == [f"metric:p-0:memory_usage@{T0 + 1800 * NS}-{T0 + 1920 * NS}"]


def test_bad_input_type_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput):
        compute_signals("not a table", None, None, None, None, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        compute_signals([1, 2], [3], None, None, None, None)  # type: ignore[list-item]
