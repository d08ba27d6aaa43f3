"""The Slack bot end to end: real signed requests into the FastAPI routes, a fake Slack Web API on loopback.

The DevMesh side is `FakePort` (our own boundary, api.port); Slack's side is `FakeSlackAPI`, which
speaks the Web API's wire format and records chat.postMessage, chat.update, chat.postEphemeral, ...
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.chat.commands import USAGE, parse_command
from api.chat.config import SlackConfig
from api.chat.followups import FollowUpKind, classify
from api.chat.replay import ReplayGuard
from api.chat.routes import router as chat_router
from api.chat.slack_app import BUSY, SlackBot
from api.chat.webhook import WebhookFormat, WebhookSender, webhook_payload
from api.http.errors import install_error_handlers
from api.render import slack_blocks as bk
from core.errors import DevMeshError, InvalidInput
from core.explanation import EvidenceItem, EvidenceSource, RunbookLink
from core.incident import IncidentStatus, InvestigationRequest
from core.settings import Settings
from tests.fakes.devmesh_port import FakePort, sample_explanation
from tests.fakes.slack_api import BOT_USER_ID, FakeSlackAPI, SlackCall

TOKEN = "xoxb-1111-2222-tokentokentoken"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
USER = "U0ALICE"
CHANNEL = "C0INCIDENTS"


# -- signed requests ------------------------------------------------------------------------------------


def sign(body: str, *, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
    """Slack's v0 signature: HMAC-SHA256 of 'v0:{timestamp}:{body}' with the signing secret."""
    stamp = str(ts if ts is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def command_body(text: str, *, response_url: str = "", user: str = USER, channel: str = CHANNEL) -> str:
    return urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": "T0001",
            "team_domain": "devmesh-test",
            "channel_id": channel,
            "channel_name": "incidents",
            "user_id": user,
            "user_name": "alice",
            "command": "/devmesh",
            "text": text,
            "api_app_id": "A0DEVMESH",
            "is_enterprise_install": "false",
            "response_url": response_url or "https://hooks.slack.invalid/commands/1",
            "trigger_id": uuid.uuid4().hex,
        }
    )


def event_body(event: dict[str, Any], event_id: str) -> str:
    return json.dumps(
        {
            "token": "deprecated-verification-token",
            "team_id": "T0001",
            "api_app_id": "A0DEVMESH",
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1_700_000_100,
            "authorizations": [{"enterprise_id": None, "team_id": "T0001", "user_id": BOT_USER_ID, "is_bot": True}],
        }
    )


def mention(text: str, ts: str, *, thread_ts: str | None = None, channel: str = CHANNEL) -> dict[str, Any]:
    ev = {
        "type": "app_mention",
        "user": USER,
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    return ev | ({"thread_ts": thread_ts} if thread_ts else {})


def message(text: str, ts: str, *, thread_ts: str, channel: str = CHANNEL) -> dict[str, Any]:
    return {
        "type": "message",
        "channel_type": "channel",
        "user": USER,
        "text": text,
        "ts": ts,
        "thread_ts": thread_ts,
        "channel": channel,
        "event_ts": ts,
    }


def action_body(action: dict[str, Any], *, message_ts: str, thread_ts: str) -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": USER, "username": "alice", "team_id": "T0001"},
        "api_app_id": "A0DEVMESH",
        "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": CHANNEL, "is_ephemeral": False},
        "trigger_id": "1.2.3",
        "team": {"id": "T0001", "domain": "devmesh-test"},
        "channel": {"id": CHANNEL, "name": "incidents"},
        "message": {"type": "message", "ts": message_ts, "thread_ts": thread_ts, "user": BOT_USER_ID, "text": "x"},
        "response_url": "https://hooks.slack.invalid/actions/1",
        "actions": [{"type": "button", "action_ts": "1700000200.000100", **action}],
    }
    return urlencode({"payload": json.dumps(payload)})


# -- the set-up -------------------------------------------------------------------------------------------


class BlockingPort(FakePort):
    """explain() waits until the test calls release()."""

    def __init__(self) -> None:
        super().__init__(incidents=("inc-42",))
        self.gate = threading.Event()

    def explain(self, req: InvestigationRequest, *, source: str) -> Any:
        self.gate.wait(30)
        return super().explain(req, source=source)


@dataclass
class Chat:
    http: TestClient
    bot: SlackBot
    slack: FakeSlackAPI
    port: FakePort

    def post(self, path: str, body: str, *, content_type: str, headers: dict[str, str] | None = None) -> httpx.Response:
        hdrs = {"Content-Type": content_type, **(sign(body) if headers is None else headers)}
        return self.http.post(path, content=body.encode(), headers=hdrs)

    def command(self, text: str, **kw: Any) -> httpx.Response:
        return self.post("/slack/commands", command_body(text, **kw), content_type="application/x-www-form-urlencoded")

    def event(self, event: dict[str, Any], event_id: str, *, retry: int = 0) -> httpx.Response:
        """An Events API delivery; Slack signs a retry (X-Slack-Retry-Num) anew, with a later timestamp."""
        body = event_body(event, event_id)
        headers = sign(body, ts=int(time.time()) + retry)
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return self.post("/slack/events", body, content_type="application/json", headers=headers)

    def action(self, action: dict[str, Any], *, message_ts: str, thread_ts: str) -> httpx.Response:
        body = action_body(action, message_ts=message_ts, thread_ts=thread_ts)
        return self.post("/slack/interactions", body, content_type="application/x-www-form-urlencoded")


def make_app(bot: SlackBot | None, port: FakePort) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(chat_router)
    app.state.slack = bot
    app.state.port = port
    return app


@pytest.fixture
def slack() -> Iterator[FakeSlackAPI]:
    with FakeSlackAPI(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def make_chat(slack: FakeSlackAPI) -> Iterator[Callable[..., Chat]]:
    bots: list[SlackBot] = []
    clients: list[TestClient] = []

    def make(port: FakePort | None = None, **config: Any) -> Chat:
        port = port or FakePort()
        cfg = SlackConfig(bot_token=SecretStr(TOKEN), signing_secret=SecretStr(SECRET), api_url=slack.api_url, **config)
        bot = SlackBot(cfg, port)
        bots.append(bot)
        client = TestClient(make_app(bot, port))
        clients.append(client)
        return Chat(client, bot, slack, port)

    yield make
    for c in clients:
        c.close()
    for b in bots:
        if isinstance(b.port, BlockingPort):
            b.port.gate.set()
        b.close(wait=True)


def in_thread(ts: str) -> Callable[[SlackCall], bool]:
    return lambda c: c.params.get("thread_ts") == ts


def texts(blocks: list[dict[str, Any]]) -> list[str]:
    out = []
    for b in blocks:
        if "text" in b:
            out.append(b["text"]["text"])
        out += [e.get("text", "") for e in b.get("elements", []) if isinstance(e.get("text"), str)]
    return out


# -- verification -------------------------------------------------------------------------------------------


def test_unsigned_stale_forged_and_replayed_requests_get_401(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat()
    body = command_body("explain ts-order-service")
    form = "application/x-www-form-urlencoded"

    assert chat.post("/slack/commands", body, content_type=form, headers={}).status_code == 401
    stale = sign(body, ts=int(time.time()) - 6 * 60)
    assert chat.post("/slack/commands", body, content_type=form, headers=stale).status_code == 401
    forged = sign(body, secret="not-the-secret")
    assert chat.post("/slack/commands", body, content_type=form, headers=forged).status_code == 401
    tampered = sign(body)
    assert chat.post("/slack/commands", body + "&x=1", content_type=form, headers=tampered).status_code == 401

    help_body = command_body("help")
    good = sign(help_body)
    first = chat.post("/slack/commands", help_body, content_type=form, headers=good)
    again = chat.post("/slack/commands", help_body, content_type=form, headers=good)
    assert (first.status_code, again.status_code) == (200, 401)
    assert first.json()["text"] == bk.esc(USAGE)
    assert "&lt;service|incident id&gt;" in first.json()["text"]

    assert chat.port.calls() == []
    assert [c.method for c in chat.slack.calls() if c.method.startswith("chat.")] == []


def test_url_verification_challenge_is_answered(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat()
    body = json.dumps(
        {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    )
    resp = chat.post("/slack/events", body, content_type="application/json")
    assert resp.status_code == 200
    assert resp.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_routes_answer_404_without_a_configured_bot() -> None:
    with TestClient(make_app(None, FakePort())) as client:
        resp = client.post("/slack/events", content=b"{}", headers=sign("{}"))
    assert resp.status_code == 404
    assert "DEVMESH_SLACK_BOT_TOKEN" in resp.json()["message"]


# -- slash command ---------------------------------------------------------------------------------------------


def test_slash_command_is_acked_before_the_work_and_answered_in_a_thread(
    slack: FakeSlackAPI, serve: Callable[[Any], Any]
) -> None:
    port = BlockingPort()
    cfg = SlackConfig(bot_token=SecretStr(TOKEN), signing_secret=SecretStr(SECRET), api_url=slack.api_url)
    bot = SlackBot(cfg, port)
    try:
        server = serve(make_app(bot, port))
        body = command_body("explain ts-order-service 30m")
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
        sent = time.time_ns()
        resp = httpx.post(server.url + "/slack/commands", content=body, headers=headers, timeout=10)

        # The acknowledgement came back while the explanation is still blocked: the work is in the background.
        assert resp.status_code == 200
        assert resp.json() == {
            "text": "Explaining ts-order-service since 30m; the answer comes in a thread.",
            "response_type": "ephemeral",
        }
        assert port.calls("explain") == []
        parent = slack.wait_for("chat.postMessage")[0]
        assert parent.params["channel"] == CHANNEL and "thread_ts" not in parent.params
        assert (
            parent.params["text"] == f"<@{USER}> asked DevMesh to explain `ts-order-service since 30m`. Working on it…"
        )

        port.gate.set()
        parent_ts = "1700000000.000001"
        answer = slack.wait_for("chat.postMessage", in_thread(parent_ts))[0]
        (call,) = port.calls("explain")
        req = call.args[0]
        assert req.service == "ts-order-service" and req.incident_id is None
        assert sent - 30 * 60 * 10**9 <= req.start_ns <= time.time_ns() - 30 * 60 * 10**9

        blocks = answer.params["blocks"]
        assert bk.check_blocks(blocks) == []
        assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Incident inc-ts-order-service"}}
        body_texts = texts(blocks)
        assert "*Summary*\nts-order-service exhausted its DB connection pool; callers timed out." in body_texts
        causes = next(t for t in body_texts if t.startswith("*Top causes*"))
        assert causes.splitlines()[1] == "1. *ts-order-service* (ts-order-service-5b67c48447-mv5hb) · 82% · unknown"
        assert "2. *ts-payment-service* · 11% · unknown" in causes.splitlines()
        evidence = next(t for t in body_texts if t.startswith("*Evidence*"))
        assert evidence.splitlines()[1] == (
            "• `log:1` · 2023-11-14T22:14:20Z · ts-order-service: "
            "HikariPool-1 - Connection is not available, request timed out after 30000ms"
        )
        runbook = next(t for t in body_texts if "runbooks.example.org" in t)
        assert runbook.splitlines() == [
            "*📘 <https://runbooks.example.org/db/pool|DB connection pool exhausted>*",
            "1. Check active connections",
            "2. Raise maximumPoolSize or fix the leak",
        ]
        actions = blocks[-1]
        assert actions["type"] == "actions" and actions["block_id"] == "devmesh_feedback:inc-ts-order-service"
        assert [e["action_id"] for e in actions["elements"]] == [
            "devmesh_feedback_right",
            "devmesh_feedback_wrong",
            "devmesh_feedback_actual",
        ]
        assert answer.params["text"].startswith("Incident inc-ts-order-service: ts-order-service exhausted")

        update = slack.wait_for("chat.update")[0]
        assert update.params["ts"] == parent_ts
        assert "Top cause: *ts-order-service* (82%)" in update.params["text"]
    finally:
        port.gate.set()
        bot.close(wait=True)


def test_slash_command_usage_errors_are_answered_in_the_ack(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat()
    assert chat.command("").json()["text"] == bk.esc(USAGE)
    resp = chat.command("explain ts-order-service yesterday-ish")
    assert resp.status_code == 200
    assert resp.json()["text"].startswith("not a time: 'yesterday-ish'")
    assert chat.port.calls() == []


def test_unknown_incident_is_reported_in_the_thread(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat()
    assert chat.command("explain inc-404").status_code == 200
    reply = chat.slack.wait_for("chat.postMessage", in_thread("1700000000.000001"))[0]
    assert reply.params["text"] == ":warning: no incident 'inc-404'; list them with `devmesh incidents`"
    assert chat.port.calls("explain")[0].args[0].incident_id == "inc-404"


def test_when_the_bot_is_not_in_the_channel_the_answer_goes_to_the_response_url(
    make_chat: Callable[..., Chat],
) -> None:
    chat = make_chat()
    chat.slack.not_in_channels.add(CHANNEL)
    chat.command("explain inc-42", response_url=chat.slack.url + "/response/T1/1")
    (resp,) = chat.slack.wait_for("response")
    assert resp.params["response_type"] == "ephemeral"
    assert bk.check_blocks(resp.params["blocks"]) == []
    assert resp.params["blocks"][0]["text"]["text"] == "Incident inc-42"
    assert all(b["type"] != "actions" for b in resp.params["blocks"])


def test_incidents_and_search_subcommands_answer_privately(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat()
    chat.command("incidents open", response_url=chat.slack.url + "/response/T1/2")
    chat.command("search connection refused", response_url=chat.slack.url + "/response/T1/3")
    answers = chat.slack.wait_for("response", count=2)
    assert [c.kwargs for c in chat.port.calls("list_incidents")] == [{"status": IncidentStatus.OPEN, "limit": 20}]
    (search,) = chat.port.calls("search_logs")
    assert search.args == ("connection refused",) and search.kwargs["limit"] == 20
    by_text = {a.params["text"]: a.params["blocks"] for a in answers}
    assert (
        by_text["1 incidents"][0]["text"]["text"].splitlines()[1].startswith("• `inc-42` · open · 2023-11-14T22:13:20Z")
    )
    assert "connection refused #0" in by_text["3 log lines"][0]["text"]["text"]


def test_busy_bot_says_so_instead_of_queueing_without_bound(make_chat: Callable[..., Chat]) -> None:
    port = BlockingPort()
    chat = make_chat(port, max_pending=1)
    assert chat.command("explain inc-42").json()["text"].startswith("Explaining incident inc-42")
    assert chat.command("explain inc-42").json()["text"] == BUSY
    port.gate.set()
    chat.slack.wait_for("chat.postMessage", in_thread("1700000000.000001"))


# -- mentions and follow-ups -------------------------------------------------------------------------------------


def test_mention_then_follow_ups_in_the_thread_use_the_incident(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat()
    root = "1700000100.000100"
    assert chat.event(mention("explain inc-42", root), "Ev01").status_code == 200
    answer = chat.slack.wait_for("chat.postMessage", in_thread(root))[0]
    assert answer.params["blocks"][0]["text"]["text"] == "Incident inc-42"
    assert chat.port.calls("explain")[0].args[0] == InvestigationRequest(incident_id="inc-42")
    assert chat.port.calls("explain")[0].kwargs == {"source": "chat"}

    # Slack retried the same event (same event_id): not answered twice.
    assert chat.event(mention("explain inc-42", root), "Ev01", retry=1).status_code == 200

    chat.event(mention("why?", "1700000101.000100", thread_ts=root), "Ev02")
    why = chat.slack.wait_for("chat.postMessage", in_thread(root), count=2)[1]
    asked = chat.port.calls("explain")[1].args[0]
    assert (asked.incident_id, asked.question) == ("inc-42", "why?")
    first = why.params["blocks"][0]["text"]["text"].splitlines()
    assert first[:3] == [
        "*1. Why ts-order-service*",
        "82% · unknown",
        "errors start here first and spread to its callers",
    ]
    assert first[3].startswith("• `log:1` · 2023-11-14T22:14:20Z · ts-order-service: HikariPool-1")

    # A plain reply in the thread (no mention) that asks for logs is answered too.
    chat.event(message("show the logs", "1700000102.000100", thread_ts=root), "Ev03")
    logs = chat.slack.wait_for("chat.postMessage", in_thread(root), count=3)[2]
    assert [c.args for c in chat.port.calls("logs_for")] == [("inc-42", 20)]
    text = logs.params["blocks"][0]["text"]["text"]
    assert text.startswith(
        "*Logs of inc-42*\n```\n2023-11-14T22:13:20Z ERROR ts-order-service Connection is not available"
    )
    assert "WARN ts-order-service pool &lt;stats&gt; &amp; more\n```" in text

    chat.event(mention("what changed on node worker-3?", "1700000103.000100", thread_ts=root), "Ev04")
    changes = chat.slack.wait_for("chat.postMessage", in_thread(root), count=4)[3]
    assert [c.args for c in chat.port.calls("node_changes")] == [("inc-42", "worker-3")]
    assert changes.params["blocks"][0]["text"]["text"].splitlines() == [
        "*Changes on worker-3*",
        "• ts-order-service-5b67c48447-mv5hb: restarts 1 → 4 (+300%)",
    ]

    # Chatter between people in the thread, and messages in threads DevMesh did not answer, are left alone.
    chat.event(message("thanks, restarting the pool now", "1700000104.000100", thread_ts=root), "Ev05")
    chat.event(message("show the logs", "1700000105.000100", thread_ts="1600000000.000001"), "Ev06")
    chat.event(mention("topology", "1700000106.000100", thread_ts=root), "Ev07")
    chat.slack.wait_for("chat.postMessage", in_thread(root), count=5)
    assert [c.args for c in chat.port.calls("topology")] == [("ts-order-service", 1)]
    assert len(chat.port.calls("logs_for")) == 1 and len(chat.port.calls("explain")) == 2

    # "explain ..." in the thread starts over rather than asking a follow-up question.
    chat.event(mention("explain inc-42 2h", "1700000107.000100", thread_ts=root), "Ev08")
    chat.slack.wait_for("chat.postMessage", in_thread(root), count=6)
    again = chat.port.calls("explain")[2].args[0]
    assert (again.incident_id, again.question, again.start_ns is not None) == ("inc-42", None, True)


def test_mention_that_is_not_a_command_gets_the_usage_in_its_thread(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat()
    chat.event(mention("what is going on with <everything>?", "1700000300.000100"), "Ev30")
    (reply,) = chat.slack.wait_for("chat.postMessage", in_thread("1700000300.000100"))
    assert reply.params["text"].startswith("I did not understand 'what'. Usage: `/devmesh explain &lt;service|")
    assert chat.port.calls() == []


def test_bot_ignores_its_own_messages(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat()
    root = "1700000100.000100"
    chat.event(mention("explain inc-42", root), "Ev10")
    chat.slack.wait_for("chat.postMessage", in_thread(root))
    own = message("show the logs", "1700000101.000100", thread_ts=root) | {"user": BOT_USER_ID, "bot_id": "BDEVMESH"}
    assert chat.event(own, "Ev11").status_code == 200
    chat.bot.close(wait=True)
    assert chat.port.calls("logs_for") == []


# -- feedback buttons -------------------------------------------------------------------------------------------


def test_feedback_buttons_call_the_feedback_port(make_chat: Callable[..., Chat]) -> None:
    chat = make_chat()
    where = {"message_ts": "1700000000.000002", "thread_ts": "1700000000.000001"}
    block = "devmesh_feedback:inc-42"
    right = {"action_id": bk.ACTION_RIGHT, "block_id": block, "value": "ts-order-service"}
    wrong = {"action_id": bk.ACTION_WRONG, "block_id": block, "value": "ts-order-service"}
    actual = {
        "type": "static_select",
        "action_id": bk.ACTION_ACTUAL,
        "block_id": block,
        "selected_option": {
            "text": {"type": "plain_text", "text": "ts-payment-service"},
            "value": "ts-payment-service",
        },
    }
    for act in (right, wrong):
        assert chat.action(act, **where).status_code == 200
        chat.port.wait_for("feedback", count=1 if act is right else 2)
    assert chat.action(actual, **where).status_code == 200
    calls = chat.port.wait_for("feedback", count=3)
    assert [(c.args, c.kwargs) for c in calls] == [
        (("inc-42",), {"root_cause": "ts-order-service", "helpful": True, "by": USER}),
        (("inc-42",), {"root_cause": None, "helpful": False, "by": USER}),
        (("inc-42",), {"root_cause": "ts-payment-service", "helpful": False, "by": USER}),
    ]
    notes = chat.slack.wait_for("chat.postEphemeral", count=3)
    assert all(n.params["user"] == USER and n.params["thread_ts"] == "1700000000.000001" for n in notes)
    assert sorted(n.params["text"] for n in notes) == [
        "Thanks, recorded for `inc-42`: root cause *ts-order-service*.",
        "Thanks, recorded for `inc-42`: wrong cause.",
        "Thanks, recorded for `inc-42`: wrong cause; it was *ts-payment-service*.",
    ]


# -- secrets ----------------------------------------------------------------------------------------------------


def test_secrets_never_reach_the_logs(make_chat: Callable[..., Chat], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    chat = make_chat()
    chat.command("explain inc-42")
    chat.slack.wait_for("chat.update")
    body = command_body("explain inc-42")
    chat.post("/slack/commands", body, content_type="application/x-www-form-urlencoded", headers=sign(body, secret="x"))
    chat.event(mention("explain inc-404", "1700000100.000100"), "Ev20")
    chat.slack.wait_for("chat.postMessage", in_thread("1700000100.000100"))
    chat.bot.close(wait=True)

    assert caplog.records, "the flow logs something at DEBUG"
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert TOKEN not in logged and SECRET not in logged
    assert TOKEN not in repr(chat.bot.config) and SECRET not in repr(chat.bot.config)
    # The token goes to Slack only in the Authorization header, never in a body.
    assert all(TOKEN not in json.dumps(c.params) for c in chat.slack.calls())
    assert {c.headers.get("authorization") for c in chat.slack.calls()} == {f"Bearer {TOKEN}"}


def test_config_comes_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    class ChatSettings(Settings):  # the fields api.chat asks core.settings to add
        slack_bot_token: SecretStr | None = None
        slack_signing_secret: SecretStr | None = None
        slack_app_token: SecretStr | None = None
        slack_api_url: str = "https://slack.com/api/"
        slack_command: str = "/devmesh"

    assert SlackConfig.from_settings(ChatSettings(home=tmp_path)) is None
    assert SlackConfig.from_settings(Settings(home=tmp_path)) is None
    monkeypatch.setenv("DEVMESH_SLACK_BOT_TOKEN", TOKEN)
    with pytest.raises(InvalidInput, match="DEVMESH_SLACK_SIGNING_SECRET"):
        SlackConfig.from_settings(ChatSettings(home=tmp_path))
    monkeypatch.setenv("DEVMESH_SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("DEVMESH_SLACK_COMMAND", "/incident")
    cfg = SlackConfig.from_settings(ChatSettings(home=tmp_path))
    assert cfg is not None
    assert cfg.bot_token.get_secret_value() == TOKEN and cfg.signing_secret.get_secret_value() == SECRET
    assert (cfg.command, cfg.api_url, cfg.app_token) == ("/incident", "https://slack.com/api/", None)
    assert TOKEN not in repr(cfg) and SECRET not in repr(cfg)


# -- pieces -------------------------------------------------------------------------------------------------------


def test_replay_guard_forgets_signatures_once_their_timestamp_is_stale() -> None:
    now = [1_700_000_000.0]
    guard = ReplayGuard(clock=lambda: now[0], max_keys=2)
    assert guard.accept("1700000000", "v0=aa") is True
    assert guard.accept("1700000000", "v0=aa") is False
    assert guard.accept("1700000000", "v0=bb") is True
    assert guard.accept("1700000000", "v0=cc") is None  # full of live signatures: refuse rather than forget
    assert guard.accept("not-a-number", "v0=dd") is False
    now[0] += 302
    assert guard.accept("1700000302", "v0=cc") is True
    assert guard.accept("1700000000", "v0=aa") is True  # (the verifier would reject this stale one first)


@pytest.mark.parametrize(
    ("text", "kind", "arg"),
    [
        ("why?", FollowUpKind.WHY, ""),
        ("Why did this happen", FollowUpKind.WHY, ""),
        ("show the logs", FollowUpKind.LOGS, ""),
        ("logs", FollowUpKind.LOGS, ""),
        ("can you show me the error logs?", FollowUpKind.LOGS, ""),
        ("what changed on node X?", FollowUpKind.NODE_CHANGES, "X"),
        ("What changed on worker-3.eu-west-1?", FollowUpKind.NODE_CHANGES, "worker-3.eu-west-1"),
        ("changes on host gke-pool-1-abc", FollowUpKind.NODE_CHANGES, "gke-pool-1-abc"),
        ("search connection reset by peer", FollowUpKind.SEARCH, "connection reset by peer"),
        ("what are its dependencies", FollowUpKind.TOPOLOGY, ""),
        ("is the database fine?", FollowUpKind.ASK, ""),
    ],
)
def test_follow_ups_are_classified(text: str, kind: FollowUpKind, arg: str) -> None:
    fu = classify(text)
    assert (fu.kind, fu.arg) == (kind, arg)


def test_commands_are_parsed() -> None:
    cmd = parse_command("explain ts-order-service since 2h")
    assert (cmd.action, cmd.target, cmd.is_incident, cmd.since) == ("explain", "ts-order-service", False, "2h")
    cmd = parse_command("inc-42")
    assert (cmd.action, cmd.target, cmd.is_incident) == ("explain", "inc-42", True)
    cmd = parse_command("explain incident 7f3a")
    assert (cmd.target, cmd.is_incident) == ("7f3a", True)
    assert parse_command("<@U0BOT|devmesh> explain  checkout").target == "checkout"
    req = parse_command("explain checkout 30m").explain_request(now=10**18)
    assert req == InvestigationRequest(service="checkout", start_ns=10**18 - 30 * 60 * 10**9)
    assert parse_command("incidents").action == "incidents"
    assert parse_command("search <http://x.io|x.io> timeout").text == "x.io timeout"
    for bad in ("explain", "explain a;b", "incidents maybe", "please do something for me now", "explain x 5 parsecs"):
        with pytest.raises(InvalidInput):
            parse_command(bad)


def test_blocks_stay_within_slack_limits_and_escape_untrusted_text() -> None:
    hostile = "<!channel> <https://evil.example|click> & `rm -rf` " + "x" * 5000
    base = sample_explanation()
    expl = base.model_copy(
        update={
            "summary": hostile,
            "evidence": [
                EvidenceItem(id=f"log:{i}", kind="log", source=EvidenceSource.EVENTS, text=hostile) for i in range(200)
            ],
            "runbooks": [
                RunbookLink(id=f"rb:{i}", title=f"<b>{i}</b>", url="javascript:alert(1)", steps=[hostile] * 30)
                for i in range(80)
            ],
            "notes": [hostile] * 20,
        }
    )
    blocks = bk.explanation_blocks(expl)
    assert bk.check_blocks(blocks) == []
    assert len(blocks) == bk.MAX_BLOCKS and blocks[-1]["type"] == "actions"
    everything = json.dumps(blocks)
    assert "<!channel>" not in everything and "<https://evil" not in everything and "<javascript" not in everything
    assert "&lt;!channel&gt;" in everything
    assert all("<" not in t for t in texts(blocks) if "runbooks.example.org" not in t)
    assert bk.link("javascript:alert(1)", "x") == "x (javascript:alert(1))"
    assert bk.link("https://a.example/p?q=1|2>3", "a|b") == "<https://a.example/p?q=1%7C2%3E3|a¦b>"
    assert len(bk.fallback_text(expl)) <= bk.MAX_FALLBACK_TEXT


# -- incoming webhooks (teams without Slack) -----------------------------------------------------------------


def test_webhook_sender_retries_5xx_and_429_then_delivers(slack: FakeSlackAPI) -> None:
    waits: list[float] = []
    slack.hook_statuses.extend([500, 429])
    with WebhookSender(slack.url + "/hooks/T0/B0/s3cr3tpath", fmt="mattermost", sleep=waits.append) as sender:
        sender.send_explanation(sample_explanation())
    hooks = slack.calls("hook")
    assert [h.status for h in hooks] == [500, 429, 200]
    assert waits == [0.5, 1.0]
    text = hooks[-1].params["text"]
    assert text.startswith("# Incident explanation: inc-42\n") and hooks[-1].params["username"] == "DevMesh"


def test_webhook_sender_gives_up_with_a_clear_error_and_keeps_the_url_out_of_it(
    slack: FakeSlackAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.hook_statuses.extend([503] * 4)
    url = slack.url + "/hooks/T0/B0/s3cr3tpath"
    with WebhookSender(url, retries=3, sleep=lambda s: None) as sender:
        with pytest.raises(
            DevMeshError, match=r"at 127\.0\.0\.1 did not take the message \(HTTP 503, 4 attempt"
        ) as err:
            sender.send({"text": "hello"})
        assert "s3cr3tpath" not in repr(sender)
    assert len(slack.calls("hook")) == 4
    assert "s3cr3tpath" not in str(err.value) and "s3cr3tpath" not in caplog.text

    slack.hook_statuses.extend([400])
    with (
        WebhookSender(url, retries=3, sleep=lambda s: None) as sender,
        pytest.raises(DevMeshError, match="HTTP 400, 1"),
    ):
        sender.send({"text": "hello"})

    refused = WebhookSender("http://127.0.0.1:9/hooks/x", retries=1, timeout_s=2, sleep=lambda s: None)
    with refused, pytest.raises(DevMeshError, match=r"\(ConnectError, 2 attempt"):
        refused.send({"text": "hello"})
    with pytest.raises(InvalidInput):
        WebhookSender("file:///etc/passwd")


def test_webhook_payload_formats() -> None:
    expl = sample_explanation()
    slack_body = webhook_payload(expl, WebhookFormat.SLACK)
    assert bk.check_blocks(slack_body["blocks"]) == [] and all(b["type"] != "actions" for b in slack_body["blocks"])
    teams = webhook_payload(expl, WebhookFormat.TEAMS)
    card = teams["attachments"][0]["content"]
    assert (
        teams["type"] == "message"
        and teams["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    )
    assert card["type"] == "AdaptiveCard" and card["body"][0]["text"] == "Incident inc-42"
    assert card["body"][3]["facts"][0] == {"title": "1. ts-order-service", "value": "82% unknown"}
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "DB connection pool exhausted",
            "url": "https://runbooks.example.org/db/pool",
        }
    ]
    generic = webhook_payload(expl, WebhookFormat.GENERIC)
    assert generic["explanation"]["root_causes"][0]["service"] == "ts-order-service"
