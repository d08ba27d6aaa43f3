"""Access as users meet it: `devmesh keys` and `devmesh audit` as subprocesses, `devmesh serve` refusing to
listen beyond loopback without a key, a live server wanting keys, and the real OpenTelemetry exporter sending
its key through OTEL_EXPORTER_OTLP_HEADERS (all on 127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import requests
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from api.http.app import create_app
from api.keystore import KeyStore
from api.wiring import Services
from core.settings import Settings
from tests.cli import DEVMESH, devmesh, env_of, out
from tests.conftest import free_port

NS = 10**9


def test_keys_create_list_revoke_and_the_audit_show_them(settings: Settings) -> None:
    created = out(
        devmesh(settings, "keys", "create", "--scope", "ingest", "--scope", "read", "--name", "ship", "--json")
    )
    assert set(created) == {"key", "id", "scopes"}
    assert created["key"].startswith("dmk_") and created["scopes"] == ["ingest", "read"]

    text = settings.keys_path.read_text()
    assert created["key"] not in text  # stored hashed only

    listed = out(devmesh(settings, "keys", "list", "--json"))
    assert [(k["id"], k["name"], k["scopes"], k["revoked"]) for k in listed] == [
        (created["id"], "ship", ["ingest", "read"], None)
    ]
    assert created["key"] not in json.dumps(listed) and "sha256" not in listed[0]

    human = devmesh(settings, "keys", "create", "--scope", "admin").stdout.decode()
    assert "dmk_" in human and "only time" in human
    devmesh(settings, "keys", "revoke", created["id"])
    listed = out(devmesh(settings, "keys", "list", "--json"))
    assert listed[0]["revoked"] is not None and listed[1]["revoked"] is None

    bad = devmesh(settings, "keys", "create", "--scope", "write", expect=1)
    assert b"unknown scope 'write'" in bad.stderr
    devmesh(settings, "keys", "revoke", "key_nope", expect=1)

    audit = out(devmesh(settings, "audit", "--json"))
    assert [(a["method"], a["path"], a["key_id"]) for a in audit] == [
        ("CLI", "keys create", created["id"]),
        ("CLI", "keys create", listed[1]["id"]),
        ("CLI", "keys revoke", created["id"]),
    ]
    assert out(devmesh(settings, "audit", "--since", "1h", "--limit", "1", "--json")) == audit[-1:]
    assert out(devmesh(settings, "audit", "--since", "2099-01-01T00:00:00Z", "--json")) == []
    log_text = settings.audit_path.read_text()
    assert created["key"] not in log_text


@pytest.mark.parametrize("how", ["flag", "env"])
def test_serve_refuses_to_listen_beyond_loopback_without_a_key(settings: Settings, how: str) -> None:
    env = env_of(settings)
    args = [str(DEVMESH), "serve", "--port", str(free_port())]
    if how == "flag":
        args += ["--host", "0.0.0.0"]
    else:
        env["DEVMESH_API_HOST"] = "0.0.0.0"
    proc = subprocess.run(args, capture_output=True, env=env, timeout=120, check=False)
    assert proc.returncode != 0
    message = " ".join(proc.stderr.decode().split())
    assert "devmesh keys create --scope admin" in message and "0.0.0.0" in message
    assert b"Traceback" not in proc.stderr


def test_served_with_a_key_wants_it_and_says_so(settings: Settings) -> None:
    raw, key = KeyStore(settings.keys_path).create(["read"], "dash")
    admin_raw, admin = KeyStore(settings.keys_path).create(["admin"], "worker")
    port = free_port()
    env = {**env_of(settings), "DEVMESH_LOG_LEVEL": "INFO"}
    proc = subprocess.Popen(
        [str(DEVMESH), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, trust_env=False, timeout=10) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if http.get("/health").status_code in (200, 503):
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "devmesh serve did not come up"
                time.sleep(0.2)
            assert http.get("/info").status_code == 401
            assert http.get("/info", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
            assert http.post("/detect/run", json={}, headers={"Authorization": f"Bearer {raw}"}).status_code == 403
        # the CLI sends DEVMESH_API_KEY where it talks HTTP (the compose worker's `detect --server`)
        worker_env = {**env_of(settings), "DEVMESH_API_KEY": admin_raw}
        detect = [str(DEVMESH), "detect", "--server", url, "--no-explain", "--json"]
        ran = subprocess.run(detect, capture_output=True, env=worker_env, timeout=300, check=False)
        assert ran.returncode == 0, ran.stderr.decode()[-2000:]
        assert "runs" in json.loads(ran.stdout)
        refused = subprocess.run(detect, capture_output=True, env=env_of(settings), timeout=300, check=False)
        assert refused.returncode == 1 and b"answered 401" in refused.stderr
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=30)
    assert "access: API keys required (2 active)" in err.decode()
    audit = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    assert [(a["key_id"], a["path"], a["status"]) for a in audit] == [
        (key.id, "/detect/run", 403),
        (admin.id, "/detect/run", 200),
        ("-", "/detect/run", 401),
    ]


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def export_logs(url: str) -> Any:
    provider = LoggerProvider(resource=Resource.create({"service.name": "checkout", "host.name": "node-7"}))
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.get_logger("shop").emit(
        timestamp=(time.time_ns() // NS - 600) * NS, severity_number=SeverityNumber.ERROR, body="cart query failed"
    )
    exporter = OTLPLogExporter(endpoint=f"{url}/v1/logs", timeout=20, session=session())  # headers from the env
    try:
        return exporter.export(memory.get_finished_logs())
    finally:
        exporter.shutdown()
        provider.shutdown()


def test_the_otel_exporter_sends_its_key_from_otel_exporter_otlp_headers(
    settings: Settings,
    open_fn: Callable[[Settings], Services],
    serve: Callable[[Any], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = KeyStore(settings.keys_path)
    ingest_key, _ = store.create(["ingest"], "otel-collector")
    read_key, _ = store.create(["read"], "reader")
    live = serve(create_app(settings, open_fn=open_fn))

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_HEADERS", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_LOGS_HEADERS", raising=False)
    assert export_logs(live.url) == LogRecordExportResult.FAILURE  # no key: 401
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{read_key}")
    assert export_logs(live.url) == LogRecordExportResult.FAILURE  # a key without the ingest scope: 403
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{ingest_key}")
    assert export_logs(live.url) == LogRecordExportResult.SUCCESS

    with httpx.Client(base_url=live.url, trust_env=False) as http:
        r = http.get("/query/logs", headers={"Authorization": f"Bearer {read_key}"})
    assert [(e["service"], e["message"]) for e in r.json()["events"]] == [("checkout", "cart query failed")]
    audit = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    assert [(a["name"], a["path"], a["status"]) for a in audit] == [
        ("", "/v1/logs", 401),
        ("reader", "/v1/logs", 403),
        ("otel-collector", "/v1/logs", 200),
    ]
