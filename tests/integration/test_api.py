"""The HTTP API through FastAPI's TestClient and a real uvicorn server on 127.0.0.1, on real engines."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

from api.engine_port import EnginePort
from api.http.app import create_app
from api.wiring import Services
from core.settings import Settings

NS = 10**9
T = 1_760_000_000 * NS  # 2025-10-09T08:53:20Z
MAX_BODY = 64 * 1024
MAX_EVENTS = 50


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_body_bytes": MAX_BODY, "max_batch_events": MAX_EVENTS})


@pytest.fixture
def client(api_settings: Settings, open_fn: Callable[[Settings], Services]) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings, open_fn=open_fn), raise_server_exceptions=False) as c:
        yield c


def event(i: int, **fields: Any) -> dict[str, Any]:
    return {"timestamp": (T + i * NS) // 1000, "message": f"job {i} finished in {i * 3} ms", **fields}


def iso(ns: int) -> str:
    from core.timeutil import iso as to_iso

    return to_iso(ns)


def everything(client: TestClient) -> list[dict[str, Any]]:
    """Every stored line, walking the cursor."""
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000, "order": "asc"}
    while True:
        page = client.get("/query/logs", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        out += body["events"]
        if not body["next_cursor"]:
            return out
        params["cursor"] = body["next_cursor"]


# -- POST /ingest/logs ---------------------------------------------------------------------------------


def test_ingest_valid_then_partial_batches(client: TestClient) -> None:
    r = client.post("/ingest/logs", json={"events": [event(i, service="jobs") for i in range(3)]})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "received": 3,
        "accepted": 3,
        "stored": 3,
        "duplicates": 0,
        "rejected": 0,
        "errors": [],
        "new_templates": 1,
    }

    batch = [event(3), {"message": "no time"}, event(4, level=7), "text", event(0, service="jobs")]
    r = client.post("/ingest/logs", json=batch)  # a bare list is a batch too
    assert r.status_code == 200, r.text
    assert r.json() == {
        "received": 5,
        "accepted": 2,
        "stored": 1,
        "duplicates": 1,
        "rejected": 3,
        "errors": [
            {"index": 1, "field": "events[1].timestamp", "problem": "required field is missing"},
            {"index": 2, "field": "events[2].level", "problem": "Input should be a valid string"},
            {"index": 3, "field": "events[3]", "problem": "must be a JSON object"},
        ],
        "new_templates": 0,
    }
    stored = everything(client)
    assert [(e["ts_ns"], e["service"], e["message"], e["source"]) for e in stored] == [
        (T, "jobs", "job 0 finished in 0 ms", "api"),
        (T + NS, "jobs", "job 1 finished in 3 ms", "api"),
        (T + 2 * NS, "jobs", "job 2 finished in 6 ms", "api"),
        (T + 3 * NS, "", "job 3 finished in 9 ms", "api"),
    ]
    assert stored[0]["ts"] == "2025-10-09T08:53:20Z"
    assert len({e["template_id"] for e in stored}) == 1


BAD_REQUESTS = [
    pytest.param({"json": {"events": "x"}}, 422, "events", id="events-not-a-list"),
    pytest.param({"json": {"other": 1}}, 422, "body", id="no-events"),
    pytest.param({"json": 42}, 422, "body", id="a-number"),
    pytest.param({"content": b'{"events": [ {"timestamp": 1'}, 422, "body", id="malformed-json"),
    pytest.param({"content": b""}, 422, "body", id="empty"),
    pytest.param({"content": b'{"events": [\xff\xfe]}'}, 422, "body", id="invalid-utf8"),
    pytest.param({"content": b'{"events": [{"timestamp": NaN, "message": "m"}]}'}, 422, "body", id="nan"),
    pytest.param({"content": b"[" * 30_000 + b"]" * 30_000}, 422, "body", id="nested-too-deep"),
    pytest.param({"json": {"events": [event(i) for i in range(MAX_EVENTS + 1)]}}, 413, "events", id="too-many"),
    pytest.param({"content": b" " * (MAX_BODY + 1)}, 413, "body", id="content-length-too-large"),
    pytest.param({"content": iter([b'{"events": [', b" " * MAX_BODY, b"]}"])}, 413, "body", id="streamed-too-large"),
]


@pytest.mark.parametrize(("request_kw", "status", "field"), BAD_REQUESTS)
def test_bad_ingest_requests_are_refused_and_change_nothing(
    client: TestClient, request_kw: dict[str, Any], status: int, field: str
) -> None:
    assert client.post("/ingest/logs", json=[event(i, service="jobs") for i in range(3)]).status_code == 200
    before = everything(client)

    r = client.post("/ingest/logs", headers={"content-type": "application/json"}, **request_kw)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["field"] == field, body
    assert body["error"] == ("PayloadTooLarge" if status == 413 else "InvalidInput")
    assert body["message"]
    assert everything(client) == before


@pytest.mark.parametrize(
    "events",
    [
        [{"message": "x"}, event(1, timestamp="soon")],
        [event(0, timestamp=True), event(1, timestamp="1999-01-01")],
    ],
    ids=["missing-and-unreadable", "boolean-and-1999"],
)
def test_all_invalid_batch_lists_every_problem_and_stores_nothing(client: TestClient, events: list[Any]) -> None:
    """A batch is answered event by event (as the schema says): none valid is a batch with every event listed."""
    r = client.post("/ingest/logs", json=events)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["received"], body["accepted"], body["stored"], body["rejected"]) == (2, 0, 0, 2)
    assert [d["field"] for d in body["errors"]] == ["events[0].timestamp", "events[1].timestamp"]
    assert everything(client) == []


# -- GET /query/logs -----------------------------------------------------------------------------------

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def seed(client: TestClient) -> list[dict[str, Any]]:
    """24 lines: 3 services x 2 hosts x 4 levels; one trace; two message shapes."""
    events = []
    services = ["auth", "checkout", "payment"]
    levels = ["DEBUG", "INFO", "WARN", "ERROR"]
    for i in range(24):
        svc = services[i % 3]
        level = levels[i % 4]
        msg = f"payment declined for order {i}" if level == "ERROR" else f"job {i} finished in {i} ms"
        events.append(
            {
                "timestamp": iso(T + i * NS),
                "message": msg,
                "service": svc,
                "host": f"node-{i % 2}",
                "level": level,
                "trace_id": TRACE if i in (4, 5, 6) else "",
            }
        )
    r = client.post("/ingest/logs", json={"events": events})
    assert r.status_code == 200 and r.json()["stored"] == 24
    return events


def query(client: TestClient, **params: Any) -> list[int]:
    """Seconds after T of the lines a query returns (one page)."""
    r = client.get("/query/logs", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return [(e["ts_ns"] - T) // NS for e in r.json()["events"]]


def test_query_logs_filters(client: TestClient) -> None:
    seed(client)
    assert query(client) == list(range(23, -1, -1))  # newest first by default
    assert query(client, order="asc") == list(range(24))
    assert query(client, service="auth", order="asc") == [0, 3, 6, 9, 12, 15, 18, 21]
    assert query(client, service=["auth", "payment"], order="asc") == [
        0,
        2,
        3,
        5,
        6,
        8,
        9,
        11,
        12,
        14,
        15,
        17,
        18,
        20,
        21,
        23,
    ]
    assert query(client, host="node-1", service="checkout", order="asc") == [1, 7, 13, 19]
    assert query(client, level="warn", order="asc") == [2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23]
    assert query(client, level="ERROR", order="asc") == [3, 7, 11, 15, 19, 23]
    assert query(client, trace_id=TRACE, order="asc") == [4, 5, 6]
    assert query(client, contains="DECLINED", order="asc") == [3, 7, 11, 15, 19, 23]
    assert query(client, since=iso(T + 20 * NS), order="asc") == [20, 21, 22, 23]
    assert query(client, until=iso(T + 2 * NS), order="asc") == [0, 1]
    assert query(client, since=str((T + 5 * NS) // NS), until=iso(T + 8 * NS), order="asc") == [5, 6, 7]
    assert query(client, since="2h", service="nobody") == []

    first = client.get("/query/logs", params={"limit": 1, "order": "asc", "level": "ERROR"}).json()["events"][0]
    assert first["message"] == "payment declined for order 3" and first["level"] == "ERROR"
    assert query(client, template_id=first["template_id"], order="asc") == [3, 7, 11, 15, 19, 23]
    assert set(first) >= {"event_id", "ts", "ts_ns", "service", "host", "level", "message", "template_id", "meta"}


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cursor_pagination_walks_every_row_once(client: TestClient, order: str) -> None:
    seed(client)
    # lines at the same instant too, so the cursor must order by event id within a timestamp
    same = [{"timestamp": iso(T + 30 * NS), "message": f"tick {i}", "service": "clock"} for i in range(5)]
    assert client.post("/ingest/logs", json=same).json()["stored"] == 5
    seen: list[int] = []
    pages = 0
    params: dict[str, Any] = {"limit": 4, "order": order}
    while True:
        body = client.get("/query/logs", params=params).json()
        pages += 1
        seen += [e["event_id"] for e in body["events"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert pages == 8
    assert len(seen) == len(set(seen)) == 29
    assert seen == [
        e["event_id"] for e in client.get("/query/logs", params={"limit": 1000, "order": order}).json()["events"]
    ]

    filtered: list[int] = []
    params = {"limit": 2, "order": order, "service": "auth"}
    while True:
        body = client.get("/query/logs", params=params).json()
        filtered += [(e["ts_ns"] - T) // NS for e in body["events"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert sorted(filtered) == [0, 3, 6, 9, 12, 15, 18, 21]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"level": "LOUD"}, "level"),
        ({"since": "yesterday-ish"}, "since"),
        ({"until": "nope"}, "until"),
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"trace_id": "x" * 65}, "trace_id"),
    ],
)
def test_bad_query_parameters_name_the_parameter(client: TestClient, params: dict[str, Any], field: str) -> None:
    r = client.get("/query/logs", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_a_cursor_only_works_for_its_own_query(client: TestClient) -> None:
    """A cursor is opaque: one this query did not give names no page (404 naming the cursor)."""
    seed(client)
    cursor = client.get("/query/logs", params={"limit": 2, "service": "auth"}).json()["next_cursor"]
    assert cursor
    for params in ({"service": "payment"}, {"service": "auth", "order": "asc"}, {"cursor": "not-a-cursor"}):
        r = client.get("/query/logs", params={"limit": 2, "cursor": cursor, **params})
        assert (r.status_code, r.json()["field"]) == (404, "cursor"), r.text
    r = client.get("/query/logs", params={"cursor": "eyJ2IjoxfQ"})  # base64 of {"v":1}
    assert (r.status_code, r.json()["field"]) == (404, "cursor"), r.text


def test_a_window_that_ends_before_it_starts_holds_nothing(client: TestClient) -> None:
    seed(client)
    r = client.get("/query/logs", params={"since": iso(T + 10 * NS), "until": iso(T)})
    assert r.status_code == 200, r.text
    assert r.json() == {"events": [], "next_cursor": None}


# -- GET /search/logs on the real MiniLM -----------------------------------------------------------------


@pytest.mark.minilm
@pytest.mark.slow
def test_search_finds_the_right_template_first(client: TestClient) -> None:
    lines = [
        ("auth", "INFO", "user 17 logged in from 10.0.0.17"),
        ("auth", "INFO", "user 42 logged in from 10.0.0.42"),
        ("checkout", "ERROR", "Connection refused to db-primary:5432"),
        ("checkout", "ERROR", "Connection refused to db-primary:5433"),
        ("payment", "WARN", "payment declined for card ending 4242: insufficient funds"),
        ("payment", "WARN", "payment declined for card ending 1881: insufficient funds"),
        ("search", "INFO", "cache warmed with 5000 entries in 35 ms"),
        ("search", "INFO", "cache warmed with 7000 entries in 41 ms"),
        ("gateway", "ERROR", "upstream request timed out after 30 s"),
        ("gateway", "ERROR", "upstream request timed out after 31 s"),
    ]
    events = [
        {"timestamp": iso(T + i * NS), "service": s, "level": lvl, "message": m} for i, (s, lvl, m) in enumerate(lines)
    ]
    assert client.post("/ingest/logs", json=events).json()["new_templates"] == 5

    def top(q: str, **params: Any) -> dict[str, Any]:
        r = client.get("/search/logs", params={"q": q, **params})
        assert r.status_code == 200, r.text
        return r.json()

    hit = top("cannot connect to the database")["hits"][0]
    assert hit["text"] == "Connection refused to db-primary:<*>"
    assert (hit["count"], hit["level"]) == (2, "ERROR")
    assert [e["message"] for e in hit["examples"]] == [
        "Connection refused to db-primary:5433",
        "Connection refused to db-primary:5432",
    ]
    assert top("customer card was rejected")["hits"][0]["text"].startswith("payment declined for card ending <*>")
    assert top("someone signed in")["hits"][0]["text"] == "user <*> logged in from <*>"
    assert top("the backend took too long to answer")["hits"][0]["text"] == "upstream request timed out after <*> s"

    only_auth = top("cannot connect to the database", service="auth")
    assert [h["text"] for h in only_auth["hits"]] == ["user <*> logged in from <*>"]
    assert only_auth["filters"] == {"service": ["auth"]}
    assert client.get("/search/logs", params={"q": ""}).status_code == 422


# -- GET /health, GET /info, OpenAPI ------------------------------------------------------------------


def test_health_and_info(client: TestClient, api_settings: Settings) -> None:
    seed(client)
    health = client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert (body["status"], body["checks"]) == ("ok", {"events": True, "graph": True, "vectors": True})
    assert body["owed"] == {"graph": 0, "vectors": 0}  # nothing owed to the derived stores
    graph = body["engines"]["graph"]  # supervised; Qdrant Edge is in-process and has no outages of its own
    assert (set(body["engines"]), graph["state"], graph["outages"], graph["restarts"]) == ({"graph"}, "up", 0, 0)

    info = client.get("/info").json()
    assert info["backends"] == {
        "events": "duckdb",
        "graph": f"falkordb:{api_settings.falkordb_url}",
        "vectors": "qdrant-edge",
        "embedder": "hashing-384",
        "llm": "none (evidence-only)",
    }
    assert info["home"] == str(api_settings.home)
    assert {k: v["rows"] for k, v in info["events"]["tables"].items()} == {"logs": 24, "spans": 0, "metrics": 0}
    assert info["events"]["templates"] == {"rows": 2, "unembedded": 0}
    assert info["vectors"] == {"templates": 2}
    nonzero = {k: v for k, v in info["graph"].items() if v}
    assert nonzero == {"Service": 3, "LogTemplate": 2, "EMITS": 6}
    assert info["versions"]["devmesh"] == "0.1.0"


def test_detect_run_runs_detection_from_where_the_last_run_ended(client: TestClient) -> None:
    seed(client)
    end = T + 120 * NS
    body = {"end_ns": end, "window_s": 60, "explain": False}
    first = client.post("/detect/run", json=body)
    assert first.status_code == 200, first.text
    assert [(r["start_ns"], r["end_ns"]) for r in first.json()["runs"]] == [(end - 60 * NS, end)]
    assert {"id", "start", "end", "triggers", "root_cause", "opened", "updated", "took_ms"} <= set(
        first.json()["runs"][0]
    )
    later = client.post("/detect/run", json=body | {"end_ns": end + 180 * NS}).json()["runs"]
    assert [r["start_ns"] for r in later] == [end, end + 60 * NS, end + 120 * NS]  # no gap, no overlap
    bad = client.post("/detect/run", json={"window_s": 5})
    assert (bad.status_code, bad.json()["field"]) == (422, "window_s")


def test_the_port_shares_its_stores_but_gives_each_investigation_its_own_masker(services: Services) -> None:
    """Placeholders (<IP_1>, ...) are numbered per explanation; a shared masker would mix incidents."""
    port = EnginePort(services)
    first, second = port._investigation_tools(), port._investigation_tools()
    assert first.book is second.book is port.tools.book and first.events is services.events
    assert first.masker is not None and second.masker is not None and first.masker is not second.masker
    assert first.masker is not port.tools.masker


README = Path(__file__).resolve().parents[2] / "README.md"


def _route_key(method: str, path: str) -> tuple[str, str]:
    """(METHOD, path) with the query string dropped and path parameters written `{}`."""
    return method.upper(), re.sub(r"\{[^}]*\}", "{}", path.split("?", 1)[0])


def documented_routes() -> set[tuple[str, str]]:
    """The routes in the first column of the README's "HTTP API" table: `METHOD /path`, or `/path` for the
    method of the span before it."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^#+ HTTP API\n(.*?)(?=^#)", text, re.M | re.S)
    assert section is not None, "README.md has no 'HTTP API' section"
    routes = set()
    for line in section.group(1).splitlines():
        if not line.startswith("| `"):
            continue
        method = ""
        for span in re.findall(r"`([^`]+)`", line.split(" | ", 1)[0]):
            *verb, path = span.split()
            method = verb[0] if verb else method
            routes.add(_route_key(method, path))
    return routes


def mounted_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every method and path of the app's API routes (its own documentation pages are not API routes).
    Included routers are walked whether FastAPI keeps them flattened or as included-router entries."""

    def walk(routes: Iterable[BaseRoute], prefix: str) -> Iterator[tuple[str, str]]:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                yield from walk(inner.routes, prefix + getattr(route.include_context, "prefix", ""))
            elif isinstance(route, APIRoute):
                yield from (_route_key(m, prefix + route.path) for m in route.methods)

    return set(walk(app.routes, ""))


def test_every_documented_route_is_mounted_and_every_mounted_route_documented(tmp_path: Path) -> None:
    documented = documented_routes()
    assert ("POST", "/detect/run") in documented and len(documented) >= 18
    mounted = mounted_routes(create_app(Settings(home=tmp_path)))
    assert documented - mounted == set(), "documented in README.md but not mounted"
    assert mounted - documented == set(), "mounted but not in README.md's HTTP API table"


def test_openapi_lists_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    in_spec = {_route_key(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert in_spec == mounted_routes(client.app)  # type: ignore[arg-type]
    ingest = spec["paths"]["/ingest/logs"]["post"]
    batch = ingest["requestBody"]["content"]["application/json"]["schema"]
    assert {"type": "object", "required": ["events"], "properties": {"events": {"type": "array"}}} in batch["anyOf"]
    assert set(spec["paths"]["/v1/logs"]["post"]["requestBody"]["content"]) == {
        "application/x-protobuf",
        "application/json",
    }
    assert client.get("/docs").status_code == 200


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    r = client.get("/nowhere")
    assert (r.status_code, r.json()["error"]) == (404, "HTTPError")
    assert client.get("/ingest/logs").status_code == 405


# -- a real server ------------------------------------------------------------------------------------


def test_real_server_ingests_queries_and_refuses_large_bodies(
    api_settings: Settings, open_fn: Callable[[Settings], Services], serve: Callable[[Any], Any]
) -> None:
    live = serve(create_app(api_settings, open_fn=open_fn))
    with httpx.Client(base_url=live.url, timeout=30) as http:
        assert http.get("/health").json()["status"] == "ok"
        r = http.post("/ingest/logs", json=[event(i, service="jobs") for i in range(3)])
        assert r.status_code == 200 and r.json()["stored"] == 3

        r = http.post("/ingest/logs", content=b" " * (MAX_BODY + 1), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["field"] == "body"

    def chunks() -> Iterator[bytes]:
        yield b'{"events": ['
        for _ in range(4):
            yield b" " * (MAX_BODY // 2)
        yield b"]}"

    with httpx.Client(base_url=live.url, timeout=30) as http:  # a fresh connection: the last one was closed
        r = http.post("/ingest/logs", content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
        assert r.status_code == 413 and r.json() == {
            "error": "PayloadTooLarge",
            "message": f"request body is larger than {MAX_BODY} bytes (DEVMESH_MAX_BODY_BYTES)",
            "field": "body",
        }

    with httpx.Client(base_url=live.url, timeout=30) as http:
        page = http.get("/query/logs", params={"order": "asc"}).json()
        assert [e["message"] for e in page["events"]] == [f"job {i} finished in {i * 3} ms" for i in range(3)]
        assert json.loads(http.get("/openapi.json").text)["info"]["title"] == "DevMesh"
