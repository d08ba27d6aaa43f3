"""The attack cases of issue 11, each a request (or a few) an attacker or a careless client sends.

Every case says what a sound server answers (`expect`: the acceptable statuses) and may check what the
server holds afterwards (`check`: nothing stored, the incident unchanged). The runner (`bench.attack`)
measures each against a live `devmesh serve`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import hmac
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

FOUR_XX = frozenset(range(400, 500))
PROTOBUF_GZIP = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}


@dataclass
class Ctx:
    """What the cases share: the server's URL, the keys by scope, a real incident, the Slack secret."""

    url: str
    keys: dict[str, str]
    incident_id: str | None = None
    slack_secret: str = ""
    replayed: dict[str, Any] = field(default_factory=dict)

    def headers(self, scope: str | None = "admin", **extra: str) -> dict[str, str]:
        h = {"content-type": "application/json", **extra}
        if scope is not None and scope in self.keys:
            h["authorization"] = f"Bearer {self.keys[scope]}"
        return h


@dataclass
class Case:
    name: str
    what: str
    send: Callable[[httpx.Client, Ctx], httpx.Response | list[httpx.Response]]
    expect: frozenset[int] = FOUR_XX
    check: Callable[[httpx.Client, Ctx], str | None] | None = None
    settle_cap_s: float = 15.0
    prepare: Callable[[], object] | None = None
    """Built before the clock starts (a big body), so the case's time is the server's, not the client's."""


# -- bodies -------------------------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def empty_records_bomb(records: int = 8_300_000, inner_field: int = 2) -> bytes:
    """ExportLogsServiceRequest (or traces: same nesting, spans are field 2 too) with RECORDS empty records,
    gzip-compressed: a few KB on the wire, millions of objects once decoded."""
    inner = b"\x12\x00" * records if inner_field == 2 else _field(inner_field, b"") * records
    return gzip.compress(_field(1, _field(2, inner)), compresslevel=9)


def _log(message: str, **extra: Any) -> dict[str, Any]:
    return {"timestamp": time.time_ns(), "service": "bench-attack", "level": "ERROR", "message": message, **extra}


def _count_logs(client: httpx.Client, ctx: Ctx, marker: str) -> int:
    r = client.get(f"{ctx.url}/query/logs", params={"contains": marker, "since": "1d"}, headers=ctx.headers("admin"))
    if r.status_code != 200:
        return -1
    items = r.json().get("items", r.json().get("logs", []))
    return len(items)


def nothing_stored(marker: str) -> Callable[[httpx.Client, Ctx], str | None]:
    def check(client: httpx.Client, ctx: Ctx) -> str | None:
        n = _count_logs(client, ctx, marker)
        return None if n == 0 else f"{n} log lines with {marker!r} were stored"

    return check


def incident_unchanged(client: httpx.Client, ctx: Ctx) -> str | None:
    if ctx.incident_id is None:
        return "no incident to check"
    r = client.get(f"{ctx.url}/incidents/{ctx.incident_id}", headers=ctx.headers("admin"))
    if r.status_code != 200:
        return f"GET incident answered {r.status_code}"
    inc = r.json()["incident"]
    if inc.get("status") != "open":
        return f"incident status is {inc.get('status')}"
    if inc.get("feedback"):
        return "feedback was stored"
    return None


def _slack_signed(secret: str, body: str, ts: str | None = None) -> dict[str, str]:
    ts = ts or str(int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sig,
    }


SLACK_BODY = "token=x&team_id=T1&channel_id=C1&user_id=U1&command=%2Fdevmesh&text=help&response_url=&trigger_id=t1"


def _alert(i: int, starts_at: str | None = None) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": f"BenchAttack{i}", "service": f"svc-{i}", "severity": "critical"},
        "annotations": {"summary": "attack bench"},
        "startsAt": starts_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fingerprint": f"attack-{i}-{time.time_ns()}",
    }


def _alert_payload(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "devmesh", "alerts": alerts}


# -- the cases ----------------------------------------------------------------------------------------------
ROUTES_NEEDING_A_KEY: list[tuple[str, str, Any]] = [
    ("POST", "/ingest/logs", [_log("no key")]),
    ("POST", "/v1/logs", {"resourceLogs": []}),
    ("GET", "/query/logs", None),
    ("GET", "/search/logs?q=timeout", None),
    ("GET", "/info", None),
    ("GET", "/incidents", None),
    ("POST", "/explain", {"service": "bench-attack"}),
    ("POST", "/incidents/{id}/feedback", {"root_cause": "forged"}),
    ("POST", "/incidents/{id}/resolve", None),
    ("POST", "/alerts/alertmanager", _alert_payload([_alert(0)])),
    ("POST", "/detect/run", {}),
]


def _no_key(method: str, path: str, body: Any) -> Case:
    def send(client: httpx.Client, ctx: Ctx) -> httpx.Response:
        url = ctx.url + path.replace("{id}", ctx.incident_id or "none")
        return client.request(method, url, json=body, headers={"content-type": "application/json"})

    return Case(f"no_key {method} {path}", "a route called without credentials", send, frozenset({401}))


def _post(path: str, body: Any, scope: str | None = "admin", **headers: str) -> Callable[..., httpx.Response]:
    def send(client: httpx.Client, ctx: Ctx) -> httpx.Response:
        content = body if isinstance(body, bytes | str) else json.dumps(body)
        return client.post(
            ctx.url + path.replace("{id}", ctx.incident_id or "none"),
            content=content,
            headers=ctx.headers(scope, **headers),
        )

    return send


def _get(path: str, params: dict[str, str], scope: str = "admin", **headers: str) -> Callable[..., httpx.Response]:
    def send(client: httpx.Client, ctx: Ctx) -> httpx.Response:
        return client.get(ctx.url + path, params=params, headers=ctx.headers(scope, **headers))

    return send


@functools.cache
def inflating_body(encoding: str) -> bytes:
    """256 MB of one byte, compressed (about 250 KB)."""
    plain = b"0" * (256 * 2**20)
    return gzip.compress(plain, compresslevel=9) if encoding == "gzip" else zlib.compress(plain, 9)


def _inflating(encoding: str) -> Callable[..., httpx.Response]:
    def send(client: httpx.Client, ctx: Ctx) -> httpx.Response:
        return _post("/v1/logs", inflating_body(encoding), **{"content-encoding": encoding})(client, ctx)

    return send


def _alert_flood(client: httpx.Client, ctx: Ctx) -> list[httpx.Response]:
    """Five POSTs of 20 distinct firing alerts each, as fast as the server answers."""
    return [
        client.post(
            f"{ctx.url}/alerts/alertmanager",
            content=json.dumps(_alert_payload([_alert(100 * k + i) for i in range(20)])),
            headers=ctx.headers("admin"),
        )
        for k in range(5)
    ]


def _explain_burst(client: httpx.Client, ctx: Ctx) -> list[httpx.Response]:
    """60 POST /explain with a misspelled field (cheap to refuse) from one key: the rate limit must answer 429."""
    return [
        client.post(f"{ctx.url}/explain", content='{"servce": "x"}', headers=ctx.headers("admin")) for _ in range(60)
    ]


def _slack_abc(client: httpx.Client, ctx: Ctx) -> httpx.Response:
    headers = _slack_signed(ctx.slack_secret, SLACK_BODY)
    headers["x-slack-request-timestamp"] = "abc"
    return client.post(f"{ctx.url}/slack/commands", content=SLACK_BODY, headers=headers)


def cases() -> list[Case]:
    far = "999999999999d"
    out = [_no_key(m, p, b) for m, p, b in ROUTES_NEEDING_A_KEY]
    out += [
        Case(
            "forged_feedback_ingest_key",
            "feedback naming an arbitrary root cause, with a key that may only ingest",
            _post("/incidents/{id}/feedback", {"root_cause": "forged-service"}, scope="ingest"),
            frozenset({403}),
            incident_unchanged,
        ),
        Case(
            "resolve_no_body_read_key",
            "POST /incidents/{id}/resolve with no body and a read-only key",
            _post("/incidents/{id}/resolve", b"", scope="read"),
            frozenset({403}),
            incident_unchanged,
        ),
        Case(
            "host_rebinding",
            "GET /info with Host: rebind.attacker.example (DNS rebinding)",
            lambda c, x: c.get(f"{x.url}/info", headers={**x.headers(), "host": "rebind.attacker.example"}),
        ),
        Case(
            "cross_origin_text_plain_write",
            "POST /ingest/logs as text/plain from a foreign Origin (a web page writing)",
            _post(
                "/ingest/logs",
                [_log("xorigin-marker-7731")],
                **{"content-type": "text/plain", "origin": "http://evil.example"},
            ),
            check=nothing_stored("xorigin-marker-7731"),
        ),
        Case(
            "otlp_logs_8m_empty_records",
            "16 KB gzip OTLP logs request holding 8.3 million empty records",
            _post("/v1/logs", empty_records_bomb(), **PROTOBUF_GZIP),
        ),
        Case(
            "otlp_traces_8m_empty_spans",
            "the same with 8.3 million empty spans on /v1/traces",
            _post("/v1/traces", empty_records_bomb(), **PROTOBUF_GZIP),
        ),
        Case(
            "gzip_bomb_json",
            "a gzip body that inflates to 256 MB, as OTLP JSON",
            _inflating("gzip"),
            prepare=lambda: inflating_body("gzip"),
        ),
        Case(
            "deflate_bomb_json",
            "a deflate body that inflates to 256 MB, as OTLP JSON",
            _inflating("deflate"),
            prepare=lambda: inflating_body("deflate"),
        ),
        Case("deep_json", "100,000 nested arrays to POST /ingest/logs", _post("/ingest/logs", "[" * 100_000)),
        Case(
            "alert_flood",
            "five Alertmanager POSTs of 20 distinct alerts each",
            _alert_flood,
            frozenset({200, 202, 429, 503}),
            settle_cap_s=90.0,
        ),
        Case(
            "ingest_timestamp_5000_digits",
            "a log event whose timestamp has 5,000 digits",
            _post(
                "/ingest/logs",
                json.dumps([_log("ts-marker-5000")]).replace('"timestamp": ', '"timestamp": ' + "9" * 4990, 1),
            ),
            check=nothing_stored("ts-marker-5000"),
        ),
        Case("explain_at_ns_1e23", "POST /explain {at_ns: 1e23}", _post("/explain", '{"at_ns": 1e23}')),
        Case("explain_unknown_field", "POST /explain with a misspelled field", _post("/explain", {"servce": "x"})),
        Case("query_logs_since_far", f"GET /query/logs?since={far}", _get("/query/logs", {"since": far})),
        Case("query_logs_until_far", f"GET /query/logs?until={far}", _get("/query/logs", {"until": far})),
        Case("search_logs_since_far", f"GET /search/logs?since={far}", _get("/search/logs", {"q": "x", "since": far})),
        Case("search_logs_until_far", f"GET /search/logs?until={far}", _get("/search/logs", {"q": "x", "until": far})),
        Case("incidents_since_far", f"GET /incidents?since={far}", _get("/incidents", {"since": far})),
        Case("incidents_until_far", f"GET /incidents?until={far}", _get("/incidents", {"until": far})),
        Case("slack_timestamp_abc", "a Slack request with X-Slack-Request-Timestamp: abc", _slack_abc),
        Case(
            "alert_starts_year_2",
            "an alert starting in year 2",
            _post("/alerts/alertmanager", _alert_payload([_alert(900, "0002-01-01T00:00:00Z")])),
        ),
        Case(
            "alert_starts_year_9999",
            "an alert starting in year 9999",
            _post("/alerts/alertmanager", _alert_payload([_alert(901, "9999-01-01T00:00:00Z")])),
        ),
        # last: it spends the caller's explain budget, which would turn the cases after it into 429s
        Case(
            "explain_burst",
            "60 POST /explain in a row from one key",
            _explain_burst,
            frozenset({422, 429}),
        ),
    ]
    return out


def slack_first(client: httpx.Client, ctx: Ctx) -> httpx.Response:
    """A signed slash command, kept so that it can be replayed after the server restarts."""
    headers = _slack_signed(ctx.slack_secret, SLACK_BODY)
    ctx.replayed = headers
    return client.post(f"{ctx.url}/slack/commands", content=SLACK_BODY, headers=headers)


def slack_replay(client: httpx.Client, ctx: Ctx) -> httpx.Response:
    return client.post(f"{ctx.url}/slack/commands", content=SLACK_BODY, headers=ctx.replayed)


SLACK_REPLAY = Case(
    "slack_replay_after_restart",
    "a signed Slack request accepted, the server restarted, the same request sent again",
    slack_replay,
    FOUR_XX,
)
