"""One suite for both LLM clients (Ollama's `/api/chat`, the OpenAI-compatible `/v1/chat/completions`),
each against the protocol fake speaking its API: replies and tokens, structured output, answer caps,
streaming, truncation, retries, timeouts, a server that dies mid-answer, context length, tokenizer."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agents.llm import ChatMessage, OllamaLLM, RetryingLLM
from agents.llm_factory import make_llm
from agents.llm_openai import OpenAICompatLLM, base_url
from core.errors import LLMUnavailable
from core.settings import Settings
from tests.fakes.ollama_server import FakeOllama, Recorded, Scripted

MODEL = "llama3.1:8b"
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
MESSAGES = [ChatMessage("system", "You answer in JSON."), ChatMessage("user", "Say hi.")]
CHAT_PATH = {"ollama": "/api/chat", "openai": "/v1/chat/completions"}

Make = Callable[..., RetryingLLM]


@pytest.fixture(params=["ollama", "openai"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=[MODEL], context_length=2048) as server:
        yield server


def client(backend: str, url: str, **kw: Any) -> RetryingLLM:
    defaults: dict[str, Any] = {"timeout_s": 5.0, "retries": 2, "backoff_s": 0.0, "sleep": lambda s: None}
    defaults.update(kw)
    if backend == "ollama":
        return OllamaLLM(url, MODEL, **defaults)
    return OpenAICompatLLM(url + "/v1", MODEL, **defaults)


def chats(fake: FakeOllama, backend: str) -> list[Recorded]:
    return fake.requests_to(CHAT_PATH[backend])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_reply_tokens_schema_and_answer_cap_are_sent_in_each_protocol(fake: FakeOllama, backend: str) -> None:
    fake.script(Scripted.reply('{"answer": "hi"}', prompt_eval_count=42, eval_count=7))
    reply = client(backend, fake.url).chat(MESSAGES, schema=SCHEMA, max_tokens=64)
    assert (reply.content, reply.model, reply.prompt_tokens, reply.completion_tokens) == (
        '{"answer": "hi"}',
        MODEL,
        42,
        7,
    )
    assert reply.attempts == 1 and reply.done_reason == "stop" and not reply.truncated
    [sent] = chats(fake, backend)
    assert sent.body["messages"] == [{"role": m.role, "content": m.content} for m in MESSAGES]
    if backend == "ollama":
        assert sent.body["format"] == SCHEMA and sent.body["stream"] is False
        assert sent.body["options"] == {"num_ctx": 2048, "temperature": 0.0, "num_predict": 64}
    else:
        assert sent.body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "answer", "strict": True, "schema": SCHEMA},
        }
        assert (sent.body["max_tokens"], sent.body["temperature"], sent.body["stream"]) == (64, 0.0, False)


def test_streamed_answer_reaches_the_sink_as_it_grows(fake: FakeOllama, backend: str) -> None:
    content = '{"answer": "a streamed answer of some length"}'
    fake.script(Scripted.reply(content, eval_count=11))
    seen: list[str] = []
    reply = client(backend, fake.url).chat(MESSAGES, schema=SCHEMA, on_text=seen.append)
    assert reply.content == content and reply.completion_tokens == 11 and reply.done_reason == "stop"
    assert len(seen) == -(-len(content) // 8) and seen[-1] == content
    assert all(b.startswith(a) for a, b in zip(seen, seen[1:], strict=False))
    assert reply.first_text_ms is not None and reply.first_text_ms <= reply.duration_ms
    assert chats(fake, backend)[0].body["stream"] is True


def test_an_answer_cut_at_the_token_limit_says_so(fake: FakeOllama, backend: str) -> None:
    fake.script(Scripted.reply('{"answer": "cut', done_reason="length"), Scripted.reply('{"a', done_reason="length"))
    llm = client(backend, fake.url)
    assert llm.chat(MESSAGES).truncated is True
    assert llm.chat(MESSAGES, on_text=lambda s: None).truncated is True


def test_server_dying_mid_answer_is_retried_and_the_sink_starts_again(fake: FakeOllama, backend: str) -> None:
    content = '{"answer": "the whole answer"}'
    fake.script(Scripted.cut(content, after=16), Scripted.reply(content))
    seen: list[str] = []
    reply = client(backend, fake.url).chat(MESSAGES, on_text=seen.append)
    assert reply.content == content and reply.attempts == 2
    restarts = [i for i, (a, b) in enumerate(zip(seen, seen[1:], strict=False)) if not b.startswith(a)]
    assert len(restarts) == 1 and seen[-1] == content


def test_server_dying_on_every_attempt_is_unavailable(fake: FakeOllama, backend: str) -> None:
    fake.script(*[Scripted.cut('{"answer": "never finished"}', after=8)] * 2)
    with pytest.raises(LLMUnavailable) as err:
        client(backend, fake.url, retries=1).chat(MESSAGES, on_text=lambda s: None)
    assert "after 2 attempt(s)" in err.value.message
    assert len(chats(fake, backend)) == 2


def test_transient_500_is_retried_with_backoff(fake: FakeOllama, backend: str) -> None:
    slept: list[float] = []
    fake.script(Scripted.failure(500), Scripted.failure(503), Scripted.reply('{"answer": "ok"}'))
    reply = client(backend, fake.url, backoff_s=0.5, sleep=slept.append).chat(MESSAGES)
    assert reply.content == '{"answer": "ok"}' and reply.attempts == 3
    assert slept == [0.5, 1.0] and len(chats(fake, backend)) == 3


def test_client_errors_are_not_retried(fake: FakeOllama, backend: str) -> None:
    fake.script(Scripted.failure(400, "request exceeds the available context size"))
    with pytest.raises(LLMUnavailable) as err:
        client(backend, fake.url).chat(MESSAGES)
    assert err.value.details == {"status": 400} and "context size" in err.value.message
    assert len(chats(fake, backend)) == 1


def test_slow_reply_beyond_timeout_then_fast_reply(fake: FakeOllama, backend: str) -> None:
    fake.script(Scripted.slow(30.0), Scripted.reply('{"answer": "late"}'))
    reply = client(backend, fake.url, timeout_s=1.0, retries=1).chat(MESSAGES)
    assert reply.content == '{"answer": "late"}' and reply.attempts == 2


def test_body_that_is_not_json_is_unavailable(fake: FakeOllama, backend: str) -> None:
    fake.script(Scripted.not_json())
    with pytest.raises(LLMUnavailable) as err:
        client(backend, fake.url).chat(MESSAGES)
    assert "not a chat reply" in err.value.message


def test_nothing_listening_is_unavailable(backend: str) -> None:
    llm = client(backend, f"http://127.0.0.1:{free_port()}", retries=1)
    with pytest.raises(LLMUnavailable) as err:
        llm.chat(MESSAGES)
    assert "after 2 attempt(s)" in err.value.message
    assert llm.available() is False
    assert llm.context_length() == 4096  # the configured value when the server cannot say


def test_context_length_is_asked_once_and_capped_by_the_setting(fake: FakeOllama, backend: str) -> None:
    assert client(backend, fake.url, context_tokens=8192).context_length() == 2048
    llm = client(backend, fake.url, context_tokens=1024)
    assert llm.context_length() == 1024 and llm.context_length() == 1024
    asked = {"ollama": ["/api/show"], "openai": ["/props"]}[backend]
    assert [r.path for r in fake.requests if r.path in ("/api/show", "/props")] == asked * 2


def test_tokens_counted_by_the_server_when_it_has_a_tokenizer(backend: str) -> None:
    with FakeOllama(models=[MODEL]) as fake:
        counted = client(backend, fake.url).count_tokens("x" * 40)
    assert counted == (10 if backend == "openai" else None)  # Ollama has no tokenizer endpoint
    with FakeOllama(models=[MODEL], tokenizer=False) as fake:
        llm = client(backend, fake.url)
        assert llm.count_tokens("abc") is None and llm.count_tokens("def") is None
        assert len(fake.requests_to("/tokenize")) == (1 if backend == "openai" else 0)


def test_available_when_the_server_lists_the_model(fake: FakeOllama, backend: str) -> None:
    assert client(backend, fake.url).available() is True


def test_factory_picks_the_backend_from_the_settings(fake: FakeOllama) -> None:
    none = Settings(_env_file=None, ollama_host=None, llm_url=None)  # type: ignore[call-arg]
    assert make_llm(none) is None
    ollama = make_llm(Settings(_env_file=None, ollama_host=fake.url, llm_context_tokens=1000))  # type: ignore[call-arg]
    assert isinstance(ollama, OllamaLLM) and ollama.context_length() == 1000
    both = Settings(_env_file=None, ollama_host=fake.url, llm_url=fake.url + "/v1/", llm_model="m")  # type: ignore[call-arg]
    openai = make_llm(both)
    assert isinstance(openai, OpenAICompatLLM) and openai.host == fake.url and openai.model == "m"
    assert base_url("http://h:1/v1") == base_url("http://h:1/") == "http://h:1"
