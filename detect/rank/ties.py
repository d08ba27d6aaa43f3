"""Ties among ranked candidates: which ones the evidence cannot separate, and what evidence would.

Two candidates are tied when the ranking holds nothing that tells them apart: their confidence, their
walk mass (`Candidate.score`) and their own evidence (the tiebreak of the order) are each within
`TIE_RELATIVE` of the larger value (plus `TIE_FLOOR` for the confidence, which is rounded to four
decimals). A tie group is anchored at its first candidate in rank order: the next ones join it while they
are within tolerance of that first one. The order inside a group is kept (ranks stay 1..n); the group
says that it is no more than an order.

What would separate a group is read from what the ranking knows, never from names: the modalities it
had, whether a call graph existed and links the tied services, and the kinds of signal each has.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import networkx as nx

from core.rca import Candidate, Modality, Separator, SeparatorKind, SignalKind, TieGroup

TIE_RELATIVE = 0.05
"""Values within 5% of the larger one do not separate candidates: a history of a few slices estimates a
signal's z-score no better than that (z 3.0 against 3.3 is a 6% difference in strength), so a smaller
difference in mass is noise of the estimate, not evidence."""
TIE_FLOOR = 1e-4
"""Absolute tolerance on confidences: the rounding step of `Candidate.confidence`."""
_EPS = 1e-12

ERROR_KINDS = frozenset({SignalKind.LOG_ERROR_TEMPLATE, SignalKind.SPAN_ERROR})

SEPARATOR_TEXT: dict[SeparatorKind, str] = {
    SeparatorKind.NO_TRACES: "no traces: spans would show which of them calls which and where the time of a "
    "failing request is spent",
    SeparatorKind.NO_METRICS: "no metrics: CPU, memory and disk metrics of their hosts would show whether one "
    "of them ran out of a resource",
    SeparatorKind.NO_LOGS: "no logs: their logs would show the errors each one reports and which reported first",
    SeparatorKind.NO_CALL_GRAPH: "no call graph: a declared topology (devmesh import topology) or spans would "
    "show who depends on whom",
    SeparatorKind.NO_CALLS_BETWEEN: "no known call between them: a declared topology (devmesh import topology) "
    "or spans of their calls would show whether one depends on another",
    SeparatorKind.SAME_ERRORS: "the same error statements in each ({n} shared): the first of them to log one, "
    "in the logs from just before the incident window, would show where the fault started",
    SeparatorKind.ONSET: "anomalies of the same strength: which one changed first, in its telemetry from just "
    "before the incident window, would show where it started",
}


def close(a: float, b: float, floor: float = _EPS) -> bool:
    """|a - b| within `TIE_RELATIVE` of the larger magnitude, or within `floor`."""
    return abs(a - b) <= max(TIE_RELATIVE * max(abs(a), abs(b)), floor)


def tied(a: Candidate, b: Candidate) -> bool:
    """Nothing the ranking holds separates `a` from `b` (module doc)."""
    return (
        close(a.confidence, b.confidence, TIE_FLOOR)
        and close(a.score, b.score)
        and close(a.own_evidence, b.own_evidence)
    )


def find_ties(
    candidates: Sequence[Candidate], graph: nx.DiGraph, modalities_used: Collection[Modality]
) -> list[TieGroup]:
    """Tie groups among `candidates` (in rank order), each with what would separate it."""
    groups: list[list[Candidate]] = []
    for cand in candidates:
        if groups and tied(groups[-1][0], cand):
            groups[-1].append(cand)
        else:
            groups.append([cand])
    return [
        TieGroup(
            services=[c.service for c in group],
            confidence=group[0].confidence,
            shared_kinds=shared_kinds(group),
            separators=separators(group, graph, modalities_used),
        )
        for group in groups
        if len(group) > 1
    ]


def shared_kinds(group: Sequence[Candidate]) -> list[SignalKind]:
    """The kinds of signal every candidate of `group` has, in `SignalKind` order."""
    common = set.intersection(*({s.kind for s in c.signals} for c in group))
    return [k for k in SignalKind if k in common]


def separators(group: Sequence[Candidate], graph: nx.DiGraph, modalities_used: Collection[Modality]) -> list[Separator]:
    """What the tied candidates lack (a modality, a call graph, calls between them) or share (the same
    error statements); the time each changed when nothing else applies."""
    kinds: list[SeparatorKind] = []
    if Modality.TRACES not in modalities_used:
        kinds.append(SeparatorKind.NO_TRACES)
    if graph.number_of_edges() == 0:
        kinds.append(SeparatorKind.NO_CALL_GRAPH)
    elif not linked([c.service for c in group], graph):
        kinds.append(SeparatorKind.NO_CALLS_BETWEEN)
    if Modality.METRICS not in modalities_used:
        kinds.append(SeparatorKind.NO_METRICS)
    if Modality.LOGS not in modalities_used:
        kinds.append(SeparatorKind.NO_LOGS)
    same = same_errors(group)
    if same:
        kinds.append(SeparatorKind.SAME_ERRORS)
    if not kinds:
        kinds.append(SeparatorKind.ONSET)
    return [Separator(kind=k, text=SEPARATOR_TEXT[k].format(n=len(same))) for k in kinds]


def linked(services: Sequence[str], graph: nx.DiGraph) -> bool:
    """Whether any one of `services` reaches another through calls (either way)."""
    present = [s for s in services if s in graph]
    for s in present:
        reach = nx.descendants(graph, s)
        if any(o in reach for o in present if o != s):
            return True
    return False


def same_errors(group: Sequence[Candidate]) -> list[str]:
    """Error statements (template or operation keys) that at least two candidates of `group` report
    themselves (an error one of them reports about another is one statement, not two)."""
    seen: dict[str, set[str]] = {}
    for cand in group:
        for sig in cand.signals:
            if sig.kind in ERROR_KINDS and sig.service == cand.service:
                seen.setdefault(sig.key, set()).add(cand.service)
    return sorted(k for k, who in seen.items() if len(who) > 1)


__all__ = ["TIE_FLOOR", "TIE_RELATIVE", "close", "find_ties", "separators", "shared_kinds", "tied"]
