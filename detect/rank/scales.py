"""One question ranked over several windows ending at its end, when nobody said when the incident began.

A question that names only its end ("what was going on up to T", no alert, no start) does not say where the
change began. A window that reaches far back holds minutes of normal traffic before the change, which
dilute it against history; a short one holds too few requests to tell a change from noise. So such a
question is ranked over each of `QUESTION_SCALES_S` (the last two, three and five minutes), and the rankings
are combined:

- a service's confidence is its mean confidence over the scales (0 where a scale did not list it): the
  confidence is the candidate's share of the walk's mass times the strength of the evidence, so it is
  comparable from one window to another, and a change that stands out in several windows adds up;
- the candidate shown (its signals, evidence, pod and path) is the one of the scale where its confidence
  was highest; its `score` becomes its mean share of the mass, so ties (`detect.rank.ties`) are told on
  the combined values;
- weak candidates (`detect.rank.weak`, confidence 0) follow, by their largest deviation.

The reported window, history and notes are those of the longest scale, which holds the others.
Chosen on the TrainTicket case bundles and checked on OnlineBoutique (docs/research/rca.md, "Several windows
for a question without a start").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Final

from core.rca import Candidate, RankingResult, Signal
from core.telemetry import CallEdge
from detect.rank.callgraph import call_graph
from detect.rank.ties import find_ties

QUESTION_SCALES_S: Final = (120, 180, 300)
"""Windows (seconds before the question's end) a question without a start is ranked over. A minute holds
too few requests to tell a change (ranked alone: 5 of 28 TrainTicket bundles first); five minutes is the
longest window any question ranks (`IncidentOptions.max_window_s`)."""


def combine_scales(
    results: Sequence[RankingResult],
    call_edges: Iterable[CallEdge | tuple[str, str]] | None,
    *,
    limit: int,
    scales_s: Sequence[int] = (),
) -> RankingResult:
    """The rankings of one question over windows `scales_s` long before its end (longest last), combined as the
    module doc says."""
    if not results:
        raise ValueError("combine_scales needs at least one ranking")
    longest = results[-1]
    ranked = [r for r in results if r.status == "ok" and r.candidates]
    if not ranked:
        return longest
    n = len(results)
    conf: dict[str, float] = defaultdict(float)
    share: dict[str, float] = defaultdict(float)
    deviation: dict[str, float] = defaultdict(float)
    best: dict[str, Candidate] = {}
    for r in ranked:
        total = sum(c.score for c in r.candidates if not c.weak) or 1.0
        for c in r.candidates:
            conf[c.service] += c.confidence / n
            if not c.weak:
                share[c.service] += c.score / total / n
            held = best.get(c.service)
            if held is None or (not c.weak and (held.weak or c.confidence > held.confidence)):
                best[c.service] = c
            if c.weak and c.signals:
                deviation[c.service] = max(deviation[c.service], c.signals[0].score)
    strong = sorted((s for s in best if not best[s].weak), key=lambda s: (-conf[s], -share[s], s))
    weak = sorted((s for s in best if best[s].weak), key=lambda s: (-deviation[s], s))
    floor = min((share[s] for s in strong), default=1.0)
    score = dict(share) | {s: floor * 0.5 ** (i + 1) for i, s in enumerate(weak)}  # as `detect.rank.weak` does
    candidates = [
        best[s].model_copy(update={"rank": i, "confidence": round(min(1.0, conf[s]), 4), "score": score[s]})
        for i, s in enumerate([*strong, *weak][:limit], start=1)
    ]
    graph = call_graph(call_edges, [(p.target, p.source) for c in candidates for p in c.path])
    used = sorted({m for r in ranked for m in r.modalities_used}, key=lambda m: m.value)
    widths = ", ".join(f"{s} s" for s in scales_s) or f"{n}"
    notes = [
        *longest.notes,
        f"no start was given: ranked over windows of the last {widths} before the question's end, each candidate's "
        "confidence the mean over those windows",
    ]
    return longest.model_copy(
        update={
            "status": "ok",
            "candidates": candidates,
            "signals": _merged_signals(r.signals for r in results),
            "modalities_used": used,
            "modalities_missing": [m for m in longest.modalities_missing if m not in used],
            "ties": find_ties(candidates, graph, used),
            "notes": notes,
        }
    )


def _merged_signals(groups: Iterable[Sequence[Signal]]) -> list[Signal]:
    """Every scale's signals once (the strongest reading of each), strongest first."""
    seen: dict[tuple[str, str, str, str, str], Signal] = {}
    for sigs in groups:
        for s in sigs:
            k = (s.service, s.kind.value, s.key, s.family, s.direction)
            if k not in seen or s.score > seen[k].score:
                seen[k] = s
    return sorted(seen.values(), key=lambda s: -s.score)


__all__ = ["QUESTION_SCALES_S", "combine_scales"]
