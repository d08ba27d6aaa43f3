"""POST /ingest/journald through `create_app` with the real engines: the journald reader's fields kept, a
resent entry stored once, bad entries named by index, the ingest limits (entries, body, gzip) enforced."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.wiring import Services
from core.settings import Settings
from tests.integration.test_api import everything

T_US = 1_760_000_000_000_000
MAX_EVENTS = 50


@pytest.fixture
def client(settings: Settings, open_fn: Callable[[Settings], Services]) -> Iterator[TestClient]:
    s = settings.model_copy(update={"max_batch_events": MAX_EVENTS, "max_body_bytes": 64 * 1024})
    with TestClient(create_app(s, open_fn=open_fn), raise_server_exceptions=False) as c:
        yield c


def entry(i: int, **fields: Any) -> dict[str, Any]:
    return {
        "__CURSOR": f"s=5e1;i={i:x};b=b007",
        "__REALTIME_TIMESTAMP": str(T_US + i * 1000),
        "_HOSTNAME": "atlas",
        "_SYSTEMD_UNIT": "postgresql.service",
        "SYSLOG_IDENTIFIER": "postgres",
        "PRIORITY": "3" if i % 2 else "6",
        "MESSAGE": f"connection {i} closed",
        **fields,
    }


def test_entries_are_stored_with_host_unit_and_priority_and_a_resend_is_a_duplicate(client: TestClient) -> None:
    entries = [entry(i) for i in range(6)]
    r = client.post("/ingest/journald", json={"entries": entries})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("received", "accepted", "stored", "duplicates", "rejected")} == {
        "received": 6,
        "accepted": 6,
        "stored": 6,
        "duplicates": 0,
        "rejected": 0,
    }
    body = gzip.compress(json.dumps(entries[3:] + [entry(6)]).encode())  # a bare list, gzip, half resent
    again = client.post(
        "/ingest/journald", content=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert again.status_code == 200, again.text
    assert (again.json()["stored"], again.json()["duplicates"]) == (1, 3)
    stored = everything(client)
    assert len(stored) == 7
    first = next(e for e in stored if e["message"] == "connection 1 closed")
    assert (first["service"], first["host"], first["level"], first["source"]) == (
        "postgres",
        "atlas",
        "ERROR",
        "journald",
    )
    assert first["meta"]["_SYSTEMD_UNIT"] == "postgresql.service" and first["meta"]["__CURSOR"] == "s=5e1;i=1;b=b007"


def test_bad_entries_are_named_by_index_and_the_good_ones_kept(client: TestClient) -> None:
    entries = [entry(0), {"MESSAGE": "no time"}, "not an object", entry(3, MESSAGE=list(b"bytes \xff ok"))]
    r = client.post("/ingest/journald", json=entries)
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 2 and r.json()["rejected"] == 2
    assert [(e["index"], e["field"]) for e in r.json()["errors"]] == [
        (1, "entries[1].__REALTIME_TIMESTAMP"),
        (2, "entries[2]"),
    ]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"events": []}, 422, "body"),
        ({"entries": {"a": 1}}, 422, "entries"),
        ([entry(i) for i in range(MAX_EVENTS + 1)], 413, "entries"),
    ],
)
def test_malformed_and_oversized_requests_are_refused(client: TestClient, body: Any, status: int, field: str) -> None:
    r = client.post("/ingest/journald", json=body)
    assert (r.status_code, r.json()["field"]) == (status, field), r.text
    assert everything(client) == []


def test_a_gzip_bomb_is_refused_before_it_is_inflated(client: TestClient) -> None:
    bomb = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]")
    r = client.post(
        "/ingest/journald", content=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert (r.status_code, r.json()["field"]) == (413, "body")
