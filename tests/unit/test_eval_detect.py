"""Scoring (detect.scoring): for `devmesh eval detect` the tolerance around the injection, the first incident for
top 1 and false incidents; for `devmesh eval rca` AC@k, overall and per fault type."""

from __future__ import annotations

from core.timeutil import NS
from detect.scoring import rank_of, rca_scores, rca_scores_by_type, score_detection
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
    out = score_detection(faults, seen, roots, hours=3.0, runs=180, seconds=1.0)
    assert (out["detected"], out["detected_top1"], out["detected_top1_any_incident"]) == (2, 1, 2)
    assert out["false_incidents"] == 1 and out["false_incident_ids"] == ["d"]
    assert [r["delay_s"] for r in out["results"]] == [30.0, -50.0, None]


def test_ac_at_k_counts_the_faults_whose_label_is_among_the_first_k() -> None:
    rows = [
        {"fault_type": "return", "rank": rank_of("pay", ["pay", "db"])},
        {"fault_type": "return", "rank": rank_of("db", ["pay", "cart", "auth", "db"])},
        {"fault_type": "exception", "rank": rank_of("cart", ["pay", "db"])},
    ]
    assert [r["rank"] for r in rows] == [1, 4, None]
    assert rca_scores(rows) == {"cases": 3, "ac1": 0.3333, "ac3": 0.3333, "ac5": 0.6667}
    assert rca_scores_by_type(rows) == {
        "exception": {"cases": 1, "ac1": 0.0, "ac3": 0.0, "ac5": 0.0},
        "return": {"cases": 2, "ac1": 0.5, "ac3": 0.5, "ac5": 1.0},
    }
    assert rca_scores([]) == {"cases": 0, "ac1": 0.0, "ac3": 0.0, "ac5": 0.0}
