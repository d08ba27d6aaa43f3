"""A fake Slack Web API on 127.0.0.1 for tests: it speaks the real wire format and records every call.

Methods (POST /api/<method>, form-encoded or JSON bodies, `Authorization: Bearer <token>`):
auth.test, chat.postMessage, chat.update, chat.postEphemeral, views.open. A wrong or missing token
gets Slack's `{"ok": false, "error": "invalid_auth"}`; a message without channel gets
`channel_not_found`; blocks over Slack's limits get `invalid_blocks`; unknown methods
`unknown_method`. Channels listed in `not_in_channels` answer `not_in_channel`, as Slack does when
the bot was not invited. Also: POST /response/<id> (a slash command's `response_url`) and
POST /hooks/<id> (incoming webhooks), whose status codes can be scripted (`hook_statuses`).
Calls are kept in a bounded deque; `wait_for` blocks until a matching call arrives.

    with FakeSlackAPI(token="xoxb-test") as slack:
        client = WebClient(token="xoxb-test", base_url=slack.api_url)
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from api.render.slack_blocks import check_blocks
from tests.fakes.loopback import LoopbackFake

BOT_USER_ID = "UDEVMESH"
BOT_ID = "BDEVMESH"
TEAM_ID = "T0001"


@dataclass(frozen=True)
class SlackCall:
    method: str
    """'chat.postMessage', ..., or 'response' / 'hook' for response_url and webhook posts."""
    params: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    at: float = 0.0
    """time.monotonic() when it arrived."""
    status: int = 200
    ok: bool = True


class FakeSlackAPI(LoopbackFake):
    thread_name = "fake-slack"

    def __init__(self, *, token: str = "xoxb-test-token", max_calls: int = 10_000) -> None:
        self.token = token
        self.not_in_channels: set[str] = set()
        self.hook_statuses: deque[int] = deque(maxlen=100)
        self._calls: deque[SlackCall] = deque(maxlen=max_calls)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._ts = 0
        super().__init__()

    # -- life cycle ----------------------------------------------------------------------------------

    def _make_server(self) -> _Server:
        return _Server(self)

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    # -- inspection ----------------------------------------------------------------------------------

    def record(self, call: SlackCall) -> None:
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()

    def calls(self, method: str | None = None) -> list[SlackCall]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for(
        self, method: str, where: Callable[[SlackCall], bool] = lambda c: True, *, count: int = 1, timeout: float = 10
    ) -> list[SlackCall]:
        """The first `count` calls of `method` matching `where`, waiting up to `timeout` seconds for them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self._calls if c.method == method and where(c)]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [c.method for c in self._calls]
                    raise TimeoutError(f"{count} x {method} not seen within {timeout}s; calls so far: {seen}")
                self._cond.wait(left)

    def next_ts(self) -> str:
        with self._lock:
            self._ts += 1
            return f"1700000000.{self._ts:06d}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeSlackAPI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _params(self) -> dict[str, Any]:
        raw = (
            self.rfile.read(int(self.headers.get("Content-Length") or 0)) if self.headers.get("Content-Length") else b""
        )
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            body = json.loads(raw or b"{}")
            return body if isinstance(body, dict) else {"_body": body}
        params: dict[str, Any] = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        for key in ("blocks", "attachments"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        return params

    def do_POST(self) -> None:
        fake = self.server.fake
        path = self.path.split("?", 1)[0]
        params = self._params()
        headers = {k.lower(): v for k, v in self.headers.items()}
        if path.startswith("/response/") or path.startswith("/hooks/"):
            kind = "response" if path.startswith("/response/") else "hook"
            with fake._lock:
                status = fake.hook_statuses.popleft() if fake.hook_statuses else 200
            fake.record(SlackCall(kind, params, headers, time.monotonic(), status, status < 300))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"no")
            return
        if not path.startswith("/api/"):
            self._send(404, {"ok": False, "error": "not_found"})
            return
        method = path[len("/api/") :]
        reply = self._answer(fake, method, params, headers)
        fake.record(SlackCall(method, params, headers, time.monotonic(), 200, bool(reply.get("ok"))))
        self._send(200, reply)

    def _answer(
        self, fake: FakeSlackAPI, method: str, params: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        if headers.get("authorization", "") != f"Bearer {fake.token}":
            return {"ok": False, "error": "invalid_auth" if headers.get("authorization") else "not_authed"}
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://devmesh-test.slack.com/",
                "team": "DevMesh Test",
                "user": "devmesh",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            channel = str(params.get("channel") or "")
            if not channel:
                return {"ok": False, "error": "channel_not_found"}
            if channel in fake.not_in_channels:
                return {"ok": False, "error": "not_in_channel"}
            if not params.get("text") and not params.get("blocks"):
                return {"ok": False, "error": "no_text"}
            blocks = params.get("blocks") or []
            if not isinstance(blocks, list) or check_blocks(blocks):
                return {
                    "ok": False,
                    "error": "invalid_blocks",
                    "errors": check_blocks(blocks) if isinstance(blocks, list) else [],
                }
            if method == "chat.postEphemeral":
                if not params.get("user"):
                    return {"ok": False, "error": "user_not_in_channel"}
                return {"ok": True, "message_ts": fake.next_ts()}
            if method == "chat.update":
                if not params.get("ts"):
                    return {"ok": False, "error": "message_not_found"}
                return {"ok": True, "channel": channel, "ts": params["ts"], "text": params.get("text", "")}
            ts = fake.next_ts()
            message = {
                "type": "message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "text": params.get("text", ""),
                "ts": ts,
            }
            if params.get("thread_ts"):
                message["thread_ts"] = params["thread_ts"]
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "views.open":
            if not params.get("trigger_id") or not params.get("view"):
                return {"ok": False, "error": "invalid_arguments"}
            return {"ok": True, "view": {"id": "V0001", "type": "modal"}}
        return {"ok": False, "error": "unknown_method"}
