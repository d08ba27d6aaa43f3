"""Patterned request texts accept what their published pattern allows under Python's `re` too.

A `^...$` pattern matches "2023-01-29\\n" under Python's `re` (what schemathesis and Hypothesis generate from)
but not under pydantic's engine; the fields strip surrounding blanks first (core.jsontypes.strip_text), and
keep their pattern in the schema. Found by the contract test: an Alertmanager alert whose startsAt ended in a
newline was refused although the schema allowed it.
"""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from api.alerts import AlertmanagerAlert
from core.incident import AlertIn
from core.timeutil import ISO_SINCE_2001_PATTERN


def test_a_trailing_newline_matches_the_pattern_under_python_re() -> None:
    assert re.search(ISO_SINCE_2001_PATTERN, "2023-01-29\n")  # why the strip is needed at all


@pytest.mark.parametrize("text", ["2023-01-29\n", " 2023-01-29T08:42:22Z ", "2023-01-29T08:42:22Z"])
def test_alertmanager_times_accept_surrounding_blanks(text: str) -> None:
    alert = AlertmanagerAlert.model_validate({"status": "firing", "labels": {"a": "b"}, "startsAt": text})
    assert alert.starts_at == text.strip()


def test_alertmanager_times_still_refuse_what_the_pattern_does_not_allow() -> None:
    with pytest.raises(ValidationError):
        AlertmanagerAlert.model_validate({"status": "firing", "labels": {"a": "b"}, "startsAt": "2023-02-30"})
    schema = AlertmanagerAlert.model_json_schema(by_alias=True)
    assert schema["properties"]["startsAt"]["pattern"] == ISO_SINCE_2001_PATTERN


def test_explain_alert_time_is_stripped_and_stays_strict() -> None:
    assert AlertIn.model_validate({"startsAt": "2023-01-29T08:42:22Z\n"}).startsAt == "2023-01-29T08:42:22Z"
    with pytest.raises(ValidationError):
        AlertIn.model_validate({"startsAt": 1674981742})


def test_every_alert_time_the_pattern_allows_fits_a_request() -> None:
    """An alert's startsAt becomes start_ns/at_ns, at most LATEST_NS (2255-03-14): the pattern stops at 2254, so
    a startsAt the schema allows is never refused as a request time (the contract test found 2260-12-30)."""
    from core.timeutil import LATEST_NS, to_ns

    assert re.search(ISO_SINCE_2001_PATTERN, "2254-12-31T23:59-23:59")
    assert to_ns("2254-12-31T23:59-23:59") < LATEST_NS
    for too_late in ("2255-01-01", "2256-02-29", "2260-12-30T06:20Z"):
        assert not re.search(ISO_SINCE_2001_PATTERN, too_late)
