"""`devmesh eval detect nezha DIR`: replay a Nezha-layout data set through scheduled detection.

Imports the data into a fresh home (or reuses one), then runs detection once a minute, as a scheduler
would, across the period the logs and traces cover. The clock is replayed: a run at time T ranks only
telemetry from before T (its windows end at T and its history lies before them), as it would live. Only
after all runs are the incidents compared with the labels (`detect.scoring.score_detection`): a fault counts
as detected when a run from 60 s before to 180 s after its injection opened or updated an incident (the time
is the run's, when a person would be told), and detected_top1 when the first such incident's root cause (as
the later runs of its episode left it) is the labelled service (detected_top1_any_incident: any of them). An
incident opened by no run within a fault's tolerance is a false incident.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.investigate import detection_context
from core.settings import Settings
from core.timeutil import NS
from detect.incidents import EXPLANATIONS, INCIDENTS
from detect.runner import RUNS, DetectionRun, DetectOptions, replay
from detect.scoring import score_detection
from ingest import nezha
from ingest.importers import import_nezha


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
        for collection in (INCIDENTS, EXPLANATIONS, RUNS):  # a reused home starts from a clean slate
            svc.events.docs.clear(collection)
        opt = DetectOptions(window_s=60, explain=explain)
        seen: list[dict[str, Any]] = []  # (run time, incident id) of every run that opened or updated one
        total = int((hi - lo) // (60 * NS)) + 2

        def record(run: DetectionRun) -> None:
            for inc_id in run.opened + run.updated:
                seen.append({"incident": inc_id, "at_ns": run.end_ns, "opened": inc_id in run.opened})
            done.append(run.end_ns)
            if on_run is not None:
                on_run(len(done), total)

        done: list[int] = []
        t0 = time.perf_counter()
        n_runs = len(replay(detection_context(tools, explain=opt.explain), lo, hi, opt, on_run=record))
        seconds = time.perf_counter() - t0
        root_of = {i.id: i.root_cause for i in tools.book.list(limit=100_000)}
    finally:
        svc.close()
    return score_detection(faults, seen, root_of, hours=(hi - lo) / NS / 3600, runs=n_runs, seconds=seconds)
