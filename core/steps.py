"""The one tool-call recorder: every call an agent or the evidence gathering makes becomes an `AgentStep`.

`record` runs one call and says what ran (exact query and parameters), how long it took and how it ended:
`ok`, `no_data` (a result of no items) or `error`. A failure is a step with status `error` and the
caller's `default` as the result, so one failing store or tool does not end an investigation.
`StepLog` keeps the steps of a run of calls in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sized
from typing import Any, TypeVar

from core.errors import DevMeshError
from core.explanation import AgentStep, StepStatus
from core.timeutil import now_ns

log = logging.getLogger(__name__)
T = TypeVar("T")

_PARAM_TYPES = (str, int, float, bool, list, dict, type(None))


def record(
    agent: str,
    tool: str,
    query: str,
    params: dict[str, Any],
    fn: Callable[[], T],
    *,
    default: Any,  # what the caller gets when `fn` fails (of fn's result type; Any so `[]` type-checks)
    count: Callable[[T], int] | None = None,
    describe: Callable[[T], str] | None = None,
    expected: tuple[type[Exception], ...] = (),
) -> tuple[T, AgentStep]:
    """Run one tool call and return its result with the step that records it.

    `count` says how many items a result holds (default: its length, or 1 for any other result but
    None); `describe` gives the detail of a successful step. A `DevMeshError`, or one of the
    `expected` exception types (a store client's own errors), is logged as a warning; any other
    exception is a bug in that tool, logged with its traceback. Either way the step is `error`, with
    the message as its detail, and the result is `default`. Parameters that are not JSON-like values
    are left out of the step.
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
    except expected as exc:
        detail = f"{type(exc).__name__}: {exc}"
        log.warning("agent tool failed", extra={"agent": agent, "tool": tool, "error": detail})
        result, status = default, StepStatus.ERROR
    except Exception as exc:  # a bug in one tool is recorded as that step's error; the team goes on
        log.exception("agent tool crashed", extra={"agent": agent, "tool": tool})
        result, status, detail = default, StepStatus.ERROR, f"{type(exc).__name__}: {exc}"
    if status != StepStatus.OK:
        items = 0
    elif count is not None:
        items = count(result)
    else:
        items = len(result) if isinstance(result, Sized) else (0 if result is None else 1)
    if status == StepStatus.OK and describe is not None:
        detail = describe(result)
    if status == StepStatus.OK and items == 0:
        status = StepStatus.NO_DATA
    step = AgentStep(
        agent=agent,
        tool=tool,
        query=query,
        params={k: v for k, v in params.items() if isinstance(v, _PARAM_TYPES)},
        started_ns=started,
        duration_ms=round((time.perf_counter() - t0) * 1000, 3),
        status=status,
        items=items,
        detail=detail,
    )
    return result, step


def skipped(agent: str, tool: str, query: str, params: dict[str, Any], reason: str) -> AgentStep:
    """The step of a call not made (its store or collection is missing): `no_data`, with the reason."""
    return AgentStep(
        agent=agent,
        tool=tool,
        query=query,
        params={k: v for k, v in params.items() if isinstance(v, _PARAM_TYPES)},
        started_ns=now_ns(),
        status=StepStatus.NO_DATA,
        detail=reason,
    )


class StepLog:
    """The steps of one agent's run of calls, in the order they ran (`record` for each)."""

    def __init__(self, agent: str, *, expected: tuple[type[Exception], ...] = ()) -> None:
        self.agent = agent
        self.expected = expected
        self.steps: list[AgentStep] = []

    def run(
        self,
        tool: str,
        query: str,
        params: dict[str, Any],
        fn: Callable[[], T],
        *,
        default: Any,
        count: Callable[[T], int] | None = None,
        describe: Callable[[T], str] | None = None,
    ) -> T:
        """`record` one call, keep its step, return its result."""
        result, step = record(
            self.agent,
            tool,
            query,
            params,
            fn,
            default=default,
            count=count,
            describe=describe,
            expected=self.expected,
        )
        self.steps.append(step)
        return result

    def skip(self, tool: str, query: str, params: dict[str, Any], reason: str) -> None:
        """Keep the step of a call not made."""
        self.steps.append(skipped(self.agent, tool, query, params, reason))
