"""POST /explain?stream=true with a language model (the protocol fake): the summary's words stream as
`words` events after the agents' progress and before the explanation, and add up to its summary."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.wiring import Services
from core.settings import Settings
from tests.conftest import ImportedSample
from tests.fakes.ollama_server import FakeOllama

MODEL = "qwen2.5:0.5b"
SERVICE = "ts-verification-code-service"


def answer(body: dict[str, Any]) -> str:
    """The answer a model would give: the first candidate, citing the first evidence item shown."""
    props = body["format"]["properties"]
    first_id = props["summary_evidence_ids"]["items"]["enum"][0]
    service = props["root_causes"]["items"]["properties"]["service"]["enum"][0]
    summary = f"{service} failed first; its callers saw the errors. Check {service} first."
    cause = {"service": service, "reasoning": "Its own errors come first.", "evidence_ids": [first_id]}
    return json.dumps({"summary": summary, "summary_evidence_ids": [first_id], "root_causes": [cause]})


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=[MODEL], responder=answer) as server:
        yield server


def events_of(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_streamed_explain_sends_the_words_as_the_model_writes_them(
    sample: ImportedSample, copied: Settings, open_fn: Callable[[Settings], Services], fake: FakeOllama
) -> None:
    settings = copied.model_copy(update={"ollama_host": fake.url, "llm_model": MODEL})
    with TestClient(create_app(settings, open_fn=open_fn)) as client:
        body = {"at_ns": sample.fault_ns, "service": SERVICE}
        with client.stream("POST", "/explain?stream=true", json=body) as r:
            assert r.status_code == 200
            events = events_of(r.read().decode())
    names = [name for name, _ in events]
    first_words, explained = names.index("words"), names.index("explanation")
    assert names[0] == "incident" and names[-1] == "done"
    assert "progress" in names[:first_words] and set(names[first_words:explained]) == {"words"}
    expl = events[explained][1]["explanation"]
    assert expl["mode"] == "llm" and fake.requests_to("/api/chat")[0].body["stream"] is True
    words = [data["text"] for name, data in events if name == "words"]
    assert len(words) > 3 and "".join(words) == expl["summary"]
