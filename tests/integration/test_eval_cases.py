"""`devmesh eval rca|detect cases` and `devmesh eval make-cases nezha` (api/measure/eval_cases, case_replay,
nezha_cases; the scoring in detect/scoring).

The bundles are made in the test by the product's export from a small made-up system (web -> cart -> db,
web -> auth; three minutes of requests every eight minutes) whose db fails its lookups from the minute after
the start of blocks 3 and 5 (a new error line in db, then one in cart):

- `db-seen`: asked two minutes into the block-3 fault, the alert fired when it began: live and in
  hindsight the errors are there, and db is ranked first;
- `db-after`: asked (and alerted) the moment the block-5 fault begins: live, nothing has gone wrong yet;
  in hindsight, the errors after asked_at are there and db is ranked first.
"""

from __future__ import annotations

import ast
import json
import random
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli.main import app
from api.measure import case_replay, eval_cases
from api.measure.case_replay import CaseExplained, Ranked, request_body
from api.measure.eval_cases import evaluate_detect_cases, evaluate_rca_cases
from api.measure.nezha_cases import CaseSpec, declared_calls, make_nezha_cases
from api.wiring import open_services
from core.settings import Settings
from core.timeutil import iso
from detect.scoring import KIND_MAP, CaseLabel, case_scores, kind_right, rank_in, score_case_detection
from ingest import batch
from ingest.cases import Case, CaseIngest, ExportSpec, export_case, load_case
from samples import sample_path

NS = 1_000_000_000
T0 = int(datetime(2024, 5, 1, 10, 0, tzinfo=UTC).timestamp()) * NS
BLOCK_S, EVERY_S, BLOCKS = 180, 480, 9
FAULT_BLOCKS = (5, 7)
PODS = {"web": "web-6d5f7c8b9-bcdfg", "cart": "cart-7f9c6d5b4-fghjk", "db": "db-5d8f7c9b4-klmnp", "auth": "auth-0"}


def fault_of(block: int) -> int:
    return T0 + (block * EVERY_S + 60) * NS


def simulate(seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    rnd = random.Random(seed)
    out: dict[str, list[dict[str, Any]]] = {"logs": [], "spans": []}
    n = 0
    for b in range(BLOCKS):
        for i in range(BLOCK_S):
            t = T0 + b * EVERY_S * NS + i * NS + rnd.randrange(0, 500_000_000)
            n += 1
            bad = b in FAULT_BLOCKS and t >= fault_of(b) and rnd.random() < 0.6
            _request(out, f"{n:032x}", t, bad, rnd.randrange(1000))
    return out


def _request(out: dict[str, list[dict[str, Any]]], trace: str, t: int, bad: bool, item: int) -> None:
    def span(sid: str, parent: str, svc: str, op: str, s: int, dur_us: int) -> None:
        sid, parent = trace[-8:] + sid, trace[-8:] + parent if parent else ""
        out["spans"].append(
            {
                "trace_id": trace,
                "span_id": sid,
                "parent_id": parent,
                "service": svc,
                "pod": PODS[svc],
                "operation": op,
                "start_ns": s,
                "end_ns": s + dur_us * 1000,
                "duration_us": float(dur_us),
            }
        )

    def log(sid: str, svc: str, ts: int, level: str, msg: str) -> None:
        row = {"ts_ns": ts, "service": svc, "pod": PODS[svc], "level": level, "message": msg}
        out["logs"].append({**row, "trace_id": trace, "span_id": trace[-8:] + sid})

    span("0001", "", "web", "GET /cart", t, 9000)
    span("0002", "0001", "auth", "/auth/check", t + 200_000, 800)
    log("0002", "auth", t + 300_000, "INFO", f"token ok for user {item % 50}")
    span("0003", "0001", "cart", "/cart/items", t + 1_200_000, 6000)
    log("0003", "cart", t + 1_300_000, "INFO", f"loading cart {item}")
    span("0004", "0003", "db", "SELECT items", t + 1_500_000, 2000)
    log("0004", "db", t + 1_600_000, "INFO", f"query items for cart {item}")
    if bad:
        log("0004", "db", t + 2_900_000, "ERROR", f"lookup failed: no rows for cart {item}")
        log("0003", "cart", t + 3_600_000, "ERROR", f"cart {item} could not be loaded")
    else:
        log("0004", "db", t + 2_900_000, "INFO", f"query ok rows={1 + item % 9}")
        log("0003", "cart", t + 3_600_000, "INFO", f"cart {item} has {1 + item % 9} items")


def columns(kind: batch.Kind, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    cols = batch.empty(kind)
    for r in rows:
        batch.append_row(cols, r)
    return cols


TRUTH = {"root_cause": {"service": "db", "aliases": [PODS["db"]], "host": None}, "kind": "exception"}


@pytest.fixture(scope="module")
def cases_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two bundles (db-seen, db-after) exported from the made-up system, each with its truth.json."""
    root = tmp_path_factory.mktemp("cases")
    home = tmp_path_factory.mktemp("source") / "home"
    settings = Settings(home=home, embedder="none", qdrant_url=None, ollama_host=None)
    rows = simulate()
    with open_services(settings, graph=False, vectors=False) as svc:
        svc.pipeline.ingest("logs", columns("logs", rows["logs"]))
        svc.pipeline.ingest("spans", columns("spans", rows["spans"]))
        for case_id, block, asked in (("db-seen", 5, fault_of(5) + 120 * NS), ("db-after", 7, fault_of(7))):
            spec = ExportSpec(at_ns=asked, before_ns=3600 * NS, after_ns=1800 * NS, service="web", case_id=case_id)
            export_case(svc.events, None, root / case_id, spec)
            doc = json.loads((root / case_id / "case.json").read_text())
            doc["alert"]["startsAt"] = iso(fault_of(block))  # the alert fired when the errors began
            (root / case_id / "case.json").write_text(json.dumps(doc))
            truth = {"fault_time": iso(fault_of(block)), **TRUTH}
            (root / case_id / "truth.json").write_text(json.dumps(truth))
    return root


@pytest.fixture
def base(tmp_path: Path) -> Settings:
    """The settings an evaluation starts from (each case gets a home and embedded engines of its own)."""
    return Settings(home=tmp_path / "unused", embedder="none", qdrant_url=None, ollama_host=None)


def test_live_sees_only_up_to_asked_at_and_hindsight_sees_all(cases_dir: Path, base: Settings) -> None:
    live = evaluate_rca_cases(cases_dir, base)
    assert (live["mode"], live["cases"], live["errors"]) == ("live", 2, [])
    assert (live["ac1"], live["ac3"], live["ac5"], live["avg5"]) == (0.5, 0.5, 0.5, 0.5)
    by_id = {r["id"]: r for r in live["results"]}
    seen, after = by_id["db-seen"], by_id["db-after"]
    assert seen["rank"] == 1 and seen["ranking"][0]["service"] == "db" and seen["ranking"][0]["from"] == "explanation"
    assert after["rank"] is None and after["later"] > 0 and seen["later"] > 0
    assert seen["truth"] == {"service": "db", "host": None, "names": ["db", PODS["db"]], "fault_time": iso(fault_of(5))}
    assert (seen["kind"], seen["ranking"][0]["fault_kind"], seen["kind_right"]) == ("exception", "code_error", True)
    assert (live["kind_accuracy"], live["kind_cases"]) == (1.0, 1)
    assert live["by_system"]["devmesh"]["cases"] == 2 and live["by_kind"]["exception"]["ac1"] == 0.5
    assert live["median_case_s"] is not None and live["max_case_s"] >= live["median_case_s"]

    hindsight = evaluate_rca_cases(cases_dir, base, hindsight=True)
    assert hindsight["mode"] == "hindsight"
    assert (hindsight["ac1"], hindsight["ac3"], hindsight["avg5"]) == (1.0, 1.0, 1.0)
    assert all(r["later"] == 0 for r in hindsight["results"])
    ranks = [[c["service"] for c in r["ranking"]][:2] for r in hindsight["results"]]
    assert ranks == [["db", "cart"], ["db", "cart"]]


def test_detection_replayed_over_a_bundle_finds_the_fault(cases_dir: Path, base: Settings, tmp_path: Path) -> None:
    one = tmp_path / "one"
    shutil.copytree(cases_dir / "db-after", one / "db-after")
    out = evaluate_detect_cases(one, base)
    (row,) = out["results"]
    assert (out["cases"], out["errors"]) == (1, [])
    assert row["detected"] and -60 <= row["delay_s"] <= 180
    assert row["root_cause"] == "db" and row["right"] and (out["detected"], out["right_root"]) == (1.0, 1.0)
    # the block-3 fault lies before db-after's tolerance and is not labelled in its truth.json: false
    assert row["false_incidents"] == row["incidents_before"] >= 1
    assert out["false_per_hour"] == round(row["false_incidents"] / row["before_h"], 3)


def test_broken_bundles_are_reported_and_the_others_still_run(
    cases_dir: Path, base: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mixed"
    shutil.copytree(cases_dir / "db-seen", root / "db-seen")
    shutil.copytree(cases_dir / "db-seen", root / "bad-time")
    doc = json.loads((root / "bad-time" / "case.json").read_text())
    (root / "bad-time" / "case.json").write_text(json.dumps({**doc, "id": "bad-time", "asked_at": "yesterday"}))
    shutil.copytree(cases_dir / "db-seen", root / "no-truth")
    doc["id"] = "no-truth"
    (root / "no-truth" / "case.json").write_text(json.dumps(doc))
    (root / "no-truth" / "truth.json").unlink()
    monkeypatch.setattr(eval_cases, "explain_case", fake_explain([("db", "")]))
    out = evaluate_rca_cases(root, base)
    assert [r["id"] for r in out["results"]] == ["db-seen"] and out["ac1"] == 1.0
    problems = {e["case"]: e["problem"] for e in out["errors"]}
    assert set(problems) == {"bad-time", "no-truth"}
    assert "asked_at 'yesterday' is not an ISO-8601 time" in problems["bad-time"]
    assert problems["no-truth"].endswith("truth.json is missing: the scorer needs the case's label")


def test_the_cli_exits_non_zero_naming_broken_bundles_and_empty_folders(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["--home", str(tmp_path / "h"), "eval", "rca", "cases", str(tmp_path / "empty")])
    assert res.exit_code == 1 and "holds no case bundles" in str(res.exception)
    bad = tmp_path / "bad" / "c1"
    bad.mkdir(parents=True)
    (bad / "case.json").write_text('{"format": "devmesh-case/2", "asked_at": "2024-05-01T10:00:00Z"}')
    res = runner.invoke(app, ["--home", str(tmp_path / "h"), "eval", "rca", "cases", str(bad.parent), "--json"])
    assert res.exit_code == 2
    out = json.loads(res.stdout)
    assert out["cases"] == 0 and out["errors"][0]["case"] == "c1"
    assert "format is 'devmesh-case/2'" in out["errors"][0]["problem"]


# -- the label is the scorer's alone ------------------------------------------------------------------


def fake_explain(ranking: list[tuple[str, str]], calls: list[str] | None = None) -> Any:
    """A stand-in for case_replay.explain_case: the ranking given, recording the case it was asked."""

    def explain(case: Case, settings: Settings, *, hindsight: bool, embedder: Any) -> CaseExplained:
        if calls is not None:
            calls.append(f"explain {case.id}")
        ranked = [Ranked(s, p, 0.5, "resource_saturation", True) for s, p in ranking]
        return CaseExplained(case.id, ranked, "ok", True, CaseIngest(case.id, None), 0.01)

    return explain


def test_truth_is_read_after_each_explanation_and_never_by_the_explaining_side(
    cases_dir: Path, base: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = eval_cases.load_truth

    def load_truth(root: Path) -> Any:
        calls.append(f"truth {load_case(root).id}")
        return real(root)

    monkeypatch.setattr(eval_cases, "load_truth", load_truth)
    monkeypatch.setattr(eval_cases, "explain_case", fake_explain([("web", ""), ("db", "")], calls))
    out = evaluate_rca_cases(cases_dir, base)
    assert calls == ["explain db-after", "truth db-after", "explain db-seen", "truth db-seen"]
    assert (out["ac1"], out["ac3"], out["avg5"]) == (0.0, 1.0, 0.8)
    # the explaining side imports nothing that reads a label
    tree = ast.parse(Path(case_replay.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not imported & {"load_truth", "Truth", "RootCause", "TRUTH_FILE", "eval_cases"}


def test_the_request_is_the_alert_or_the_minutes_before_asked_at(cases_dir: Path) -> None:
    case = load_case(cases_dir / "db-seen")
    assert request_body(case) == {
        "alert": {
            "status": "firing",
            "labels": {"service": "web"},
            "annotations": {},
            "startsAt": iso(fault_of(5)),
            "fingerprint": "",
        }
    }
    quiet = case.model_copy(update={"alert": None})
    assert request_body(quiet) == {"end_ns": case.asked_at_ns}


# -- scoring ------------------------------------------------------------------------------------------


def test_a_candidate_is_right_by_service_alias_or_host() -> None:
    node = CaseLabel.of(["postgresql", "postgres"], ["n3", "n3.lan", "10.0.0.13"], "disk_full")
    assert rank_in(node, [("nginx", ""), ("gunicorn", "n2"), ("Postgres", "")]) == 3
    assert rank_in(node, [("nginx", ""), ("app", "n3.lan")]) == 2  # the pod field carries the host
    assert rank_in(node, [("n3", "")]) == 1  # a host ranked as such
    assert rank_in(CaseLabel.of(["db"]), [("web", "n3"), ("cart", "")]) is None  # no host given: pods do not count
    assert kind_right("disk_full", "resource_saturation") and not kind_right("disk_full", "code_error")
    assert kind_right("disk_full", "disk_full")  # should the product name the kind itself
    assert kind_right("network_delay", "network_delay") and kind_right("made_up", "code_error") is None
    assert {"cpu_contention", "cpu_consumed", "network_delay", "return", "exception", "disk_full"} <= set(KIND_MAP)


def test_case_scores_give_ac_at_k_avg5_and_kind_accuracy_of_the_right_firsts() -> None:
    rows = [
        {"rank": 1, "kind_right": True},
        {"rank": 1, "kind_right": False},
        {"rank": 2, "kind_right": None},
        {"rank": 4, "kind_right": None},
        {"rank": None, "kind_right": None},
    ]
    s = case_scores(rows)
    assert (s["ac1"], s["ac3"], s["ac5"]) == (0.4, 0.6, 0.8)
    assert s["avg5"] == round((0.4 + 0.6 + 0.6 + 0.8 + 0.8) / 5, 4)
    assert (s["kind_accuracy"], s["kind_cases"]) == (0.5, 2)


def test_detection_of_one_case_judges_the_first_incident_and_counts_false_ones_before() -> None:
    t = T0 + 3600 * NS
    seen = [
        {"incident": "early", "at_ns": t - 1800 * NS, "opened": True},  # false
        {"incident": "other", "at_ns": t - 900 * NS, "opened": True},  # another labelled fault: not false
        {"incident": "pre", "at_ns": t - 30 * NS, "opened": False},  # an update inside the tolerance
        {"incident": "mine", "at_ns": t + 60 * NS, "opened": True},
    ]
    roots = {"early": "web", "other": "cart", "pre": "web", "mine": "db"}
    out = score_case_detection(CaseLabel.of(["db"]), t, seen, roots, other_faults_ns=[t - 960 * NS])
    assert (out["detected"], out["delay_s"], out["incident"], out["right"]) == (True, -30.0, "mine", True)
    assert (out["false_incidents"], out["false_incident_ids"], out["incidents_before"]) == (1, ["early"], 2)


# -- bundles from a Nezha-layout folder ---------------------------------------------------------------


def test_nezha_faults_become_bundles_with_the_label_in_truth_only(tmp_path: Path, base: Settings) -> None:
    spec = CaseSpec(system="trainticket", id_prefix="tt", modalities=("logs",))
    out = make_nezha_cases(sample_path() / "nezha", tmp_path / "cases", spec, base)
    (made,) = out["cases"]
    root = tmp_path / "cases" / "tt-2023-01-29-0949"
    assert made["id"] == "tt-2023-01-29-0949" and made["removed"] == ["metrics.otlp.jsonl.gz", "spans.otlp.jsonl.gz"]
    case = load_case(root)
    assert (case.system, case.alert, iso(case.asked_at_ns)) == ("trainticket", None, "2023-01-29T09:52:34Z")
    assert [p.name for p in case.telemetry.otlp] == ["logs.otlp.jsonl.gz"]
    truth = json.loads((root / "truth.json").read_text())
    assert truth["root_cause"] == {
        "service": "ts-verification-code-service",
        "aliases": ["ts-verification-code-service-7b6dc75c45-2z9p2"],
        "host": None,
    }
    assert (truth["fault_time"], truth["kind"], truth["other_faults"]) == ("2023-01-29T09:49:34Z", "return", [])
    assert "ts-verification-code-service" not in (root / "case.json").read_text()


def test_a_dependency_csv_is_read_as_declared_calls(tmp_path: Path) -> None:
    (tmp_path / "2022-08-22" / "metric").mkdir(parents=True)
    csv = "Source,Target,Weight\nfrontend,cartservice,1\ncartservice,redis,1\nfrontend,cartservice,2\n"
    (tmp_path / "2022-08-22" / "metric" / "dependency.csv").write_text(csv)
    topo = declared_calls(tmp_path)
    assert topo is not None and topo.services == ["cartservice", "frontend", "redis"]
    assert [(c.caller, c.callee) for c in topo.calls] == [("cartservice", "redis"), ("frontend", "cartservice")]
    assert declared_calls(tmp_path / "2022-08-22" / "metric") is None
