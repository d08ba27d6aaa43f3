"""Detection: onsets from error shares, runs over windows since the last one, no duplicates, no gaps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from api.wiring import Services
from core.incident import IncidentStatus
from core.settings import Settings
from core.timeutil import NS
from detect.onset import detect_onset
from detect.runner import MARK, RUNS, DetectOptions, run_once
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


def test_onset_is_the_minute_a_service_jumps(services: Services) -> None:
    fill(services)
    onsets = detect_onset(services.events, T0, T0 + 8 * 60 * NS)
    assert [(o.at_ns, o.service, o.errors) for o in onsets][:1] == [(T0 + 5 * 60 * NS, "payment", 40)]
    assert all(o.service == "payment" for o in onsets)  # cart stays at its usual level


def test_no_onset_without_a_change(services: Services) -> None:
    for m in range(6):
        services.pipeline.ingest_logs(logs("cart", m, 100, 3), embed=False)
    assert detect_onset(services.events, T0, T0 + 6 * 60 * NS) == []


def test_runs_open_one_incident_and_survive_a_restart_without_duplicates_or_gaps(
    settings: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    opt = DetectOptions(window_s=60, explain=False)
    svc = open_fn(settings)
    try:
        fill(svc)
        runs = run_once(svc.toolbox(), end_ns=T0 + 4 * 60 * NS, options=opt)  # first run: one window back
        assert [r.start_ns for r in runs] == [T0 + 3 * 60 * NS]
        assert svc.events.kv_get(MARK) == T0 + 4 * 60 * NS
    finally:
        svc.close()
    svc = open_fn(settings)  # a restart: the marker is in the store
    try:
        tools = svc.toolbox()
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
        recorded = svc.events.list_docs(RUNS, limit=100)
        assert len(recorded) == 5 and sum(1 for r in recorded if r["opened"]) == 1
    finally:
        svc.close()


@pytest.mark.parametrize("gap_minutes", [3])
def test_catch_up_is_bounded(services: Services, gap_minutes: int) -> None:
    fill(services)
    tools = services.toolbox()
    services.events.kv_set(MARK, T0)
    opt = DetectOptions(window_s=60, explain=False, max_catchup_s=gap_minutes * 60)
    runs = run_once(tools, end_ns=T0 + 8 * 60 * NS, options=opt)
    assert [r.start_ns for r in runs] == [T0 + m * 60 * NS for m in range(8 - gap_minutes, 8)]


def test_demo_sample_onset(services: Services) -> None:
    from ingest.importers import import_nezha

    import_nezha(services.pipeline, Path(__file__).resolve().parents[1] / "samples" / "nezha")
    span = services.events.stats()["tables"]["logs"]
    onsets = detect_onset(services.events, span["min_ns"], span["max_ns"] + 1)
    assert onsets, "the bundled incident is detected"
