"""Metrics only: a made-up system whose only telemetry is OTLP metrics under names its team chose (a
cumulative histogram `op_ms`, a monotonic sum `units_done`, a gauge `busy_share`), replayed as a case
bundle into a fresh home and ranked at the fault (detect.rank.windows.rank_incident).

gate calls ledger, ledger calls vault, gate calls notify. From minute 60 vault is slow (only the mean of
its cumulative histogram shows it: a raw cumulative count or sum only ever grows, and its quantiles
describe everything since the start); its callers get slower with it (they wait for it); notify does
not, and no gauge or counter moves. The call graph is either declared
(topology.yaml) or read from client-side call metrics with OpenTelemetry's semantic-convention
attributes (`rpc.client.duration` with `rpc.service` / `server.address`); with either, vault must come
first. Without any call graph the callers' own slowdowns are as strong as vault's, and it does not.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from api.measure.case_replay import explain_case
from api.wiring import open_services
from core.settings import Settings
from core.timeutil import NS, iso
from detect.rank.windows import IncidentOptions, rank_incident
from ingest.cases import ingest_case, load_case

T0 = 1_700_000_000 * NS - (1_700_000_000 * NS) % (60 * NS)
MIN = 60 * NS
FAULT_MIN = 60
# own time per request (ms) before and after the fault; callers add their callee's time
OWN_MS = {"gate": (10.0, 10.0), "ledger": (10.0, 10.0), "vault": (10.0, 90.0), "notify": (5.0, 5.0)}
CALLS = {"gate": ["ledger", "notify"], "ledger": ["vault"]}
# how each caller names its callee in the semconv attributes of its client metrics
PEER_ATTRS = {
    "ledger": {"rpc.service": "books.Ledger"},
    "notify": {"server.address": "notify.shop.svc.cluster.local:9000"},
    "vault": {"server.address": "vault:7000"},
}


def _attrs(d: dict[str, str]) -> list[dict[str, Any]]:
    return [{"key": k, "value": {"stringValue": v}} for k, v in d.items()]


def _latency_ms(service: str, faulty: bool) -> float:
    own = OWN_MS[service][1 if faulty else 0]
    return own + sum(_latency_ms(c, faulty) for c in CALLS.get(service, []))


def _histogram(name: str, t: int, count: int, total: float, attrs: dict[str, str]) -> dict[str, Any]:
    point = {
        "timeUnixNano": str(t),
        "startTimeUnixNano": str(T0),
        "count": str(count),
        "sum": total,
        "bucketCounts": [str(count // 2), str(count - count // 2), "0"],
        "explicitBounds": [20.0, 200.0],
        "attributes": _attrs(attrs),
    }
    return {"name": name, "unit": "ms", "histogram": {"aggregationTemporality": 2, "dataPoints": [point]}}


def _lines(edge_metrics: bool) -> list[str]:
    rnd = random.Random(7)
    totals: dict[tuple[str, str], list[float]] = {}
    lines = []
    for minute in range(FAULT_MIN + 5):
        t = T0 + minute * MIN + 5 * NS
        faulty = minute >= FAULT_MIN
        for service in OWN_MS:
            metrics = []
            n = 600 + rnd.randint(-20, 20)
            lat = _latency_ms(service, faulty) * (1 + rnd.uniform(-0.05, 0.05))
            acc = totals.setdefault((service, "op_ms"), [0.0, 0.0])
            acc[0] += n
            acc[1] += n * lat
            metrics.append(_histogram("op_ms", t, int(acc[0]), acc[1], {}))
            done = totals.setdefault((service, "units_done"), [0.0])
            done[0] += n
            point = {"timeUnixNano": str(t), "asInt": str(int(done[0]))}
            metrics.append(
                {"name": "units_done", "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [point]}}
            )
            busy = 0.2 + rnd.uniform(-0.02, 0.02)
            metrics.append(
                {"name": "busy_share", "gauge": {"dataPoints": [{"timeUnixNano": str(t), "asDouble": busy}]}}
            )
            for callee in CALLS.get(service, []) if edge_metrics else []:
                acc = totals.setdefault((service, callee), [0.0, 0.0])
                acc[0] += n
                acc[1] += n * _latency_ms(callee, faulty) * (1 + rnd.uniform(-0.05, 0.05))
                metrics.append(_histogram("rpc.client.duration", t, int(acc[0]), acc[1], PEER_ATTRS[callee]))
            resource = {"attributes": _attrs({"service.name": service, "k8s.pod.name": f"{service}-7d9f-x1"})}
            doc = {"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"scope": {}, "metrics": metrics}]}]}
            lines.append(json.dumps(doc))
    return lines


def _bundle(root: Path, *, declared: bool, edge_metrics: bool) -> int:
    fault_ns = T0 + FAULT_MIN * MIN
    (root / "telemetry").mkdir(parents=True)
    case = {"format": "devmesh-case/1", "id": "made-up", "system": "made-up", "asked_at": iso(fault_ns + 3 * MIN)}
    (root / "case.json").write_text(json.dumps(case))
    (root / "telemetry" / "metrics.otlp.jsonl").write_text("\n".join(_lines(edge_metrics)) + "\n")
    if declared:
        services = [{"name": s, **({"calls": CALLS[s]} if s in CALLS else {})} for s in OWN_MS]
        (root / "telemetry" / "topology.yaml").write_text(json.dumps({"services": services}))
    return fault_ns


def _rank(tmp_path: Path, *, declared: bool, edge_metrics: bool) -> list[str]:
    fault_ns = _bundle(tmp_path / "case", declared=declared, edge_metrics=edge_metrics)
    case = load_case(tmp_path / "case")
    settings = Settings(home=tmp_path / "home", embedder="none", qdrant_url=None, ollama_host=None)
    with open_services(settings, graph=False, vectors=False) as svc:
        ing = ingest_case(case, svc.pipeline, until_ns=case.asked_at_ns)
        calls = ing.declared.calls if ing.declared is not None else []
        result = rank_incident(svc.events, alert_ns=fault_ns, call_edges=calls, options=IncidentOptions(past_only=True))
    assert result.status == "ok"
    return [c.service for c in result.candidates]


@pytest.mark.parametrize(("declared", "edge_metrics"), [(True, False), (False, True)], ids=["declared", "edge-metrics"])
def test_metrics_only_with_a_call_graph_puts_the_faulty_service_first(
    tmp_path: Path, declared: bool, edge_metrics: bool
) -> None:
    ranked = _rank(tmp_path, declared=declared, edge_metrics=edge_metrics)
    assert ranked[0] == "vault"
    assert "notify" not in ranked[:3]


def test_metrics_only_without_a_call_graph_cannot_tell_the_waiting_callers_apart(tmp_path: Path) -> None:
    ranked = _rank(tmp_path, declared=False, edge_metrics=False)
    assert ranked[0] != "vault"


def test_a_question_up_to_asked_at_reads_the_metric_minutes_before_it(tmp_path: Path) -> None:
    # POST /explain's path with no alert ("what was going on up to asked_at", 3 minutes after the fault): with
    # metrics alone the window must still run to the question's end, not stop 30 s after its start
    _bundle(tmp_path / "case", declared=True, edge_metrics=False)
    case = load_case(tmp_path / "case")
    base = Settings(home=tmp_path / "unused", embedder="none", qdrant_url=None, ollama_host=None)
    out = explain_case(case, base, hindsight=False, embedder=None)
    assert out.status == "ok" and out.ranking[0].service == "vault"
