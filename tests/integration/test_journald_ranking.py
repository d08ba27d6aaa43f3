"""The logs-only regime end to end: journald case bundles replayed live into a fresh store (DuckDB), then
ranked from the alert the way `POST /explain` ranks (`rank_incident`). The bundles are synthetic
(tests/journald_cases.py), made before the ranking was run on them; the labels are read here, by the
test, never by the code under test."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.wiring import open_services
from core.rca import FaultKind, RankingResult
from core.settings import Settings
from core.timeutil import NS, iso_to_ns
from detect.rank.windows import rank_incident
from ingest.cases import ingest_case, load_case

CASES = Path(__file__).parents[1] / "data" / "cases"
LEAD_S = 240  # the alert fires a few minutes after the fault; until onset search exists, look from before it


def _rank(name: str, tmp_path: Path) -> RankingResult:
    case = load_case(CASES / name)
    svc = open_services(
        Settings(home=tmp_path, embedder="none", qdrant_url=None, ollama_host=None), graph=False, vectors=False
    )
    try:
        ingest_case(case, svc.pipeline, until_ns=case.asked_at_ns)
        assert case.alert is not None and case.alert.startsAt
        alert_ns = iso_to_ns(case.alert.startsAt) - LEAD_S * NS
        return rank_incident(svc.events, alert_ns=alert_ns, service_hint=case.alert.labels.get("service"))
    finally:
        svc.close()


@pytest.mark.parametrize(
    ("name", "root", "host", "kind", "detail"),
    [
        ("journald-oom-redis", "redis-server", "castor", FaultKind.RESOURCE_SATURATION, "out of memory"),
        ("journald-crash-loop", "shopd", "eos", FaultKind.CODE_ERROR, "crash loop"),
        ("journald-cert-expired", "idp", "boreas", FaultKind.DEPENDENCY_FAILURE, "certificate"),
        ("journald-too-many-connections", "postgres", "castor", FaultKind.RESOURCE_SATURATION, "connection limit"),
        # the callers name hosts they cannot resolve (healthy ones): the resolver that failed just before is the callee
        ("journald-dns-down", "unbound", "boreas", FaultKind.DEPENDENCY_FAILURE, "name resolution"),
    ],
)
def test_the_service_whose_own_lines_show_the_fault_comes_first(
    name: str, root: str, host: str, kind: FaultKind, detail: str, tmp_path: Path
) -> None:
    res = _rank(name, tmp_path)
    assert res.status == "ok"
    top = res.candidates[0]
    assert (top.service, top.host, top.fault_kind, top.fault_detail) == (root, host, kind, detail)
    # the callers that only suffered come after it
    assert top.confidence > 1.25 * res.candidates[1].confidence


def test_callers_name_the_service_they_depend_on_and_the_call_graph_holds_it(tmp_path: Path) -> None:
    res = _rank("journald-too-many-connections", tmp_path)
    names = [c.service for c in res.candidates]
    assert names[0] == "postgres"
    assert {"shopd", "celery"} <= set(names[1:])
    assert any("call(s) read from the peers log lines name" in n for n in res.notes)


def test_the_shipped_disk_full_bundle_names_postgres_and_a_full_disk(tmp_path: Path) -> None:
    # a toy bundle (journald, OTLP logs, spans and a gauge over five minutes); the fault is 20 s before the alert
    case = load_case(CASES / "homelab-disk-full")
    svc = open_services(
        Settings(home=tmp_path, embedder="none", qdrant_url=None, ollama_host=None), graph=False, vectors=False
    )
    try:
        ingest_case(case, svc.pipeline, until_ns=case.asked_at_ns)
        assert case.alert is not None and case.alert.startsAt
        res = rank_incident(svc.events, alert_ns=iso_to_ns(case.alert.startsAt) - 60 * NS, service_hint="web")
    finally:
        svc.close()
    top = res.candidates[0]
    assert (top.service, top.fault_kind, top.fault_detail) == ("postgres", FaultKind.RESOURCE_SATURATION, "disk full")
