"""Access through `create_app` on real engines: keys and scopes on every route, loopback-only mode, the Host
allow-list, cross-origin writes, forged feedback and resolve, the audit log."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.keystore import KeyStore, Scope
from api.wiring import Services
from core.incident import InvestigationRequest
from core.settings import Settings
from detect.incidents import IncidentBook
from tests.integration.test_api import mounted_routes

NS = 10**9
T = 1_760_000_000 * NS

ROUTE_SCOPES: dict[tuple[str, str], Scope] = {
    ("POST", "/ingest/logs"): Scope.INGEST,
    ("POST", "/ingest/journald"): Scope.INGEST,
    ("POST", "/v1/logs"): Scope.INGEST,
    ("POST", "/v1/traces"): Scope.INGEST,
    ("POST", "/v1/metrics"): Scope.INGEST,
    ("GET", "/info"): Scope.READ,
    ("GET", "/query/logs"): Scope.READ,
    ("GET", "/query/sql"): Scope.READ,
    ("GET", "/search/logs"): Scope.READ,
    ("GET", "/incidents"): Scope.READ,
    ("GET", "/incidents/{incident_id}"): Scope.READ,
    ("GET", "/incidents/{incident_id}/evidence"): Scope.READ,
    ("GET", "/incidents/{incident_id}/map"): Scope.READ,
    ("GET", "/incidents/{incident_id}/timeline"): Scope.READ,
    ("GET", "/overview/incidents"): Scope.READ,
    ("GET", "/services/{service}/overview"): Scope.READ,
    ("GET", "/traces/{trace_id}"): Scope.READ,
    ("POST", "/explain"): Scope.EXPLAIN,
    ("POST", "/incidents/{incident_id}/feedback"): Scope.EXPLAIN,
    ("POST", "/incidents/{incident_id}/resolve"): Scope.EXPLAIN,
    ("POST", "/alerts/alertmanager"): Scope.EXPLAIN,
    ("POST", "/detect/run"): Scope.ADMIN,
    ("POST", "/admin/prune"): Scope.ADMIN,
    ("POST", "/admin/backup"): Scope.ADMIN,
}
OPEN = {("GET", "/health")}
SIGNED = {"/slack/events", "/slack/commands", "/slack/interactions"}  # Slack's signature, not a key


def mounted(app: Any) -> set[tuple[str, str]]:
    """Every method and path of the app's API routes, but Slack's (walked as tests/integration/test_api.py does)."""
    return {(m, p) for m, p in mounted_routes(app) if p not in SIGNED}


def call(client: TestClient, method: str, path: str, key: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = path.replace("{incident_id}", "inc-nope").replace("{service}", "svc-nope").replace("{trace_id}", "t-nope")
    params = {"/search/logs": {"q": "timeout"}, "/query/sql": {"statement": "SELECT 1"}}.get(path)
    if method == "POST":
        return client.post(url, json=kw.get("json", {}), headers=headers)
    return client.get(url, headers=headers, params=params)


def event(i: int, message: str = "job finished") -> dict[str, Any]:
    return {"timestamp": (T + i * NS) // 1000, "message": f"{message} {i}", "service": "jobs"}


def stored(client: TestClient, key: str | None = None) -> list[str]:
    r = call(client, "GET", "/query/logs", key)
    assert r.status_code == 200, r.text
    return [e["message"] for e in r.json()["events"]]


@pytest.fixture
def keys(settings: Settings) -> dict[str, str]:
    """One key per scope, made before the app starts (the store is read on each request)."""
    store = KeyStore(settings.keys_path)
    return {s.value: store.create([s], f"{s.value}-key")[0] for s in Scope}


@pytest.fixture
def make_client(open_fn: Callable[[Settings], Services]) -> Iterator[Callable[[Settings], TestClient]]:
    clients: list[TestClient] = []

    def make(s: Settings) -> TestClient:
        c = TestClient(create_app(s, open_fn=open_fn), raise_server_exceptions=False).__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def test_every_route_has_a_scope_in_this_table(settings: Settings) -> None:
    table = {(m, re.sub(r"\{\w+\}", "{}", p)) for m, p in ROUTE_SCOPES}
    assert mounted(create_app(settings)) == table | OPEN


def test_every_route_without_a_valid_key_is_401_once_keys_exist(
    settings: Settings, keys: dict[str, str], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(settings)
    for method, path in ROUTE_SCOPES:
        for key in (None, "dmk_not-a-key", "wrong-shape"):
            r = call(client, method, path, key)
            assert r.status_code == 401, (method, path, key, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"] in ("Unauthorized", "HTTPError")
    assert call(client, "GET", "/health").status_code == 200


def test_a_key_without_the_scope_is_403_and_with_it_gets_through(
    settings: Settings, keys: dict[str, str], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(settings)
    for (method, path), needed in ROUTE_SCOPES.items():
        for held in Scope:
            r = call(client, method, path, keys[held])
            if held in (needed, Scope.ADMIN):
                assert r.status_code not in (401, 403), (method, path, held, r.text)
            else:
                assert r.status_code == 403, (method, path, held, r.text)
                assert f"'{needed.value}' scope" in r.json()["message"]


def test_a_revoked_key_is_refused_from_the_next_request_on(
    settings: Settings, keys: dict[str, str], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(settings)
    assert call(client, "GET", "/info", keys["read"]).status_code == 200
    store = KeyStore(settings.keys_path)  # as `devmesh keys revoke` would, from another process
    (read_key,) = (k for k in store.all_keys() if k.name == "read-key")
    store.revoke(read_key.id)
    assert call(client, "GET", "/info", keys["read"]).status_code == 401


def test_loopback_mode_needs_no_key_and_acts_as_local(
    settings: Settings, make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(settings)
    assert call(client, "GET", "/info").status_code == 200
    assert call(client, "POST", "/ingest/logs", json=[event(1)]).status_code == 200
    assert stored(client) == ["job finished 1"]
    (line,) = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    assert (line["key_id"], line["method"], line["path"], line["status"]) == ("local", "POST", "/ingest/logs", 200)


def test_dns_rebinding_host_is_refused_and_gets_and_stores_nothing(
    settings: Settings, make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(settings)  # loopback-only mode: the case rebinding attacks
    assert call(client, "POST", "/ingest/logs", json=[event(1, "before")]).status_code == 200
    evil = {"Host": "rebind.attacker.example"}
    r = client.get("/query/logs", headers=evil)
    assert r.status_code == 400 and r.json()["field"] == "host"
    assert "before" not in r.text
    r = client.post("/ingest/logs", json=[event(2, "rebound")], headers=evil)
    assert r.status_code == 400
    assert client.get("/info", headers={"Host": "rebind.attacker.example:8080"}).status_code == 400
    assert client.get("/info", headers={"Host": "localhost:8080"}).status_code == 200
    assert stored(client) == ["before 1"]


def test_cross_origin_and_non_json_writes_are_refused_and_store_nothing(
    settings: Settings, make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(settings)
    body = json.dumps([event(1, "from a web page")])
    r = client.post("/ingest/logs", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["field"] == "content-type"
    r = client.post(
        "/ingest/logs", content=body, headers={"Content-Type": "text/plain", "Origin": "https://evil.example"}
    )
    assert r.status_code in (403, 415)
    r = client.post(
        "/ingest/logs", content=body, headers={"Content-Type": "application/json", "Origin": "https://evil.example"}
    )
    assert r.status_code == 403 and r.json()["field"] == "origin"
    r = client.post("/incidents/inc-1/resolve", headers={"Origin": "null"})
    assert r.status_code == 403
    r = client.post("/v1/logs", content=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert stored(client) == []
    # CORS is off: no browser may read an answer
    assert "access-control-allow-origin" not in client.get("/info", headers={"Origin": "https://evil.example"}).headers
    # the server's own origin (its /docs page) may write
    r = client.post(
        "/ingest/logs", content=body, headers={"Content-Type": "application/json", "Origin": "http://testserver"}
    )
    assert r.status_code == 200
    assert stored(client) == ["from a web page 1"]


def test_a_configured_origin_may_write_and_read_with_cors(
    settings: Settings, make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(settings.model_copy(update={"cors_origins": ["https://ops.example"]}))
    origin = {"Origin": "https://ops.example"}
    pre = client.options(
        "/ingest/logs",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://ops.example"
    r = client.post("/ingest/logs", json=[event(1)], headers=origin)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://ops.example"
    assert client.post("/ingest/logs", json=[event(2)], headers={"Origin": "https://other.example"}).status_code == 403
    assert stored(client) == ["job finished 1"]


def test_forged_feedback_and_resolve_without_the_scope_change_nothing(
    settings: Settings, keys: dict[str, str], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(settings)
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    inc = IncidentBook(svc.events, svc.graph).open(InvestigationRequest(service="checkout", at_ns=T), source="test")
    before = call(client, "GET", f"/incidents/{inc.id}", keys["read"]).json()
    forged = {"root_cause": "innocent-service", "helpful": False, "by": "attacker"}
    for key in (None, keys["read"], keys["ingest"]):
        assert call(client, "POST", f"/incidents/{inc.id}/feedback", key, json=forged).status_code in (401, 403)
        assert call(client, "POST", f"/incidents/{inc.id}/resolve", key).status_code in (401, 403)
    assert call(client, "GET", f"/incidents/{inc.id}", keys["read"]).json() == before
    assert before["incident"]["status"] == "open"

    r = call(client, "POST", f"/incidents/{inc.id}/resolve", keys["explain"])
    assert r.status_code == 200 and r.json()["status"] == "resolved"


def test_every_write_is_audited_with_who_and_never_the_body_or_key(
    settings: Settings, keys: dict[str, str], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(settings)
    secret_body = [event(1, "payload-marker-7f3a")]
    assert call(client, "POST", "/ingest/logs", keys["ingest"], json=secret_body).status_code == 200
    assert call(client, "POST", "/ingest/logs", keys["read"], json=secret_body).status_code == 403
    assert call(client, "POST", "/ingest/logs", None, json=secret_body).status_code == 401
    assert call(client, "GET", "/info", keys["read"]).status_code == 200  # a read: not audited

    text = settings.audit_path.read_text()
    lines = [json.loads(x) for x in text.splitlines()]
    ingest_id = next(k.id for k in KeyStore(settings.keys_path).all_keys() if k.name == "ingest-key")
    read_id = next(k.id for k in KeyStore(settings.keys_path).all_keys() if k.name == "read-key")
    assert [(x["key_id"], x["name"], x["method"], x["path"], x["status"]) for x in lines] == [
        (ingest_id, "ingest-key", "POST", "/ingest/logs", 200),
        (read_id, "read-key", "POST", "/ingest/logs", 403),
        ("-", "", "POST", "/ingest/logs", 401),
    ]
    assert all(set(x) == {"time", "key_id", "name", "method", "path", "status", "client"} for x in lines)
    assert "payload-marker" not in text
    assert not any(k in text for k in keys.values())


def test_the_legacy_alerts_token_and_an_explain_key_both_work(
    settings: Settings, keys: dict[str, str], make_client: Callable[[Settings], TestClient]
) -> None:
    from pydantic import SecretStr

    client = make_client(settings.model_copy(update={"alerts_token": SecretStr("am-legacy-token")}))
    resolved = {
        "version": "4",
        "status": "resolved",
        "alerts": [
            {
                "status": "resolved",
                "labels": {"alertname": "HighErrorRate", "service": "checkout"},
                "startsAt": "2025-10-09T08:50:00Z",
                "endsAt": "2025-10-09T08:55:00Z",
                "fingerprint": "abc123",
            }
        ],
    }
    for key, status in (("am-legacy-token", 200), (keys["explain"], 200), (keys["read"], 403), (None, 401)):
        r = call(client, "POST", "/alerts/alertmanager", key, json=resolved)
        assert r.status_code == status, (key, r.text)
    names = [json.loads(x)["name"] for x in settings.audit_path.read_text().splitlines()]
    assert names == ["DEVMESH_ALERTS_TOKEN", "explain-key", "read-key", ""]
