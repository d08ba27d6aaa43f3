"""Root-cause ranking: signals per service, combined with the CALLS graph by a personalized PageRank.

1. Each service gets an *own-evidence* value e(s) in [0, 1]: a noisy-OR over its distinct changes
   (signals of one group describe one change; the strongest counts), each weighted by how much that
   kind of signal says about the service's own behaviour (a new error after a step, a step no longer
   taken or more time in its own code says more than a longer end-to-end duration, which callee
   slowness also explains). Evidence that names another service as failing ("no instances available
   for X") is about X, in proportion to how silent X went in the window; it says nothing about the
   caller, which only reports it.
2. A random walk over CALLS moves blame downstream. From service s it stays with weight e(s) and
   moves to callee c with weight e(c) * min(1, e(c)/e(s)) * coupling(s, c), where coupling is the
   share of s's anomalous window traces in which c is anomalous too (1.0 when there are no trace
   ids, so the topology alone decides). Restarts follow e(s). The stationary mass ranks services:
   an anomalous service whose callees are healthy keeps its mass; a caller that only suffers from
   an anomalous callee, in the same requests, hands its mass on.
3. When the question names a service (an alert's, `focus`), that is evidence too: the fault sits on the
   focus service or on what it calls. Services the focus does not reach through calls keep
   `off_focus_weight` of their mass. The order shown is the order of this weighted mass; nothing
   re-orders candidates afterwards.
4. Each candidate gets a confidence (its share of the mass times the strength of the evidence), a
   guessed fault kind from the families of its signals, and the path from it to the symptoms.
5. Candidates that nothing above separates form tie groups (`detect.rank.ties`), with what evidence
   would separate them; the order stays as it is.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx

from core.rca import (
    Candidate,
    FaultKind,
    Modality,
    RankingResult,
    Signal,
    SignalKind,
    TimeRange,
)
from core.telemetry import CallEdge
from detect.kinds import KIND_TRAITS, Trigger
from detect.rank.callgraph import call_graph, propagation_path, reach_of
from detect.rank.ties import find_ties
from detect.rank.weak import WEAK_NOTE, weak_candidates
from detect.signals import SignalOptions, TableLike, compute_signals
from detect.signals.faulttext import with_text_kinds

logger = logging.getLogger(__name__)

# An ordinary (non-error) template written more often per request: different inputs often do that.
TEMPLATE_UP_WEIGHT = 0.5
METRIC_FAMILY_WEIGHT: dict[str, float] = {
    "cpu": 1.0,
    "memory": 0.8,
    "error": 0.6,
    "success": 0.6,
    "latency": 0.4,
    "node": 0.1,
    "io": 0.3,
    "network": 0.3,
    "workload": 0.2,
    "other": 0.2,
}
# the fault kind a metric family suggests: a resource running out, or errors (the metric twin of error
# spans); latency, traffic and network byte counts say that something changed, not what
METRIC_FAMILY_FAULT: dict[str, FaultKind] = {
    "cpu": FaultKind.RESOURCE_SATURATION,
    "memory": FaultKind.RESOURCE_SATURATION,
    "node": FaultKind.RESOURCE_SATURATION,
    "io": FaultKind.RESOURCE_SATURATION,
    "error": FaultKind.CODE_ERROR,
    "success": FaultKind.CODE_ERROR,
}


@dataclass(frozen=True)
class RankOptions:
    """Knobs of the ranking; defaults are generic choices, not fitted to any data set."""

    signals: SignalOptions = field(default_factory=SignalOptions)
    damping: float = 0.85
    """PageRank damping (probability of following an edge rather than restarting)."""
    back_weight: float = 0.0
    """Weight of walking from a callee back to an anomalous caller, relative to walking down."""
    effect_full_fold: float = 4.0
    """A change of this fold (or more) counts fully; smaller changes count in proportion to log fold
    (signals without an `effect`)."""
    full_effect: float = 0.0
    """When > 0, a signal's `effect` (share of requests changed) counts fully from this value on and in
    proportion below it; 0 ignores effect sizes and ranks by significance and kind alone."""
    strength_scale: float = 4.0
    """A signal of z contributes 1 - exp(-z / strength_scale) before its kind weight."""
    reporter_share: float = 0.25
    """Share of an error naming an active dependency that stays with the service reporting it (its
    calls fail while the dependency serves others: a client-side or routing problem, or a symptom)."""
    call_share: float = 0.5
    """Share of a path change right after a call that goes to the called service."""
    max_candidates: int = 10
    max_signals_per_candidate: int = 8
    use_graph: bool = True
    """False ranks by own evidence alone (for comparison)."""
    off_focus_weight: float = 0.25
    """Share of its mass a candidate keeps when the service the question names (an alert's) does not reach
    it through calls: a symptom on S says the fault is on S's call paths (a prior, not fitted)."""


def signal_strength(sig: Signal, opt: RankOptions) -> float:
    """Kind weight x significance (x effect size when `full_effect` > 0), in [0, 1]."""
    if sig.modality == Modality.METRICS:
        w = METRIC_FAMILY_WEIGHT.get(sig.family, 0.2)
    elif sig.kind in (SignalKind.LOG_TEMPLATE_SHIFT, SignalKind.SPAN_STRUCTURE) and sig.direction == "up":
        w = TEMPLATE_UP_WEIGHT
    else:
        w = KIND_TRAITS[sig.kind].weight
    if opt.full_effect > 0 and sig.effect > 0:
        effect = min(1.0, sig.effect / opt.full_effect)
    else:
        fold = min(max(sig.fold, 1e-6), 1e6)
        effect = min(1.0, abs(math.log(fold)) / math.log(opt.effect_full_fold)) if fold != 1.0 else 1.0
    return w * effect * (1.0 - math.exp(-max(sig.score, 0.0) / opt.strength_scale))


def blamed_services(sig: Signal, silence: dict[str, float] | None, opt: RankOptions) -> list[tuple[str, float]]:
    """Whom a signal is evidence about, and how much.

    - its own service, in full, unless it points at another service;
    - a dependency an error names, in proportion to how silent that dependency went (0.5 when
      unknown); of the rest, `reporter_share` stays with the reporting service (an active
      dependency is not down: the reporter's calls fail, or it only passes the failure on);
    - a service called just before the change: `call_share` to it, the rest to the caller (the
      response changed, or the caller's handling of it did).
    """
    if not sig.dependency or sig.dependency == sig.service:
        return [(sig.service, 1.0)]
    if sig.dependency_via == "call":
        return [(sig.dependency, opt.call_share), (sig.service, 1.0 - opt.call_share)]
    quiet = 0.5 if silence is None or sig.dependency not in silence else max(0.0, min(1.0, silence[sig.dependency]))
    return [(sig.dependency, quiet), (sig.service, (1.0 - quiet) * opt.reporter_share)]


def own_evidence(
    signals: Iterable[Signal], opt: RankOptions, activity: dict[str, float] | None = None
) -> dict[str, float]:
    """Noisy-OR per service over its distinct changes (the strongest signal of each group)."""
    best: dict[tuple[str, str], float] = {}
    for s in signals:
        for svc, share in blamed_services(s, activity, opt):
            v = signal_strength(s, opt) * share
            if v <= 0:
                continue
            k = (svc, s.group or f"{s.kind.value}:{s.family}:{s.key}")
            best[k] = max(best.get(k, 0.0), v)
    miss: dict[str, float] = defaultdict(lambda: 1.0)
    for (svc, _), v in best.items():
        miss[svc] *= 1.0 - v
    return {svc: 1.0 - m for svc, m in miss.items()}


def coupling(caller: str, callee: str, anomalous_traces: dict[str, set[str]] | None) -> float:
    """How much of the caller's anomaly sits in requests where the callee is anomalous too.

    Without trace ids (no traces, or logs without trace ids) nothing can be told apart and the
    topology alone decides (1.0). With them, it is the share of the caller's anomalous traces in
    which the callee also shows an anomaly; evidence with no traces behind it (a CPU metric, a
    template that vanished) cannot be explained by a callee.
    """
    if anomalous_traces is None:
        return 1.0
    mine = anomalous_traces.get(caller)
    if not mine:
        return 0.0
    theirs = anomalous_traces.get(callee)
    if not theirs:
        return 0.0
    return len(mine & theirs) / len(mine)


def blame_walk(
    graph: nx.DiGraph,
    evidence: dict[str, float],
    opt: RankOptions,
    anomalous_traces: dict[str, set[str]] | None = None,
) -> dict[str, float]:
    """Personalized PageRank over the blame graph described in the module doc."""
    nodes = [s for s, e in evidence.items() if e > 0]
    if not nodes:
        return {}
    w = nx.DiGraph()
    w.add_nodes_from(nodes)
    for s in nodes:
        callees = [c for c in graph.successors(s)] if s in graph else []
        for c in callees:
            ec = evidence.get(c, 0.0)
            # blame moves toward a callee as anomalous as the caller, in the requests they share
            e = ec * min(1.0, ec / evidence[s]) * coupling(s, c, anomalous_traces)
            if e > 0:
                w.add_edge(s, c, weight=e)
        callers = [p for p in graph.predecessors(s)] if s in graph else []
        for p in callers:
            if opt.back_weight > 0 and evidence.get(p, 0.0) > 0:
                w.add_edge(s, p, weight=opt.back_weight * evidence[p])
        w.add_edge(s, s, weight=evidence[s])
    total = sum(evidence[s] for s in nodes)
    pers = {s: evidence[s] / total for s in nodes}
    return nx.pagerank(w, alpha=opt.damping, personalization=pers, weight="weight", max_iter=500, tol=1e-10)


def fault_kind(signals: list[Signal], opt: RankOptions) -> FaultKind:
    """The fault kind the strongest signals suggest (`detect.kinds.KIND_TRAITS`); a signal about a failing
    dependency, or an error that names one, suggests a dependency failure; a metric suggests the kind of its
    family (`METRIC_FAMILY_FAULT`). UNKNOWN only when no signal suggests a kind."""
    score: dict[FaultKind, float] = defaultdict(float)
    for s in signals:
        v = signal_strength(s, opt)
        traits = KIND_TRAITS[s.kind]
        if s.dependency:
            k = FaultKind.DEPENDENCY_FAILURE
        elif s.modality == Modality.METRICS and s.family in METRIC_FAMILY_FAULT:
            k = METRIC_FAMILY_FAULT[s.family]
        elif traits.fault is None:
            continue
        elif traits.fault == FaultKind.CODE_ERROR and traits.trigger == Trigger.ERRORS and _mentions_dependency(s):
            k = FaultKind.DEPENDENCY_FAILURE
        else:
            k = traits.fault
            v *= traits.fault_weight
        score[k] = max(score[k], v)
    if not score:
        return FaultKind.UNKNOWN
    return max(score.items(), key=lambda kv: kv[1])[0]


_DEPENDENCY_WORDS = (
    "connection refused",
    "connect timed out",
    "no instances available",
    "unavailable",
    "unknownhost",
    "unknown host",
    "broken pipe",
    "connection reset",
    "no route to host",
)


def _mentions_dependency(sig: Signal) -> bool:
    d = sig.description.lower()
    return any(w in d for w in _DEPENDENCY_WORDS)


def rank_signals(
    signals: list[Signal],
    graph: nx.DiGraph,
    opt: RankOptions,
    anomalous_traces: dict[str, set[str]] | None = None,
    activity: dict[str, float] | None = None,
    focus: str | None = None,
) -> list[Candidate]:
    """Candidates from signals and the CALLS graph. `anomalous_traces` (service -> window trace ids
    behind its signals) lets blame pass only along calls whose requests are anomalous at both ends;
    None means there are no trace ids and the topology alone decides. `activity` (service -> window
    rate over history rate) weighs evidence that names a failing dependency. `focus` (the service an
    alert names) weighs candidates it does not reach by `off_focus_weight` (module doc, step 3)."""
    evidence = own_evidence(signals, opt, activity)
    if not evidence:
        return []
    mass = blame_walk(graph, evidence, opt, anomalous_traces) if opt.use_graph else dict(evidence)
    if focus and focus in graph:
        reach = reach_of(graph, focus)
        mass = {s: m * (1.0 if s in reach else opt.off_focus_weight) for s, m in mass.items()}
    per_service: dict[str, list[Signal]] = defaultdict(list)
    for s in signals:
        for svc, share in blamed_services(s, activity, opt):
            if share > 0:
                per_service[svc].append(s)
    for sigs in per_service.values():
        sigs.sort(key=lambda s: -signal_strength(s, opt))
    order = sorted(mass, key=lambda s: (-mass[s], -evidence.get(s, 0.0), s))
    total = sum(mass.values()) or 1.0
    strength = max(evidence.values())
    out: list[Candidate] = []
    for rank, svc in enumerate(order[: opt.max_candidates], start=1):
        sigs = per_service.get(svc, [])
        top = sigs[: opt.max_signals_per_candidate]
        pods: dict[str, float] = defaultdict(float)
        for s in sigs:
            if s.pod:
                pods[s.pod] += signal_strength(s, opt)
        ids: list[str] = []
        for s in top:
            for ev in s.evidence_ids[:3]:
                if ev not in ids:
                    ids.append(ev)
        out.append(
            Candidate(
                service=svc,
                pod=max(pods.items(), key=lambda kv: kv[1])[0] if pods else "",
                rank=rank,
                score=mass[svc],
                confidence=round(min(1.0, mass[svc] / total * strength), 4),
                fault_kind=fault_kind(sigs, opt),
                own_evidence=round(evidence.get(svc, 0.0), 4),
                evidence_ids=ids,
                signals=top,
                path=propagation_path(graph, svc, evidence, per_service),
            )
        )
    return out


def rank_window(
    logs_window: TableLike,
    logs_base: TableLike,
    spans_window: TableLike,
    spans_base: TableLike,
    metrics_window: TableLike,
    metrics_base: TableLike,
    call_edges: Iterable[CallEdge | tuple[str, str]] | nx.DiGraph | None,
    *,
    alert_ns: int = 0,
    window: tuple[int, int] | None = None,
    focus: str | None = None,
    options: RankOptions | None = None,
) -> RankingResult:
    """Ranked root-cause candidates for an incident window against its history.

    The `*_base` tables hold history: logs and spans from anywhere outside the window (cut into
    slices as long as the window), metrics from before it. `window` is [start_ns, end_ns) of the
    incident window (default: what the window tables cover). Any telemetry may be None or empty;
    what was missing is named in the result. The call graph is `call_edges` (the declared topology and
    stored CALLS edges) plus the caller -> callee pairs seen in the spans. `focus`: the service the
    question names (see `rank_signals`).
    """
    opt = options or RankOptions()
    found = compute_signals(
        logs_window, logs_base, spans_window, spans_base, metrics_window, metrics_base, opt.signals, window=window
    )
    graph = call_graph(call_edges, found.edges)
    notes = list(found.notes)

    def insufficient(why: str) -> RankingResult:
        return RankingResult(
            status="insufficient_evidence",
            alert_ns=alert_ns,
            window=TimeRange(start_ns=found.window[0], end_ns=found.window[1]),
            modalities_used=found.used,
            modalities_missing=found.missing,
            signals=found.signals,
            notes=[*notes, why],
        )

    if not found.signals and not found.deviations:
        return insufficient("no signal reached the threshold in any telemetry: nothing to rank")
    if graph.number_of_edges() == 0:
        notes.append("no call graph: services ranked by their own evidence only")
    linked = found.anomalous_traces if found.anomalous_traces else None
    if focus and reach_of(graph, focus) & found.peers.unresolved:
        notes.append(f"{focus} calls addresses no host here owns: its reach is unknown, so it weighs no candidate")
        focus = None
    candidates = rank_signals(found.signals, graph, opt, linked, found.activity, focus)
    candidates = with_text_kinds(candidates, found.text_kinds, found.peers.hosts)
    extra = weak_candidates(found.deviations, candidates, graph, limit=opt.max_candidates, fault_of=METRIC_FAMILY_FAULT)
    if not candidates and not extra:
        if not found.signals:
            return insufficient("no signal reached the threshold and no metric moved: nothing to rank")
        return insufficient("every signal names a failing dependency that is itself active: nothing to rank")
    if extra:
        notes.append(WEAK_NOTE)
    candidates += extra
    logger.info(
        "ranked",
        extra={"signals": len(found.signals), "candidates": len(candidates), "alert_ns": alert_ns},
    )
    return RankingResult(
        status="ok",
        alert_ns=alert_ns,
        window=TimeRange(start_ns=found.window[0], end_ns=found.window[1]),
        candidates=candidates,
        modalities_used=found.used,
        modalities_missing=found.missing,
        signals=found.signals,
        ties=find_ties(candidates, graph, found.used),
        notes=notes,
    )
