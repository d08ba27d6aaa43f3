"""The explainer's latency budget: how much prompt and answer fit the time a person waits, from the server's
measured speeds (`agents.llm_speed.Speeds`).

First words come after the server has read the prompt's new tokens (those it has not cached) and written the
answer's JSON lead (`{"summary": "`): so the prompt may hold `free + read_tps * (first_words_s - lead)`
tokens, `free` being the stable system prompt when the server said on its latest answer that it had at least
that many tokens cached (llama.cpp's prompt cache, which keeps the prefix a new prompt shares with the last
one). The answer may take what is left of the total target at the writing speed; the answer schema's bounds
(`AnswerBounds`: characters and root causes) are sized so that the longest answer they allow fits it.

Floors keep the answer useful whatever the speeds: the prompt keeps the candidates and three evidence items
(`agents.explain_prompt.fit_prompt`), the answer a summary and the top root cause at half the usual length.
Ceilings stay those of the context (`PromptBudget`): a latency budget only ever makes the prompt and the
answer smaller. Without a measured speed (the first answer of a server and model) or without targets, the
fixed cap (`DEVMESH_LLM_PROMPT_TOKENS`) is the budget, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agents.explain_prompt import AnswerBounds
from agents.llm import PromptBudget
from agents.llm_speed import LatencyTargets, Speeds

LEAD_TOKENS = 6  # `{"summary": "`, written before the first words
OUT_CHARS_PER_TOKEN = 3.5  # of the answer's prose (English with service names)
ID_TOKENS = 3  # one cited id: `"E12",`
JSON_TOKENS = 20  # the answer's keys and brackets
CAUSE_TOKENS = 22  # one root cause's keys, brackets and service name
MIN_SCALE = 0.5  # the shortest prose bounds, as a share of the usual ones
MIN_ANSWER_TOKENS = 96
SAFETY = 1.25  # max_tokens over the longest answer the bounds allow (the estimate per character is rough)


@dataclass(frozen=True)
class PromptPlan:
    """The prompt's token limit and why (`basis`: latency, cap or context)."""

    prompt_tokens: int
    basis: str
    reason: str
    free_tokens: int  # counted as already read (the cached system prompt)


@dataclass(frozen=True)
class AnswerPlan:
    """The answer's bounds and token limit, and the times expected for the prompt as fitted."""

    bounds: AnswerBounds
    root_causes: int
    max_tokens: int
    basis: str
    reason: str
    expected_first_words_s: float | None
    expected_answer_s: float | None


def answer_cost(bounds: AnswerBounds, root_causes: int) -> int:
    """Tokens of the longest answer `bounds` allow with `root_causes` root causes."""
    prose = math.ceil((bounds.summary_chars + root_causes * bounds.reasoning_chars) / OUT_CHARS_PER_TOKEN)
    ids = (1 + root_causes) * bounds.ids_per_claim * ID_TOKENS
    return JSON_TOKENS + prose + ids + root_causes * CAUSE_TOKENS


def plan_prompt(budget: PromptBudget, speeds: Speeds, targets: LatencyTargets, system_tokens: int) -> PromptPlan:
    """The prompt's limit: the fixed one (`budget.prompt_tokens`) or less, for first words within the target."""
    fixed = budget.prompt_tokens
    basis = "cap" if budget.max_prompt_tokens and fixed == budget.max_prompt_tokens else "context"
    if targets.first_words_s <= 0:
        return PromptPlan(fixed, basis, "no first-words target (DEVMESH_LLM_FIRST_WORDS_S=0)", 0)
    if speeds.read_tps is None:
        return PromptPlan(fixed, basis, "no reading speed measured yet for this server and model", 0)
    free = min(system_tokens, speeds.cached_tokens)
    lead_s = LEAD_TOKENS / speeds.write_tps if speeds.write_tps else 0.0
    new = max(0, math.floor(speeds.read_tps * (targets.first_words_s - lead_s)))
    wanted = free + new
    cached = f" + {free} cached" if free else ""
    how = f"{new} new tokens at {speeds.read_tps:.0f} tokens/s{cached} for first words in {targets.first_words_s:g} s"
    if wanted >= fixed:
        return PromptPlan(fixed, basis, f"{how} allow more than the {basis} of {fixed}", free)
    return PromptPlan(wanted, "latency", how, free)


def plan_answer(
    budget: PromptBudget,
    speeds: Speeds,
    targets: LatencyTargets,
    *,
    prompt_tokens: int,
    free_tokens: int,
    max_root_causes: int,
    bounds: AnswerBounds | None = None,
) -> AnswerPlan:
    """The answer's bounds for the prompt as fitted (`prompt_tokens`): the usual ones when they fit the total
    target, else shorter prose (down to `MIN_SCALE`), then fewer root causes (down to one)."""
    usual = bounds or AnswerBounds()
    first = _expected_first_words(speeds, prompt_tokens, free_tokens)
    full = answer_cost(usual, max_root_causes)
    cap = budget.answer_tokens

    def plan(b: AnswerBounds, n: int, basis: str, reason: str) -> AnswerPlan:
        cost = answer_cost(b, n)
        total = first + cost / speeds.write_tps if first is not None and speeds.write_tps else None
        tokens = min(cap, max(MIN_ANSWER_TOKENS, math.ceil(cost * SAFETY)))
        return AnswerPlan(b, n, tokens, basis, reason, _round(first), _round(total))

    if targets.answer_s <= 0:
        return plan(usual, max_root_causes, "cap", "no answer target (DEVMESH_LLM_ANSWER_S=0)")
    if first is None or not speeds.write_tps:
        return plan(usual, max_root_causes, "cap", "no writing speed measured yet for this server and model")
    room = math.floor(speeds.write_tps * (targets.answer_s - first))
    how = f"{room} tokens at {speeds.write_tps:.0f} tokens/s after first words in {first:.1f} s"
    if full <= room:
        return plan(usual, max_root_causes, "cap", f"{how}: the usual answer ({full}) fits")
    for n in range(max_root_causes, 0, -1):
        fixed = answer_cost(AnswerBounds(0, 0, usual.ids_per_claim), n)
        chars = (room - fixed) * OUT_CHARS_PER_TOKEN
        scale = min(1.0, chars / (usual.summary_chars + n * usual.reasoning_chars))
        if scale >= MIN_SCALE:
            b = AnswerBounds(int(usual.summary_chars * scale), int(usual.reasoning_chars * scale), usual.ids_per_claim)
            return plan(b, n, "latency", f"{how}: prose at {scale:.0%} with {n} root cause(s)")
    floor = AnswerBounds(int(usual.summary_chars * MIN_SCALE), int(usual.reasoning_chars * MIN_SCALE), 2)
    return plan(floor, 1, "floor", f"{how}: less than the shortest useful answer ({answer_cost(floor, 1)})")


def _expected_first_words(speeds: Speeds, prompt_tokens: int, free_tokens: int) -> float | None:
    if speeds.read_tps is None:
        return None
    lead = LEAD_TOKENS / speeds.write_tps if speeds.write_tps else 0.0
    return max(0, prompt_tokens - free_tokens) / speeds.read_tps + lead


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)
