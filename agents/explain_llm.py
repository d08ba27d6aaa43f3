"""The LLM explainer: prompt from `prompts/`, JSON answer to a schema, citations checked, merged.

The evidence-only explanation is built first and is what the caller gets whenever the model cannot
be used: no client, `LLMUnavailable` (unreachable, timeouts, breaker open), an answer that does not
match the schema, or an answer none of whose claims cite valid evidence. Otherwise the model's
summary and reasoning replace the generated prose; the ranking's candidates, confidence, fault kinds,
ties and propagation path stay as code computed them. When the evidence cannot separate the first
candidates (a tie), the model is told (a `tied_with` attribute on each) and the summary starts with the
code-written tie sentence, whatever the model wrote after it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from agents.citations import Claim, verify_claims
from agents.evidence_text import EvidenceLimits, RenderedEvidence, escape_attr, render_block, render_evidence
from agents.explain_fallback import explain_from_evidence, path_services, tie_sentences, top_tie
from agents.llm import ChatMessage, LLMClient, LLMReply
from agents.masking import Masker
from core.errors import LLMUnavailable
from core.explanation import (
    AgentStep,
    EvidenceItem,
    Explanation,
    ExplanationMode,
    LLMUsage,
    RootCause,
    RunbookLink,
    SimilarIncident,
    StepStatus,
    UnsupportedClaim,
)
from core.rca import RankingResult, TimeRange
from core.timeutil import now_ns
from prompts import render_prompt

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


def answer_schema(services: Sequence[str], evidence_ids: Sequence[str], max_root_causes: int) -> dict[str, Any]:
    """JSON schema sent as Ollama's `format`: services and ids limited to those shown."""
    ids: dict[str, Any] = {"type": "string", "enum": list(evidence_ids)} if evidence_ids else {"type": "string"}
    service: dict[str, Any] = {"type": "string", "enum": list(services)} if services else {"type": "string"}
    return {
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "summary_evidence_ids": {"type": "array", "items": ids},
            "root_causes": {
                "type": "array",
                "maxItems": max_root_causes,
                "items": {
                    "type": "object",
                    "properties": {
                        "service": service,
                        "reasoning": {"type": "string"},
                        "evidence_ids": {"type": "array", "items": ids},
                    },
                    "required": ["service", "reasoning", "evidence_ids"],
                },
            },
        },
        "required": ["summary", "summary_evidence_ids", "root_causes"],
    }


def _prioritized(evidence: Sequence[EvidenceItem], root_causes: Sequence[RootCause]) -> list[EvidenceItem]:
    """Evidence the candidates cite first (so it is shown and citable), then the rest in order."""
    cited = [i for rc in root_causes for i in rc.evidence_ids]
    rank = {eid: n for n, eid in reversed(list(enumerate(cited)))}
    return sorted(evidence, key=lambda e: rank.get(e.id, len(rank)))


def build_messages(
    base: Explanation,
    *,
    alert_text: str = "",
    masker: Masker | None = None,
    limits: EvidenceLimits | None = None,
    max_root_causes: int = 3,
) -> tuple[list[ChatMessage], RenderedEvidence]:
    """System and user messages for the explainer, and which evidence ids they show."""
    rendered = render_evidence(_prioritized(base.evidence, base.root_causes), limits=limits, masker=masker)
    tied = {s: [o for o in t.services if o != s] for t in base.ties for s in t.services}
    candidates = "\n".join(
        render_block(
            "candidate",
            {
                "rank": rc.rank,
                "service": rc.service,
                "pod": rc.pod,
                "confidence": f"{rc.confidence:.2f}",
                "fault_kind": rc.fault_kind.value,
                "tied_with": " ".join(tied.get(rc.service, [])),
                "evidence": " ".join(rc.evidence_ids),
            },
            rc.reasoning,
            masker=masker,
        )
        for rc in base.root_causes
    )
    chain = path_services(base.propagation_path)
    propagation = render_block("signal", {"kind": "propagation"}, " → ".join(chain)) if len(chain) > 1 else ""
    runbooks = "\n".join(
        render_block("runbook", {"id": rb.id, "title": rb.title}, " | ".join(rb.steps), masker=masker)
        for rb in base.runbooks
    )
    window = base.window
    user = render_prompt(
        "explainer_user",
        incident_id=escape_attr(base.incident_id or "(ad hoc)"),
        window_start=window.start if window else "unknown",
        window_end=window.end if window else "unknown",
        alert_block=render_block("alert", {}, alert_text, max_chars=2000, masker=masker) if alert_text else "",
        candidates_block=candidates or "(none)",
        propagation_block=propagation,
        shown_count=len(rendered.shown_ids),
        omitted_count=len(rendered.omitted_ids),
        evidence_block=rendered.text or "(none)",
        runbooks_block=runbooks,
    )
    system = render_prompt("explainer_system", max_root_causes=max_root_causes)
    return [ChatMessage("system", system), ChatMessage("user", user)], rendered


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
) -> Explanation:
    """The explanation of an incident, written by `llm` when it can be used, evidence-only otherwise."""
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

    messages, rendered = build_messages(
        base, alert_text=alert_text, masker=masker, limits=limits, max_root_causes=max_root_causes
    )
    services = [rc.service for rc in base.root_causes]
    schema = answer_schema(services, rendered.shown_ids, max_root_causes)
    step = AgentStep(
        agent="explainer",
        tool="llm.chat",
        query=llm.model,
        params={
            "evidence_shown": len(rendered.shown_ids),
            "evidence_omitted": len(rendered.omitted_ids),
            "prompt_chars": sum(len(m.content) for m in messages),
            "masked_values": masker.masked_count if masker else 0,
        },
        started_ns=now_ns(),
    )
    call_started = time.perf_counter()
    try:
        reply = llm.chat(messages, schema=schema)
    except LLMUnavailable as exc:
        return _fallback(base, started, call_started, step, str(exc))
    try:
        answer = parse_answer(reply.content)
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = f"the language model's answer did not match the schema ({first['type']} at {first['loc']})"
        return _fallback(base, started, call_started, step, reason, usage=_usage(reply))

    merged, flags, supported = merge_answer(base, answer, rendered.shown_ids, masker=masker)
    llm_ms = (time.perf_counter() - call_started) * 1000
    done = step.model_copy(update={"duration_ms": llm_ms, "items": 1, "detail": f"{len(flags)} claims flagged"})
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
            "usage": _usage(reply),
            "run": [*result.run, done],
            "timings": {**result.timings, "llm_ms": llm_ms},
        }
    )
    return _timed(result, started)


def _usage(reply: LLMReply) -> LLMUsage:
    return LLMUsage(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens, calls=1)


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
