"""Limits through the real app (issue 11): record counts refused with 413 and nothing stored, rate limits
with 429 and Retry-After, a full alert queue with 503 and Retry-After, alerts refused up front with 422."""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from api.http.app import create_app
from api.wiring import Services
from bench.otlp_bomb import bomb
from core.settings import Settings
from core.timeutil import now_ns

NS = 10**9
LIMIT = 20
PB_GZIP = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}


@pytest.fixture
def limited(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_batch_events": LIMIT, "rate_ingest_per_min": 0})


def app_client(s: Settings, open_fn: Callable[[Settings], Services]) -> TestClient:
    return TestClient(create_app(s, open_fn=open_fn), raise_server_exceptions=False)


def otlp_logs(n: int) -> bytes:
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    t = now_ns() - 60 * NS
    for i in range(n):
        sl.log_records.add(time_unix_nano=t + i, severity_text="ERROR").body.string_value = f"upstream timeout {i}"
    return gzip.compress(req.SerializeToString())


def stored(client: TestClient) -> int:
    r = client.get("/query/logs", params={"since": "1d", "limit": 1000})
    assert r.status_code == 200, r.text
    return len(r.json()["events"])


def test_otlp_logs_over_the_limit_are_413_and_nothing_is_stored(
    limited: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    with app_client(limited, open_fn) as client:
        over = client.post("/v1/logs", content=otlp_logs(LIMIT + 1), headers=PB_GZIP)
        assert over.status_code == 413, over.text
        assert over.json()["field"] == "resourceLogs.scopeLogs.logRecords"
        assert "DEVMESH_MAX_BATCH_EVENTS" in over.json()["message"]
        bombed = client.post("/v1/logs", content=bomb(8_300_000), headers=PB_GZIP)
        assert bombed.status_code == 413 and bombed.json()["error"] == "PayloadTooLarge"
        assert stored(client) == 0
        assert client.post("/v1/logs", content=otlp_logs(LIMIT), headers=PB_GZIP).status_code == 200
        assert stored(client) == LIMIT


def test_devmesh_batches_over_the_limit_are_413_gzip_or_not(
    limited: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    t = now_ns() - 60 * NS
    events = [{"timestamp": t + i, "message": f"disk full {i}", "service": "db"} for i in range(LIMIT + 1)]
    raw = json.dumps({"events": events}).encode()
    with app_client(limited, open_fn) as client:
        r = client.post("/ingest/logs", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["field"] == "events", r.text
        zipped = {"content-type": "application/json", "content-encoding": "gzip"}
        assert client.post("/ingest/logs", content=gzip.compress(raw), headers=zipped).status_code == 413
        assert stored(client) == 0
        ok = json.dumps({"events": events[:LIMIT]}).encode()
        assert client.post("/ingest/logs", content=gzip.compress(ok), headers=zipped).json()["stored"] == LIMIT


def test_explain_over_its_rate_is_429_with_retry_after(
    settings: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    s = settings.model_copy(update={"rate_explain_per_min": 2})
    with app_client(s, open_fn) as client:
        answers = [client.post("/explain", json={"service": "nothing-here"}) for _ in range(3)]
        assert [a.status_code == 429 for a in answers] == [False, False, True]
        refused = answers[2]
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"] == "RateLimited" and "DEVMESH_RATE_EXPLAIN_PER_MIN" in refused.json()["message"]
        other = client.post("/explain", json={"service": "x"}, headers={"Authorization": "Bearer another-key"})
        assert other.status_code != 429  # another caller has its own bucket


ALERT: dict[str, Any] = {
    "status": "firing",
    "labels": {"alertname": "DiskFull", "service": "db"},
    "annotations": {},
    "startsAt": "",
    "endsAt": "0001-01-01T00:00:00Z",
    "fingerprint": "f0",
}


def notification(*fingerprints: str, **changes: Any) -> dict[str, Any]:
    starts = f"{now_ns() // NS - 120}"
    alerts = []
    for fp in fingerprints:
        a = copy.deepcopy(ALERT) | {"fingerprint": fp}
        a["startsAt"] = _rfc3339(int(starts))
        alerts.append(a | changes)
    return {"status": "firing", "receiver": "devmesh", "version": "4", "alerts": alerts}


def _rfc3339(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"startsAt": "0002-01-01T00:00:00Z"}, "alerts.0.startsAt"),
        ({"startsAt": "9999-12-31T23:59:59Z"}, "alerts.0.startsAt"),
        ({"startsAt": "1990-01-01T00:00:00Z"}, "alerts.0.startsAt"),
        ({"startsAt": "2200-01-01T00:00:00Z"}, "alerts.0.startsAt"),
        ({"startsAt": "0001-01-01T00:00:00Z"}, "alerts.0.startsAt"),
        ({"endsAt": "9999-01-01T00:00:00Z"}, "alerts.0.endsAt"),
        ({"labels": {}}, "alerts.0.labels"),
    ],
)
def test_alerts_that_cannot_be_processed_are_refused_up_front(
    settings: Settings, open_fn: Callable[[Settings], Services], changes: dict[str, Any], field: str
) -> None:
    with app_client(settings, open_fn) as client:
        r = client.post("/alerts/alertmanager", json=notification("f1", **changes))
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field
        assert (
            getattr(client.app.state, "alert_intake", None) is None or client.app.state.alert_intake.queue.load() == 0
        )


def test_a_full_alert_queue_answers_503_with_retry_after(
    settings: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    s = settings.model_copy(update={"alert_queue_size": 2, "alert_explains_per_request": 5})
    gate = threading.Event()
    with app_client(s, open_fn) as client:
        port = client.app.state.port
        explain = port.explain

        def slow_explain(*args: Any, **kwargs: Any) -> Any:
            gate.wait(20)
            return explain(*args, **kwargs)

        port.explain = slow_explain
        try:
            first = client.post("/alerts/alertmanager", json=notification("a", "b"))
            assert first.status_code == 200 and first.json()["explaining"] == 2, first.text
            again = client.post("/alerts/alertmanager", json=notification("c"))
            assert again.status_code == 503, again.text
            assert int(again.headers["retry-after"]) >= 1
            assert again.json()["error"] == "Overloaded" and again.json()["field"] == "alerts"
        finally:
            gate.set()
        assert client.app.state.alert_intake.queue.wait_idle(60)
        assert client.post("/alerts/alertmanager", json=notification("c")).json()["explaining"] == 1
        assert client.app.state.alert_intake.queue.wait_idle(60)


def test_ingest_rate_default_never_bothers_a_normal_sender(
    settings: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    with app_client(settings, open_fn) as client:
        codes = {client.post("/v1/logs", content=otlp_logs(1), headers=PB_GZIP).status_code for _ in range(30)}
    assert codes == {200}
