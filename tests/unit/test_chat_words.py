"""The chat bot shows the model's words as they come: a draft in the thread with the first words, updated,
then replaced by the finished answer (and, with no words, the answer posted as before)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from agents.answer_stream import RESTART, current_sink
from api.chat.commands import parse_command
from api.chat.config import SlackConfig
from api.chat.drafts import WRITING, Draft
from api.chat.slack_app import SlackBot
from core.incident import InvestigationRequest
from tests.fakes.devmesh_port import FakePort
from tests.fakes.slack_api import FakeSlackAPI

TOKEN = "xoxb-1111-2222-tokentokentoken"
PARENT = "1699999999.000009"  # not a ts the fake hands out


class WritingPort(FakePort):
    """explain() writes its summary's words to the current sink first, as the explainer does with a model."""

    def explain(self, req: InvestigationRequest, *, source: str) -> Any:
        sink = current_sink()
        assert sink is not None
        for words in ("The database ", "ran out ", RESTART, "The disk ", "is full."):
            sink(words)
        return super().explain(req, source=source)


@pytest.fixture
def slack() -> Iterator[FakeSlackAPI]:
    with FakeSlackAPI(token=TOKEN) as fake:
        yield fake


def bot(slack: FakeSlackAPI, port: FakePort) -> SlackBot:
    cfg = SlackConfig(bot_token=SecretStr(TOKEN), signing_secret=SecretStr("s" * 32), api_url=slack.api_url)
    return SlackBot(cfg, port)


def test_words_go_into_a_draft_that_the_answer_replaces(slack: FakeSlackAPI) -> None:
    b = bot(slack, WritingPort())
    try:
        b._explain_job(channel="C1", thread_ts=PARENT, cmd=parse_command("explain ts-order-service"), user="U1")
    finally:
        b.close(wait=True)
    [draft] = slack.calls("chat.postMessage")
    assert draft.params["thread_ts"] == PARENT and draft.params["text"] == WRITING + "The database  …"
    *words, final = slack.calls("chat.update")
    assert len({u.params["ts"] for u in [*words, final]}) == 1 and final.params["ts"] != PARENT
    assert final.params["blocks"] and final.params["text"].startswith("Incident inc-ts-order-service")


def test_without_words_the_answer_is_posted_as_before(slack: FakeSlackAPI) -> None:
    b = bot(slack, FakePort())
    try:
        b._explain_job(channel="C1", thread_ts=PARENT, cmd=parse_command("explain ts-order-service"), user="U1")
    finally:
        b.close(wait=True)
    [answer] = slack.calls("chat.postMessage")
    assert answer.params["thread_ts"] == PARENT and answer.params["blocks"] and slack.calls("chat.update") == []


def test_draft_updates_at_most_every_interval_and_starts_over_on_restart() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    now = [0.0]

    def call(method: str, **kw: Any) -> dict[str, Any]:
        calls.append((method, kw))
        return {"ts": "9.1"}

    d = Draft(call, "C1", PARENT, interval_s=1.0, clock=lambda: now[0])
    d("The ")
    d("disk")  # within the interval: not shown yet
    now[0] = 1.5
    d(" is")
    d(RESTART)
    now[0] = 3.0
    d("Disk full")
    assert [(m, kw["text"]) for m, kw in calls] == [
        ("chat_postMessage", WRITING + "The  …"),
        ("chat_update", WRITING + "The disk is …"),
        ("chat_update", WRITING + "Disk full …"),
    ]
    d.publish(text="done", blocks=[{"type": "section"}])
    assert calls[-1] == ("chat_update", {"channel": "C1", "ts": "9.1", "text": "done", "blocks": [{"type": "section"}]})
