"""Signal detectors: the history-slice statistics, request paths, dependencies named in errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from core.errors import InvalidInput
from core.rca import Modality, SignalKind
from detect.signals import SignalOptions, compute_signals
from detect.signals.common import is_error_line
from detect.signals.logs import statement
from detect.signals.metrics import metric_family
from detect.signals.slices import robust_share, slice_test
from detect.signals.spans import fold_spans
from detect.signals.stats import count_change, family_z, mann_whitney_z
from tests.spans import loop_requests
from tests.spans import span as _span

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
MIN = 60 * NS


def requests(t0: int, n: int, *, calls_cache: bool, prefix: str, every_ns: int = NS) -> list[dict]:
    """n requests of svc 'cart' (op /cart); each calls 'db', and 'cache' when `calls_cache`."""
    out: list[dict] = []
    for i in range(n):
        tr = f"{prefix}{i:04d}"
        s = t0 + i * every_ns
        out.append(_span(tr, "c1", "", "cart", "/cart", s, 10_000))
        out.append(_span(tr, "c2", "c1", "cart", "HTTP GET", s + 1000, 3000))
        out.append(_span(tr, "d1", "c2", "db", "/get", s + 2000, 2000))
        if calls_cache:
            out.append(_span(tr, "c3", "c1", "cart", "HTTP GET", s + 5_000_000, 1000))
            out.append(_span(tr, "k1", "c3", "cache", "/k", s + 5_000_100, 500))
    return out


def cart_logs(spans: list[dict], *, prefix: str, failing: set[int] | None = None, dependency: str = "") -> list[dict]:
    """Every /cart request logs 'cart loaded items=N' then 'cart done'; failing ones log an error instead."""
    rows = []
    for k, sp in enumerate(s for s in spans if s["operation"] == "/cart"):
        bad = failing is not None and k in failing
        lines = (
            [
                (
                    "ERROR",
                    f"cart failed: item {k} missing" + (f" (connection refused by {dependency})" if dependency else ""),
                    "t-err",
                )
            ]
            if bad
            else [("INFO", f"cart loaded items={k % 7}", "t-load"), ("INFO", "cart done", "t-done")]
        )
        for j, (level, msg, tid) in enumerate(lines):
            rows.append(
                {
                    "event_id": f"{prefix}-{sp['trace_id']}-{j}",
                    "ts_ns": sp["start_ns"] + 100_000 + j,
                    "service": "cart",
                    "pod": "cart-0",
                    "level": level,
                    "message": msg,
                    "template_id": tid,
                    "trace_id": sp["trace_id"],
                    "span_id": "c1",
                }
            )
    return rows


def history(n_slices: int, per_slice: int, *, calls_cache: bool = True, start: int = T0) -> list[dict]:
    """Requests spread over `n_slices` one-minute slices before `start + n_slices minutes`."""
    out: list[dict] = []
    for j in range(n_slices):
        out += requests(
            start + j * MIN, per_slice, calls_cache=calls_cache, prefix=f"h{j:02d}-", every_ns=MIN // per_slice
        )
    return out


WINDOW_T = T0 + 30 * MIN
WINDOW = (WINDOW_T, WINDOW_T + MIN)


def test_count_change_new_template_is_significant_and_equal_rates_are_not() -> None:
    z, fold, direction = count_change(19, 100.0, 0, 100.0)
    assert direction == "up" and z > 4 and fold > 10
    z, fold, direction = count_change(20, 100.0, 20, 100.0)
    assert z < 1 and fold == pytest.approx(1.0)


def test_mann_whitney_z() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(10, 1, 50)
    assert mann_whitney_z(base, rng.normal(10, 1, 50)) < 2
    assert mann_whitney_z(base, rng.normal(20, 1, 50)) > 6


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
    assert metric_family("node_cpu_usage_rate") == "node"


def test_robust_share_sets_an_earlier_incident_aside() -> None:
    k = np.array([0] * 20 + [15])  # one history slice held the same error (an earlier incident)
    n = np.array([20] * 21)
    p0, phi, outliers = robust_share(k, n)
    assert outliers == 1 and p0 < 0.01 and phi == 1.0
    assert slice_test(15, 20, k, n).z > 8  # the next incident still stands out


def test_slice_test_weighs_overdispersed_history() -> None:
    n = np.array([40] * 12)
    steady = np.array([4, 4, 5, 3, 4, 4, 4, 5, 4, 3, 4, 4])
    wild = np.array([1, 12, 2, 20, 3, 9, 0, 16, 4, 14, 2, 18])
    assert slice_test(14, 40, steady, n).z > 4
    assert slice_test(14, 40, wild, n).z < 2
    assert slice_test(0, 100, steady, n).z < -3  # a share that vanished counts too
    assert slice_test(0, 100, steady, n).direction == "down"


def test_family_z_accounts_for_the_number_of_tests() -> None:
    assert family_z(4.0, 1) == pytest.approx(4.0)
    assert 3.0 < family_z(4.0, 10) < 4.0
    assert family_z(3.0, 1000) == 0.0


def test_statement_masks_numbers_and_keeps_the_first_words() -> None:
    assert statement("GET /api/17 took 5 ms", 8) == "GET /api/# took # ms"
    # data written later in the line does not make another statement
    assert statement("[getSoldTickets][Left ticket info] seat 3 to nanjing", 5) == statement(
        "[getSoldTickets][Left ticket info] seat 12 to suzhou", 5
    )
    assert statement("id 0x1f3a9c2e44 and 8a533bf9-bd12-4608-a8e0-606890982448 for user42", 8) == "id # and # for #"


def test_more_traffic_on_the_same_paths_is_not_a_signal() -> None:
    hist = history(10, 20)
    win = requests(WINDOW_T, 60, calls_cache=True, prefix="w", every_ns=NS)
    ws = compute_signals(cart_logs(win, prefix="w"), cart_logs(hist, prefix="b"), win, hist, None, None, window=WINDOW)
    assert ws.signals == []
    assert ws.used == [Modality.TRACES, Modality.LOGS]


def test_new_error_after_a_step_is_the_services_own_change() -> None:
    hist = history(10, 20)
    win = requests(WINDOW_T, 30, calls_cache=True, prefix="w", every_ns=2 * NS)
    ws = compute_signals(
        cart_logs(win, prefix="w", failing=set(range(0, 30, 2))),
        cart_logs(hist, prefix="b"),
        pa.Table.from_pylist(win),
        pa.Table.from_pylist(hist),
        None,
        None,
        window=WINDOW,
    )
    logs = [s for s in ws.signals if s.modality == Modality.LOGS]
    err = next(s for s in logs if s.kind == SignalKind.LOG_ERROR_TEMPLATE)
    assert (err.service, err.direction) == ("cart", "up")
    assert err.key == "START:/cart -> cart failed: item # missing !ERR"
    assert err.observed == pytest.approx(0.5) and err.baseline < 0.01
    assert err.effect == pytest.approx(0.5, abs=0.01)
    assert err.evidence_ids[:2] == ["template:t-err", "log:w-w0000-0"]
    lost = next(s for s in logs if s.direction == "down")
    assert lost.key == "START:/cart -> cart loaded items=#"
    assert lost.group == err.group == "logs:cart:START:/cart"
    assert not err.dependency
    # the failing requests are the anomalous traces of the cart
    assert ws.anomalous_traces["cart"] >= {f"w{i:04d}" for i in range(0, 30, 2)}


def test_error_naming_another_service_points_at_it() -> None:
    hist = history(10, 20)
    win = requests(WINDOW_T, 30, calls_cache=True, prefix="w", every_ns=2 * NS)
    ws = compute_signals(
        cart_logs(win, prefix="w", failing=set(range(30)), dependency="cache"),
        cart_logs(hist, prefix="b"),
        win,
        hist,
        None,
        None,
        window=WINDOW,
    )
    err = next(s for s in ws.signals if s.kind == SignalKind.LOG_ERROR_TEMPLATE)
    assert (err.dependency, err.dependency_via) == ("cache", "error")
    assert err.key.endswith("!ERR @cache")
    # the cache still answers as often as before: it did not go silent
    assert ws.activity["cache"] == 0.0


def test_self_time_excludes_callees() -> None:
    fold = fold_spans(requests(T0, 3, calls_cache=True, prefix="x"))
    reqs = fold.requests().to_pylist()
    cart = [r for r in reqs if r["service"] == "cart"]
    assert len(cart) == 3 and {r["operation"] for r in cart} == {"/cart"}
    # 10 ms total, of which 3 ms of client span to db and 1 ms to cache are not the cart's own time
    assert cart[0]["local_us"] == pytest.approx(6000.0)
    assert len([r for r in reqs if r["service"] == "db"]) == 3
    assert fold.edges == {("cart", "db"), ("cart", "cache")}


def test_a_call_no_longer_made_is_a_structure_signal() -> None:
    hist = history(10, 20)
    win = requests(WINDOW_T, 40, calls_cache=False, prefix="w", every_ns=NS)
    ws = compute_signals(None, None, win, hist, None, None, window=WINDOW)
    by_key = {s.key: s for s in ws.signals}
    assert set(by_key) == {"-> db -> HTTP GET", "-> db -> END", "HTTP GET -> -> cache", "HTTP GET -> -> db"}
    sig = by_key["-> db -> HTTP GET"]
    assert (sig.service, sig.kind, sig.direction) == ("cart", SignalKind.SPAN_STRUCTURE, "down")
    assert by_key["-> db -> END"].group == sig.group  # one change: the path after the db call
    assert (sig.dependency, sig.dependency_via) == ("db", "call")
    assert sig.baseline == pytest.approx(1.0, abs=0.01) and sig.observed == 0.0
    assert sig.evidence_ids[0].startswith("span:w0000:")


def test_slower_own_time_is_a_self_latency_signal() -> None:
    hist = history(10, 20)
    win = requests(WINDOW_T, 40, calls_cache=True, prefix="w", every_ns=NS)
    for s in win:
        if s["operation"] == "/cart":  # 20 ms more in the cart's own code
            s["end_ns"] += 20_000_000
            s["duration_us"] += 20_000
    ws = compute_signals(None, None, win, hist, None, None, window=WINDOW)
    own = next(s for s in ws.signals if s.kind == SignalKind.SPAN_SELF_LATENCY)
    assert (own.service, own.key, own.direction) == ("cart", "/cart", "up")
    assert own.observed == pytest.approx(26.0)
    assert own.evidence_ids[0] == "operation:cart:/cart"
    assert not [s for s in ws.signals if s.service == "db"]


def test_history_inside_the_window_is_ignored() -> None:
    hist = history(10, 20)
    win = requests(WINDOW_T, 40, calls_cache=False, prefix="w", every_ns=NS)
    # the same requests passed as history too: they fall inside the window and must not count
    ws = compute_signals(None, None, win, hist + win, None, None, window=WINDOW)
    assert any(s.kind == SignalKind.SPAN_STRUCTURE for s in ws.signals)


def test_metric_signal_keeps_its_window_as_evidence() -> None:
    base = [
        {"ts_ns": T0 + i * MIN, "name": "memory_usage", "value": 100.0 + i % 3, "pod": "p-0", "service": "p"}
        for i in range(20)
    ]
    win = [
        {"ts_ns": T0 + (30 + i) * MIN, "name": "memory_usage", "value": v, "pod": "p-0", "service": "p"}
        for i, v in enumerate([101.0, 180.0, 190.0])
    ]
    ws = compute_signals(None, None, None, None, win, base, SignalOptions())
    (sig,) = ws.signals
    assert (sig.service, sig.pod, sig.family, sig.direction) == ("p", "p-0", "memory", "up")
    assert sig.observed == 180.0
    assert sig.effect == pytest.approx(1 - 101 / 180, abs=0.01)
    assert sig.evidence_ids == [f"metric:p-0:memory_usage@{T0 + 1800 * NS}-{T0 + 1920 * NS}"]


def test_bad_input_type_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput):
        compute_signals("not a table", None, None, None, None, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        compute_signals([1, 2], [3], None, None, None, None)  # type: ignore[list-item]


def test_slower_calls_outside_the_callee_are_edge_latency_on_the_callee() -> None:
    hist = history(10, 20)
    win = requests(WINDOW_T, 40, calls_cache=True, prefix="w", every_ns=NS)
    for s in win:  # 15 ms more between the cart's client span to the db and the db's server span
        if s["span_id"] in ("c1", "c2"):
            s["end_ns"] += 15_000_000
            s["duration_us"] += 15_000
    ws = compute_signals(None, None, win, hist, None, None, window=WINDOW)
    edge = [s for s in ws.signals if s.kind == SignalKind.EDGE_LATENCY]
    # the db's only caller sees it, and the cart's calls to the cache did not change: blamed on the db
    assert {(s.service, s.key) for s in edge} == {("db", "cart->db")}
    assert edge[0].evidence_ids[0] == "edge:cart->db" and edge[0].observed == pytest.approx(16.0)
    # the cart's own code took no longer, and the db's own span did not change
    assert not [s for s in ws.signals if s.kind == SignalKind.SPAN_SELF_LATENCY]


def loop_history(n_slices: int, per_slice: int) -> list[dict]:
    out: list[dict] = []
    for j in range(n_slices):
        out += loop_requests(T0 + j * MIN, per_slice, calls=5, calcs=5, prefix=f"h{j:02d}-", every_ns=MIN // per_slice)
    return out


def test_a_loop_cut_short_is_a_signal_on_the_looping_service() -> None:
    # history: 5 items per request, each a seat call then a calc; window: the third call is the last
    # step reached (an exception in the loop body), so 3 calls and only 2 calcs per request
    win = loop_requests(WINDOW_T, 40, calls=3, calcs=2, prefix="w")
    ws = compute_signals(None, None, win, loop_history(10, 20), None, None, window=WINDOW)
    loops = [s for s in ws.signals if s.kind == SignalKind.LOOP_SHORTENED]
    assert loops and {s.service for s in loops} == {"trip"}
    sig = loops[0]
    assert (sig.modality, sig.direction, sig.family) == (Modality.TRACES, "down", "structure")
    assert sig.key.startswith("START:/trips | calc per ")
    assert sig.observed == 0.0 and sig.baseline == pytest.approx(1.0, abs=0.01)
    assert sig.score >= 3.0
    assert sig.evidence_ids and sig.evidence_ids[0].startswith("span:w0000:")
    assert ws.anomalous_traces["trip"] >= {"w0000", "w0039"}


def test_an_unchanged_loop_or_fewer_items_is_not_a_loop_signal() -> None:
    hist = loop_history(10, 20)
    same = loop_requests(WINDOW_T, 40, calls=5, calcs=5, prefix="w")
    assert not [
        s
        for s in compute_signals(None, None, same, hist, None, None, window=WINDOW).signals
        if s.kind == SignalKind.LOOP_SHORTENED
    ]
    # requests with fewer items whose loops run to the end: the input changed, not the code
    fewer = loop_requests(WINDOW_T, 40, calls=2, calcs=2, prefix="w")
    ws = compute_signals(None, None, fewer, hist, None, None, window=WINDOW)
    assert not [s for s in ws.signals if s.kind == SignalKind.LOOP_SHORTENED]


def test_a_loop_cut_short_in_log_statements_is_a_signal() -> None:
    def lines(spans: list[dict], prefix: str, cut: bool) -> list[dict]:
        rows = []
        for sp in (s for s in spans if s["operation"] == "HTTP POST"):
            j = int(sp["span_id"][1:])
            msgs = ["get rest tickets for trip 7"] + ([] if cut and j == 2 else ["calculate distance 120 km"])
            for m, msg in enumerate(msgs):
                rows.append(
                    {
                        "event_id": f"{prefix}-{sp['trace_id']}-{j}-{m}",
                        "ts_ns": sp["start_ns"] + 10 + m,
                        "service": "trip",
                        "pod": "trip-0",
                        "level": "INFO",
                        "message": msg,
                        "trace_id": sp["trace_id"],
                        "span_id": "r",
                    }
                )
        return rows

    hist = loop_history(10, 20)
    win = loop_requests(WINDOW_T, 40, calls=3, calcs=3, prefix="w")
    ws = compute_signals(lines(win, "w", True), lines(hist, "h", False), win, hist, None, None, window=WINDOW)
    loops = [s for s in ws.signals if s.kind == SignalKind.LOOP_SHORTENED]
    assert [(s.service, s.modality) for s in loops] == [("trip", Modality.LOGS)]
    assert "calculate distance" in loops[0].key and "get rest tickets" in loops[0].key
    assert loops[0].evidence_ids[0].startswith(("log:w-", "template:"))
