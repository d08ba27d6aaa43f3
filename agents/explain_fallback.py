"""The evidence-only explanation: built by code from the ranking, the evidence and the runbooks.

Used when no language model is configured or reachable, and as the base the LLM explainer writes
over. It is complete on its own: summary, root causes with the ranking's confidence and fault kind,
the propagation path, and every evidence id it cites present in `evidence`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.explanation import (
    AgentStep,
    EvidenceItem,
    EvidenceSource,
    Explanation,
    ExplanationMode,
    RootCause,
    RunbookLink,
    SimilarIncident,
)
from core.rca import Candidate, FaultKind, PropagationStep, RankingResult, Signal, TieGroup, TimeRange
from detect.rank.ties import TIE_FLOOR, close

NO_LLM = "no language model configured (set OLLAMA_HOST to use one)"
_METRIC_WINDOW = re.compile(r"@(\d+)-(\d+)$")


def evidence_from_ranking(ranking: RankingResult) -> list[EvidenceItem]:
    """One item per evidence id that the ranking's signals, candidates and paths cite."""
    items: dict[str, EvidenceItem] = {}

    def add(eid: str, sig: Signal | None, service: str, text: str) -> None:
        if eid in items:
            return
        m = _METRIC_WINDOW.search(eid)
        items[eid] = EvidenceItem(
            id=eid,
            kind=eid.split(":", 1)[0] if ":" in eid else "signal",
            source=EvidenceSource.SIGNALS,
            time_ns=int(m.group(1)) if m else None,
            service=sig.service if sig else service,
            pod=sig.pod if sig else "",
            text=text,
            score=sig.score if sig else None,
            provenance=f"detect.signals {sig.kind.value} {sig.key}" if sig else "detect.rank.ranking",
        )

    signals = list(ranking.signals) + [s for c in ranking.candidates for s in c.signals]
    for sig in signals:
        for eid in sig.evidence_ids:
            add(eid, sig, sig.service, signal_text(sig))
    for cand in ranking.candidates:
        for eid in cand.evidence_ids:
            add(eid, None, cand.service, f"cited by the ranking for {cand.service}")
        for step in cand.path:
            for eid in step.evidence_ids:
                add(eid, None, step.source, step.description or f"{step.target} calls {step.source}")
    return list(items.values())


def signal_text(sig: Signal) -> str:
    return sig.description or f"{sig.kind.value} on {sig.key} (score {sig.score:.1f})"


def root_cause_of(cand: Candidate) -> RootCause:
    reasons = [signal_text(s) for s in cand.signals[:3]]
    reasoning = "; ".join(reasons) if reasons else f"ranked {cand.rank} by the call-graph walk"
    return RootCause(
        rank=cand.rank,
        service=cand.service,
        pod=cand.pod,
        confidence=cand.confidence,
        fault_kind=cand.fault_kind,
        evidence_ids=list(cand.evidence_ids),
        reasoning=reasoning,
    )


def path_services(path: Sequence[PropagationStep]) -> list[str]:
    """Services along a path, root first: [a, b, c] for steps a->b, b->c."""
    names: list[str] = []
    for step in path:
        for name in (step.source, step.target):
            if not names or names[-1] != name:
                names.append(name)
    return names


def standing_ties(ranking: RankingResult) -> list[TieGroup]:
    """The ranking's tie groups as its candidates stand now. A candidate whose confidence has moved out of
    its group's tolerance since the ranking (feedback from a similar incident, `detect.rank.feedback`) has
    been separated and leaves the group; a group left with one candidate is no tie. Members keep the order
    of the candidates."""
    by_service = {c.service: c for c in ranking.candidates}
    out: list[TieGroup] = []
    for tie in ranking.ties:
        members = sorted((by_service[s] for s in tie.services if s in by_service), key=lambda c: c.rank)
        kept = [c for c in members if close(c.confidence, tie.confidence, TIE_FLOOR)]
        if len(kept) > 1:
            out.append(tie.model_copy(update={"services": [c.service for c in kept], "confidence": kept[0].confidence}))
    return out


def top_tie(ranking: RankingResult, ties: Sequence[TieGroup]) -> TieGroup | None:
    """The tie group that holds the first candidate, if there is one."""
    first = ranking.candidates[0].service if ranking.candidates else None
    return next((t for t in ties if first in t.services), None)


def kind_text(kind: FaultKind) -> str:
    return "kind unknown" if kind is FaultKind.UNKNOWN else kind.value.replace("_", " ")


def tie_sentences(tie: TieGroup, candidates: Sequence[Candidate]) -> str:
    """'The evidence cannot separate A (kind) and B (kind): ...' and what would separate them."""
    by_service = {c.service: c for c in candidates}
    names = [f"{s} ({kind_text(by_service[s].fault_kind)})" if s in by_service else s for s in tie.services]
    each = "both" if len(names) == 2 else "each"
    text = f"The evidence cannot separate {_and(names)}: {each} at about {tie.confidence:.0%} confidence."
    if tie.separators:
        text += f" What would separate them: {'; '.join(s.text for s in tie.separators)}."
    return text


def summary_of(ranking: RankingResult, root_causes: Sequence[RootCause], ties: Sequence[TieGroup] | None = None) -> str:
    """The summary: the most likely root cause, or the tie at the top and what would separate it; then the
    other candidates (each with its fault kind) and ties among them. `ties` defaults to `standing_ties`."""
    if ranking.status != "ok" or not root_causes:
        text = "Insufficient evidence to name a root cause."
        missing = [m.value for m in ranking.modalities_missing]
        if missing:
            text += f" No {_either(missing)} data in the window."
        return " ".join([text, *(_sentence(n) for n in ranking.notes if n.strip())])
    ties = standing_ties(ranking) if ties is None else ties
    head = top_tie(ranking, ties)
    top = root_causes[0]
    if head is not None:
        text = tie_sentences(head, ranking.candidates)
        rest = [rc for rc in root_causes if rc.service not in head.services]
    else:
        cand = ranking.candidates[0]
        on_host = bool(cand.host) and cand.host == cand.service  # a fault on the machine: name the host
        where = f", pod {top.pod}" if top.pod else f", host {cand.host}" if cand.host and not on_host else ""
        detail = f" ({cand.fault_detail})" if cand.fault_detail else ""
        kind = top.fault_kind.value.replace("_", " ")
        if cand.weak:  # no signal anywhere: only the metrics that moved most (`detect.rank.weak`)
            text = (
                "Weak evidence only: no signal reached its threshold. "
                f"{top.service} is the service whose metrics moved most (fault kind: {kind}{where})."
            )
        else:
            text = (
                f"{'host ' if on_host else ''}{top.service} is the most likely root cause "
                f"({top.confidence:.0%} confidence, fault kind: {kind}{detail}{where})."
            )
        if cand.signals:
            text += f" Strongest signal: {signal_text(cand.signals[0]).rstrip('.')}."
        chain = path_services(cand.path)
        if len(chain) > 1:
            text += f" The fault propagates {' -> '.join(chain)}."
        rest = list(root_causes[1:])
    others = [f"{rc.service} ({rc.confidence:.0%}, {kind_text(rc.fault_kind)})" for rc in rest]
    if others:
        text += f" Other candidates: {', '.join(others)}."
    shown = {rc.service for rc in rest}
    either = " either" if head is not None else ""
    for tie in ties:
        if tie is not head and shown & set(tie.services):
            text += f" The evidence cannot separate {_and(tie.services)}{either} (about {tie.confidence:.0%} each)."
    stronger = max(rest, key=lambda rc: rc.confidence, default=None)
    if head is None and stronger is not None and stronger.confidence > top.confidence:
        text += (
            f" {top.service} is listed first because the incident is about it or a service that calls it;"
            f" on the evidence alone {stronger.service} scores higher."
        )
    return text


def _either(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:] + "."


def explain_from_evidence(
    ranking: RankingResult,
    evidence: Sequence[EvidenceItem] = (),
    runbooks: Sequence[RunbookLink] = (),
    *,
    similar: Sequence[SimilarIncident] = (),
    incident_id: str = "",
    window: TimeRange | None = None,
    run: Sequence[AgentStep] = (),
    timings: dict[str, float] | None = None,
    reason: str = NO_LLM,
    max_root_causes: int = 3,
) -> Explanation:
    """A complete explanation without a language model, labelled `evidence-only`."""
    root_causes = [root_cause_of(c) for c in ranking.candidates[:max_root_causes]] if ranking.status == "ok" else []
    known = {e.id for e in evidence}
    merged = list(evidence) + [e for e in evidence_from_ranking(ranking) if e.id not in known]
    named = {rc.service for rc in root_causes}
    ties = [t for t in standing_ties(ranking) if named & set(t.services)]  # those the explanation shows
    head = top_tie(ranking, ties)
    # a tie at the top names no root cause, so no path from one either
    path = list(ranking.candidates[0].path) if root_causes and head is None else []
    notes = list(ranking.notes)
    if ranking.modalities_missing:
        notes.append(f"missing modalities: {', '.join(m.value for m in ranking.modalities_missing)}")
    return Explanation(
        incident_id=incident_id,
        window=window,
        status="ok" if root_causes else "insufficient_evidence",
        mode=ExplanationMode.EVIDENCE_ONLY,
        model="",
        fallback_reason=reason,
        summary=summary_of(ranking, root_causes, ties),
        summary_evidence_ids=summary_ids(ranking, root_causes, head),
        root_causes=root_causes,
        ties=ties,
        propagation_path=path,
        evidence=merged,
        runbooks=list(runbooks),
        similar_incidents=list(similar),
        notes=notes,
        timings=dict(timings or {}),
        run=list(run),
    )


def summary_ids(ranking: RankingResult, root_causes: Sequence[RootCause], head: TieGroup | None) -> list[str]:
    """The evidence the summary rests on: the first root cause's, or the first two of each tied candidate's."""
    if not root_causes:
        return []
    if head is None:
        return list(root_causes[0].evidence_ids[:5])
    by_service = {c.service: c for c in ranking.candidates}
    return list(dict.fromkeys(i for s in head.services if s in by_service for i in by_service[s].evidence_ids[:2]))
