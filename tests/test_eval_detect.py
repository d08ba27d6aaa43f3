"""Scoring of `devmesh eval detect`: tolerance around the injection, first incident for top 1, false incidents."""

from __future__ import annotations

from bench.eval_detect import score
from core.timeutil import NS
from ingest.nezha import NezhaFault

T = 1_674_985_774 * NS


def fault(at: int, service: str) -> NezhaFault:
    return NezhaFault(inject_ns=at, pod=f"{service}-1-2", service=service, fault_type="return", date="2023-01-29")


def test_scoring_counts_runs_near_the_injection_and_judges_the_first_incident() -> None:
    faults = [fault(T, "pay"), fault(T + 3600 * NS, "cart"), fault(T + 7200 * NS, "auth")]
    seen = [
        {"incident": "a", "at_ns": T + 30 * NS, "opened": True},  # pay: opened 30 s after, root right
        {"incident": "b", "at_ns": T + 3600 * NS - 50 * NS, "opened": True},  # cart: 50 s early, root wrong ...
        {"incident": "c", "at_ns": T + 3600 * NS + 120 * NS, "opened": True},  # ... a second one right
        {"incident": "d", "at_ns": T + 7200 * NS + 181 * NS, "opened": True},  # auth: 181 s late: missed, false
        {"incident": "a", "at_ns": T + 1800 * NS, "opened": False},  # an update far from any fault: not false
    ]
    roots = {"a": "pay", "b": "db", "c": "cart", "d": "auth"}
    out = score(faults, seen, roots, hours=3.0, runs=180, seconds=1.0)
    assert (out["detected"], out["detected_top1"], out["detected_top1_any_incident"]) == (2, 1, 2)
    assert out["false_incidents"] == 1 and out["false_incident_ids"] == ["d"]
    assert [r["delay_s"] for r in out["results"]] == [30.0, -50.0, None]
