"""The Slack replay guard over restarts and a malformed Slack timestamp: signed requests into the real routes.

Two bots on one DevMesh home stand for a server before and after a restart (and for two servers on one home):
a signed request accepted by one is refused by the other. A timestamp that is not epoch seconds is refused
with 422 naming the header, before bolt (whose verifier raised on it: a 500 with an empty body).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.chat.config import REPLAY_FILE, SlackConfig
from api.chat.replay import ReplayGuard
from api.chat.slack_app import SlackBot, slack_bot_from_settings
from core.settings import Settings
from tests.fakes.devmesh_port import FakePort
from tests.fakes.slack_api import FakeSlackAPI
from tests.unit.test_chat import SECRET, TOKEN, command_body, make_app, sign

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def slack() -> Iterator[FakeSlackAPI]:
    with FakeSlackAPI(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def start(slack: FakeSlackAPI) -> Iterator[Callable[[Path], TestClient]]:
    """Starts a server's Slack side on `home` (as `devmesh serve` builds it from settings)."""
    bots: list[SlackBot] = []
    clients: list[TestClient] = []

    def make(home: Path) -> TestClient:
        settings = Settings(
            home=home,
            slack_bot_token=SecretStr(TOKEN),
            slack_signing_secret=SecretStr(SECRET),
            slack_api_url=slack.api_url,
        )
        port = FakePort()
        bot = slack_bot_from_settings(settings, port)
        assert bot is not None
        bots.append(bot)
        clients.append(TestClient(make_app(bot, port), raise_server_exceptions=False))
        return clients[-1]

    yield make
    for c in clients:
        c.close()
    for b in bots:
        b.close(wait=True)


def test_a_request_replayed_after_a_restart_is_refused(start: Callable[[Path], TestClient], tmp_path: Path) -> None:
    body = command_body("help")
    signed = {**FORM, **sign(body)}
    before = start(tmp_path)
    assert before.post("/slack/commands", content=body.encode(), headers=signed).status_code == 200
    assert (tmp_path / REPLAY_FILE).is_file()

    after = start(tmp_path)  # a second app on the same home: the restarted server (or a twin)
    replayed = after.post("/slack/commands", content=body.encode(), headers=signed)
    assert replayed.status_code == 401, replayed.text
    assert before.post("/slack/commands", content=body.encode(), headers=signed).status_code == 401

    fresh = command_body("help")  # a new request (new trigger_id) is still answered by both
    assert after.post("/slack/commands", content=fresh.encode(), headers={**FORM, **sign(fresh)}).status_code == 200
    other_home = start(tmp_path / "elsewhere")  # another home keeps its own list
    assert other_home.post("/slack/commands", content=body.encode(), headers=signed).status_code == 200


@pytest.mark.parametrize("stamp", ["abc", "", "1.5", "-1700000000", "9" * 5000])
def test_a_slack_timestamp_that_is_not_epoch_seconds_is_refused_naming_the_header(
    start: Callable[[Path], TestClient], tmp_path: Path, stamp: str
) -> None:
    body = command_body("help")
    headers = {**FORM, **sign(body), "X-Slack-Request-Timestamp": stamp}
    r = start(tmp_path).post("/slack/commands", content=body.encode(), headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "X-Slack-Request-Timestamp"


def test_the_durable_guard_expires_signatures_and_fails_closed_when_full(tmp_path: Path) -> None:
    now = [1_700_000_000.0]
    first = ReplayGuard(tmp_path / "seen.sqlite", clock=lambda: now[0], max_keys=2)
    second = ReplayGuard(tmp_path / "seen.sqlite", clock=lambda: now[0], max_keys=2)
    try:
        assert first.accept("1700000000", "v0=aa") is True
        assert second.accept("1700000000", "v0=aa") is False
        assert second.accept("1700000000", "v0=bb") is True
        assert first.accept("1700000000", "v0=cc") is None  # full of live signatures: refuse rather than forget
        assert first.accept("abc", "v0=dd") is False
        now[0] += 302
        assert second.accept("1700000302", "v0=cc") is True
        assert len(first.seen) == 1
    finally:
        first.close()
        second.close()


def test_concurrent_copies_of_one_request_are_accepted_once(tmp_path: Path) -> None:
    guards = [ReplayGuard(tmp_path / "seen.sqlite") for _ in range(4)]
    stamp = str(int(time.time()))
    verdicts: list[bool | None] = []
    lock = threading.Lock()

    def send(guard: ReplayGuard) -> None:
        for _ in range(5):
            v = guard.accept(stamp, "v0=same")
            with lock:
                verdicts.append(v)

    threads = [threading.Thread(target=send, args=(g,)) for g in guards]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for g in guards:
        g.close()
    assert sorted(verdicts, key=str) == [False] * 19 + [True]


def test_a_bot_built_without_a_home_keeps_its_guard_in_memory(slack: FakeSlackAPI) -> None:
    cfg = SlackConfig(bot_token=SecretStr(TOKEN), signing_secret=SecretStr(SECRET), api_url=slack.api_url)
    assert cfg.replay_path is None
    bot = SlackBot(cfg, FakePort())
    try:
        assert bot.replay.accept(str(int(time.time())), "v0=x") is True
    finally:
        bot.close()
