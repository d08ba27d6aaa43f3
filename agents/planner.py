"""Planner: looks at the incident and at what telemetry exists around it, and picks the agents to run."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from agents.state import TeamState
from agents.toolbox import Toolbox
from core.steps import record
from core.timeutil import NS

LOOKAROUND_S = 1800  # telemetry searched for up to half an hour before and after the incident


def plan(tools: Toolbox, state: TeamState) -> dict[str, Any]:
    t0 = time.perf_counter()
    inc = state["incident"]
    lo, hi = inc.start_ns - LOOKAROUND_S * NS, inc.end_ns + LOOKAROUND_S * NS
    have: dict[str, int] = {}
    steps = []
    for kind in ("logs", "spans", "metrics"):
        n, step = record(
            "planner",
            "events.count_by",
            f"SELECT count(*) FROM {kind} WHERE time in [start_ns, end_ns)",
            {"kind": kind, "start_ns": lo, "end_ns": hi},
            partial(_count, tools, kind, lo, hi),
            default=0,
            count=lambda n: n,  # the step's items: how many rows there are
        )
        have[kind] = n
        steps.append(step)
    agents = ["topology"]
    notes = []
    if have["logs"]:
        agents.append("logs")
    else:
        notes.append("no log lines around the incident: the log agent did not run")
    agents.append("runbooks")
    if not any(have.values()):
        notes.append("no telemetry at all around the incident: the explanation rests on nothing measured")
    return {
        "plan": agents,
        "steps": steps,
        "notes": notes,
        "timings": {"planner": round((time.perf_counter() - t0) * 1000, 2)},
    }


def _count(tools: Toolbox, kind: str, lo: int, hi: int) -> int:
    rows = tools.events.count_by(kind, [], start_ns=lo, end_ns=hi)  # type: ignore[arg-type]
    return int(rows[0]["count"]) if rows else 0
