"""Explainer: merges and reranks the agents' evidence and writes the explanation (LLM or evidence-only)."""

from __future__ import annotations

import time
from typing import Any

from agents.explain_llm import explain_with_llm
from agents.state import TeamState
from agents.toolbox import Toolbox
from core.explanation import EvidenceItem
from core.rca import RankingResult, TimeRange

MAX_EVIDENCE = 60


def merge_evidence(items: list[EvidenceItem], ranking: RankingResult | None) -> list[EvidenceItem]:
    """One item per id (the best-scored copy, provenances joined), the candidates' own evidence first."""
    cited = {e for c in (ranking.candidates[:3] if ranking else []) for e in c.evidence_ids}
    best: dict[str, EvidenceItem] = {}
    for item in items:
        old = best.get(item.id)
        if old is None:
            best[item.id] = item
            continue
        keep = item if (item.score or 0) > (old.score or 0) else old
        prov = "; ".join(sorted({p for p in (old.provenance, item.provenance) if p}))
        best[item.id] = keep.model_copy(update={"provenance": prov})
    ranked = sorted(best.values(), key=lambda e: (e.id not in cited, -(e.score or 0.0), e.id))
    return ranked[:MAX_EVIDENCE]


def explain(tools: Toolbox, state: TeamState) -> dict[str, Any]:
    t0 = time.perf_counter()
    inc = state["incident"]
    ranking = state.get("ranking") or RankingResult(status="insufficient_evidence", alert_ns=inc.alert_ns)
    evidence = merge_evidence(list(state.get("evidence", [])), ranking)
    alert_text = " ".join(f"{k}={v}" for k, v in {**inc.labels, **inc.annotations}.items())[:2000]
    timings = dict(state.get("timings", {}))
    expl = explain_with_llm(
        tools.llm,
        ranking,
        evidence,
        state.get("runbooks", []),
        similar=state.get("similar", []),
        incident_id=inc.id,
        window=TimeRange(start_ns=inc.start_ns, end_ns=inc.end_ns),
        alert_text=alert_text,
        run=list(state.get("steps", [])),
        timings=timings,
        masker=tools.masker,
    )
    notes = list(state.get("notes", []))
    skipped = [a for a in state.get("plan", []) if a not in timings]  # chosen, but the deadline came first
    if skipped:
        agents = " and ".join(skipped) + (" agents" if len(skipped) > 1 else " agent")
        notes.append(f"out of time (budget {tools.budget.seconds:g} s): the {agents} did not run")
    notes = list(dict.fromkeys([*notes, *expl.notes]))  # in order, each once
    expl = expl.model_copy(update={"notes": notes})
    return {"explanation": expl, "timings": {"explainer": round((time.perf_counter() - t0) * 1000, 2)}}
