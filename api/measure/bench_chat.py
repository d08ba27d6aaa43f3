"""`devmesh bench chat`: from a slash command to its acknowledgement (Slack wants it within 3 s) and to the answer.

A FastAPI app with the chat routes (as the DevMesh API mounts them) is served by uvicorn on 127.0.0.1;
clients send real signed `/devmesh explain svc-N` requests; the bot posts to a stand-in Slack Web API on
loopback (`chat_stubs.SlackRecorder`); the port's explain sleeps `explain_ms` (`chat_stubs.SleepingPort`,
standing in for the agent team). ack = the HTTP round trip of the slash command; answer = from sending the
command to the Slack stand-in receiving the threaded answer. Open loop (default): clients fire commands back
to back, so answers queue behind the bot's workers. `closed_loop`: each client waits for its answer before
its next command (answer time = explain time + the bot's overhead).
"""

from __future__ import annotations

import hashlib
import hmac
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from api.chat.config import SlackConfig
from api.chat.routes import router as chat_router
from api.chat.slack_app import BUSY, SlackBot
from api.http.errors import install_error_handlers
from api.http.limits import BodyLimitMiddleware
from api.measure.chat_stubs import SlackCall, SlackRecorder, SleepingPort

TOKEN = "xoxb-bench-token"
SECRET = "bench-signing-secret"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 1)


def _signed(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={sig}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def _command(i: int) -> str:
    return urlencode(
        {
            "team_id": "T0001",
            "channel_id": "C0BENCH",
            "user_id": f"U{i:05d}",
            "command": "/devmesh",
            "text": f"explain svc-{i} 30m",
            "response_url": "http://127.0.0.1:9/unused",
            "trigger_id": uuid.uuid4().hex,
        }
    )


class _Server:
    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="bench-uvicorn", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _is_answer(i: int | None = None) -> Any:
    prefix = "Incident inc-" if i is None else f"Incident inc-svc-{i}:"

    def where(c: SlackCall) -> bool:
        return bool(c.params.get("thread_ts")) and str(c.params.get("text", "")).startswith(prefix)

    return where


def run_chat_bench(
    *, requests: int = 60, concurrency: int = 6, explain_ms: float = 500, workers: int = 4, closed_loop: bool = False
) -> dict[str, Any]:
    port = SleepingPort(explain_ms / 1000)
    with SlackRecorder(TOKEN) as slack:
        config = SlackConfig(
            bot_token=SecretStr(TOKEN),
            signing_secret=SecretStr(SECRET),
            api_url=slack.api_url,
            workers=workers,
            max_pending=requests + 1,
        )
        bot = SlackBot(config, port)
        app = FastAPI()
        app.add_middleware(BodyLimitMiddleware, max_bytes=16 * 1024 * 1024)
        install_error_handlers(app)
        app.include_router(chat_router)
        app.state.port, app.state.slack = port, bot
        acks: list[float] = []
        sent_at: dict[int, float] = {}
        busy = 0
        try:
            with _Server(app) as url, httpx.Client(timeout=30) as client:

                def send(i: int) -> None:
                    nonlocal busy
                    body = _command(i)
                    t0 = time.monotonic()
                    sent_at[i] = t0
                    resp = client.post(url + "/slack/commands", content=body, headers=_signed(body))
                    acks.append((time.monotonic() - t0) * 1000)
                    if resp.status_code != 200:
                        raise RuntimeError(f"slash command answered {resp.status_code}: {resp.text}")
                    if resp.json().get("text") == BUSY:
                        busy += 1
                    elif closed_loop:
                        slack.wait_for("chat.postMessage", _is_answer(i), timeout=60 + 2 * explain_ms / 1000)

                started = time.monotonic()
                with ThreadPoolExecutor(concurrency) as pool:
                    list(pool.map(send, range(requests)))

                timeout = 60 + requests * explain_ms / 1000 / max(1, workers) * 2
                answers = slack.wait_for("chat.postMessage", _is_answer(), count=requests - busy, timeout=timeout)
                elapsed = time.monotonic() - started
        finally:
            bot.close(wait=True)
    answer_ms = []
    for call in answers:
        i = int(str(call.params["text"]).split(":", 1)[0].removeprefix("Incident inc-svc-"))
        answer_ms.append((call.at - sent_at[i]) * 1000)
    return {
        "bench": "chat_latency",
        "requests": requests,
        "concurrency": concurrency,
        "explain_ms": explain_ms,
        "workers": workers,
        "closed_loop": closed_loop,
        "busy": busy,
        "ack_ms_p50": _pct(acks, 0.5),
        "ack_ms_p95": _pct(acks, 0.95),
        "ack_ms_max": round(max(acks), 1),
        "answer_ms_p50": _pct(answer_ms, 0.5),
        "answer_ms_p95": _pct(answer_ms, 0.95),
        "answer_ms_mean": round(statistics.fmean(answer_ms), 1),
        "wall_s": round(elapsed, 2),
    }
