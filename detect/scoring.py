"""Scoring root-cause rankings and detection runs against labelled faults (pure functions, no I/O).

- `rank_of`, `ac_at_k`, `rca_scores`: AC@k, the share of faults whose labelled service is among the first k
  candidates of the ranking made for it; overall and per fault type (`devmesh eval rca`).
- `score_detection`: detection replayed over a labelled period (`devmesh eval detect`). A fault counts as
  detected when a run from `BEFORE_S` before to `AFTER_S` after its injection opened or updated an incident
  (the run's time, when a person would be told), and top 1 when the first such incident's root cause is the
  labelled service; an incident opened by no run within a fault's tolerance is a false incident.

A label is anything with `inject_ns`, `service` and `fault_type` (a Nezha fault, a case bundle's label).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

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
