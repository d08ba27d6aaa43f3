"""The explainer's latency budget as arithmetic (`agents.latency_budget`) and the speed estimate it reads
(`agents.llm_speed`): exact figures for given speeds, the floors, the ceilings, and what the servers report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.explain_prompt import AnswerBounds
from agents.latency_budget import answer_cost, plan_answer, plan_prompt
from agents.llm import PromptBudget
from agents.llm_speed import (
    LatencyTargets,
    ServerTimings,
    SpeedBook,
    Speeds,
    cached_of,
    client_timed,
    llamacpp_timings,
    observe,
    ollama_timings,
)

CAPPED = PromptBudget(context_tokens=4096, answer_tokens=400, max_prompt_tokens=1200)
TARGETS = LatencyTargets(first_words_s=5.0, answer_s=20.0)
QWEN = Speeds(read_tps=50.0, write_tps=20.0, cached_tokens=400, answers=3)


def test_the_longest_answer_the_bounds_allow_in_tokens() -> None:
    assert answer_cost(AnswerBounds(), 3) == 20 + 229 + 36 + 66  # keys, 800 characters / 3.5, 12 ids, 3 causes
    assert answer_cost(AnswerBounds(), 1) == 20 + 138 + 18 + 22


def test_reading_speed_and_the_cached_system_prompt_size_the_prompt() -> None:
    plan = plan_prompt(CAPPED, QWEN, TARGETS, system_tokens=360)
    # 50 tokens/s for 5 s less the JSON lead (6 tokens at 20/s): 235 new tokens, the 360 cached ones free
    assert (plan.prompt_tokens, plan.basis, plan.free_tokens) == (595, "latency", 360)
    assert plan.reason == "235 new tokens at 50 tokens/s + 360 cached for first words in 5 s"
    # the server said nothing was cached: nothing is free
    cold = plan_prompt(CAPPED, Speeds(read_tps=50.0, write_tps=20.0), TARGETS, system_tokens=360)
    assert (cold.prompt_tokens, cold.free_tokens) == (235, 0)
    # a cache smaller than the system prompt only counts for what it holds
    assert plan_prompt(CAPPED, Speeds(50.0, 20.0, cached_tokens=100), TARGETS, 360).prompt_tokens == 335


def test_the_fixed_cap_when_there_is_no_speed_no_target_or_time_for_more() -> None:
    unknown = plan_prompt(CAPPED, Speeds(), TARGETS, system_tokens=360)
    assert (unknown.prompt_tokens, unknown.basis) == (1200, "cap")
    assert unknown.reason == "no reading speed measured yet for this server and model"
    off = plan_prompt(CAPPED, QWEN, LatencyTargets(first_words_s=0), system_tokens=360)
    assert (off.prompt_tokens, off.basis) == (1200, "cap")
    fast = plan_prompt(CAPPED, Speeds(read_tps=300.0, write_tps=60.0), TARGETS, system_tokens=360)
    assert (fast.prompt_tokens, fast.basis) == (1200, "cap")  # never above the cap...
    uncapped = PromptBudget(context_tokens=2048, answer_tokens=400, max_prompt_tokens=None)
    room = plan_prompt(uncapped, Speeds(read_tps=900.0, write_tps=60.0), TARGETS, system_tokens=360)
    assert (room.prompt_tokens, room.basis) == (2048 - 400 - 48, "context")  # ...nor the context


def test_the_usual_answer_when_it_fits_the_total_target() -> None:
    plan = plan_answer(CAPPED, QWEN, TARGETS, prompt_tokens=400, free_tokens=360, max_root_causes=3)
    assert (plan.bounds, plan.root_causes, plan.basis) == (AnswerBounds(), 3, "cap")
    assert plan.max_tokens == 400  # 351 * 1.25 = 439, capped by DEVMESH_LLM_ANSWER_TOKENS
    assert (plan.expected_first_words_s, plan.expected_answer_s) == (1.1, 18.7)  # 40/50 + 0.3; + 351/20


def test_a_slow_writer_gets_shorter_prose_then_fewer_root_causes_then_the_floor() -> None:
    shorter = plan_answer(CAPPED, QWEN, TARGETS, prompt_tokens=595, free_tokens=360, max_root_causes=3)
    # first words at 5.0 s leave 15 s: 300 tokens; 122 are keys and ids, 623 characters for 800 usual
    assert (shorter.bounds, shorter.root_causes, shorter.basis) == (AnswerBounds(249, 124, 3), 3, "latency")
    assert answer_cost(shorter.bounds, 3) == 300 and shorter.max_tokens == 375
    assert shorter.expected_answer_s == 20.0
    slow = Speeds(read_tps=50.0, write_tps=10.0, cached_tokens=400)
    fewer = plan_answer(CAPPED, slow, TARGETS, prompt_tokens=595, free_tokens=360, max_root_causes=3)
    assert (fewer.bounds, fewer.root_causes) == (AnswerBounds(203, 101, 3), 1)  # 147 tokens: one cause at 63%
    slowest = Speeds(read_tps=50.0, write_tps=5.0, cached_tokens=400)
    floor = plan_answer(CAPPED, slowest, TARGETS, prompt_tokens=595, free_tokens=360, max_root_causes=3)
    assert (floor.bounds, floor.root_causes, floor.basis) == (AnswerBounds(160, 80, 2), 1, "floor")


def test_no_answer_target_or_no_writing_speed_keeps_the_usual_answer() -> None:
    off = plan_answer(CAPPED, QWEN, LatencyTargets(answer_s=0), prompt_tokens=2000, free_tokens=0, max_root_causes=3)
    unknown = plan_answer(CAPPED, Speeds(), TARGETS, prompt_tokens=2000, free_tokens=0, max_root_causes=3)
    for plan in (off, unknown):
        assert (plan.bounds, plan.root_causes, plan.max_tokens, plan.basis) == (AnswerBounds(), 3, 400, "cap")
    assert unknown.expected_first_words_s is None and unknown.expected_answer_s is None


def test_the_estimate_follows_each_answer_and_ignores_readings_too_short_to_time() -> None:
    first = observe(Speeds(), ServerTimings(1000, 20_000, 200, 10_000, cached_tokens=0))
    assert (first.read_tps, first.write_tps, first.cached_tokens, first.answers) == (50.0, 20.0, 0, 1)
    second = observe(first, ServerTimings(800, 8_000, 100, 2_500, cached_tokens=360))
    assert second.read_tps == pytest.approx(0.6 * 50 + 0.4 * 100)
    assert second.write_tps == pytest.approx(0.6 * 20 + 0.4 * 40)
    assert second.cached_tokens == 360 and second.answers == 2
    cached = observe(second, ServerTimings(1, 11.7, 10, 100, cached_tokens=900))  # a prompt asked again
    assert (cached.read_tps, cached.write_tps, cached.cached_tokens) == (second.read_tps, second.write_tps, 900)


def test_timings_as_each_server_reports_them() -> None:
    # Ollama: durations in ns; with a cached count, prompt_eval_count includes the cached tokens
    ns = 1_000_000
    assert ollama_timings(1200, 16_000 * ns, 300, 15_000 * ns, 400) == ServerTimings(800, 16_000, 300, 15_000, 400)
    assert ollama_timings(800, 16_000 * ns, 300, None) == ServerTimings(800, 16_000, 300, None, None)
    assert ollama_timings(800, None, 300, None) is None
    answer = {"timings": {"cache_n": 28, "prompt_n": 1, "prompt_ms": 11.7, "predicted_n": 10, "predicted_ms": 102.1}}
    assert llamacpp_timings(answer) == ServerTimings(1, 11.7, 10, 102.1, 28)
    assert llamacpp_timings({"usage": {}}) is None
    assert cached_of({"prompt_tokens": 29, "prompt_tokens_details": {"cached_tokens": 28}}) == 28
    assert cached_of({"prompt_tokens": 29}) is None
    # a server without durations: timed from the stream (reading until the first words)
    assert client_timed(600, 100, 4_000, 9_000) == ServerTimings(600, 4_000, 100, 5_000, None, "client")
    assert client_timed(600, 100, None, 9_000) is None


def test_the_speed_book_persists_per_server_and_model(tmp_path: Path) -> None:
    path = tmp_path / "llm_speeds.json"
    book = SpeedBook(path)
    book.record("http://a:11434", "qwen", ServerTimings(1000, 20_000, 200, 10_000, 0))
    book.record("http://a:11434", "smol", ServerTimings(1000, 5_000, 200, 4_000, 0))
    again = SpeedBook(path)  # another process, the same home
    assert again.get("http://a:11434", "qwen").read_tps == 50.0
    assert again.get("http://a:11434", "smol").write_tps == 50.0
    assert again.get("http://b:11434", "qwen") == Speeds()
    path.write_text("{not json")
    assert SpeedBook(path).get("http://a:11434", "qwen") == Speeds()  # damaged: started again
    SpeedBook(path).record("http://a:11434", "qwen", ServerTimings(100, 1_000, 20, 1_000, 0))
    assert json.loads(path.read_text())["http://a:11434 qwen"]["read_tps"] == 100.0
