"""From an alert time to a ranking: window choice, Arrow fetches from the store, the eval harness.

A small made-up system (web -> cart -> db, web -> auth) records three minutes of telemetry every
eight minutes, like the Nezha data sets; the db is injected twice with a fault that makes its
lookups return nothing (a new error line, and the cart's error after calling it).
"""

from __future__ import annotations

import csv
import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from api.measure.eval_rca import evaluate_rca_nezha
from api.wiring import open_services
from core.errors import DatasetError, InvalidInput
from core.rca import Modality
from core.settings import Settings
from detect.rank.ranking import RankOptions
from detect.rank.weak import WEAK_NOTE
from detect.rank.windows import IncidentOptions, choose_windows, live_templates, rank_incident
from retrieval.events import EventStore

NS = 1_000_000_000
T0 = int(datetime(2024, 5, 1, 10, 0, tzinfo=UTC).timestamp()) * NS
BLOCK_S, EVERY_S, BLOCKS = 180, 480, 6
FAULT_BLOCKS = (3, 5)
PODS = {
    "web": "web-6d5f7c8b9-bcdfg",
    "cart": "cart-7f9c6d5b4-fghjk",
    "db": "db-5d8f7c9b4-klmnp",
    "auth": "auth-8c7b6f5d4-pqrst",
}


def alert_of(block: int) -> int:
    return T0 + (block * EVERY_S + 60) * NS


@dataclass
class System:
    spans: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)


def simulate(seed: int = 7) -> System:
    rnd = random.Random(seed)
    out = System()
    n = 0
    for b in range(BLOCKS):
        start = T0 + b * EVERY_S * NS
        faulty_from = alert_of(b) if b in FAULT_BLOCKS else None
        for i in range(BLOCK_S):
            t = start + i * NS + rnd.randrange(0, 500_000_000)
            n += 1
            trace = f"{n:032x}"
            bad = faulty_from is not None and t >= faulty_from and rnd.random() < 0.6
            _request(out, trace, t, bad, rnd)
        for m in range(BLOCK_S // 60 + 1):
            ts = start + m * 60 * NS
            for svc, pod in PODS.items():
                out.metrics.append(
                    {"ts_ns": ts, "name": "cpu_usage_rate", "value": 10 + rnd.random(), "service": svc, "pod": pod}
                )
                out.metrics.append({"ts_ns": ts, "name": "workload", "value": 1.0, "service": svc, "pod": pod})
    return out


def _request(out: System, trace: str, t: int, bad: bool, rnd: random.Random) -> None:
    def span(sid: str, parent: str, svc: str, op: str, s: int, dur_us: int) -> None:
        out.spans.append(
            {
                "trace_id": trace,
                "span_id": sid,
                "parent_id": parent,
                "service": svc,
                "pod": PODS[svc],
                "operation": op,
                "start_ns": s,
                "end_ns": s + dur_us * 1000,
                "duration_us": float(dur_us),
            }
        )

    def log(sid: str, svc: str, ts: int, level: str, msg: str) -> None:
        out.logs.append(
            {
                "ts_ns": ts,
                "service": svc,
                "pod": PODS[svc],
                "level": level,
                "message": msg,
                "trace_id": trace,
                "span_id": sid,
            }
        )

    item = rnd.randrange(1000)
    span(f"{trace[-8:]}0001", "", "web", "GET /cart", t, 9000)
    span(f"{trace[-8:]}0002", f"{trace[-8:]}0001", "auth", "/auth/check", t + 200_000, 800)
    log(f"{trace[-8:]}0002", "auth", t + 300_000, "INFO", f"token ok for user {item % 50}")
    span(f"{trace[-8:]}0003", f"{trace[-8:]}0001", "cart", "/cart/items", t + 1_200_000, 6000)
    log(f"{trace[-8:]}0003", "cart", t + 1_300_000, "INFO", f"loading cart {item}")
    span(f"{trace[-8:]}0004", f"{trace[-8:]}0003", "db", "SELECT items", t + 1_500_000, 2000)
    log(f"{trace[-8:]}0004", "db", t + 1_600_000, "INFO", f"query items for cart {item}")
    if bad:
        log(f"{trace[-8:]}0004", "db", t + 2_900_000, "ERROR", f"lookup failed: no rows for cart {item}")
        log(f"{trace[-8:]}0003", "cart", t + 3_600_000, "ERROR", f"cart {item} could not be loaded")
    else:
        log(f"{trace[-8:]}0004", "db", t + 2_900_000, "INFO", f"query ok rows={1 + item % 9}")
        log(f"{trace[-8:]}0003", "cart", t + 3_600_000, "INFO", f"cart {item} has {1 + item % 9} items")


@pytest.fixture(scope="module")
def system() -> System:
    return simulate()


@pytest.fixture
def store(tmp_path: Path, system: System) -> Iterator[EventStore]:
    ev = EventStore(tmp_path / "events.duckdb")
    ev.append_logs(pa.Table.from_pylist(system.logs))
    ev.append_spans(pa.Table.from_pylist(system.spans))
    ev.append_metrics(pa.Table.from_pylist(system.metrics))
    yield ev
    ev.close()


def test_fetch_returns_arrow_rows_of_the_ranges_in_time_order(store: EventStore) -> None:
    a = T0 + 10 * NS
    t = store.fetch("logs", a, a + 5 * NS, columns=["ts_ns", "service"])
    assert t.column_names == ["ts_ns", "service"]
    ts = t.column("ts_ns").to_pylist()
    assert ts == sorted(ts) and all(a <= x < a + 5 * NS for x in ts) and len(ts) >= 20
    both = store.fetch_ranges("spans", [(a, a + 5 * NS), (a + 60 * NS, a + 65 * NS)], where={"service": "db"})
    assert set(both.column("service").to_pylist()) == {"db"}
    assert both.num_rows == 10
    empty = store.fetch_ranges("metrics", [], columns=["ts_ns", "value"])
    assert empty.num_rows == 0 and empty.column_names == ["ts_ns", "value"]
    with pytest.raises(InvalidInput):
        store.fetch("logs", a, a + NS, columns=["ts_ns; DROP TABLE logs"])
    with pytest.raises(InvalidInput):
        store.fetch("events", a, a + NS)  # type: ignore[arg-type]


def test_windows_follow_the_data_and_leave_a_guard(store: EventStore) -> None:
    alert = alert_of(3)
    w = choose_windows(store, alert)
    block_end = T0 + (3 * EVERY_S + BLOCK_S) * NS
    assert w.window[0] == alert
    assert block_end - 5 * NS <= w.window[1] <= block_end + 5 * NS  # up to where the recording stopped
    width = w.window[1] - w.window[0]
    assert w.slice_ns == width
    # history: slices of the same width, nearest first, none touching the window or its guard
    assert w.history and all(b - a == width for a, b in w.history)
    assert all(b <= w.window[0] - width or a >= w.window[1] + width for a, b in w.history)
    dist = [min(abs(a - w.window[0]), abs(b - w.window[1])) for a, b in w.history]
    assert dist == sorted(dist)
    # metrics: at least four minutes from the window's start, history before the guard
    assert w.metrics_window == (alert, alert + 240 * NS)
    assert w.metrics_history[1] == alert - width
    with pytest.raises(InvalidInput):
        choose_windows(store, -5)


def test_the_end_of_a_question_carries_the_window_through_a_pause(store: EventStore) -> None:
    # "what happened up to then": the window runs to the end asked about, across the recording's pauses,
    # and never past it or past max_window_s
    alert = alert_of(3) - 60 * NS  # the block's start: data now, a pause after the block
    block_end = T0 + (3 * EVERY_S + BLOCK_S) * NS
    after_pause = T0 + 4 * EVERY_S * NS + 20 * NS  # some way into the next block
    free = choose_windows(store, alert)
    assert free.window[1] <= block_end + 5 * NS  # without an end, the pause ends the window
    asked = choose_windows(store, alert, IncidentOptions(max_window_s=EVERY_S * 2), end_ns=after_pause)
    assert after_pause - 5 * NS <= asked.window[1] <= after_pause
    capped = choose_windows(store, alert, IncidentOptions(max_window_s=BLOCK_S // 2), end_ns=after_pause)
    assert capped.window[1] <= alert + BLOCK_S // 2 * NS


def test_ranked_log_rows_carry_the_template_a_merge_left(store: EventStore) -> None:
    # a template learned line by line may later be merged into another: rows stored under the old id are
    # ranked under the live one, so history and window agree
    rows = pa.table({"ts_ns": [1, 2, 3], "template_id": ["Told", "Tlive", ""]})
    (same,) = live_templates(store, rows)
    assert same.column("template_id").to_pylist() == ["Told", "Tlive", ""]
    store.alias_templates({"Told": "Tlive"}, {})
    window, history = live_templates(store, rows, rows.slice(0, 1))
    assert window.column("template_id").to_pylist() == ["Tlive", "Tlive", ""]
    assert history.column("template_id").to_pylist() == ["Tlive"]
    assert window.column("ts_ns").to_pylist() == [1, 2, 3]


def test_rank_incident_finds_the_injected_service(store: EventStore) -> None:
    res = rank_incident(store, alert_ns=alert_of(5))
    assert res.status == "ok"
    assert res.candidates[0].service == "db"
    assert [c.service for c in res.candidates[:2]] == ["db", "cart"]
    assert res.window is not None and res.window.start_ns == alert_of(5)
    assert len(res.baseline) >= 4 and res.metrics_window is not None
    assert res.modalities_used == [Modality.TRACES, Modality.LOGS, Modality.METRICS]
    top = res.candidates[0]
    assert any(e.startswith("log:") for e in top.evidence_ids)
    assert [(p.source, p.target) for p in top.path][:1] == [("db", "cart")]


def test_a_quiet_alert_gives_insufficient_evidence(store: EventStore) -> None:
    res = rank_incident(store, alert_ns=alert_of(1))
    assert res.status == "insufficient_evidence"
    assert res.candidates == []


def test_modalities_can_be_left_out(store: EventStore) -> None:
    res = rank_incident(store, alert_ns=alert_of(3), modalities=("logs",))
    assert res.candidates[0].service == "db"
    assert res.modalities_used == [Modality.LOGS]
    assert any("left out on request: traces, metrics" in n for n in res.notes)
    # metrics alone cross no signal's threshold here: the services whose metrics moved most, marked weak
    res = rank_incident(store, alert_ns=alert_of(3), modalities=("metrics",))
    assert res.status == "ok"
    assert res.candidates and all(c.weak and c.confidence == 0.0 for c in res.candidates)
    assert WEAK_NOTE in res.notes
    with pytest.raises(InvalidInput):
        rank_incident(store, alert_ns=alert_of(3), modalities=("logs", "events"))


def test_service_hint_counts_inside_the_score_and_the_order_is_the_order_of_confidence(store: EventStore) -> None:
    plain = rank_incident(store, alert_ns=alert_of(3))
    hinted = rank_incident(store, alert_ns=alert_of(3), service_hint="cart")
    weight = RankOptions().off_focus_weight
    before = {c.service: c.score for c in plain.candidates}
    # cart reaches db through calls (cart -> db): they keep their mass; web and auth keep off_focus_weight of it
    for c in hinted.candidates:
        if c.weak:  # listed after every candidate with a signal, whatever its own score (detect.rank.weak)
            continue
        expected = before[c.service] * (1.0 if c.service in ("cart", "db") else weight)
        assert c.score == pytest.approx(expected, rel=1e-9)
    assert [c.service for c in hinted.candidates][:2] == ["db", "cart"]
    confidences = [c.confidence for c in hinted.candidates]
    assert confidences == sorted(confidences, reverse=True)
    assert [c.rank for c in hinted.candidates] == list(range(1, len(hinted.candidates) + 1))
    # a hint the call graph does not know changes nothing
    unknown = rank_incident(store, alert_ns=alert_of(3), service_hint="unknown")
    assert [(c.service, c.score) for c in unknown.candidates] == [(c.service, c.score) for c in plain.candidates]


def test_declared_call_edges_join_the_spans_in_the_one_call_graph(store: EventStore) -> None:
    plain = rank_incident(store, alert_ns=alert_of(3), service_hint="auth")
    # declared: auth calls db (no span shows it): db is now behind auth and keeps its mass
    declared = rank_incident(store, alert_ns=alert_of(3), service_hint="auth", call_edges=[("auth", "db")])
    score = {c.service: c.score for c in plain.candidates}
    now = {c.service: c.score for c in declared.candidates}
    assert now["db"] > score["db"]
    assert declared.top is not None and declared.top.service == "db"


def test_history_is_cut_to_what_the_options_allow(store: EventStore) -> None:
    w = choose_windows(store, alert_of(5), IncidentOptions(max_slices=3, history_s=3600))
    assert len(w.history) == 3
    # at most max_history_s of history in all: wider windows get fewer slices
    full = choose_windows(store, alert_of(5), IncidentOptions(history_s=7200))
    capped = choose_windows(store, alert_of(5), IncidentOptions(history_s=7200, max_history_s=2 * full.slice_ns // NS))
    assert len(full.history) > 2 and len(capped.history) == 2 and capped.history == full.history[:2]


# -- the evaluation harness on a Nezha-layout folder ------------------------------------------------


def _hhmm(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, UTC).strftime("%H_%M")


def write_nezha(root: Path, s: System) -> None:
    day = root / "2024-05-01"
    for sub in ("log", "trace", "metric"):
        (day / sub).mkdir(parents=True)
    by_block: dict[int, tuple[list[dict], list[dict]]] = {}
    for r in s.logs:
        by_block.setdefault((r["ts_ns"] - T0) // (EVERY_S * NS), ([], []))[0].append(r)
    for r in s.spans:
        by_block.setdefault((r["start_ns"] - T0) // (EVERY_S * NS), ([], []))[1].append(r)
    for b, (logs, spans) in by_block.items():
        name = _hhmm(T0 + (b * EVERY_S + BLOCK_S) * NS)
        with gzip.open(day / "log" / f"{name}_log.csv.gz", "wt", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["Timestamp", "TimeUnixNano", "Node", "PodName", "Container", "TraceID", "SpanID", "Log"])
            for r in logs:
                stamp = datetime.fromtimestamp(r["ts_ns"] / NS, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                line = f"{stamp[11:23]} {r['level']}  {r['message']}\n"
                w.writerow(
                    [
                        stamp,
                        r["ts_ns"],
                        "10.0.0.1",
                        r["pod"],
                        "server",
                        r["trace_id"],
                        r["span_id"],
                        json.dumps({"log": line}),
                    ]
                )
        with gzip.open(day / "trace" / f"{name}_trace.csv.gz", "wt", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                [
                    "TraceID",
                    "SpanID",
                    "ParentID",
                    "PodName",
                    "OperationName",
                    "StartTimeUnixNano",
                    "EndTimeUnixNano",
                    "Duration",
                ]
            )
            for r in spans:
                w.writerow(
                    [
                        r["trace_id"],
                        r["span_id"],
                        r["parent_id"] or "root",
                        r["pod"],
                        r["operation"],
                        r["start_ns"],
                        r["end_ns"],
                        int(r["duration_us"]),
                    ]
                )
    for pod in PODS.values():
        rows = [m for m in s.metrics if m["pod"] == pod]
        with open(day / "metric" / f"{pod}_metric.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["Time", "TimeStamp", "PodName", "CpuUsageRate(%)", "PodWorkload(Ops)"])
            cpu = [m for m in rows if m["name"] == "cpu_usage_rate"]
            for m in cpu:
                w.writerow(["", m["ts_ns"] // NS, pod, m["value"], 1.0])
    faults = {
        "10": [
            {
                "inject_time": datetime.fromtimestamp(alert_of(b) / NS, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "inject_pod": PODS["db"],
                "inject_type": "return",
            }
            for b in FAULT_BLOCKS
        ]
    }
    (day / "2024-05-01-fault_list.json").write_text(json.dumps(faults))


def test_eval_harness_scores_each_fault_from_its_time_alone(tmp_path: Path, system: System) -> None:
    root = tmp_path / "nezha"
    write_nezha(root, system)
    settings = Settings(home=tmp_path / "unused", embedder="none")

    def open_fn(home: Path) -> Any:
        return open_services(settings.model_copy(update={"home": home}), graph=False, vectors=False)

    seen: list[dict[str, Any]] = []
    home = tmp_path / "eval-home"
    out = evaluate_rca_nezha(root, home=home, open_fn=open_fn, on_case=seen.append)
    assert out["cases"] == 2 and len(seen) == 2 and out["regime"] == "hindsight"
    assert out["ac1"] == out["ac3"] == out["ac5"] == 1.0
    assert out["by_fault_type"] == {"return": {"cases": 2, "ac1": 1.0, "ac3": 1.0, "ac5": 1.0}}
    assert out["import_s"] > 0
    r = out["results"][0]
    assert set(r) >= {"fault", "truth", "ranking", "rank", "seconds"}
    assert (r["truth"], r["rank"], r["ranking"][0]) == ("db", 1, "db")
    assert r["fault"] == datetime.fromtimestamp(alert_of(3) / NS, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # the imported home can be reused; without --reuse a home that holds telemetry is refused
    again = evaluate_rca_nezha(root, home=home, open_fn=open_fn, reuse=True, modalities=("logs",))
    assert again["import_s"] == 0.0 and again["modalities"] == ["logs"] and again["ac1"] == 1.0
    with pytest.raises(DatasetError):
        evaluate_rca_nezha(root, home=home, open_fn=open_fn)


def test_an_empty_store_gives_insufficient_evidence(tmp_path: Path) -> None:
    ev = EventStore(tmp_path / "empty.duckdb")
    try:
        res = rank_incident(ev, alert_ns=alert_of(3))
    finally:
        ev.close()
    assert res.status == "insufficient_evidence"
    assert res.baseline == [] and set(res.modalities_missing) == {Modality.LOGS, Modality.TRACES, Modality.METRICS}
