"""Repeatable query parameters (service, host, template_id): the schema says what the wire carries, and any text,
control characters included, is accepted and matched exactly.

The contract test once failed on GET /query/logs: the schema declared `host` as an array of strings (or null), so
schemathesis took a single value (`host=false`, `host=<text with a NUL byte>`) for a schema violation, but on the
wire one value of a repeatable parameter is one string, which the handler rightly reads as a list of one. The
schema now declares a string or an array of strings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.wiring import Services
from core.settings import Settings
from core.timeutil import NS, iso

T = 1_700_000_000 * NS
REPEATABLE = {"/query/logs": ("service", "host", "template_id"), "/search/logs": ("service", "host")}


@pytest.fixture
def client(settings: Settings, open_fn: Callable[[Settings], Services]) -> Any:
    with TestClient(create_app(settings, open_fn=open_fn)) as c:
        yield c


def test_every_array_query_parameter_also_takes_one_string(client: TestClient) -> None:
    """Across every operation: a query parameter that may be an array may also be one string (one value)."""
    seen: dict[str, set[str]] = {}
    for path, item in client.get("/openapi.json").json()["paths"].items():
        for operation in item.values():
            for p in operation.get("parameters", []):
                branches = p["schema"].get("anyOf", [p["schema"]])
                if p["in"] == "query" and any(b.get("type") == "array" for b in branches):
                    assert {"type": "string"} in branches, (path, p["name"], p["schema"])
                    seen.setdefault(path, set()).add(p["name"])
    for path, names in REPEATABLE.items():
        assert set(names) <= seen.get(path, set()), path


@pytest.mark.parametrize("value", ["checkout\x00", "\x00", "check\x01out", "false", ""])
def test_a_filter_value_with_control_characters_is_accepted_and_matched_exactly(client: TestClient, value: str) -> None:
    line = {"timestamp": iso(T), "service": "checkout", "host": "node-1", "level": "ERROR", "message": "boom"}
    assert client.post("/ingest/logs", json=[line]).json()["stored"] == 1
    for path, names in REPEATABLE.items():
        for name in names:
            params: dict[str, Any] = {name: value, **({"q": "boom"} if path == "/search/logs" else {})}
            r = client.get(path, params=params)
            assert r.status_code == 200, (path, name, r.text)
            assert r.json()["events" if path == "/query/logs" else "hits"] == [], (path, name)
    found = client.get("/query/logs", params={"service": ["nothing", "checkout"], "host": "node-1"}).json()
    assert [e["message"] for e in found["events"]] == ["boom"]
