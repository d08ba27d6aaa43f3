"""Detection runs: windows since the last run, no duplicates, no gaps, episodes kept as one incident."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from api.wiring import Services
from core.incident import IncidentStatus
from core.settings import Settings
from core.timeutil import NS
from detect.runner import MARK, RUNS, DetectOptions, replay, run_once
from ingest import batch

T0 = 1_700_000_040 * NS  # a minute boundary


def logs(service: str, minute: int, total: int, errors: int) -> dict[str, list]:
    cols = batch.empty("logs")
    for i in range(total):
        level = "ERROR" if i < errors else "INFO"
        text = f"payment failed for order {i}" if i < errors else f"order {i} accepted"
        batch.append_row(
            cols,
            {
                "ts_ns": T0 + minute * 60 * NS + i * NS // 10,
                "source": "test",
                "service": service,
                "host": "h1",
                "pod": f"{service}-0",
                "level": level,
                "message": text,
                "trace_id": "",
                "span_id": "",
                "event_type": "log",
                "error_code": "",
                "meta": "",
            },
        )
    return cols


def fill(services: Services, *, jump_at: int = 5, minutes: int = 8) -> None:
    for m in range(minutes):
        services.pipeline.ingest_logs(logs("payment", m, 100, 40 if m >= jump_at else 1), embed=False)
        services.pipeline.ingest_logs(logs("cart", m, 100, 1), embed=False)


def test_runs_open_one_incident_and_survive_a_restart_without_duplicates_or_gaps(
    settings: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    opt = DetectOptions(window_s=60, explain=False)
    svc = open_fn(settings)
    try:
        fill(svc)
        runs = run_once(svc.detection(), end_ns=T0 + 4 * 60 * NS, options=opt)  # first run: one window back
        assert [r.start_ns for r in runs] == [T0 + 3 * 60 * NS]
        assert svc.events.kv.get(MARK) == T0 + 4 * 60 * NS
    finally:
        svc.close()
    svc = open_fn(settings)  # a restart: the marker is in the store
    try:
        tools = svc.detection()
        runs = run_once(tools, end_ns=T0 + 8 * 60 * NS, options=opt)
        assert [r.start_ns for r in runs] == [T0 + m * 60 * NS for m in (4, 5, 6, 7)]  # no gap
        opened = [i for r in runs for i in r.opened]
        updated = [i for r in runs for i in r.updated]
        assert len(opened) == 1  # minute 5 opens it ...
        assert set(updated) <= set(opened)  # ... later minutes update the same incident
        again = run_once(tools, end_ns=T0 + 8 * 60 * NS, options=opt)
        assert again == []  # nothing new to look at
        incidents = tools.book.list()
        assert [(i.source, i.status, i.alert_ns) for i in incidents] == [
            ("detection", IncidentStatus.OPEN, T0 + 5 * 60 * NS)
        ]
        recorded = svc.events.docs.find(RUNS, limit=100)
        assert len(recorded) == 5 and sum(1 for r in recorded if r["opened"]) == 1
    finally:
        svc.close()


@pytest.mark.parametrize("gap_minutes", [3])
def test_catch_up_is_bounded(services: Services, gap_minutes: int) -> None:
    fill(services)
    tools = services.detection()
    services.events.kv.set(MARK, T0)
    opt = DetectOptions(window_s=60, explain=False, max_catchup_s=gap_minutes * 60)
    runs = run_once(tools, end_ns=T0 + 8 * 60 * NS, options=opt)
    assert [r.start_ns for r in runs] == [T0 + m * 60 * NS for m in range(8 - gap_minutes, 8)]


def test_demo_sample_is_detected_with_its_root_cause(services: Services) -> None:
    from ingest.importers import import_nezha

    import_nezha(services.pipeline, Path(__file__).resolve().parents[2] / "samples" / "nezha")
    span = services.events.stats()["tables"]["logs"]
    runs = replay(services.detection(explain=False), span["min_ns"], span["max_ns"], DetectOptions(explain=False))
    assert services.events.kv.get(MARK) is None  # a replay leaves the live schedule alone
    fired = [r for r in runs if r.opened]
    assert len(fired) == 1, [r.as_dict() for r in fired]  # one incident, later runs update it
    assert fired[0].root_cause == "ts-verification-code-service"
    assert fired[0].triggers[0]["rule"] == "errors"
    fault = 1_674_985_774 * NS  # 2023-01-29T09:49:34Z, the sample's labelled injection
    assert 0 <= fired[0].end_ns - fault <= 180 * NS
    incident = services.toolbox().book.get(fired[0].opened[0])
    assert incident.source == "detection" and incident.alert_ns == fired[0].end_ns - 60 * NS
    assert incident.service == "ts-verification-code-service"  # where the errors were, as an alert would name it
    assert [r.updated for r in runs if r.end_ns > fired[0].end_ns and r.triggers] == [[incident.id]]  # same episode


def test_an_episode_is_one_incident_and_a_later_fault_elsewhere_another(services: Services) -> None:
    for m in range(15):
        services.pipeline.ingest_logs(logs("payment", m, 100, 40 if 5 <= m < 7 else 1), embed=False)
        services.pipeline.ingest_logs(logs("cart", m, 100, 40 if 11 <= m < 13 else 1), embed=False)
    tools = services.detection()
    runs = replay(tools, T0, T0 + 15 * 60 * NS - 1, DetectOptions(explain=False))
    opened = {r.end_ns: r.opened[0] for r in runs if r.opened}
    assert sorted(opened) == [T0 + 6 * 60 * NS, T0 + 12 * 60 * NS]  # the runs right after each jump
    first, second = (tools.book.get(opened[t]) for t in sorted(opened))
    assert (first.root_cause, first.service, second.root_cause) == ("payment", "payment", "cart")
    # every run that fired between them (the 1- and then the 3-minute look) updated the first incident
    between = [r for r in runs if T0 + 6 * 60 * NS < r.end_ns < T0 + 12 * 60 * NS and r.triggers]
    assert between and all(r.updated == [first.id] and not r.opened for r in between)
    assert first.updated_ns == max(r.end_ns for r in between)
