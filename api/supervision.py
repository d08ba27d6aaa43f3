"""Wiring of the engines' supervision for `devmesh serve`: one `core.supervisor.Supervisor` over the graph
(the embedded FalkorDB restarted on its files, or a remote one probed), a Qdrant server and the LLM server
(probed), that replays the owed writes (`ingest.repair.repair_owed`) when the graph or vectors come back.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from api.wiring import Services
from core.breaker import EngineHealth
from core.supervisor import Supervisor, Watch
from ingest.repair import repair_owed

log = logging.getLogger(__name__)


def supervise(svc: Services, *, interval_s: float = 0.5) -> Supervisor:
    """Start supervising `svc`'s engines; stopped by `svc.close()` (before the engines close)."""
    watches = list(svc.watches)
    for w in watches:
        w.on_back.append(partial(replay_owed, svc, w.health.name))
    vectors: Any = svc.vectors
    health = svc.engines.get("vectors")
    if health is not None and hasattr(vectors, "ping"):
        watches.append(Watch(health=health, probe=vectors.ping, on_back=[partial(replay_owed, svc, "vectors")]))
    llm = svc.llm
    if llm is not None:
        health = svc.engines["llm"] = EngineHealth("llm", breaker=llm.breaker)
        watches.append(Watch(health=health, probe=llm.reachable))  # nothing owed: explanations went evidence-only
    supervisor = Supervisor(watches, interval_s=interval_s)
    supervisor.start()
    svc.supervisor = supervisor
    svc._closers.append(supervisor.stop)  # closers run last first: supervision stops before the engines
    return supervisor


def replay_owed(svc: Services, engine: str) -> None:
    """The writes owed while `engine` was down, completed from the event store."""
    report = repair_owed(svc, stores=(engine,))
    log.warning("owed writes replayed", extra={"engine": engine, **report.as_dict()})
