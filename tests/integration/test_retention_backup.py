"""Retention and backup on real engines: prune by age and by size (counts, templates and incidents
stay), prune while the server ingests (no acknowledged event lost), and a backup restored into a
fresh home (embedded FalkorDB, Qdrant Edge, DuckDB) that answers with the same counts and explanation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from agents.investigate import investigate
from api.backup import backup_home, current_counts, load_vectors, restore_files, verify_backup
from api.http.app import create_app
from api.retention import RetentionPolicy, policy_from_settings, prune
from api.wiring import Services
from core.errors import InvalidInput
from core.incident import InvestigationRequest
from core.settings import Settings
from core.timeutil import NS, now_ns
from ingest import nezha
from retrieval.embedders import HashingEmbedder
from retrieval.events import EventStore
from samples import sample_path
from tests.conftest import ImportedSample, import_sample, open_test_services

HOUR = 3600 * NS


def raw_rows(events: EventStore, kind: str, where: str = "") -> int:
    _, rows = events.sql(f"SELECT count(*) FROM {kind} {where}")
    return int(rows[0][0])


def newest(events: EventStore, kind: str) -> int:
    col = "start_ns" if kind == "spans" else "ts_ns"
    _, rows = events.sql(f"SELECT max({col}) FROM {kind}")
    return int(rows[0][0])


# -- prune by age ---------------------------------------------------------------------------------------


def test_prune_by_age_drops_old_raw_rows_and_keeps_templates_counts_and_incidents(
    copied: Settings, sample: ImportedSample, open_fn: Callable[[Settings], Services]
) -> None:
    svc = open_fn(copied)
    try:
        incident, _ = investigate(svc.toolbox(), InvestigationRequest(at_ns=sample.fault_ns), source="api")
        ev = svc.events
        lo, hi = 0, newest(ev, "logs") + 1
        templates = {t.template_id: t.count for t in ev.templates()}
        counts = {(c.template_id, c.service): c.count for c in ev.template_counts(lo, hi)}
        errors = sum(b.count for b in ev.error_counts(lo, hi, bucket_s=3600))
        graph = svc.graph.counts() if svc.graph else {}
        cut_logs = newest(ev, "logs") - 600 * NS  # keep the last 10 minutes of lines
        kept_logs = raw_rows(ev, "logs", f"WHERE ts_ns >= {cut_logs}")
        old_spans = raw_rows(ev, "spans", f"WHERE start_ns < {newest(ev, 'spans') - 600 * NS}")
        assert 0 < kept_logs < raw_rows(ev, "logs") and old_spans > 0

        policy = RetentionPolicy(retain_ns={"logs": 600 * NS, "spans": 600 * NS, "metrics": None})
        dry = prune(ev, policy, dry_run=True)
        assert raw_rows(ev, "logs", f"WHERE ts_ns < {cut_logs}") > 0  # a dry run deletes nothing
        report = prune(ev, policy)

        assert [a["kind"] for a in report["actions"]] == [a["kind"] for a in dry["actions"]] == ["logs", "spans"]
        assert raw_rows(ev, "logs", f"WHERE ts_ns < {cut_logs}") == 0
        assert raw_rows(ev, "logs") == kept_logs  # every line of the last 10 minutes kept
        assert raw_rows(ev, "spans", f"WHERE start_ns < {newest(ev, 'spans') - 600 * NS}") == 0
        assert report["after"]["rows"]["metrics"] == report["before"]["rows"]["metrics"]
        assert {t.template_id: t.count for t in ev.templates()} == templates
        assert {(c.template_id, c.service): c.count for c in ev.template_counts(lo, hi)} == counts
        assert sum(b.count for b in ev.error_counts(lo, hi, bucket_s=3600)) == errors
        assert ev.retention_horizon()["logs"] == cut_logs
        ev.recount_templates(list(templates))  # a recount after pruning counts the rolled-up lines too
        assert {t.template_id: t.count for t in ev.templates()} == templates
        assert svc.toolbox().book.get(incident.id).id == incident.id
        assert (svc.graph.counts() if svc.graph else {}) == graph
    finally:
        svc.close()


# -- prune by size --------------------------------------------------------------------------------------


def synthetic_logs(n: int, start_ns: int) -> pa.Table:
    return pa.table(
        {
            "ts_ns": pa.array([start_ns + i * 10_000_000 for i in range(n)], pa.int64()),
            "service": pa.array([f"svc-{i % 7}" for i in range(n)]),
            "level": pa.array(["ERROR" if i % 11 == 0 else "INFO" for i in range(n)]),
            "message": pa.array(
                [f"request {i} served in {i % 977} ms for user u{i * 7919 % 100003}" for i in range(n)]
            ),
            "template_id": pa.array([f"t{i % 5}" for i in range(n)]),
        }
    )


def test_prune_by_size_brings_the_store_under_its_cap(tmp_path: Path) -> None:
    ev = EventStore(tmp_path / "events.duckdb")
    try:
        start = now_ns() - 24 * HOUR
        for part in range(4):
            ev.append_logs(synthetic_logs(100_000, start + part * 1_000_000 * NS))
        ev.checkpoint()
        used = ev.footprint()["used_bytes"]
        rows, last = raw_rows(ev, "logs"), newest(ev, "logs")
        cap = used // 2

        report = prune(ev, RetentionPolicy(total_max_bytes=cap))

        assert report["after"]["used_bytes"] <= cap < report["before"]["used_bytes"]
        assert not report["over_cap"]
        assert 0 < raw_rows(ev, "logs") < rows
        assert newest(ev, "logs") == last  # the newest lines are the ones kept
        _, counts = ev.sql("SELECT sum(count) FROM log_rollup")
        assert int(counts[0][0]) + raw_rows(ev, "logs") == rows  # every pruned line is counted in a rollup
    finally:
        ev.close()


def test_retention_settings_turn_off_with_zero_or_none(settings: Settings) -> None:
    s = settings.model_copy(update={"retain_logs": "none", "retain_spans": "0", "retain_metrics": "2h"})
    policy = policy_from_settings(s)
    assert policy.retain_ns == {"logs": None, "spans": None, "metrics": 2 * HOUR}
    assert policy.enabled
    with pytest.raises(InvalidInput):
        policy_from_settings(s.model_copy(update={"retain_logs": "two weeks"}))


# -- prune while the server ingests -----------------------------------------------------------------------


def test_prune_while_the_server_ingests_loses_no_acknowledged_recent_event(
    settings: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    now = now_ns()
    old = [
        {"timestamp": (now - 48 * HOUR + i * NS) // 1000, "message": f"old {i}", "service": "jobs"} for i in range(300)
    ]
    acked: list[str] = []
    failures: list[Any] = []
    with TestClient(create_app(settings, open_fn=open_fn)) as client:
        assert client.post("/ingest/logs", json=old).status_code == 200
        svc: Services = client.app.state.services  # type: ignore[attr-defined]
        policy = RetentionPolicy(retain_ns={"logs": 24 * HOUR})
        stop = threading.Event()

        def prune_loop() -> None:
            try:
                while not stop.is_set():
                    prune(svc.events, policy)
            except Exception as exc:  # reported below
                failures.append(exc)

        pruner = threading.Thread(target=prune_loop)
        pruner.start()
        try:
            for batch in range(30):
                events = [
                    {
                        "timestamp": (now - 60 * NS + (batch * 50 + i) * 1000) // 1000,
                        "message": f"new {batch}-{i}",
                        "service": "jobs",
                    }
                    for i in range(50)
                ]
                r = client.post("/ingest/logs", json=events)
                if r.status_code == 200:
                    acked += [e["message"] for e in events]
        finally:
            stop.set()
            pruner.join(timeout=60)
        assert not failures
        prune(svc.events, policy)
        _, rows = svc.events.sql("SELECT message FROM logs WHERE message LIKE 'new %'", limit=10_000)
        assert len(acked) == 1500
        assert sorted(r[0] for r in rows) == sorted(acked)
        assert raw_rows(svc.events, "logs", "WHERE message LIKE 'old %'") == 0


# -- backup and restore -----------------------------------------------------------------------------------


def embedded(settings: Settings, home: Path) -> Settings:
    """The test's settings with an embedded FalkorDB of its own under `home` (what `devmesh` uses by default)."""
    return settings.model_copy(update={"home": home, "falkordb_url": None})


def ranked(svc: Services, fault_ns: int) -> list[str]:
    """The services the explanation of the fault ranks as root causes, best first."""
    _, expl = investigate(svc.toolbox(), InvestigationRequest(at_ns=fault_ns), source="api")
    return [rc.service for rc in expl.root_causes]


def test_backup_restored_into_a_fresh_home_answers_the_same(tmp_path: Path, settings: Settings) -> None:
    src = embedded(settings, tmp_path / "src")
    svc = open_test_services(src, HashingEmbedder(384))
    try:
        import_sample(svc)
        (src.home / "keys.json").write_text('{"keys": []}\n')
        (src.home / "audit.jsonl").write_text('{"who": "local"}\n')
        (fault,) = nezha.load_faults(nezha.plan(sample_path() / "nezha"))
        fault_ns = fault.inject_ns
        causes = ranked(svc, fault_ns)
        before = current_counts(svc)
        manifest = backup_home(svc, tmp_path / "backup")  # engines open, as under `devmesh serve`
    finally:
        svc.close()
    assert manifest["counts"] == before
    assert {"events.duckdb", "graph.rdb", "home/keys.json", "home/audit.jsonl"} <= set(manifest["files"])
    assert before["events"]["docs"]["incidents"] == 1
    assert before["vectors"]["runbooks"] > 0 and before["graph"]["Service"] > 0

    with pytest.raises(InvalidInput):  # a home with data is not overwritten
        restore_files(src, tmp_path / "backup")
    dst = embedded(settings, tmp_path / "dst")
    restore_files(dst, tmp_path / "backup")
    svc = open_test_services(dst, HashingEmbedder(384))
    try:
        loaded = load_vectors(svc, tmp_path / "backup")
        assert current_counts(svc) == before
        assert loaded == before["vectors"]
        causes_after = ranked(svc, fault_ns)
    finally:
        svc.close()
    assert causes_after[0] == causes[0]  # the same top root cause
    assert causes_after == causes
    assert (dst.home / "keys.json").read_text() == '{"keys": []}\n'


def test_restore_refuses_a_backup_whose_files_do_not_match(tmp_path: Path, services: Services) -> None:
    services.events.append_logs(synthetic_logs(10, now_ns() - HOUR))
    backup_home(services, tmp_path / "backup")
    verify_backup(tmp_path / "backup")
    with (tmp_path / "backup" / "events.duckdb").open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00garbage")
    with pytest.raises(InvalidInput, match="checksum"):
        verify_backup(tmp_path / "backup")
    with pytest.raises(InvalidInput, match="not empty"):
        backup_home(services, tmp_path / "backup")


def test_rows_whose_graph_work_is_owed_are_kept_until_repaired(tmp_path: Path) -> None:
    ev = EventStore(tmp_path / "events.duckdb")
    try:
        start = now_ns() - 48 * HOUR
        ev.append_logs(synthetic_logs(1000, start))  # one line every 10 ms from two days ago
        owed_from = start + 5 * NS  # the graph still lacks what lines from here on imply
        entry = ev.owed.add("graph", "logs", owed_from, start + 8 * NS)
        cutoff = start + 9 * NS

        kept = ev.prune_before("logs", cutoff)
        assert kept.cutoff_ns == owed_from
        assert raw_rows(ev, "logs", f"WHERE ts_ns < {owed_from}") == 0
        assert raw_rows(ev, "logs") == 500  # the owed range and after are still there for the repair

        ev.owed.settle([entry])
        assert ev.prune_before("logs", cutoff).deleted == 400
    finally:
        ev.close()
