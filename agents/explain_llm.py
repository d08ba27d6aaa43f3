"""The LLM explainer: a prompt fitted to the model (`agents.explain_prompt`), a JSON answer to a bounded
schema, citations checked, merged.

The evidence-only explanation is built first and is what the caller gets whenever the model cannot be used: no
client, `LLMUnavailable` (unreachable, timeouts, breaker open), an answer that does not match the schema, or
an answer none of whose claims cite valid evidence. The prompt's evidence and the answer's length are sized
for the latency targets from the server's measured speeds (`agents.latency_budget`); the `llm.chat` step's
`latency_budget` says which budget was used and why. Otherwise the model's summary and reasoning replace the
generated prose; the ranking's candidates, confidence, fault kinds, ties and propagation path stay as code
computed them. When the evidence cannot separate the first candidates (a tie), the model is told (a
`tied_with` attribute on each) and the summary starts with the code-written tie sentence, whatever the model
wrote after it. A summary or reasoning that names another root cause than the candidates
(`agents.prose_check`) is replaced by the evidence-only one and flagged. An answer cut at the token limit is
asked for again once, shorter (half the characters, one root cause); cut again, the explanation is
evidence-only and says why.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from agents.answer_stream import SummaryWords, current_sink
from agents.citations import Claim, verify_claims
from agents.evidence_text import EvidenceLimits
from agents.explain_fallback import explain_from_evidence, tie_sentences, top_tie
from agents.explain_prompt import (
    AnswerBounds,
    FittedPrompt,
    PromptBudget,
    TokenCounter,
    answer_schema,
    build_messages,
    fit_prompt,
    system_prompt,
)
from agents.latency_budget import AnswerPlan, PromptPlan, plan_answer, plan_prompt
from agents.llm import LLMClient, LLMReply
from agents.llm_speed import LatencyTargets
from agents.masking import Masker
from agents.prose_check import foreign_root_causes
from core.errors import LLMUnavailable
from core.explanation import (
    AgentStep,
    EvidenceItem,
    Explanation,
    ExplanationMode,
    LLMUsage,
    RunbookLink,
    SimilarIncident,
    StepStatus,
    UnsupportedClaim,
)
from core.rca import RankingResult, TimeRange
from core.timeutil import now_ns

__all__ = ["answer_schema", "build_messages", "explain_with_llm", "merge_answer", "parse_answer"]

logger = logging.getLogger(__name__)

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


class AnswerRootCause(BaseModel):
    service: str
    reasoning: str
    evidence_ids: list[str] = Field(default_factory=list)


class ExplainerAnswer(BaseModel):
    """What the model must return (validated; never trusted)."""

    summary: str
    summary_evidence_ids: list[str] = Field(default_factory=list)
    root_causes: list[AnswerRootCause] = Field(default_factory=list)


def parse_answer(content: str) -> ExplainerAnswer:
    """The model's JSON (a ```json fence around it is tolerated); raises ValidationError."""
    m = _FENCE.match(content)
    return ExplainerAnswer.model_validate_json(m.group(1) if m else content)


def merge_answer(
    base: Explanation, answer: ExplainerAnswer, shown_ids: Sequence[str], *, masker: Masker | None = None
) -> tuple[Explanation, list[UnsupportedClaim], bool]:
    """`base` with the model's supported prose: (explanation, flags, whether any claim was kept).

    Unknown ids are dropped from claims, claims without a valid id and root causes naming a service
    that is not a candidate are left out; each is flagged. Mode and model are left to the caller.
    """
    services = {rc.service for rc in base.root_causes}
    flags: list[UnsupportedClaim] = []
    claims = [Claim("summary", answer.summary, answer.summary_evidence_ids)]
    for named in answer.root_causes:
        if named.service in services:
            claims.append(Claim(f"root_cause:{named.service}", named.reasoning, named.evidence_ids))
        else:
            flags.append(
                UnsupportedClaim(
                    where=f"root_cause:{named.service}",
                    text=named.reasoning,
                    cited_ids=list(named.evidence_ids),
                    reason="unknown_service",
                    dropped=True,
                )
            )
    kept, citation_flags = verify_claims(claims, set(shown_ids))
    flags.extend(citation_flags)

    def shown(text: str) -> str:
        return masker.unmask(text) if masker else text

    by_where = {c.where: c for c in kept}
    summary = by_where.get("summary")
    root_causes = []
    for rc in base.root_causes:
        claim = by_where.get(f"root_cause:{rc.service}")
        if claim is None:
            root_causes.append(rc)
            continue
        ids = list(dict.fromkeys([*rc.evidence_ids, *claim.valid_ids]))
        root_causes.append(rc.model_copy(update={"reasoning": shown(claim.text), "evidence_ids": ids}))
    merged = base.model_copy(
        update={
            "summary": shown(summary.text) if summary else base.summary,
            "summary_evidence_ids": summary.valid_ids if summary else base.summary_evidence_ids,
            "root_causes": root_causes,
            "unsupported_claims": [*base.unsupported_claims, *flags],
        }
    )
    return merged, flags, bool(kept)


def explain_with_llm(
    llm: LLMClient | None,
    ranking: RankingResult,
    evidence: Sequence[EvidenceItem] = (),
    runbooks: Sequence[RunbookLink] = (),
    *,
    similar: Sequence[SimilarIncident] = (),
    incident_id: str = "",
    window: TimeRange | None = None,
    alert_text: str = "",
    run: Sequence[AgentStep] = (),
    timings: dict[str, float] | None = None,
    masker: Masker | None = None,
    limits: EvidenceLimits | None = None,
    max_root_causes: int = 3,
    budget: PromptBudget | None = None,
    bounds: AnswerBounds | None = None,
) -> Explanation:
    """The explanation of an incident, written by `llm` when it can be used, evidence-only otherwise.

    The prompt is fitted to the model's context (`budget`: its context length is asked from the server);
    an answer cut at the token limit is asked again once with `bounds.shorter()`, then given up on.
    Inside `agents.answer_stream.words_to(...)` the summary's words are streamed as the model writes them.
    """
    started = time.perf_counter()
    base = explain_from_evidence(
        ranking,
        evidence,
        runbooks,
        similar=similar,
        incident_id=incident_id,
        window=window,
        run=run,
        timings=timings,
        max_root_causes=max_root_causes,
    )
    if llm is None:
        return _timed(base, started)
    if not base.root_causes:
        reason = "no root-cause candidate for a language model to explain"
        return _timed(base.model_copy(update={"fallback_reason": reason}), started)

    call_started = time.perf_counter()
    budget = budget or llm.prompt_budget()
    speeds, targets = llm.speeds(), llm.latency_targets()
    prompt_plan = plan_prompt(budget, speeds, targets, TokenCounter(llm)(system_prompt(max_root_causes)))
    fitted = fit_prompt(
        base,
        llm,
        replace(budget, max_prompt_tokens=prompt_plan.prompt_tokens),
        alert_text=alert_text,
        masker=masker,
        limits=limits,
        max_root_causes=max_root_causes,
    )
    answer_plan = plan_answer(
        budget,
        speeds,
        targets,
        prompt_tokens=fitted.prompt_tokens,
        free_tokens=prompt_plan.free_tokens,
        max_root_causes=max_root_causes,
        bounds=bounds,
    )
    rendered = fitted.rendered
    services = [rc.service for rc in base.root_causes]
    step = AgentStep(
        agent="explainer",
        tool="llm.chat",
        query=llm.model,
        params={
            "evidence_shown": len(rendered.shown_ids),
            "evidence_omitted": len(rendered.omitted_ids),
            "prompt_chars": sum(len(m.content) for m in fitted.messages),
            "prompt_tokens": fitted.prompt_tokens,
            "prompt_budget_tokens": fitted.budget_tokens,
            "context_tokens": budget.context_tokens,
            "tokens_counted_by": fitted.counted_by,
            "prompt_compact": fitted.compact,
            "masked_values": masker.masked_count if masker else 0,
            "latency_budget": _budget_params(prompt_plan, answer_plan, speeds.as_dict(), targets),
        },
        started_ns=now_ns(),
    )
    sink = current_sink()
    words = SummaryWords(sink, masker.unmask if masker else None) if sink is not None else None
    bounds = answer_plan.bounds
    replies: list[LLMReply] = []
    for shorter in (False, True):
        schema = answer_schema(services, rendered.shown_ids, 1 if shorter else answer_plan.root_causes, bounds)
        try:
            reply = llm.chat(fitted.messages, schema=schema, max_tokens=answer_plan.max_tokens, on_text=words)
        except LLMUnavailable as exc:
            return _fallback(base, started, call_started, step, str(exc), usage=_usage(replies))
        replies.append(reply)
        if not reply.truncated:
            break
        logger.warning(
            "LLM answer cut at the token limit", extra={"tokens": reply.completion_tokens, "retry": not shorter}
        )
        bounds = bounds.shorter()
    usage = _usage(replies)
    if reply.truncated:
        reason = (
            f"the language model's answer was cut at its limit of {answer_plan.max_tokens} tokens, "
            "also when asked for a shorter one"
        )
        return _fallback(base, started, call_started, step, reason, usage=usage)
    try:
        answer = parse_answer(reply.content)
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = f"the language model's answer did not match the schema ({first['type']} at {first['loc']})"
        return _fallback(base, started, call_started, step, reason, usage=usage)

    answer = _stored_ids(answer, fitted)
    answer_services = [rc.service for rc in answer.root_causes]  # in the model's order, for evaluations
    answer, contradicted = _drop_contradictions(answer, [n for rc in base.root_causes for n in (rc.service, rc.pod)])
    merged, flags, supported = merge_answer(base, answer, fitted.stored_ids(), masker=masker)
    if contradicted:
        wheres = {f.where for f in contradicted}
        kept = [f for f in merged.unsupported_claims if f.where not in wheres]
        merged = merged.model_copy(update={"unsupported_claims": [*kept, *contradicted]})
        flags = [*[f for f in flags if f.where not in wheres], *contradicted]
    llm_ms = (time.perf_counter() - call_started) * 1000
    answered = {
        **step.params,
        "shown_ids": fitted.stored_ids(),
        "answer_services": answer_services,
    }
    done = step.model_copy(
        update={"duration_ms": llm_ms, "items": 1, "detail": f"{len(flags)} claims flagged", "params": answered}
    )
    if not supported:
        reason = "no claim of the language model's answer cited valid evidence"
        logger.warning("LLM answer unsupported", extra={"model": reply.model, "flags": len(flags)})
        result = merged.model_copy(update={"fallback_reason": reason})
    else:
        result = merged.model_copy(update={"mode": ExplanationMode.LLM, "model": reply.model, "fallback_reason": ""})
        head = top_tie(ranking, base.ties)
        lead = tie_sentences(head, ranking.candidates) if head is not None else ""
        if lead and not result.summary.startswith(lead):  # the model's summary was kept: the tie comes first
            result = result.model_copy(update={"summary": f"{lead} {result.summary}"})
    result = result.model_copy(
        update={
            "usage": usage,
            "run": [*result.run, done],
            "timings": {**result.timings, **_llm_timings(replies, llm_ms)},
        }
    )
    return _timed(result, started)


def _budget_params(
    prompt: PromptPlan, answer: AnswerPlan, speeds: dict[str, Any], targets: LatencyTargets
) -> dict[str, Any]:
    """Which budget sized the prompt and the answer, and why (the explanation's `llm.chat` step says it)."""
    return {
        "prompt": prompt.basis,
        "prompt_reason": prompt.reason,
        "prompt_limit_tokens": prompt.prompt_tokens,
        "cached_tokens_free": prompt.free_tokens,
        "answer": answer.basis,
        "answer_reason": answer.reason,
        "answer_max_tokens": answer.max_tokens,
        "answer_root_causes": answer.root_causes,
        "summary_chars": answer.bounds.summary_chars,
        "reasoning_chars": answer.bounds.reasoning_chars,
        "expected_first_words_s": answer.expected_first_words_s,
        "expected_answer_s": answer.expected_answer_s,
        "first_words_target_s": targets.first_words_s,
        "answer_target_s": targets.answer_s,
        "speeds": speeds,
    }


def _drop_contradictions(
    answer: ExplainerAnswer, known: Sequence[str]
) -> tuple[ExplainerAnswer, list[UnsupportedClaim]]:
    """The answer without prose that names another root cause than the candidates (`agents.prose_check`)."""
    flags = []
    if foreign_root_causes(answer.summary, known):
        flags.append(UnsupportedClaim(where="summary", text=answer.summary, reason="contradicts_ranking", dropped=True))
        answer = answer.model_copy(update={"summary": "", "summary_evidence_ids": []})
    causes = []
    for rc in answer.root_causes:
        if foreign_root_causes(rc.reasoning, known):
            where = f"root_cause:{rc.service}"
            flags.append(UnsupportedClaim(where=where, text=rc.reasoning, reason="contradicts_ranking", dropped=True))
        else:
            causes.append(rc)
    if flags:
        logger.warning("LLM prose contradicts the ranking", extra={"claims": [f.where for f in flags]})
    return answer.model_copy(update={"root_causes": causes}), flags


def _stored_ids(answer: ExplainerAnswer, fitted: FittedPrompt) -> ExplainerAnswer:
    """The answer with the prompt's short ids (E1, ...) turned back into stored ids."""
    causes = [rc.model_copy(update={"evidence_ids": fitted.to_stored(rc.evidence_ids)}) for rc in answer.root_causes]
    return answer.model_copy(
        update={"summary_evidence_ids": fitted.to_stored(answer.summary_evidence_ids), "root_causes": causes}
    )


def _usage(replies: Sequence[LLMReply]) -> LLMUsage | None:
    if not replies:
        return None
    return LLMUsage(
        prompt_tokens=sum(r.prompt_tokens for r in replies),
        completion_tokens=sum(r.completion_tokens for r in replies),
        calls=len(replies),
    )


def _llm_timings(replies: Sequence[LLMReply], llm_ms: float) -> dict[str, float]:
    out = {"llm_ms": llm_ms}
    first = replies[0].first_text_ms if replies else None
    if first is not None:
        out["llm_first_text_ms"] = first
    return out


def _fallback(
    base: Explanation,
    started: float,
    call_started: float,
    step: AgentStep,
    reason: str,
    usage: LLMUsage | None = None,
) -> Explanation:
    logger.warning("LLM explanation failed; evidence-only", extra={"reason": reason})
    llm_ms = (time.perf_counter() - call_started) * 1000
    failed = step.model_copy(update={"duration_ms": llm_ms, "status": StepStatus.ERROR, "detail": reason})
    result = base.model_copy(
        update={
            "fallback_reason": reason,
            "usage": usage,
            "run": [*base.run, failed],
            "timings": {**base.timings, "llm_ms": llm_ms},
        }
    )
    return _timed(result, started)


def _timed(expl: Explanation, started: float) -> Explanation:
    return expl.model_copy(update={"timings": {**expl.timings, "explain_ms": (time.perf_counter() - started) * 1000}})
