"""The Ollama client against an Ollama-compatible fake server: replies, retries, timeouts, breaker."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import ollama
import pytest

from agents.llm import BreakerState, ChatMessage, CircuitBreaker, OllamaLLM
from core.errors import LLMUnavailable
from tests.fakes.ollama_server import FakeOllama, Scripted

MODEL = "llama3.1:8b"
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
MESSAGES = [ChatMessage("system", "You answer in JSON."), ChatMessage("user", "Say hi.")]


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama(models=[MODEL, "nomic-embed-text:latest"]) as fake:
        yield fake


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_llm(url: str, **kw: object) -> OllamaLLM:
    defaults: dict[str, object] = {"timeout_s": 5.0, "retries": 2, "backoff_s": 0.0, "sleep": lambda s: None}
    defaults.update(kw)
    return OllamaLLM(url, MODEL, **defaults)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the fake speaks the real API (checked with the real `ollama` client) ---------------------------


def test_fake_streams_chat_and_generate_like_ollama(fake_ollama: FakeOllama) -> None:
    fake_ollama.script(Scripted.reply('{"answer": "hello there"}'), Scripted.reply("plain words"))
    client = ollama.Client(host=fake_ollama.url, timeout=5)
    chunks = list(client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(c.message.content or "" for c in chunks) == '{"answer": "hello there"}'
    assert [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].eval_count == 6 and chunks[-1].done_reason == "stop"
    generated = client.generate(model=MODEL, prompt="say words", stream=False)
    assert generated.response == "plain words"
    assert generated.prompt_eval_count == len("say words") // 4


def test_fake_lists_models_embeds_and_reports_version(fake_ollama: FakeOllama) -> None:
    client = ollama.Client(host=fake_ollama.url, timeout=5)
    assert [m.model for m in client.list().models] == [MODEL, "nomic-embed-text:latest"]
    embedded = client.embed(model="nomic-embed-text", input=["a", "b"])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 8
    assert httpx.get(fake_ollama.url + "/api/version").json() == {"version": "0.12.6"}
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="missing-model", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 404
    assert err.value.error == 'model "missing-model" not found, try pulling it first'


# -- OllamaLLM ---------------------------------------------------------------------------------------


def test_chat_sends_schema_and_options_and_returns_tokens(fake_ollama: FakeOllama) -> None:
    fake_ollama.script(Scripted.reply('{"answer": "hi"}', prompt_eval_count=42, eval_count=7))
    llm = make_llm(fake_ollama.url)
    reply = llm.chat(MESSAGES, schema=SCHEMA)
    assert (reply.content, reply.model, reply.prompt_tokens, reply.completion_tokens) == (
        '{"answer": "hi"}',
        MODEL,
        42,
        7,
    )
    assert reply.attempts == 1 and reply.done_reason == "stop"
    [sent] = fake_ollama.requests_to("/api/chat")
    assert sent.body["format"] == SCHEMA
    assert sent.body["stream"] is False
    assert sent.body["options"] == {"num_ctx": 4096, "temperature": 0.0}
    assert sent.body["messages"] == [
        {"role": "system", "content": "You answer in JSON."},
        {"role": "user", "content": "Say hi."},
    ]


def test_transient_500_is_retried_then_succeeds(fake_ollama: FakeOllama) -> None:
    slept: list[float] = []
    fake_ollama.script(Scripted.failure(500), Scripted.failure(503), Scripted.reply('{"answer": "ok"}'))
    llm = make_llm(fake_ollama.url, backoff_s=0.5, sleep=slept.append)
    reply = llm.chat(MESSAGES, schema=SCHEMA)
    assert reply.content == '{"answer": "ok"}' and reply.attempts == 3
    assert len(fake_ollama.requests_to("/api/chat")) == 3
    assert slept == [0.5, 1.0]  # exponential backoff between attempts


def test_persistent_500_raises_llm_unavailable_after_all_attempts(fake_ollama: FakeOllama) -> None:
    fake_ollama.script(*[Scripted.failure(500, "out of memory")] * 3)
    with pytest.raises(LLMUnavailable) as err:
        make_llm(fake_ollama.url).chat(MESSAGES)
    assert "after 3 attempt(s)" in err.value.message and "HTTP 500: out of memory" in err.value.message
    assert len(fake_ollama.requests_to("/api/chat")) == 3


def test_missing_model_is_not_retried_and_says_to_pull(fake_ollama: FakeOllama) -> None:
    llm = OllamaLLM(fake_ollama.url, "qwen2.5:7b", retries=3, backoff_s=0.0, sleep=lambda s: None)
    with pytest.raises(LLMUnavailable) as err:
        llm.chat(MESSAGES)
    assert "ollama pull qwen2.5:7b" in err.value.message
    assert err.value.details == {"status": 404}
    assert len(fake_ollama.requests_to("/api/chat")) == 1


def test_slow_reply_beyond_timeout_is_retried_then_unavailable(fake_ollama: FakeOllama) -> None:
    fake_ollama.script(Scripted.slow(30.0), Scripted.slow(30.0))
    with pytest.raises(LLMUnavailable) as err:
        make_llm(fake_ollama.url, timeout_s=1.0, retries=1).chat(MESSAGES)
    assert "timed out" in err.value.message
    assert len(fake_ollama.requests_to("/api/chat")) == 2


def test_slow_reply_then_fast_reply_succeeds(fake_ollama: FakeOllama) -> None:
    fake_ollama.script(Scripted.slow(30.0), Scripted.reply('{"answer": "late"}'))
    reply = make_llm(fake_ollama.url, timeout_s=1.0, retries=1).chat(MESSAGES)
    assert reply.content == '{"answer": "late"}' and reply.attempts == 2


def test_body_that_is_not_json_is_unavailable(fake_ollama: FakeOllama) -> None:
    fake_ollama.script(Scripted.not_json())
    with pytest.raises(LLMUnavailable) as err:
        make_llm(fake_ollama.url).chat(MESSAGES)
    assert "not a chat reply" in err.value.message


def test_malformed_json_content_is_returned_as_is(fake_ollama: FakeOllama) -> None:
    """The client does not judge content; the explainer validates it (see test_explanation)."""
    fake_ollama.script(Scripted.reply('{"answer": "unterminated'))
    assert make_llm(fake_ollama.url).chat(MESSAGES, schema=SCHEMA).content == '{"answer": "unterminated'


def test_nothing_listening_is_unavailable() -> None:
    llm = make_llm(f"http://127.0.0.1:{free_port()}", retries=1)
    with pytest.raises(LLMUnavailable) as err:
        llm.chat(MESSAGES)
    assert "after 2 attempt(s)" in err.value.message and "ConnectionError" in err.value.message
    assert llm.available() is False


def test_available_checks_the_model_is_pulled(fake_ollama: FakeOllama) -> None:
    assert make_llm(fake_ollama.url).available() is True
    assert OllamaLLM(fake_ollama.url, "nomic-embed-text").available() is True  # ':latest' implied
    assert OllamaLLM(fake_ollama.url, "mistral:7b").available() is False


def test_breaker_opens_after_consecutive_failures_and_half_opens_after_cooldown(fake_ollama: FakeOllama) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30.0, clock=clock)
    llm = make_llm(fake_ollama.url, retries=0, breaker=breaker)
    fake_ollama.script(Scripted.failure(500), Scripted.failure(500))
    for _ in range(2):
        with pytest.raises(LLMUnavailable):
            llm.chat(MESSAGES)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(LLMUnavailable) as err:
        llm.chat(MESSAGES)
    assert "circuit breaker open" in err.value.message
    assert len(fake_ollama.requests_to("/api/chat")) == 2  # the open breaker did not call the server
    assert llm.available() is False
    assert len(fake_ollama.requests_to("/api/tags")) == 0

    clock.now += 30.0
    assert breaker.state is BreakerState.HALF_OPEN
    fake_ollama.script(Scripted.failure(500))
    with pytest.raises(LLMUnavailable):
        llm.chat(MESSAGES)  # the trial call fails: open again for a new cool-down
    assert breaker.state is BreakerState.OPEN
    assert len(fake_ollama.requests_to("/api/chat")) == 3

    clock.now += 30.0
    fake_ollama.script(Scripted.reply('{"answer": "back"}'))
    assert llm.chat(MESSAGES).content == '{"answer": "back"}'
    assert breaker.state is BreakerState.CLOSED


def test_half_open_lets_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10.0, clock=clock)
    breaker.record_failure()
    assert breaker.allow() is False
    clock.now += 10.0
    assert breaker.allow() is True
    assert breaker.allow() is False  # a second caller waits for the trial's outcome
    breaker.record_success()
    assert breaker.allow() is True and breaker.state is BreakerState.CLOSED


def test_success_resets_the_failure_count(fake_ollama: FakeOllama) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30.0, clock=FakeClock())
    llm = make_llm(fake_ollama.url, retries=0, breaker=breaker)
    fake_ollama.script(Scripted.failure(500), Scripted.reply("{}"), Scripted.failure(500))
    with pytest.raises(LLMUnavailable):
        llm.chat(MESSAGES)
    llm.chat(MESSAGES)
    with pytest.raises(LLMUnavailable):
        llm.chat(MESSAGES)
    assert breaker.state is BreakerState.CLOSED


def test_fake_records_bounded_and_rejects_large_bodies() -> None:
    with FakeOllama(max_requests=3, max_body_bytes=1024) as fake:
        for _ in range(5):
            httpx.get(fake.url + "/api/version")
        assert len(fake.requests) == 3
        big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 2000}], "stream": False}
        response = httpx.post(fake.url + "/api/chat", content=json.dumps(big))
        assert response.status_code == 413
