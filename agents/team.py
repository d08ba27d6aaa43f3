"""The agent team as a LangGraph StateGraph: planner -> topology -> (logs | runbooks) -> explainer."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

from agents.explainer import explain
from agents.log_agent import investigate_logs
from agents.planner import plan
from agents.runbook_agent import investigate_runbooks
from agents.state import TeamState
from agents.toolbox import Toolbox
from agents.topology_agent import investigate_topology
from core.explanation import Explanation
from core.incident import Incident

NODES: dict[str, Callable[[Toolbox, TeamState], dict[str, Any]]] = {
    "planner": plan,
    "topology": investigate_topology,
    "logs": investigate_logs,
    "runbooks": investigate_runbooks,
    "explainer": explain,
}


def _after_topology(state: TeamState) -> list[str]:
    """Fan out to the agents the planner chose (in parallel), or straight to the explainer when out of time."""
    if time.monotonic() >= state["deadline"]:
        return ["explainer"]
    chosen = [a for a in state.get("plan", []) if a in ("logs", "runbooks")]
    return chosen or ["explainer"]


def build_team(tools: Toolbox) -> Any:
    # LangGraph (about 1.5 s to import) loads with the first investigation, not with every CLI command
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(TeamState)
    for name, fn in NODES.items():
        g.add_node(name, partial(fn, tools))
    g.add_edge(START, "planner")
    g.add_edge("planner", "topology")
    g.add_conditional_edges("topology", _after_topology, ["logs", "runbooks", "explainer"])
    g.add_edge("logs", "explainer")
    g.add_edge("runbooks", "explainer")
    g.add_edge("explainer", END)
    return g.compile()


def _initial(incident: Incident, tools: Toolbox) -> TeamState:
    return {"incident": incident, "deadline": time.monotonic() + tools.budget.seconds, "timings": {}}


def run_team(tools: Toolbox, incident: Incident) -> Explanation:
    """Investigate one incident; the explanation carries every step the agents took."""
    return run_team_state(tools, incident)[0]


def run_team_state(tools: Toolbox, incident: Incident) -> tuple[Explanation, TeamState]:
    """`run_team`, and the team's final state (symptoms, ranking, plan) for whoever stores the result."""
    t0 = time.perf_counter()
    final: TeamState = build_team(tools).invoke(_initial(incident, tools), _config(tools))
    return _finished(final, t0), final


def stream_team(
    tools: Toolbox, incident: Incident
) -> Generator[tuple[str, dict[str, Any]], None, tuple[Explanation, TeamState]]:
    """`run_team_state` as a stream: yields (agent, what it produced) as each agent finishes (for progress
    streams), then returns what `run_team_state` returns."""
    t0 = time.perf_counter()
    final: TeamState = {}
    for mode, chunk in build_team(tools).stream(
        _initial(incident, tools), _config(tools), stream_mode=["updates", "values"]
    ):
        if mode == "updates":
            yield from chunk.items()
        else:
            final = chunk
    return _finished(final, t0), final


def _config(tools: Toolbox) -> dict[str, Any]:
    return {"recursion_limit": tools.budget.max_steps}


def _finished(final: TeamState, t0: float) -> Explanation:
    """The explainer's explanation with every agent's timings and the team's total (since `t0`)."""
    expl: Explanation = final["explanation"]
    timings = {**final.get("timings", {}), **expl.timings, "total": round((time.perf_counter() - t0) * 1000, 2)}
    return expl.model_copy(update={"timings": timings})
