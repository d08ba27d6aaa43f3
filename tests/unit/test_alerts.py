"""Alertmanager webhook intake: real payloads (grouped, firing then resolved) into the port.

The bodies are what Alertmanager's webhook receiver sends (version 4), including nanosecond
timestamps and the zero `endsAt` of firing alerts.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.alerts import AlertmanagerPayload, alert_context
from api.alerts import router as alerts_router
from api.chat.webhook import WebhookSender
from api.http.errors import install_error_handlers
from core.errors import EngineUnavailable
from core.explanation import Explanation
from tests.fakes.devmesh_port import FakePort
from tests.fakes.slack_api import FakeSlackAPI

STARTS = "2024-05-01T10:00:00.123456789Z"
STARTS_NS = 1_714_557_600_123_456_000
LOOKBACK_NS = 900 * 1_000_000_000

FIRING: dict[str, Any] = {
    "receiver": "devmesh",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "KubePodCrashLooping",
                "container": "order",
                "namespace": "train-ticket",
                "pod": "ts-order-service-5b67c48447-mv5hb",
                "severity": "warning",
                "node": "worker-3",
            },
            "annotations": {
                "description": "Pod train-ticket/ts-order-service-5b67c48447-mv5hb is in waiting state "
                "(reason: CrashLoopBackOff).",
                "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
                "summary": "Pod is crash looping.",
            },
            "startsAt": STARTS,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=max_over_time%28kube_pod_container_status_waiting%5B5m%5D%29&g0.tab=1",
            "fingerprint": "5c8a4e0e3d2a1b7f",
        },
        {
            "status": "firing",
            "labels": {
                "alertname": "HighErrorRate",
                "service": "ts-payment-service",
                "job": "ts-payment",
                "severity": "critical",
            },
            "annotations": {"summary": "5xx above 5% for 10m"},
            "startsAt": "2024-05-01T10:02:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=rate",
            "fingerprint": "0b1e2c3d4e5f6a7b",
        },
    ],
    "groupLabels": {"namespace": "train-ticket"},
    "commonLabels": {"namespace": "train-ticket"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "version": "4",
    "groupKey": '{}/{namespace="train-ticket"}:{namespace="train-ticket"}',
    "truncatedAlerts": 0,
}


def resolved_payload() -> dict[str, Any]:
    body = copy.deepcopy(FIRING)
    body["status"] = "resolved"
    body["alerts"] = [body["alerts"][0] | {"status": "resolved", "endsAt": "2024-05-01T10:20:00.5Z"}]
    return body


def make_app(port: FakePort, **state: Any) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(alerts_router)
    app.state.port = port
    for key, value in state.items():
        setattr(app.state, key, value)
    return app


@pytest.fixture
def port() -> FakePort:
    return FakePort()


@pytest.fixture
def client(port: FakePort) -> Iterator[TestClient]:
    with TestClient(make_app(port)) as c:
        yield c


def test_grouped_firing_alerts_are_explained_with_their_context(client: TestClient, port: FakePort) -> None:
    resp = client.post("/alerts/alertmanager", json=FIRING)
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "accepted",
        "explaining": 2,
        "resolving": 0,
        "already_explained": 0,
        "already_queued": 0,
        "deferred": 0,
    }
    calls = port.wait_for("explain", 2)
    assert [c.kwargs for c in calls] == [{"source": "alertmanager"}] * 2
    first, second = (c.args[0] for c in calls)
    assert (first.service, first.incident_id, first.start_ns, first.end_ns, first.at_ns) == (
        "ts-order-service",  # from the pod name: the Deployment's pods carry two hash parts
        None,
        STARTS_NS - LOOKBACK_NS,
        None,
        STARTS_NS,
    )
    assert first.alert is not None
    assert (first.alert.fingerprint, first.alert.status, first.alert.startsAt) == ("5c8a4e0e3d2a1b7f", "firing", STARTS)
    assert first.alert.labels == FIRING["alerts"][0]["labels"]
    assert first.alert.annotations == FIRING["alerts"][0]["annotations"]
    assert second.service == "ts-payment-service"  # the service label wins over job
    assert second.start_ns == 1_714_557_720 * 10**9 - LOOKBACK_NS
    assert second.alert is not None and second.alert.fingerprint == "0b1e2c3d4e5f6a7b"


def test_the_alert_context_names_what_the_notifier_shows() -> None:
    payload = AlertmanagerPayload.model_validate(FIRING)
    first, second = (alert_context(a, payload) for a in payload.alerts)
    assert {k: first[k] for k in ("fingerprint", "alertname", "severity", "service")} == {
        "fingerprint": "5c8a4e0e3d2a1b7f",
        "alertname": "KubePodCrashLooping",
        "severity": "warning",
        "service": "ts-order-service",
    }
    assert first["runbook_url"] == "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping"
    assert (first["starts_ns"], first["ends_ns"], first["node"]) == (STARTS_NS, None, "worker-3")
    assert first["group_key"] == FIRING["groupKey"] and first["status"] == "firing"
    assert second["runbook_url"] == ""


def test_resent_group_is_not_explained_again_and_resolved_alerts_resolve(client: TestClient, port: FakePort) -> None:
    client.post("/alerts/alertmanager", json=FIRING)
    port.wait_for("explain", 2)
    again = client.post("/alerts/alertmanager", json=FIRING)
    assert again.json()["explaining"] == 0 and again.json()["already_explained"] == 2

    resp = client.post("/alerts/alertmanager", json=resolved_payload())
    assert resp.json()["resolving"] == 1 and resp.json()["explaining"] == 0
    assert [c.args for c in port.wait_for("resolve_alert")] == [("5c8a4e0e3d2a1b7f",)]
    assert len(port.calls("explain")) == 2

    # The same alert firing again later (a new startsAt) is a new episode: explained again.
    refired = copy.deepcopy(FIRING)
    refired["alerts"] = [refired["alerts"][0] | {"startsAt": "2024-05-01T11:00:00Z"}]
    assert client.post("/alerts/alertmanager", json=refired).json()["explaining"] == 1


def test_the_alert_runbook_is_linked_in_the_explanation(port: FakePort) -> None:
    notified: list[tuple[Explanation, dict[str, Any]]] = []
    with TestClient(make_app(port, alert_notifier=lambda e, a: notified.append((e, a)))) as client:
        client.post("/alerts/alertmanager", json=FIRING)
    port.wait_for("explain", 2)
    by_alert = {a["alertname"]: e for e, a in notified}
    crash = by_alert["KubePodCrashLooping"]
    assert crash.runbooks[0].url == "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping"
    assert crash.runbooks[0].title == "Runbook for KubePodCrashLooping"
    assert [rb.id for rb in crash.runbooks[1:]] == ["rb:db/connection-pool"]  # the port's own runbooks stay
    assert [rb.id for rb in by_alert["HighErrorRate"].runbooks] == ["rb:db/connection-pool"]


def test_explanations_reach_a_chat_webhook(port: FakePort) -> None:
    with FakeSlackAPI() as hooks, WebhookSender(hooks.url + "/hooks/T0/B0/s3cr3t", fmt="mattermost") as sender:
        with TestClient(make_app(port, alert_notifier=lambda e, a: sender.send_explanation(e))) as client:
            client.post("/alerts/alertmanager", json=FIRING)
            assert client.app.state.alert_intake.queue.wait_idle(10)
        posts = hooks.wait_for("hook", count=2)
    texts = sorted(p.params["text"] for p in posts)
    assert texts[0].startswith("# Incident explanation: inc-0b1e2c3d4e5f6a7b\n")
    assert (
        "### [Runbook for KubePodCrashLooping](<https://runbooks.prometheus-operator.dev/runbooks/kubernetes/"
        in texts[1]
    )


def test_a_failed_explanation_is_logged_and_retried_on_the_next_resend(
    client: TestClient, port: FakePort, caplog: pytest.LogCaptureFixture
) -> None:
    port.explain_error = EngineUnavailable("FalkorDB is not reachable at redis://127.0.0.1:1")
    with caplog.at_level(logging.WARNING, logger="api.alerts"):
        assert client.post("/alerts/alertmanager", json=FIRING).json()["explaining"] == 2
        port.wait_for("explain", 2)
        assert client.app.state.alert_intake.queue.wait_idle(10)
    assert [r.getMessage() for r in caplog.records] == ["explaining an alert failed"] * 2
    port.explain_error = None
    assert client.post("/alerts/alertmanager", json=FIRING).json()["explaining"] == 2


def test_alerts_without_fingerprint_get_a_stable_one(client: TestClient, port: FakePort) -> None:
    old = copy.deepcopy(FIRING)
    for a in old["alerts"]:
        del a["fingerprint"]
    client.post("/alerts/alertmanager", json=old)
    fps = [c.args[0].alert.fingerprint for c in port.wait_for("explain", 2)]
    assert len(set(fps)) == 2 and all(len(f) == 16 for f in fps)
    assert client.post("/alerts/alertmanager", json=old).json()["already_explained"] == 2


def test_bad_payloads_get_422_naming_the_field(client: TestClient, port: FakePort) -> None:
    cases = [
        ({k: v for k, v in FIRING.items() if k != "alerts"}, "alerts"),
        (FIRING | {"status": "burning"}, "status"),
        (FIRING | {"alerts": [FIRING["alerts"][0] | {"startsAt": "yesterday"}]}, "alerts.0.startsAt"),
        (FIRING | {"alerts": [FIRING["alerts"][0] | {"labels": {"a": ["not", "a", "string"]}}]}, "alerts.0.labels.a"),
    ]
    for body, field in cases:
        resp = client.post("/alerts/alertmanager", json=body)
        assert resp.status_code == 422, body
        assert resp.json()["field"] == field
    assert port.calls() == []


def test_a_bearer_token_is_required_when_configured(port: FakePort) -> None:
    with TestClient(make_app(port, alerts_token=SecretStr("am-token-123"))) as client:
        assert client.post("/alerts/alertmanager", json=FIRING).status_code == 401
        wrong = client.post("/alerts/alertmanager", json=FIRING, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = client.post("/alerts/alertmanager", json=FIRING, headers={"Authorization": "Bearer am-token-123"})
        assert ok.status_code == 200
    assert len(port.wait_for("explain", 2)) == 2


def test_grafana_style_payload_with_extra_fields_is_accepted(client: TestClient, port: FakePort) -> None:
    body = copy.deepcopy(FIRING) | {"version": "1", "orgId": 1, "title": "[FIRING:2]", "state": "alerting"}
    body["alerts"][1] |= {"silenceURL": "https://grafana/silence", "values": {"B": 44.2}, "valueString": "x"}
    assert client.post("/alerts/alertmanager", json=body).status_code == 200
    assert len(port.wait_for("explain", 2)) == 2
