"""The explainer's latency budget through both LLM protocols (the protocol fake reports its speeds as Ollama
and llama.cpp do): the first answer of a server uses the fixed cap, the speeds it reports shrink the next
prompt and answer, the cached system prompt counts as free, and the `llm.chat` step says which budget and why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.explain_llm import explain_with_llm
from agents.llm import OllamaLLM, RetryingLLM
from agents.llm_factory import SPEEDS_FILE, make_llm
from agents.llm_openai import OpenAICompatLLM
from agents.llm_speed import LatencyTargets
from core.explanation import Explanation, ExplanationMode
from core.settings import Settings
from tests.fakes.ollama_server import FakeOllama, Scripted
from tests.unit.test_explain_fit import ANSWER, CHAT_PATH, EVIDENCE, MODEL, RANKING

# 1,400 prompt tokens read in 5 s (280 tokens/s), 200 written in 10 s (20 tokens/s)
MEASURED: dict[str, Any] = {"prompt_eval_count": 1400, "prompt_eval_ms": 5_000, "eval_count": 200, "eval_ms": 10_000}


@pytest.fixture(params=["ollama", "openai"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=[MODEL], context_length=8192) as server:
        yield server


def client(backend: str, url: str, **kw: Any) -> RetryingLLM:
    opts: dict[str, Any] = {"timeout_s": 5.0, "retries": 0, "prompt_tokens": 1500, **kw}
    return OllamaLLM(url, MODEL, **opts) if backend == "ollama" else OpenAICompatLLM(url, MODEL, **opts)


def explain(llm: RetryingLLM) -> Explanation:
    return explain_with_llm(llm, RANKING, EVIDENCE, incident_id="inc-1", max_root_causes=2)


def schema_sent(fake: FakeOllama, backend: str) -> dict[str, Any]:
    body = fake.requests_to(CHAT_PATH[backend])[-1].body
    return body["format"] if backend == "ollama" else body["response_format"]["json_schema"]["schema"]


def test_reported_speeds_shrink_the_next_prompt_and_answer(fake: FakeOllama, backend: str) -> None:
    fake.script(Scripted.reply(json.dumps(ANSWER), **MEASURED), Scripted.reply(json.dumps(ANSWER)))
    llm = client(backend, fake.url, targets=LatencyTargets(first_words_s=5, answer_s=12))
    first = explain(llm).run[-1].params
    assert first["latency_budget"]["prompt"] == "cap"
    assert first["latency_budget"]["prompt_reason"] == "no reading speed measured yet for this server and model"
    assert schema_sent(fake, backend)["properties"]["summary"]["maxLength"] == 320  # the usual answer
    assert (llm.speeds().read_tps, llm.speeds().write_tps, llm.speeds().answers) == (280.0, 20.0, 1)

    expl = explain(llm)
    second = expl.run[-1].params
    budget = second["latency_budget"]
    assert budget["prompt"] == "latency" and budget["prompt_limit_tokens"] == 1316  # 280/s * (5 s - 6 tokens / 20/s)
    assert second["prompt_tokens"] <= 1316 < first["prompt_tokens"]
    assert 3 < second["evidence_shown"] < first["evidence_shown"]
    assert budget["answer"] == "latency" and budget["summary_chars"] < 320
    assert schema_sent(fake, backend)["properties"]["summary"]["maxLength"] == budget["summary_chars"]
    assert budget["expected_answer_s"] <= 12.0 and budget["speeds"]["read_tps"] == 280.0
    assert expl.mode is ExplanationMode.LLM


def test_a_tight_budget_keeps_three_items_in_the_compact_form(fake: FakeOllama, backend: str) -> None:
    slow = {**MEASURED, "prompt_eval_ms": 28_000}  # 50 tokens/s: 235 new tokens for first words in 5 s
    fake.script(Scripted.reply(json.dumps(ANSWER), **slow), Scripted.reply(json.dumps(ANSWER)))
    llm = client(backend, fake.url)
    explain(llm)
    expl = explain(llm)
    params = expl.run[-1].params
    assert params["latency_budget"]["prompt_limit_tokens"] == 235
    assert params["evidence_shown"] == 3 and params["prompt_compact"] is True  # the floor, shorter
    assert params["shown_ids"][:2] == ["log:30", "log:7"]  # what the candidates cite, still first
    prompt = fake.requests_to(CHAT_PATH[backend])[-1].body["messages"][1]["content"]
    assert 'source="' not in prompt and 'score="' not in prompt
    assert expl.mode is ExplanationMode.LLM


def test_the_cached_system_prompt_is_free_when_the_server_says_so(fake: FakeOllama, backend: str) -> None:
    fake.script(Scripted.reply(json.dumps(ANSWER), **MEASURED, cached_count=300), Scripted.reply(json.dumps(ANSWER)))
    llm = client(backend, fake.url)
    explain(llm)
    assert llm.speeds().cached_tokens == 300
    # 1,100 tokens read in 5 s (the 300 cached ones apart): 220 tokens/s, 1,034 new tokens in 4.7 s
    budget = explain(llm).run[-1].params["latency_budget"]
    assert budget["cached_tokens_free"] == 300 and budget["prompt_limit_tokens"] == 300 + 1034


def test_targets_off_keep_the_fixed_cap(fake: FakeOllama, backend: str) -> None:
    fake.script(Scripted.reply(json.dumps(ANSWER), **MEASURED), Scripted.reply(json.dumps(ANSWER)))
    llm = client(backend, fake.url, targets=LatencyTargets(first_words_s=0, answer_s=0))
    first, second = explain(llm).run[-1].params, explain(llm).run[-1].params
    assert second["latency_budget"]["prompt"] == "cap" and second["latency_budget"]["answer"] == "cap"
    assert second["evidence_shown"] == first["evidence_shown"] and second["prompt_tokens"] == first["prompt_tokens"]


def test_speeds_are_kept_in_the_home_for_the_next_command(fake: FakeOllama, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, ollama_host=fake.url, llm_model=MODEL, llm_first_words_s=4, llm_answer_s=15)
    fake.script(Scripted.reply(json.dumps(ANSWER), **MEASURED), Scripted.reply(json.dumps(ANSWER)))
    llm = make_llm(settings)
    assert llm is not None and llm.latency_targets() == LatencyTargets(4, 15)
    explain(llm)
    llm.close()
    assert (tmp_path / SPEEDS_FILE).exists()
    again = make_llm(settings)  # the next CLI command: a new process, the same home
    assert again is not None and again.speeds().read_tps == 280.0
    budget = explain(again).run[-1].params["latency_budget"]
    assert budget["prompt"] == "latency" and budget["prompt_limit_tokens"] == 1036  # 280/s * (4 s - 0.3 s)
    again.close()
