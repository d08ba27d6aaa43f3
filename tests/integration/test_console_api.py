"""The console's read routes without a browser, on the real event store and graph: the map's before/during edge
figures against values worked out by hand from a few spans, and the map's propagation path and the signal
timeline (error templates, latency, saturation, restarts) of a small incident whose ranking has a path
(`tests/chain_incident.py`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.wiring import Services
from core.incident import InvestigationRequest
from core.settings import Settings
from core.timeutil import NS
from detect.incidents import IncidentBook
from tests import chain_incident
from tests.chain_incident import ALERT, RESTART_NS, columns, ingest_chain

S = 1_700_000_040 * NS  # the incident's window: [S, S + 60 s); minute-aligned
MIN = 60 * NS


@pytest.fixture
def client(settings: Settings, open_fn: Callable[[Settings], Services]) -> Iterator[TestClient]:
    with TestClient(create_app(settings, open_fn=open_fn)) as c:
        yield c


def services_of(client: TestClient) -> Services:
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    return svc


def get(client: TestClient, path: str) -> Any:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return r.json()


def calls(start: int, durations_ms: list[float], errors: set[int], prefix: str) -> list[dict[str, Any]]:
    """One web -> api call a second from `start`: a web client span and the api span under it."""
    rows: list[dict[str, Any]] = []
    for i, ms in enumerate(durations_ms):
        t, trace = start + i * NS, f"{prefix}{i:02d}".ljust(32, "0")
        common = {"trace_id": trace, "start_ns": t, "end_ns": t + int(ms * 1e6) + 1000}
        rows.append({**common, "span_id": "p1", "service": "web", "pod": "web-0", "operation": "GET /api",
                     "duration_us": ms * 1000 + 1})  # fmt: skip
        rows.append({**common, "span_id": "c1", "parent_id": "p1", "service": "api", "pod": "api-0",
                     "operation": "/items", "duration_us": ms * 1000,
                     "status": "ERROR" if i in errors else "OK"})  # fmt: skip
    return rows


def test_map_edge_figures_before_and_during_match_the_hand_computed_ones(client: TestClient) -> None:
    svc = services_of(client)
    before = calls(S - MIN + 5 * NS, [10, 20, 30, 40], set(), "b")
    during = calls(S + 5 * NS, [100, 200, 300, 400, 500, 600], {1, 4}, "d")
    svc.pipeline.ingest_spans(columns("spans", before + during))
    inc = IncidentBook(svc.events, svc.graph).open(
        InvestigationRequest(service="web", start_ns=S, end_ns=S + MIN), source="detection"
    )
    m = get(client, f"/incidents/{inc.id}/map")
    assert (m["before_start_ns"], m["start_ns"], m["end_ns"]) == (S - MIN, S, S + MIN)
    (edge,) = m["edges"]
    assert (edge["caller"], edge["callee"], edge["on_path"], edge["path_step"]) == ("web", "api", False, None)
    # 4 calls in the minute before: 10..40 ms, p50 = 25, p95 = 30 + 0.85 * 10 (linear between the 3rd and 4th)
    assert edge["before"] == {"calls": 4, "per_min": 4.0, "errors": 0, "error_rate": 0.0, "p50_ms": 25.0,
                              "p95_ms": 38.5}  # fmt: skip
    # 6 calls during, 2 failed: p50 = (300 + 400) / 2, p95 = 500 + 0.75 * 100
    assert edge["during"] == {"calls": 6, "per_min": 6.0, "errors": 2, "error_rate": 0.3333, "p50_ms": 350.0,
                              "p95_ms": 575.0}  # fmt: skip
    assert {n["service"] for n in m["nodes"]} == {"web", "api"}


@pytest.fixture
def chain(client: TestClient) -> dict[str, Any]:
    """The chain incident stored and explained (frontend named, a 5-minute window from its fault)."""
    ingest_chain(services_of(client).pipeline)
    r = client.post("/explain", json={"service": "frontend", "start_ns": ALERT, "end_ns": ALERT + 5 * MIN})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_the_map_orders_the_propagation_path_from_the_root_cause(client: TestClient, chain: dict[str, Any]) -> None:
    expl = chain["explanation"]
    assert expl["root_causes"][0]["service"] == "db"
    assert [(s["source"], s["target"]) for s in expl["propagation_path"]] == [("db", "api"), ("api", "frontend")]
    m = get(client, f"/incidents/{chain['incident']['id']}/map")
    steps = sorted((e["path_step"], e["caller"], e["callee"]) for e in m["edges"] if e["on_path"])
    assert steps == [(1, "api", "db"), (2, "frontend", "api")]
    db = next(n for n in m["nodes"] if n["service"] == "db")
    assert (db["rank"], db["on_path"]) == (1, True)


def percentiles(rows: list[dict[str, Any]], service: str, op: str, lo: int) -> tuple[float, float]:
    d = [r["duration_us"] / 1000 for r in rows if (r["service"], r["operation"]) == (service, op)
         and lo <= r["start_ns"] < lo + MIN]  # fmt: skip
    return round(float(np.quantile(d, 0.5)), 3), round(float(np.quantile(d, 0.95)), 3)


def test_the_timeline_shows_templates_latency_saturation_and_restarts(
    client: TestClient, chain: dict[str, Any]
) -> None:
    tl = get(client, f"/incidents/{chain['incident']['id']}/timeline")
    # the window before (5 min) and during (5 min), at least 10 min before the fault: minute buckets
    assert (tl["alert_ns"], tl["start_ns"], tl["end_ns"], tl["bucket_s"]) == (
        ALERT,
        ALERT - 10 * MIN,
        ALERT + 5 * MIN,
        60,
    )
    assert tl["notes"] == []
    top = tl["templates"][0]
    assert (top["service"], top["text"], top["total"]) == ("db", "query timeout after <*> ms", 6)
    assert [(p["bucket_ns"], p["count"]) for p in top["points"]] == [(ALERT, 3), (ALERT + MIN, 3)]
    # latency of the root cause (db) and its caller (api), per minute, as the spans give it
    series = {(s["service"], s["operation"]): s for s in tl["latency"]}
    assert series[("db", "/query")]["role"] == "root cause" and series[("api", "/api/items")]["role"] == "caller"
    rows = chain_incident.spans()
    for key in (("db", "/query"), ("api", "/api/items")):
        points = {p["bucket_ns"]: p for p in series[key]["points"]}
        assert len(points) == 15
        for t in (ALERT - 2 * MIN, ALERT + 2 * MIN):
            assert (points[t]["spans"], points[t]["errors"]) == (30, 0)
            assert (points[t]["p50_ms"], points[t]["p95_ms"]) == percentiles(rows, *key, t)
    assert series[("db", "/query")]["points"][0]["p95_ms"] < 6 < 80 < series[("db", "/query")]["points"][-1]["p50_ms"]
    # saturation: the db CPU the ranking cited, then its memory; means per minute over its pods
    sat = [(m["service"], m["name"], m["cited"]) for m in tl["saturation"]]
    assert sat == [("db", "cpu_usage_rate", True), ("db", "memory_usage", False)]
    cpu = {p["bucket_ns"]: p["value"] for p in tl["saturation"][0]["points"]}
    assert cpu[ALERT - MIN] < 11 and cpu[ALERT] > 90
    # restarts: the crash line, and db-0 replaced by db-1 in the same minute
    marks = [(m["bucket_ns"], m["service"], m["pod"], m["what"]) for m in tl["restarts"]]
    assert marks == [
        (RESTART_NS, "db", "db-0", "crash loop"),
        (RESTART_NS, "db", "db-0", "pod stopped"),
        (RESTART_NS, "db", "db-1", "pod started"),
    ]
    assert tl["errors"] == [
        {"bucket_ns": ALERT, "service": "db", "errors": 3},
        {"bucket_ns": ALERT + MIN, "service": "db", "errors": 3},
        {"bucket_ns": ALERT + 2 * MIN, "service": "db", "errors": 1},
    ]
