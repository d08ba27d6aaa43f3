"""No secret in any output: a run of the API with a known secret in every secret setting, greped.

The app runs on the real engines with a password in the FalkorDB URL, a Qdrant URL password and API key,
Slack tokens and signing secret, an LLM URL password and API key, an alerts token, a chat webhook URL
(and a DevMesh API key when keys exist). It is asked for info, made to fail (engines and an LLM that
cannot be reached through URLs with credentials, bad Slack signatures, wrong tokens, bad bodies), and
then every log record (at DEBUG) and every response body is searched for each secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.info import backend_info
from api.wiring import Services, open_services
from core.errors import DevMeshError
from core.settings import Settings
from retrieval.vector_factory import open_vector_store

FALKOR_PW, QDRANT_PW, QDRANT_KEY = "falkorPW-6b1e", "qdrantPW-93af", "qdrantKEY-27c4"
LLM_PW, LLM_KEY, ALERTS = "llmPW-5d0a", "llmKEY-81f3", "alertsTOKEN-4c9e"
BOT, APP_TOKEN, SIGNING = "xoxb-1111-2222-botTOKENa7e2", "xapp-1-appTOKEN-3f81", "signingSECRET-0b77"
HOOK = "hookSECRET-c5d2"
BODY_MARK = "bodyMARK-e8a1"
"""Text sent in request bodies: request bodies are never logged."""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def secret_settings(settings: Settings) -> Settings:
    port = closed_port()
    # validated, so the secrets are SecretStr as they are when read from the environment
    return Settings.model_validate(
        settings.model_dump()
        | {
            "falkordb_url": f"redis://devmesh:{FALKOR_PW}@127.0.0.1:{port}",
            "qdrant_url": f"http://qd:{QDRANT_PW}@127.0.0.1:{port}",
            "qdrant_api_key": QDRANT_KEY,
            "llm_url": f"http://llm:{LLM_PW}@127.0.0.1:{port}/v1",
            "llm_api_key": LLM_KEY,
            "llm_retries": 0,
            "llm_timeout_s": 2.0,
            "investigation_budget_s": 10.0,
            "slack_bot_token": BOT,
            "slack_signing_secret": SIGNING,
            "slack_app_token": APP_TOKEN,
            "slack_api_url": f"http://127.0.0.1:{port}/api/",
            "alerts_token": ALERTS,
            "chat_webhook_url": f"http://127.0.0.1:{port}/hooks/{HOOK}",
        }
    )


def secrets() -> list[str]:
    return [FALKOR_PW, QDRANT_PW, QDRANT_KEY, LLM_PW, LLM_KEY, ALERTS, BOT, APP_TOKEN, SIGNING, HOOK, BODY_MARK]


def api_key(settings: Settings) -> str | None:
    """A DevMesh API key with every scope, when the access module exists (its requests must carry it)."""
    try:
        from api.keystore import KeyStore, Scope
    except ImportError:
        return None
    return KeyStore(settings.keys_path).create([Scope.ADMIN], "secrets-test")[0]  # type: ignore[attr-defined]


def record_text(r: logging.LogRecord) -> str:
    """Everything a log line could show: the message, every extra field, the exception and its chain."""
    parts = [r.getMessage(), *(str(v) for v in vars(r).values())]
    if r.exc_info:
        parts.append(logging.Formatter().formatException(r.exc_info))
    return "\n".join(parts)


@pytest.fixture
def client(
    secret_settings: Settings, settings: Settings, open_fn: Callable[[Settings], Services]
) -> Iterator[TestClient]:
    def open_with_secret_settings(s: Settings) -> Services:
        # the engines are the test's own (reachable); what the app reads and prints are the secret settings
        svc = open_fn(settings)
        svc.settings = s
        return svc

    with TestClient(create_app(secret_settings, open_fn=open_with_secret_settings), raise_server_exceptions=False) as c:
        yield c


def slack_signed(body: str, secret: str, ts: str) -> dict[str, str]:
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Signature": sig,
        "X-Slack-Request-Timestamp": ts,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def test_no_secret_in_any_response_or_log_line(
    client: TestClient, secret_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = api_key(secret_settings)
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    outputs: list[str] = []

    def call(method: str, path: str, **kw: Any) -> Any:
        kw["headers"] = {**auth, **kw.get("headers", {})}
        r = client.request(method, path, **kw)
        outputs.append(f"{method} {path} -> {r.status_code} {r.headers} {r.text}")
        return r

    info = call("GET", "/info")
    assert info.status_code == 200
    assert info.json()["backends"]["graph"].startswith("falkordb:redis://devmesh:***@127.0.0.1:")
    assert "llm:***@127.0.0.1" in info.json()["backends"]["llm"]

    now = str(int(time.time()))
    slack_body = f"token={BOT}&command=/devmesh&text=explain+{BODY_MARK}&response_url=http://127.0.0.1:9/x"
    assert (
        call("POST", "/slack/events", content=slack_body, headers=slack_signed(slack_body, "wrong", now)).status_code
        == 401
    )
    assert call(
        "POST", "/slack/events", content=slack_body, headers=slack_signed(slack_body, "wrong", "abc")
    ).status_code in (401, 422)
    call("POST", "/slack/events", content=slack_body, headers=slack_signed(slack_body, SIGNING, "1000"))  # stale
    call("POST", "/alerts/alertmanager", json={"alerts": [BODY_MARK]}, headers={"Authorization": "Bearer wrong"})
    call("POST", "/alerts/alertmanager", content=f"{{{BODY_MARK}", headers={"Authorization": f"Bearer {ALERTS}"})
    call(
        "POST",
        "/ingest/logs",
        content=f'{{"events": [{{"message": "{BODY_MARK}"',
        headers={"Content-Type": "application/json"},
    )
    call("POST", "/ingest/logs", json={"events": [{"timestamp": "x", "message": BODY_MARK}]})
    call("POST", "/v1/logs", content=BODY_MARK.encode(), headers={"Content-Type": "application/x-protobuf"})
    explained = call("POST", "/explain", json={"service": "checkout", "question": f"why {BODY_MARK}?"})
    assert explained.status_code in (200, 404), explained.text  # the LLM cannot be reached: evidence-only

    # engines that cannot be reached through URLs with credentials: the errors name the URL without them
    def use_graph() -> None:  # the graph connects lazily (serve starts with it down): its first use says
        svc = open_services(secret_settings, vectors=False)
        try:
            svc.graph.services() if svc.graph else None
        finally:
            svc.close()

    for opener in (use_graph, lambda: open_vector_store(secret_settings).collections()):
        with warnings.catch_warnings(), pytest.raises(DevMeshError) as failed:
            warnings.simplefilter("ignore")  # qdrant-client: "Api key is used with an insecure connection"
            opener()
        outputs.append(str(failed.value) + repr(failed.value.to_dict()))
    assert "devmesh:***@127.0.0.1" in outputs[-2]

    everything = "\n".join(outputs + [record_text(r) for r in caplog.records])
    assert len(caplog.records) > 0
    for secret in secrets():
        assert secret not in everything, (
            f"{secret} leaked:\n" + "\n".join(line for line in everything.splitlines() if secret in line)[:2000]
        )
    if key:
        assert key not in everything


def test_backend_info_hides_every_url_credential(services: Services, secret_settings: Settings) -> None:
    shown = repr(backend_info(replace(services, settings=secret_settings)))
    assert not any(s in shown for s in secrets())
    assert "falkordb:redis://devmesh:***@" in shown
