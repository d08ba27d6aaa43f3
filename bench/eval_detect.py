"""`devmesh eval detect nezha DIR`: replay a Nezha-layout data set through scheduled detection.

Imports the data into a fresh home (or reuses one), then runs detection once a minute, as a scheduler
would, across the period the logs and traces cover (the clock is replayed: each run sees the data up to its
own time only through the window it looks at). Only after all runs are the incidents compared with the labels:
a fault counts as detected when an incident is opened or updated for an onset from 60 s before to 180 s after
its injection, and detected_top1 when that incident's top root cause is the labelled service. An incident
matching no fault is a false incident.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.settings import Settings
from core.timeutil import NS, iso
from detect.runner import DetectOptions, run_once
from ingest import nezha
from ingest.importers import import_nezha

BEFORE_S, AFTER_S = 60, 180


def evaluate_detect_nezha(
    root: Path,
    settings: Settings,
    *,
    open_fn: Callable[[Settings], Any],
    reuse: bool = False,
    explain: bool = False,
    on_run: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    plan = nezha.plan(root)
    faults = nezha.load_faults(plan)  # read now, used only after every run has finished
    svc = open_fn(settings)
    try:
        if not (reuse and svc.events.stats()["tables"]["logs"]["rows"]):
            import_nezha(svc.pipeline, root)
        tables = svc.events.stats()["tables"]
        lo = min(t["min_ns"] for k, t in tables.items() if k in ("logs", "spans") and t["rows"])
        hi = max(t["max_ns"] for k, t in tables.items() if k in ("logs", "spans") and t["rows"])
        tools = svc.toolbox()
        svc.events.kv_set("detect.last_end_ns", None)
        opt = DetectOptions(window_s=60, explain=explain, max_catchup_s=120)
        minute = 60 * NS
        t = (lo // minute + 1) * minute
        seen: list[dict[str, Any]] = []  # (onset time, incident id) of every run that opened or updated one
        t0 = time.perf_counter()
        n_runs = 0
        total = int((hi - t) // minute) + 2
        while t <= hi + minute:
            for run in run_once(tools, end_ns=t, options=opt):
                n_runs += 1
                for inc_id in run.opened + run.updated:
                    at = min((o["at_ns"] for o in run.onsets), default=run.start_ns)
                    seen.append({"incident": inc_id, "at_ns": at, "opened": inc_id in run.opened})
            if on_run is not None:
                on_run(n_runs, total)
            t += minute
        seconds = time.perf_counter() - t0
        root_of = {i.id: i.root_cause for i in tools.book.list(limit=100_000)}
    finally:
        svc.close()
    return score(faults, seen, root_of, hours=(hi - lo) / NS / 3600, runs=n_runs, seconds=seconds)


def score(
    faults: list[nezha.NezhaFault],
    seen: list[dict[str, Any]],
    root_of: dict[str, str],
    *,
    hours: float,
    runs: int,
    seconds: float,
) -> dict[str, Any]:
    results = []
    matched_incidents: set[str] = set()
    for f in faults:
        hits = [s for s in seen if f.inject_ns - BEFORE_S * NS <= s["at_ns"] <= f.inject_ns + AFTER_S * NS]
        top1 = [s for s in hits if root_of.get(s["incident"]) == f.service]
        matched_incidents |= {s["incident"] for s in hits}
        results.append(
            {
                "fault": iso(f.inject_ns),
                "truth": f.service,
                "type": f.fault_type,
                "detected": bool(hits),
                "top1": bool(top1),
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
        "false_incidents": len(false),
        "incidents": len(opened),
        "hours": round(hours, 2),
        "runs": runs,
        "seconds": round(seconds, 1),
        "tolerance_s": {"before": BEFORE_S, "after": AFTER_S},
        "false_incident_ids": false,
        "results": results,
    }
