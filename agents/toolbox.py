"""What the agents may use, and the recorder that turns every call into an `AgentStep`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sized
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from core.errors import DevMeshError
from core.explanation import AgentStep, StepStatus
from core.timeutil import now_ns

if TYPE_CHECKING:
    from agents.llm import LLMClient
    from agents.masking import Masker
    from detect.incidents import IncidentBook
    from graph.store import GraphStore
    from retrieval.embedders import Embedder
    from retrieval.eventstore import EventStore
    from retrieval.vectors import VectorStore

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Budget:
    """Bounds of one investigation."""

    seconds: float = 30.0
    max_steps: int = 40


@dataclass
class Toolbox:
    events: EventStore
    graph: GraphStore | None
    vectors: VectorStore | None
    embedder: Embedder | None
    book: IncidentBook
    llm: LLMClient | None = None
    masker: Masker | None = None
    budget: Budget = field(default_factory=Budget)
    modalities: tuple[str, ...] = ("logs", "traces", "metrics")


def record(
    agent: str,
    tool: str,
    query: str,
    params: dict[str, Any],
    fn: Callable[[], T],
    *,
    default: Any,  # what the caller gets when `fn` fails (of fn's result type; Any so `[]` type-checks)
    count: Callable[[T], int] | None = None,
) -> tuple[T, AgentStep]:
    """Run one tool call; the step says what ran (exact query and parameters), how long, and how it ended.

    A failure becomes a step with status `error` (and the message) and `default` as the result: one failing
    store or tool does not end the investigation. `count` says how many items a result holds (default: its
    length); a result of none is status `no_data`.
    """
    started = now_ns()
    t0 = time.perf_counter()
    result: T
    try:
        result = fn()
        status = StepStatus.OK
        detail = ""
    except DevMeshError as exc:
        log.warning("agent tool failed", extra={"agent": agent, "tool": tool, "error": exc.message})
        result, status, detail = default, StepStatus.ERROR, exc.message
    except Exception as exc:  # a bug in one tool is recorded as that step's error; the team goes on
        log.exception("agent tool crashed", extra={"agent": agent, "tool": tool})
        result, status, detail = default, StepStatus.ERROR, f"{type(exc).__name__}: {exc}"
    if status != StepStatus.OK:
        items = 0
    elif count is not None:
        items = count(result)
    else:
        items = len(result) if isinstance(result, Sized) else (0 if result is None else 1)
    if status == StepStatus.OK and items == 0:
        status = StepStatus.NO_DATA
    step = AgentStep(
        agent=agent,
        tool=tool,
        query=query,
        params={k: v for k, v in params.items() if isinstance(v, str | int | float | bool | list | type(None))},
        started_ns=started,
        duration_ms=round((time.perf_counter() - t0) * 1000, 2),
        status=status,
        items=items,
        detail=detail,
    )
    return result, step
