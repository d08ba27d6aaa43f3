"""Root-cause ranking on small hand-made windows where the answer is known."""

from __future__ import annotations

import random

import networkx as nx
import pyarrow as pa
import pytest

from core.rca import FaultKind, Modality, SignalKind
from core.telemetry import CallEdge
from detect.kinds import KIND_TRAITS
from detect.rank.callgraph import call_graph, propagation_path
from detect.rank.ranking import RankOptions, blame_walk, rank_window
from tests.spans import loop_requests
from tests.spans import span as _span

NS = 1_000_000_000
T0 = 1_700_000_000 * NS  # baseline starts here
ALERT = T0 + 600 * NS  # window starts here


def chain(
    t0: int,
    n: int,
    *,
    db_self_ms: float,
    db_fail_every: int = 0,
    seed: int = 1,
    prefix: str = "b",
) -> tuple[list[dict], list[dict]]:
    """n requests frontend -> api -> db, one every 2 s. Returns (spans, logs).

    Every db request logs 'query ok'; when `db_fail_every` > 0, every k-th db request instead logs a
    new error template and the api logs that its call to db failed (same trace)."""
    rnd = random.Random(seed)
    spans: list[dict] = []
    logs: list[dict] = []
    for i in range(n):
        trace = f"{prefix}{i:04d}".ljust(32, "0")
        t = t0 + i * 2 * NS
        db = db_self_ms * 1000 * (1 + 0.1 * rnd.random())
        gap = 300 + 50 * rnd.random()
        api_self = 2000 + 200 * rnd.random()
        fe_self = 1000 + 100 * rnd.random()
        api = api_self + gap + db
        fe = fe_self + gap + api
        s = t
        spans.append(_span(trace, "f1", "", "frontend", "GET /", s, fe))
        spans.append(_span(trace, "f2", "f1", "frontend", "HTTP GET", s + 500_000, gap + api))
        spans.append(_span(trace, "a1", "f2", "api", "/api/items", s + 600_000, api))
        spans.append(_span(trace, "a2", "a1", "api", "HTTP GET", s + 1_000_000, gap + db))
        spans.append(_span(trace, "d1", "a2", "db", "/query", s + 1_100_000, db))
        fail = db_fail_every > 0 and i % db_fail_every == 0
        ts = s + 1_200_000
        if fail:
            logs.append(
                _log(f"{prefix}-d{i}", ts, "db", "ERROR", f"query failed: table {i} locked", "t-db-err", trace, "d1")
            )
            logs.append(
                _log(
                    f"{prefix}-a{i}", ts + 10, "api", "ERROR", "call to db failed status=500", "t-api-err", trace, "a1"
                )
            )
        else:
            logs.append(_log(f"{prefix}-d{i}", ts, "db", "INFO", f"query ok rows={i}", "t-db-ok", trace, "d1"))
        logs.append(_log(f"{prefix}-f{i}", ts + 20, "frontend", "INFO", "served /", "t-fe", trace, "f1"))
    return spans, logs


def _log(eid: str, ts: int, svc: str, level: str, msg: str, tid: str, trace: str, span: str) -> dict:
    return {
        "event_id": eid,
        "ts_ns": ts,
        "service": svc,
        "pod": f"{svc}-0",
        "level": level,
        "message": msg,
        "template_id": tid,
        "trace_id": trace,
        "span_id": span,
    }


def metric_rows(pod: str, svc: str, name: str, t0: int, values: list[float]) -> list[dict]:
    return [
        {"ts_ns": t0 + i * 60 * NS, "name": name, "value": v, "service": svc, "pod": pod, "host": "n1"}
        for i, v in enumerate(values)
    ]


def test_leaf_with_new_error_template_ranks_above_callers_that_only_suffer() -> None:
    sb, lb = chain(T0, 60, db_self_ms=5, prefix="b")
    sw, lw = chain(ALERT, 60, db_self_ms=5, db_fail_every=2, prefix="w", seed=2)
    res = rank_window(lw, lb, sw, sb, None, None, None, alert_ns=ALERT)
    assert res.status == "ok"
    assert [c.service for c in res.candidates] == ["db", "api"]
    top = res.candidates[0]
    assert top.fault_kind == FaultKind.CODE_ERROR
    assert top.pod == "db-0"
    assert "template:t-db-err" in top.evidence_ids
    assert "log:w-d0" in top.evidence_ids
    assert res.candidates[0].confidence > res.candidates[1].confidence
    assert res.modalities_used == [Modality.TRACES, Modality.LOGS]
    assert res.modalities_missing == [Modality.METRICS]
    # the path climbs from the root to its caller, citing the edge and the caller's error lines
    assert [(p.source, p.target) for p in top.path] == [("db", "api")]
    assert top.path[0].evidence_ids[:2] == ["edge:api->db", "template:t-api-err"]


def test_same_window_without_graph_coupling_still_prefers_the_leaf() -> None:
    """Logs alone (no spans): the topology comes from the caller's CallEdges."""
    _, lb = chain(T0, 60, db_self_ms=5, prefix="b")
    _, lw = chain(ALERT, 60, db_self_ms=5, db_fail_every=2, prefix="w", seed=2)
    edges = [CallEdge(caller="frontend", callee="api"), CallEdge(caller="api", callee="db")]
    res = rank_window(lw, lb, None, None, None, None, edges, alert_ns=ALERT)
    # the api never logged before, so its new error has no history to be judged against; its
    # error names the db, which is where the evidence points anyway
    assert [c.service for c in res.candidates] == ["db"]
    assert res.candidates[0].path == []  # no anomalous caller to climb to
    assert res.modalities_missing == [Modality.TRACES, Modality.METRICS]


def test_latency_injected_on_one_service_beats_its_slow_callers() -> None:
    sb, _ = chain(T0, 60, db_self_ms=5, prefix="b")
    sw, _ = chain(ALERT, 60, db_self_ms=80, prefix="w", seed=3)
    res = rank_window(None, None, pa.Table.from_pylist(sw), pa.Table.from_pylist(sb), None, None, None)
    assert [c.service for c in res.candidates] == ["db", "api", "frontend"]
    top = res.candidates[0]
    assert top.fault_kind == FaultKind.RESOURCE_SATURATION
    kinds = {s.kind for s in top.signals}
    assert SignalKind.SPAN_SELF_LATENCY in kinds
    callers = {s.kind for s in res.candidates[1].signals}
    assert callers == {SignalKind.SPAN_LATENCY}  # the api's own time did not change
    assert [(p.source, p.target) for p in top.path] == [("db", "api"), ("api", "frontend")]
    assert "operation:db:/query" in top.evidence_ids


def test_metrics_only_cpu_saturation() -> None:
    base_t, win_t = T0, ALERT
    rnd = random.Random(5)
    base = (
        metric_rows("db-0", "db", "cpu_usage_rate", base_t, [10 + rnd.random() for _ in range(30)])
        + metric_rows("api-0", "api", "latency_p95_s", base_t, [0.1 + 0.01 * rnd.random() for _ in range(30)])
        + metric_rows("fe-0", "frontend", "latency_p95_s", base_t, [0.2 + 0.01 * rnd.random() for _ in range(30)])
        + metric_rows("api-0", "api", "workload", base_t, [5.0] * 30)
    )
    win = (
        metric_rows("db-0", "db", "cpu_usage_rate", win_t, [11, 95, 97, 96])
        + metric_rows("api-0", "api", "latency_p95_s", win_t, [0.1, 0.9, 0.8, 0.9])
        + metric_rows("fe-0", "frontend", "latency_p95_s", win_t, [0.2, 1.0, 1.1, 1.0])
        + metric_rows("api-0", "api", "workload", win_t, [5.0] * 4)
    )
    edges = [("frontend", "api"), ("api", "db")]
    res = rank_window(None, None, None, None, win, base, edges, alert_ns=ALERT)
    assert res.status == "ok"
    assert [c.service for c in res.candidates] == ["db", "api", "frontend"]
    top = res.candidates[0]
    assert top.fault_kind == FaultKind.RESOURCE_SATURATION
    assert top.evidence_ids == [f"metric:db-0:cpu_usage_rate@{win_t}-{win_t + 180 * NS}"]
    assert [(p.source, p.target) for p in top.path] == [("db", "api"), ("api", "frontend")]


def test_idle_pod_latency_spike_is_not_a_signal() -> None:
    base = metric_rows("adm-0", "admin", "client_latency_p90", T0, [0.004] * 30) + metric_rows(
        "adm-0", "admin", "workload", T0, [0.0] * 30
    )
    win = metric_rows("adm-0", "admin", "client_latency_p90", ALERT, [3600.0, 18.0, 20.0]) + metric_rows(
        "adm-0", "admin", "workload", ALERT, [0.0] * 3
    )
    res = rank_window(None, None, None, None, win, base, None, alert_ns=ALERT)
    assert res.status == "insufficient_evidence"
    assert res.candidates == []


@pytest.mark.parametrize("empty", [None, [], pa.table({"ts_ns": pa.array([], pa.int64())})])
def test_empty_inputs_give_insufficient_evidence(empty: object) -> None:
    res = rank_window(empty, empty, empty, empty, empty, empty, None, alert_ns=ALERT)  # type: ignore[arg-type]
    assert res.status == "insufficient_evidence"
    assert res.candidates == []
    assert res.modalities_used == []
    assert set(res.modalities_missing) == {Modality.LOGS, Modality.TRACES, Modality.METRICS}
    assert any("nothing to rank" in n for n in res.notes)


def test_no_change_gives_insufficient_evidence() -> None:
    sb, lb = chain(T0, 60, db_self_ms=5, prefix="b")
    sw, lw = chain(ALERT, 60, db_self_ms=5, prefix="w", seed=1)
    res = rank_window(lw, lb, sw, sb, None, None, None, alert_ns=ALERT)
    assert res.status == "insufficient_evidence"


def test_blame_walk_keeps_mass_on_a_caller_whose_callee_is_only_weakly_anomalous() -> None:
    g = call_graph([("c", "s")])
    linked = {"c": {"t1", "t2"}, "s": {"t9"}}  # anomalous in different requests
    mass = blame_walk(g, {"c": 0.9, "s": 0.5}, RankOptions(), linked)
    assert mass["c"] > mass["s"]
    shared = {"c": {"t1", "t2"}, "s": {"t1", "t2"}}
    mass = blame_walk(g, {"c": 0.9, "s": 0.85}, RankOptions(), shared)
    assert mass["s"] > mass["c"]


def test_call_graph_accepts_a_digraph_and_drops_self_calls() -> None:
    d = nx.DiGraph([("a", "b"), ("b", "b")])
    g = call_graph(d, [("b", "c")])
    assert sorted(g.edges) == [("a", "b"), ("b", "c")]


def test_a_loop_cut_short_ranks_the_looping_service_as_a_code_error() -> None:
    base = [
        s
        for k in range(10)
        for s in loop_requests(T0 + k * 60 * NS, 20, calls=5, calcs=5, prefix=f"h{k}-", every_ns=3 * NS)
    ]
    win = loop_requests(ALERT, 40, calls=3, calcs=2, prefix="w", every_ns=NS)
    res = rank_window(None, None, win, base, None, None, None, window=(ALERT, ALERT + 60 * NS))
    assert res.status == "ok"
    top = res.candidates[0]
    assert top.service == "trip" and top.fault_kind == FaultKind.CODE_ERROR
    assert any(s.kind == SignalKind.LOOP_SHORTENED for s in top.signals)


def test_every_signal_kind_has_one_row_of_traits() -> None:
    """Adding a signal kind without saying what it means to the ranking and detection fails here."""
    assert set(KIND_TRAITS) == set(SignalKind)


def test_the_path_crosses_a_quiet_caller_to_reach_the_callers_that_suffered() -> None:
    """gw -> auth -> code: the fault in `code` reaches `gw` through `auth`, which passed it on without a
    signal of its own; the path shows both hops. With no anomalous caller above, there is no path."""
    g = call_graph([("gw", "auth"), ("auth", "code"), ("gw", "other")])
    steps = propagation_path(g, "code", {"code": 0.9, "gw": 0.4}, {})
    assert [(s.source, s.target) for s in steps] == [("code", "auth"), ("auth", "gw")]
    assert steps[0].evidence_ids == ["edge:auth->code"]
    assert propagation_path(g, "code", {"code": 0.9}, {}) == []
    assert propagation_path(g, "code", {"code": 0.9, "other": 0.8}, {}) == []
