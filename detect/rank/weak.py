"""Weak candidates: the services the signals do not name, ordered by how far their metrics moved.

A signal needs a change that is both significant and beyond anything its history showed; a fault that
moves a service's metrics less than that (a delay of a few milliseconds, a minute or two of per-minute
samples) leaves no signal at all, and a ranking of signals alone would then list nothing, or only the
services that did cross. Published metric-only baselines (n-sigma, BARO) rank every service by its
largest deviation from normal instead. This module does the same for what the signals leave out: each
service's score is the largest deviation of its metric series (`_score`), a latency that clients measure
over all their calls counts for the services they call (`weak_scores`), the candidates come after every
candidate that has a signal, and each says it is weak evidence (`Candidate.weak`, confidence 0).

The family of the series that moved most gives the fault kind where a family suggests one (cpu, memory:
a resource running out; errors: code), as it does for signals. A service whose callers' latency moved more
than anything of its own is a network delay: callers wait while the callee's own figures look normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from core.rca import Candidate, FaultKind
from detect.signals.metrics import Deviation
from detect.signals.stats import Z_CAP

WEAK_NOTE = (
    "services without a signal are listed after those with one, ordered by their largest metric deviation "
    "(below a signal's threshold): weak evidence"
)


@dataclass(frozen=True)
class WeakScore:
    score: float
    own: float
    """The service's own series' largest deviation (the score without what its callers measured)."""
    why: Deviation
    """The series behind the score: the service's own, or a caller's latency to its callees."""


def _score(d: Deviation) -> float:
    """How far a series moved: its most extreme window point, in robust scales (median, MAD/IQR) and in
    standard deviations of its history, whichever is less. Either alone misleads: a robust scale is
    nearly zero for a series that sits on one value and now and then jumps (histogram quantiles on
    bucket bounds), a standard deviation is inflated by an earlier incident in the history. A
    constant history gives no scale at all (0)."""
    return min(d.peak_z, d.sigma_z, Z_CAP)


def weak_scores(deviations: list[Deviation], graph: nx.DiGraph) -> dict[str, WeakScore]:
    """Per service, its largest deviation. A latency clients measure without naming the server (family
    `callees`) is about the services they call: each callee in `graph` scores at least that much; a
    service that calls nothing known keeps it. Ties go to the first series in `deviations` order."""
    own: dict[str, Deviation] = {}
    inherited: dict[str, Deviation] = {}
    for d in deviations:
        svc = d.key[0]
        callees = list(graph.successors(svc)) if d.family == "callees" and svc in graph else []
        for target, into in [(c, inherited) for c in callees] or [(svc, own)]:
            if target not in into or _score(d) > _score(into[target]):
                into[target] = d
    out: dict[str, WeakScore] = {}
    for svc in own.keys() | inherited.keys():
        mine, theirs = own.get(svc), inherited.get(svc)
        own_z = _score(mine) if mine else 0.0
        why = theirs if theirs is not None and (mine is None or _score(theirs) > own_z) else mine
        assert why is not None
        out[svc] = WeakScore(max(own_z, _score(why)), own_z, why)
    return out


def weak_candidates(
    deviations: list[Deviation],
    ranked: list[Candidate],
    graph: nx.DiGraph,
    *,
    limit: int,
    fault_of: dict[str, FaultKind],
) -> list[Candidate]:
    """Candidates for the services `ranked` does not hold and whose metrics moved at all, by `weak_scores`,
    ranked after it, at most `limit` in all. `fault_of` maps a metric family to the fault kind it suggests."""
    named = {c.service for c in ranked}
    scores = weak_scores(deviations, graph)
    # a service none of whose series moved says nothing: it is not listed
    order = sorted(
        (s for s in scores if s not in named and scores[s].score > 0),
        key=lambda s: (-scores[s].score, -scores[s].own, s),
    )
    floor = min((c.score for c in ranked), default=1.0)
    out: list[Candidate] = []
    for i, svc in enumerate(order[: max(0, limit - len(ranked))]):
        d = scores[svc].why
        service, pod, _, _ = d.key
        theirs = service != svc
        note = f"{_score(d):.1f} scales, below a signal's threshold: weak evidence"
        sig = d.signal(
            score=round(_score(d), 4),
            note=note + (f"; {service} calls {svc}" if theirs else ""),
            dependency=svc if theirs else "",
        )
        out.append(
            Candidate(
                service=svc,
                pod="" if theirs else pod,
                rank=len(ranked) + i + 1,
                score=floor * 0.5 ** (i + 1),  # below every candidate with a signal, in this order
                confidence=0.0,
                fault_kind=FaultKind.NETWORK_DELAY if theirs else fault_of.get(d.family, FaultKind.UNKNOWN),
                evidence_ids=list(sig.evidence_ids),
                signals=[sig],
                weak=True,
            )
        )
    return out
