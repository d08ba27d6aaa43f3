"""The explainer's prompt, fitted to the model: messages from `prompts/`, a bounded answer schema, and the
evidence packed into a token budget.

The budget is the model's context (`LLMClient.context_length`, asked from the server) less the tokens kept
for the answer and a margin for the chat template, capped by `max_prompt_tokens` (a prompt the CPU can read
in seconds). Evidence goes in most telling first (what the ranked candidates cite, in rank order, then the
rest in the order given, which is by score) until the budget is spent; the rest is left out and said so.
When not everything fits, the runbooks are left out first, and at least three items are kept; when even
those exceed the budget (a tight latency budget, `agents.latency_budget`), the prompt is built again in a
compact form (evidence with only id, kind, time and service as attributes, candidates without their pod and
with 80 characters of description, the alert's text at most 300 characters).
Each item is shown under a short id (E1, E2, ... in that order: stored ids such as
`metric:<pod>:cpu_usage@<ns>-<ns>` cost dozens of tokens to read and to cite), mapped back to the stored id
when the answer comes. Tokens are counted with the model's own tokenizer when the server has one
(llama.cpp `/tokenize`), else estimated as characters / 3 (log text with ids and numbers: SmolLM2 measured 3.3).

The schema bounds everything the model writes (`maxLength`, `maxItems`) and lists the ids it may cite and
the services it may name as enums, so a small model can neither invent an id nor loop until the limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from agents.evidence_text import EvidenceLimits, RenderedEvidence, escape_attr, render_block, render_evidence
from agents.explain_fallback import path_services
from agents.llm import TEMPLATE_MARGIN, ChatMessage, LLMClient, PromptBudget
from agents.masking import Masker
from core.explanation import EvidenceItem, Explanation, RootCause
from prompts import render_prompt

CHARS_PER_TOKEN = 3.0
CANDIDATE_CHARS = 160  # of a candidate's description in a fitted prompt (the evidence says the rest)
EVIDENCE_CHARS = 300  # of an evidence item's text in a fitted prompt (a stack trace's head says enough)
COMPACT_CANDIDATE_CHARS = 80  # when even three items at the usual length do not fit the budget
COMPACT_ALERT_CHARS = 300
MIN_EVIDENCE = 3  # items shown even beyond the prompt cap (not beyond the context): a claim needs something to cite


@dataclass(frozen=True)
class AnswerBounds:
    """How much the model may write (characters and list lengths, enforced by the schema)."""

    summary_chars: int = 320
    reasoning_chars: int = 160
    ids_per_claim: int = 3

    def shorter(self) -> AnswerBounds:
        """The bounds of the one retry after an answer was cut at the token limit."""
        return AnswerBounds(self.summary_chars // 2, self.reasoning_chars // 2, max(1, self.ids_per_claim - 1))


@dataclass(frozen=True)
class FittedPrompt:
    messages: list[ChatMessage]
    rendered: RenderedEvidence
    prompt_tokens: int
    counted_by: str  # "tokenizer" or "estimate"
    budget_tokens: int
    real_ids: dict[str, str]  # the short id each shown item has in the prompt (E1, E2, ...) -> its stored id
    compact: bool = False  # the shorter form (`fit_prompt`), when even three items did not fit the budget

    def stored_ids(self) -> list[str]:
        return [self.real_ids[a] for a in self.rendered.shown_ids]

    def to_stored(self, ids: Sequence[str]) -> list[str]:
        """Ids as the model cited them back to stored ids (an id it made up stays as it is, to be flagged)."""
        return [self.real_ids.get(i.strip(), i) for i in ids]


def answer_schema(
    services: Sequence[str],
    evidence_ids: Sequence[str],
    max_root_causes: int,
    bounds: AnswerBounds | None = None,
) -> dict[str, Any]:
    """JSON schema of the answer: prose bounded, services and ids limited to those shown (enums)."""
    b = bounds or AnswerBounds()
    ids: dict[str, Any] = {"type": "string", "enum": list(evidence_ids)} if evidence_ids else {"type": "string"}
    service: dict[str, Any] = {"type": "string", "enum": list(services)} if services else {"type": "string"}
    # nothing shown, nothing to cite (a free string would let the model cite timestamps or invent ids)
    cited = {
        "type": "array",
        "items": ids,
        "minItems": 1 if evidence_ids else 0,
        "maxItems": b.ids_per_claim if evidence_ids else 0,
    }
    return {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "minLength": 1, "maxLength": b.summary_chars},
            "summary_evidence_ids": cited,
            "root_causes": {
                "type": "array",
                "maxItems": max_root_causes,
                "items": {
                    "type": "object",
                    "properties": {
                        "service": service,
                        "reasoning": {"type": "string", "minLength": 1, "maxLength": b.reasoning_chars},
                        "evidence_ids": cited,
                    },
                    "required": ["service", "reasoning", "evidence_ids"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["summary", "summary_evidence_ids", "root_causes"],
        "additionalProperties": False,
    }


def prioritized(evidence: Sequence[EvidenceItem], root_causes: Sequence[RootCause]) -> list[EvidenceItem]:
    """Evidence the candidates cite first, in rank order (so it is shown and citable), then the rest in order."""
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
    rendered: RenderedEvidence | None = None,
    candidate_chars: int = 600,
    with_runbooks: bool = True,
    compact: bool = False,
) -> tuple[list[ChatMessage], RenderedEvidence]:
    """System and user messages for the explainer, and which evidence ids they show."""
    if rendered is None:
        rendered = render_evidence(prioritized(base.evidence, base.root_causes), limits=limits, masker=masker)
    tied = {s: [o for o in t.services if o != s] for t in base.ties for s in t.services}
    candidates = "\n".join(
        render_block(
            "candidate",
            {
                "rank": rc.rank,
                "service": rc.service,
                "pod": "" if compact else rc.pod,
                "confidence": f"{rc.confidence:.2f}",
                "fault_kind": rc.fault_kind.value,
                "tied_with": " ".join(tied.get(rc.service, [])),
                "evidence": " ".join(rc.evidence_ids),
            },
            rc.reasoning,
            max_chars=candidate_chars,
            masker=masker,
        )
        for rc in base.root_causes
    )
    chain = path_services(base.propagation_path)
    propagation = render_block("signal", {"kind": "propagation"}, " → ".join(chain)) if len(chain) > 1 else ""
    runbooks = "\n".join(
        render_block("runbook", {"id": rb.id, "title": rb.title}, " | ".join(rb.steps), masker=masker)
        for rb in (base.runbooks if with_runbooks else [])
    )
    window = base.window
    user = render_prompt(
        "explainer_user",
        incident_id=escape_attr(base.incident_id or "(ad hoc)"),
        window_start=window.start if window else "unknown",
        window_end=window.end if window else "unknown",
        alert_block=render_block(
            "alert", {}, alert_text, max_chars=COMPACT_ALERT_CHARS if compact else 2000, masker=masker
        )
        if alert_text
        else "",
        candidates_block=candidates or "(none)",
        propagation_block=propagation,
        shown_count=len(rendered.shown_ids),
        omitted_count=len(rendered.omitted_ids),
        evidence_block=rendered.text or "(none)",
        runbooks_block=runbooks,
    )
    return [ChatMessage("system", system_prompt(max_root_causes)), ChatMessage("user", user)], rendered


def system_prompt(max_root_causes: int = 3) -> str:
    """The explainer's system message: the same for every incident, first, so a server can keep it cached."""
    return render_prompt("explainer_system", max_root_causes=max_root_causes)


class TokenCounter:
    """The model's tokenizer when the server has one (the client remembers when it has none), else
    characters / 3, rounded up."""

    def __init__(self, llm: LLMClient | None) -> None:
        self.llm = llm
        self.counted_by = "estimate"

    def __call__(self, text: str) -> int:
        counted = self.llm.count_tokens(text) if self.llm is not None else None
        if counted is None:
            return math.ceil(len(text) / CHARS_PER_TOKEN)
        self.counted_by = "tokenizer"
        return counted


def fit_prompt(
    base: Explanation,
    llm: LLMClient | None,
    budget: PromptBudget,
    *,
    alert_text: str = "",
    masker: Masker | None = None,
    limits: EvidenceLimits | None = None,
    max_root_causes: int = 3,
) -> FittedPrompt:
    """The messages with as much evidence, most telling first, as the budget holds (see the module doc)."""
    count = TokenCounter(llm)
    fitted = _fit(base, count, budget, alert_text, masker, limits, max_root_causes, compact=False)
    if fitted.prompt_tokens > fitted.budget_tokens:  # the floor does not fit: the same, shorter
        fitted = _fit(base, count, budget, alert_text, masker, limits, max_root_causes, compact=True)
    return fitted


def _fit(
    base: Explanation,
    count: TokenCounter,
    budget: PromptBudget,
    alert_text: str,
    masker: Masker | None,
    limits: EvidenceLimits | None,
    max_root_causes: int,
    *,
    compact: bool,
) -> FittedPrompt:
    ordered = list({e.id: e for e in reversed(prioritized(base.evidence, base.root_causes))}.values())[::-1]
    alias = {e.id: f"E{n}" for n, e in enumerate(ordered, 1)}  # short ids: fewer tokens in and out
    short = [e.model_copy(update={"id": alias[e.id]}) for e in ordered]
    limits = replace(limits or EvidenceLimits(max_text_chars=EVIDENCE_CHARS), compact=compact)
    full = render_evidence(short, limits=limits, masker=masker)
    lines = full.text.split("\n") if full.text else []
    real = {a: i for i, a in alias.items()}

    def build(keep: int, with_runbooks: bool = True) -> tuple[list[ChatMessage], RenderedEvidence, int]:
        kept = set(full.shown_ids[:keep])
        shown = RenderedEvidence(
            text="\n".join(lines[:keep]),
            shown_ids=full.shown_ids[:keep],
            omitted_ids=[*full.shown_ids[keep:], *full.omitted_ids],
            truncated_ids=[i for i in full.truncated_ids if i in kept],
        )
        cited = [
            rc.model_copy(update={"evidence_ids": [alias[i] for i in rc.evidence_ids if alias.get(i) in kept]})
            for rc in base.root_causes
        ]
        messages, _ = build_messages(
            base.model_copy(update={"root_causes": cited}),
            alert_text=alert_text,
            masker=masker,
            max_root_causes=max_root_causes,
            rendered=shown,
            candidate_chars=COMPACT_CANDIDATE_CHARS if compact else CANDIDATE_CHARS,
            with_runbooks=with_runbooks,
            compact=compact,
        )
        return messages, shown, sum(count(m.content) for m in messages)

    limit = budget.prompt_tokens
    hard = budget.context_tokens - budget.answer_tokens - TEMPLATE_MARGIN  # what the model can take at all
    messages, shown, used = build(len(lines))
    if used > limit and lines:  # runbooks go first (the explanation links them anyway), then evidence
        _, _, empty = build(0, with_runbooks=False)
        room, keep = limit - empty, 0
        for line in lines:  # the longest prefix whose lines fit, counted one by one
            room -= count(line) + 1
            if room < 0 and keep >= MIN_EVIDENCE:
                break
            keep += 1
        messages, shown, used = build(keep, with_runbooks=False)
        while used > limit and keep > MIN_EVIDENCE or used > hard and keep > 0:  # the parts did not add up
            keep -= 1
            messages, shown, used = build(keep, with_runbooks=False)
    real_ids = {a: real[a] for a in shown.shown_ids}
    return FittedPrompt(messages, shown, used, count.counted_by, limit, real_ids, compact)
