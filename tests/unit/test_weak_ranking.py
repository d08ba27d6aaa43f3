"""Weak candidates (`detect.rank.weak`): services no signal names, listed after those a signal names, by how far
their metrics moved; a latency clients measure over all their calls counts for the services they call."""

from __future__ import annotations

import random

from agents.explain_fallback import root_cause_of, summary_of
from core.rca import FaultKind
from core.timeutil import NS
from detect.rank.ranking import rank_window
from detect.rank.weak import WEAK_NOTE

T0 = 1_700_000_000 * NS
ALERT = T0 + 3600 * NS


def series(pod: str, svc: str, name: str, t0: int, values: list[float]) -> list[dict]:
    return [
        {"ts_ns": t0 + i * 60 * NS, "name": name, "value": v, "service": svc, "pod": pod, "host": "n1"}
        for i, v in enumerate(values)
    ]


def noisy(level: float, n: int, seed: int, spread: float = 0.1) -> list[float]:
    rnd = random.Random(seed)
    return [level * (1 + rnd.uniform(-spread, spread)) for _ in range(n)]


def history_and_window(window: dict[str, list[float]], name: str = "cpu_usage") -> tuple[list[dict], list[dict]]:
    base: list[dict] = []
    win: list[dict] = []
    for i, svc in enumerate(sorted(window)):
        base += series(f"{svc}-0", svc, name, T0, noisy(10.0, 50, seed=i))
        win += series(f"{svc}-0", svc, name, ALERT, window[svc])
    return base, win


def test_services_no_signal_names_are_ordered_by_how_far_their_metrics_moved() -> None:
    # the history's own noise is +-10%: a window up to 1.2x is below a signal's threshold everywhere
    base, win = history_and_window({"a": [10.0, 10.4, 10.2], "b": [11.6, 11.9, 11.7], "c": [10.9, 11.0, 10.8]})
    res = rank_window(None, None, None, None, win, base, None, alert_ns=ALERT)
    assert res.status == "ok"
    assert [c.service for c in res.candidates] == ["b", "c", "a"]
    assert all(c.weak and c.confidence == 0.0 for c in res.candidates)
    assert res.candidates[0].fault_kind == FaultKind.RESOURCE_SATURATION  # the cpu family's kind
    assert res.candidates[0].evidence_ids == [f"metric:b-0:cpu_usage@{ALERT}-{ALERT + 120 * NS}"]
    assert "weak evidence" in res.candidates[0].signals[0].description
    assert WEAK_NOTE in res.notes
    # scores fall in rank order, below what a signal's candidate would get
    scores = [c.score for c in res.candidates]
    assert scores == sorted(scores, reverse=True)


def test_weak_candidates_come_after_every_candidate_with_a_signal() -> None:
    base, win = history_and_window({"a": [10.0, 10.4, 10.2], "b": [11.6, 11.9, 11.7], "db": [60.0, 65.0, 62.0]})
    res = rank_window(None, None, None, None, win, base, None, alert_ns=ALERT)
    assert [(c.service, c.weak) for c in res.candidates] == [("db", False), ("b", True), ("a", True)]
    assert res.candidates[0].score > res.candidates[1].score


def test_a_service_whose_metrics_did_not_move_or_had_no_scale_is_not_listed() -> None:
    base, win = history_and_window({"a": [10.0, 10.4, 10.2], "b": [11.6, 11.9, 11.7]})
    base += series("flat-0", "flat", "cpu_usage", T0, [5.0] * 50)  # a constant history: no scale to judge by
    win += series("flat-0", "flat", "cpu_usage", ALERT, [5.5, 5.5, 5.5])
    res = rank_window(None, None, None, None, win, base, None, alert_ns=ALERT)
    assert "flat" not in [c.service for c in res.candidates]


def test_latency_clients_measure_over_all_calls_counts_for_their_callees() -> None:
    base = series("fe-0", "frontend", "client_latency_p90", T0, noisy(0.05, 50, seed=1))
    win = series("fe-0", "frontend", "client_latency_p90", ALERT, [0.054, 0.056, 0.055])
    for i, svc in enumerate(("cart", "pay")):
        base += series(f"{svc}-0", svc, "cpu_usage", T0, noisy(10.0, 50, seed=10 + i))
    win += series("cart-0", "cart", "cpu_usage", ALERT, [10.1, 10.3, 10.2])
    win += series("pay-0", "pay", "cpu_usage", ALERT, [10.4, 10.6, 10.5])
    res = rank_window(None, None, None, None, win, base, [("frontend", "cart"), ("frontend", "pay")], alert_ns=ALERT)
    ranked = [c.service for c in res.candidates]
    # both callees inherit the frontend's client latency; the one whose own metrics moved more comes first;
    # the frontend itself, which only measured its calls, is not a candidate
    assert ranked == ["pay", "cart"]
    sig = res.candidates[0].signals[0]
    assert (sig.service, sig.dependency, sig.family) == ("frontend", "pay", "callees")
    # callers wait while the callee's own figures look normal: a network delay
    assert res.candidates[0].fault_kind == FaultKind.NETWORK_DELAY


def test_idle_history_gives_no_candidate() -> None:
    base = series("adm-0", "admin", "workload", T0, [0.0] * 30)
    win = series("adm-0", "admin", "workload", ALERT, [0.0] * 3)
    res = rank_window(None, None, None, None, win, base, None, alert_ns=ALERT)
    assert res.status == "insufficient_evidence"
    assert res.notes[-1] == "no signal reached the threshold and no metric moved: nothing to rank"


def test_the_evidence_only_summary_says_the_evidence_is_weak() -> None:
    base, win = history_and_window({"a": [10.0, 10.4, 10.2], "b": [11.6, 11.9, 11.7]})
    res = rank_window(None, None, None, None, win, base, None, alert_ns=ALERT)
    text = summary_of(res, [root_cause_of(c) for c in res.candidates])
    assert text.startswith("Weak evidence only: no signal reached its threshold. b is the service")
