"""`devmesh bench explain --question`: the POST /explain bodies it times, from the bundled sample's fault list."""

from __future__ import annotations

import pytest

from api.measure.bench_explain import END_AFTER_S, fault_requests
from core.errors import InvalidInput
from core.timeutil import NS
from samples import sample_path


def test_at_names_the_time_and_service_and_end_names_only_an_end() -> None:
    root = sample_path() / "nezha"
    at = fault_requests(root, None)
    end = fault_requests(root, None, "end")
    assert at and len(at) == len(end)
    assert all(set(b) == {"at_ns", "service"} and b["service"] for b in at)
    assert [b["end_ns"] for b in end] == [b["at_ns"] + END_AFTER_S * NS for b in at]
    assert fault_requests(root, 1, "end") == end[:1]
    with pytest.raises(InvalidInput):
        fault_requests(root, None, "start")
