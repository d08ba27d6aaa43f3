"""The one tool-call recorder (`core.steps`): what each call records, and how a failing call ends."""

from __future__ import annotations

import logging

import pytest

from core.errors import NotFound
from core.explanation import StepStatus
from core.steps import StepLog, record


def boom() -> list[int]:
    raise RuntimeError("boom")


def test_a_call_is_recorded_with_its_query_parameters_and_item_count() -> None:
    params = {"ids": ["a", "b"], "filter": {"match": {"x": [1]}}, "limit": 2, "none": None, "obj": object()}
    result, step = record("logs", "events.query", "SELECT 1", params, lambda: [1, 2], default=[])
    assert result == [1, 2]
    assert (step.agent, step.tool, step.query, step.status, step.items, step.detail) == (
        "logs",
        "events.query",
        "SELECT 1",
        StepStatus.OK,
        2,
        "",
    )
    assert step.params == {"ids": ["a", "b"], "filter": {"match": {"x": [1]}}, "limit": 2, "none": None}
    assert step.started_ns > 0 and step.duration_ms >= 0


@pytest.mark.parametrize(
    ("result", "count", "items", "status"),
    [([], None, 0, StepStatus.NO_DATA), (None, None, 0, StepStatus.NO_DATA), (7, None, 1, StepStatus.OK)]
    + [({"a": [1, 2], "b": [3]}, lambda d: sum(len(v) for v in d.values()), 3, StepStatus.OK)],
)
def test_items_and_no_data(result: object, count: object, items: int, status: StepStatus) -> None:
    _, step = record("a", "t", "q", {}, lambda: result, default=None, count=count)  # type: ignore[arg-type]
    assert (step.items, step.status) == (items, status)


def test_describe_gives_the_detail_of_a_successful_call() -> None:
    _, step = record("a", "t", "q", {}, lambda: (2, 1), default=None, count=lambda r: 1, describe=lambda r: f"{r}")
    assert step.detail == "(2, 1)"
    _, failed = record("a", "t", "q", {}, boom, default=None, describe=lambda r: "never")
    assert failed.detail == "RuntimeError: boom"


def test_a_devmesh_error_or_an_expected_store_error_is_a_warned_error_step(caplog: pytest.LogCaptureFixture) -> None:
    def missing() -> list[int]:
        raise NotFound("no such thing")

    def down() -> list[int]:
        raise ConnectionError("store down")

    with caplog.at_level(logging.WARNING, logger="core.steps"):
        r1, s1 = record("a", "t", "q", {}, missing, default=[])
        r2, s2 = record("a", "t", "q", {}, down, default=[], expected=(ConnectionError,))
    assert (r1, s1.status, s1.items, s1.detail) == ([], StepStatus.ERROR, 0, "no such thing")
    assert (r2, s2.status, s2.detail) == ([], StepStatus.ERROR, "ConnectionError: store down")
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("WARNING", "agent tool failed", None),
        ("WARNING", "agent tool failed", None),
    ]


def test_a_bug_in_one_tool_is_an_error_step_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="core.steps"):
        result, step = record("topology", "t", "q", {}, boom, default=["fallback"])
    assert (result, step.status, step.detail) == (["fallback"], StepStatus.ERROR, "RuntimeError: boom")
    (logged,) = caplog.records
    assert (logged.levelname, logged.getMessage()) == ("ERROR", "agent tool crashed")
    assert logged.exc_info is not None and logged.exc_info[0] is RuntimeError


def test_a_step_log_keeps_the_calls_and_the_skipped_ones_in_order() -> None:
    log = StepLog("retrieval")
    assert log.run("one", "q1", {}, lambda: [1], default=[]) == [1]
    log.skip("two", "q2", {"collection": "incidents"}, "collection 'incidents' does not exist")
    assert log.run("three", "q3", {}, boom, default=[]) == []
    assert [(s.agent, s.tool, s.status, s.detail) for s in log.steps] == [
        ("retrieval", "one", StepStatus.OK, ""),
        ("retrieval", "two", StepStatus.NO_DATA, "collection 'incidents' does not exist"),
        ("retrieval", "three", StepStatus.ERROR, "RuntimeError: boom"),
    ]
