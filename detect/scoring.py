"""Scoring root-cause rankings and detection runs against labelled faults (pure functions, no I/O).

- `rank_of`, `ac_at_k`, `rca_scores`: AC@k, the share of faults whose labelled service is among the first k
  candidates of the ranking made for it; overall and per fault type (`devmesh eval rca`).
- `score_detection`: detection replayed over a labelled period (`devmesh eval detect`). A fault counts as
  detected when a run from `BEFORE_S` before to `AFTER_S` after its injection opened or updated an incident
  (the run's time, when a person would be told), and top 1 when the first such incident's root cause is the
  labelled service; an incident opened by no run within a fault's tolerance is a false incident.

A label is anything with `inject_ns`, `service` and `fault_type` (a Nezha fault, a case bundle's label).

Case bundles (`devmesh eval rca|detect cases`, CASE-BUNDLES.md) are scored by `CaseLabel` (the names a
right answer may carry), `rank_in`, `kind_right` with the scorer's `KIND_MAP`, `case_scores` (AC@k, Avg@5,
kind accuracy, per system and per kind) and `score_case_detection` (one bundle's detection replay).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.rca import FaultKind
from core.timeutil import NS, iso

TOP_K = (1, 3, 5)
BEFORE_S, AFTER_S = 60, 180


class LabelledFault(Protocol):
    """What scoring reads of a label: when the fault was injected, into which service, of what type."""

    @property
    def inject_ns(self) -> int: ...

    @property
    def service(self) -> str: ...

    @property
    def fault_type(self) -> str: ...


# -- root-cause ranking ------------------------------------------------------------------------------------


def rank_of(truth: str, ranking: Sequence[str]) -> int | None:
    """1-based rank of the labelled service in a ranking; None when it is not there."""
    return ranking.index(truth) + 1 if truth in ranking else None


def ac_at_k(ranks: Sequence[int | None], k: int) -> float:
    """AC@k: share of cases whose rank is at most k (0.0 for no cases), rounded to 4 places."""
    return round(sum(1 for r in ranks if r is not None and r <= k) / len(ranks), 4) if ranks else 0.0


def rca_scores(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{"cases", "ac1", "ac3", "ac5"} of result rows that carry a "rank"."""
    ranks = [r["rank"] for r in rows]
    return {"cases": len(rows), **{f"ac{k}": ac_at_k(ranks, k) for k in TOP_K}}


def rca_scores_by_type(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`rca_scores` per "fault_type" of the rows, by type name."""
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_type[r["fault_type"]].append(r)
    return {t: rca_scores(v) for t, v in sorted(by_type.items())}


# -- detection ---------------------------------------------------------------------------------------------


def score_detection(
    faults: Sequence[LabelledFault],
    seen: Sequence[dict[str, Any]],
    root_of: dict[str, str],
    *,
    hours: float,
    runs: int,
    seconds: float,
) -> dict[str, Any]:
    """Score detection runs against labels.

    `seen` holds one {"incident", "at_ns", "opened"} for every run that opened or updated an incident (its
    end time); `root_of` maps incident ids to the root cause the later runs of their episode left.
    """
    results = []
    matched_incidents: set[str] = set()
    for f in faults:
        hits = [s for s in seen if f.inject_ns - BEFORE_S * NS <= s["at_ns"] <= f.inject_ns + AFTER_S * NS]
        hits.sort(key=lambda s: s["at_ns"])
        top1 = hits[:1] if hits and root_of.get(hits[0]["incident"]) == f.service else []
        matched_incidents |= {s["incident"] for s in hits}
        results.append(
            {
                "fault": iso(f.inject_ns),
                "truth": f.service,
                "type": f.fault_type,
                "detected": bool(hits),
                "top1": bool(top1),
                "top1_any": any(root_of.get(s["incident"]) == f.service for s in hits),
                "incidents": sorted({s["incident"] for s in hits}),
                "root_causes": sorted({root_of.get(s["incident"], "") for s in hits}),
                "delay_s": round((min(s["at_ns"] for s in hits) - f.inject_ns) / NS, 1) if hits else None,
            }
        )
    opened = {s["incident"] for s in seen if s["opened"]}
    false = sorted(opened - matched_incidents)
    return {
        "faults": len(faults),
        "detected": sum(r["detected"] for r in results),
        "detected_top1": sum(r["top1"] for r in results),
        "detected_top1_any_incident": sum(r["top1_any"] for r in results),
        "false_incidents": len(false),
        "incidents": len(opened),
        "hours": round(hours, 2),
        "runs": runs,
        "seconds": round(seconds, 1),
        "tolerance_s": {"before": BEFORE_S, "after": AFTER_S},
        "false_incident_ids": false,
        "results": results,
    }


# -- case bundles ------------------------------------------------------------------------------------------

_SATURATION, _CODE = FaultKind.RESOURCE_SATURATION.value, FaultKind.CODE_ERROR.value
_NETWORK, _DEPENDENCY = FaultKind.NETWORK_DELAY.value, FaultKind.DEPENDENCY_FAILURE.value

KIND_MAP: dict[str, frozenset[str]] = {
    # Nezha fault types
    "cpu_contention": frozenset({_SATURATION}),
    "cpu_consumed": frozenset({_SATURATION}),
    "network_delay": frozenset({_NETWORK}),
    "return": frozenset({_CODE}),  # a method made to return a wrong value
    "exception": frozenset({_CODE}),
    # what a host's journal tells
    "disk_full": frozenset({_SATURATION}),
    "memory_leak": frozenset({_SATURATION}),
    "oom_killed": frozenset({_SATURATION}),
    "connection_limit": frozenset({_SATURATION}),
    "crash_loop": frozenset({_CODE}),
    "certificate_expired": frozenset({_DEPENDENCY}),
    "name_resolution": frozenset({_DEPENDENCY}),
    "clock_skew": frozenset({_DEPENDENCY}),
}
"""The scorer's reading of labelled fault kinds as the product's `FaultKind` values: which values count as
the right kind for each label (a label's own name counts too, should the product name kinds that finely).
It belongs to the scorer, not to the product: nothing that ranks reads it. A label not listed here is not
scored for kind (`kind_right` gives None)."""


@dataclass(frozen=True)
class CaseLabel:
    """The names a right candidate may carry: the root service and its aliases, or, for a fault on a host,
    the host and its aliases (compared without regard to case)."""

    services: frozenset[str]
    hosts: frozenset[str] = frozenset()
    kind: str | None = None

    @classmethod
    def of(cls, services: Iterable[str | None], hosts: Iterable[str | None] = (), kind: str | None = None) -> CaseLabel:
        return cls(
            services=frozenset(s.casefold() for s in services if s),
            hosts=frozenset(h.casefold() for h in hosts if h),
            kind=kind,
        )

    def names(self, service: str, pod: str = "") -> bool:
        """True when a candidate (its service, or the pod/host field that may carry a host) is the root cause."""
        s, p = service.casefold(), pod.casefold()
        return bool(s) and s in self.services | self.hosts or bool(p) and p in self.hosts


def rank_in(label: CaseLabel, ranking: Sequence[tuple[str, str]]) -> int | None:
    """1-based rank of the first (service, pod) candidate that names the root cause; None when none does."""
    return next((i for i, (service, pod) in enumerate(ranking, start=1) if label.names(service, pod)), None)


def kind_right(truth_kind: str | None, fault_kind: str) -> bool | None:
    """Whether a candidate's fault kind matches the labelled kind (`KIND_MAP`); None when it cannot be told."""
    if truth_kind is None or truth_kind not in KIND_MAP:
        return None
    return fault_kind in KIND_MAP[truth_kind] | {truth_kind}


def avg_at_k(ranks: Sequence[int | None], k: int = 5) -> float:
    """Avg@k: the mean of AC@1 .. AC@k."""
    return round(sum(ac_at_k(ranks, j) for j in range(1, k + 1)) / k, 4) if ranks else 0.0


def case_scores(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """AC@1/3/5, Avg@5 and kind accuracy of case rows ({"rank", "kind_right"}).

    `kind_accuracy` is the share of the cases ranked right at rank 1 (and with a kind `KIND_MAP` reads)
    whose first candidate has the right fault kind; None when there is no such case.
    """
    ranks = [r["rank"] for r in rows]
    judged = [r["kind_right"] for r in rows if r["rank"] == 1 and r["kind_right"] is not None]
    return {
        "cases": len(rows),
        **{f"ac{k}": ac_at_k(ranks, k) for k in TOP_K},
        "avg5": avg_at_k(ranks),
        "kind_accuracy": round(sum(judged) / len(judged), 4) if judged else None,
        "kind_cases": len(judged),
    }


def case_scores_by(rows: Sequence[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """`case_scores` per value of `key` ("system", "kind")."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[str(r[key])].append(r)
    return {name: case_scores(v) for name, v in sorted(groups.items())}


def seconds_summary(seconds: Sequence[float]) -> dict[str, float | None]:
    """{"median_case_s", "max_case_s"} of per-case times (None without cases)."""
    if not seconds:
        return {"median_case_s": None, "max_case_s": None}
    return {"median_case_s": round(statistics.median(seconds), 3), "max_case_s": round(max(seconds), 3)}


def score_case_detection(
    label: CaseLabel,
    fault_ns: int,
    seen: Sequence[dict[str, Any]],
    root_of: dict[str, str],
    *,
    other_faults_ns: Sequence[int] = (),
) -> dict[str, Any]:
    """One bundle's detection replay against its label.

    `seen` holds one {"incident", "at_ns", "opened"} for every run that opened or updated an incident. The
    fault is detected when a run from `BEFORE_S` before to `AFTER_S` after it opened or updated one; the
    incident judged is the first opened in that tolerance (else the first updated), with the root cause the
    later runs of its episode left. False incidents were opened before the tolerance and not within the
    tolerance of another labelled fault of the bundle (`other_faults_ns`).
    """
    lo, hi = fault_ns - BEFORE_S * NS, fault_ns + AFTER_S * NS
    hits = sorted((s for s in seen if lo <= s["at_ns"] <= hi), key=lambda s: (not s["opened"], s["at_ns"]))
    incident = hits[0]["incident"] if hits else None
    root = root_of.get(incident, "") if incident else ""

    def near_other(t: int) -> bool:
        return any(o - BEFORE_S * NS <= t <= o + AFTER_S * NS for o in other_faults_ns)

    before = {
        s["incident"]: s["at_ns"] for s in sorted(seen, key=lambda s: -s["at_ns"]) if s["opened"] and s["at_ns"] < lo
    }
    false = sorted(i for i, t in before.items() if not near_other(t))
    return {
        "detected": bool(hits),
        "delay_s": round((min(s["at_ns"] for s in hits) - fault_ns) / NS, 1) if hits else None,
        "incident": incident,
        "incident_opened": bool(hits and hits[0]["opened"]),
        "root_cause": root,
        "right": bool(root) and label.names(root),
        "false_incidents": len(false),
        "false_incident_ids": false,
        "incidents_before": len(before),
    }
