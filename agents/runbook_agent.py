"""Runbook agent: runbooks linked in the graph to the candidates and the alert, and runbook sections found by
meaning; picks the steps that apply (diagnosis, mitigation). When none fits, drafts a skeleton, marked draft."""

from __future__ import annotations

import re
import time
from typing import Any

from agents.state import TeamState
from agents.toolbox import Toolbox
from core.explanation import RunbookLink
from core.rca import FaultKind, RankingResult
from core.steps import record
from graph.neighborhood import neighborhood
from retrieval.collections import RUNBOOKS

MIN_SCORE = 0.45  # cosine below which a runbook section is not taken as applying
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.+)$")
_STEP_KINDS = ("diagnosis", "mitigation")


def investigate_runbooks(tools: Toolbox, state: TeamState) -> dict[str, Any]:
    t0 = time.perf_counter()
    inc = state["incident"]
    ranking = state.get("ranking")
    services = [c.service for c in ranking.candidates[:3]] if ranking else ([inc.service] if inc.service else [])
    alert = inc.labels.get("alertname", "")
    links: dict[str, RunbookLink] = {}
    steps = []
    if inc.annotations.get("runbook_url"):
        url = inc.annotations["runbook_url"]
        links[url] = RunbookLink(id=f"url:{url}", title=f"Runbook of the alert {alert}".strip(), url=url)
    graph = tools.graph
    if graph is not None and (services or alert):
        seeds = [("Service", s) for s in services] + ([("Alert", alert)] if alert else [])
        sub, step = record(
            "runbooks",
            "graph.neighborhood",
            "MATCH (seed)-[:COVERS]-(r:Runbook), 1 hop",
            {"seeds": [f"{a}:{b}" for a, b in seeds], "edge_types": ["COVERS"]},
            lambda: neighborhood(graph.graph, seeds, hops=1, edge_types=["COVERS"]).nodes,
            default=[],
        )
        steps.append(step)
        for node in sub:
            if node.label == "Runbook":
                links.setdefault(
                    node.key,
                    RunbookLink(
                        id=node.key,
                        title=str(node.properties.get("title", node.key)),
                        url=str(node.properties.get("url", "")),
                        score=1.0,
                    ),
                )
    query = " ".join(filter(None, [alert, inc.annotations.get("summary", ""), state.get("symptoms", "")]))[:2000]
    if query and tools.vectors is not None and tools.embedder is not None and RUNBOOKS in tools.vectors.collections():
        vectors, embedder = tools.vectors, tools.embedder
        hits, step = record(
            "runbooks",
            "vectors.search",
            f"runbook sections nearest the symptoms in '{RUNBOOKS}'",
            {"collection": RUNBOOKS, "limit": 12, "text": query[:200]},
            lambda: vectors.search(RUNBOOKS, embedder.embed([query])[0], limit=12),
            default=[],
        )
        steps.append(step)
        for h in hits:
            rb_id = str(h.payload.get("runbook_id", ""))
            if not rb_id or (h.score < MIN_SCORE and rb_id not in links):
                continue
            link = links.setdefault(
                rb_id,
                RunbookLink(
                    id=rb_id,
                    title=str(h.payload.get("title", rb_id)),
                    url=str(h.payload.get("url", "")),
                    score=round(h.score, 4),
                ),
            )
            if h.payload.get("kind") in _STEP_KINDS and len(link.steps) < 8:
                link.steps.extend(bullet_steps(str(h.payload.get("text", "")))[: 8 - len(link.steps)])
                link.section_ids.append(h.id)
    found = sorted(links.values(), key=lambda r: -(r.score or 0))[:5]
    notes = []
    if not any(r.steps or r.url for r in found):
        notes.append("no runbook fits this incident: a draft runbook was written from the evidence")
        found.append(draft_runbook(inc.id, ranking))
    return {
        "runbooks": found,
        "steps": steps,
        "notes": notes,
        "timings": {"runbooks": round((time.perf_counter() - t0) * 1000, 2)},
    }


def bullet_steps(text: str) -> list[str]:
    """The bullet points of a runbook section, or its first sentences when it has none."""
    bullets = [m.group(1).strip() for line in text.splitlines() if (m := _BULLET.match(line))]
    if bullets:
        return bullets
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    return [s for s in sentences if s][:3]


_DRAFT_STEPS = {
    FaultKind.CODE_ERROR: "Read the new error and exception lines of {svc} and the traces behind them; roll back "
    "its latest change if they started with it.",
    FaultKind.RESOURCE_SATURATION: "Check CPU and memory of {svc}'s pods against their limits; scale out or raise "
    "limits, and look for a noisy neighbour on the same node.",
    FaultKind.NETWORK_DELAY: "Measure latency between {svc} and its callers (client vs server span times); check "
    "the network path and the nodes they run on.",
    FaultKind.DEPENDENCY_FAILURE: "Check what {svc} calls: the dependency that fails first is the one to fix.",
    FaultKind.UNKNOWN: "Compare {svc}'s logs, traces and metrics before and after the start of the incident.",
}


def draft_runbook(incident_id: str, ranking: RankingResult | None) -> RunbookLink:
    top = ranking.candidates[0] if ranking and ranking.candidates else None
    svc = top.service if top else "the affected service"
    kind = top.fault_kind if top else FaultKind.UNKNOWN
    steps = [
        f"Confirm the symptom: error rate and latency of {svc} and of the services that call it.",
        _DRAFT_STEPS.get(kind, _DRAFT_STEPS[FaultKind.UNKNOWN]).format(svc=svc),
        "Mitigate: roll back, restart or scale the root-cause pods; then watch the callers recover.",
        "Write down what fixed it, and turn this draft into a runbook.",
    ]
    return RunbookLink(id=f"draft:{incident_id}", title=f"Draft runbook: {svc} ({kind.value})", steps=steps, draft=True)
