"""The `devmesh` command line, run as a user runs it: a subprocess of .venv/bin/devmesh.

Each test has its own DEVMESH_HOME and graph name on the session's FalkorDB server. Processes are few
(each pays the interpreter's start-up); the ones that import data sets or load MiniLM are marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from tests.cli import devmesh, out

REPO = Path(__file__).resolve().parents[2]
T_US = 1_760_000_000_000_000  # 2025-10-09T08:53:20Z in µs, journald's unit


@pytest.fixture(autouse=True)
def _model_dir(minilm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI keeps the exported MiniLM in DEVMESH_MODEL_DIR: the session's, never the user's cache."""
    monkeypatch.setenv("DEVMESH_MODEL_DIR", str(minilm_dir))


def journald(*messages: tuple[str, str, str], start: int = 0) -> bytes:
    """journalctl -o json lines: (identifier, priority, message) each, a second apart."""
    lines = [
        json.dumps(
            {
                "__REALTIME_TIMESTAMP": str(T_US + (start + i) * 1_000_000),
                "_HOSTNAME": "node-1",
                "SYSLOG_IDENTIFIER": ident,
                "PRIORITY": prio,
                "MESSAGE": msg,
            }
        )
        for i, (ident, prio, msg) in enumerate(messages)
    ]
    return ("\n".join(lines) + "\n").encode()


def test_help_lists_every_command(settings: Settings) -> None:
    text = devmesh(settings, "--help").stdout.decode()
    for command in ("serve", "demo", "info", "ingest", "backfill", "import", "query", "search", "bench", "eval"):
        assert f" {command} " in text, command
    assert "query" in devmesh(settings, "query", "--help").stdout.decode()


def test_a_usage_error_is_a_message_not_a_traceback(settings: Settings) -> None:
    usage = devmesh(settings, "no-such-command", expect=2)
    assert b"No such command" in usage.stderr


@pytest.mark.slow
def test_ingest_journald_from_a_file_and_stdin_then_query(settings: Settings) -> None:
    settings.home.mkdir(parents=True)
    log = settings.home.parent / "journal.json"
    log.write_bytes(
        journald(
            ("kubelet", "3", "Failed to pull image registry.local/shop/cart:1.25"),
            ("kubelet", "3", "Failed to pull image registry.local/shop/cart:7.2"),
            ("sshd", "6", "Accepted publickey for root from 10.0.0.9"),
        )
        + b"{not json\n"
    )
    report = out(devmesh(settings, "ingest", "--format", "journald", str(log), "--json", expect=2))
    assert {k: report[k] for k in ("received", "stored", "duplicates", "rejected", "new_templates")} == {
        "received": 4,
        "stored": 3,
        "duplicates": 0,
        "rejected": 1,
        "new_templates": 2,
    }
    assert report["errors"] == [
        {"index": 4, "field": "line 4", "problem": "not JSON: Expecting property name enclosed in double quotes"}
    ]

    piped = journald(("kubelet", "4", "Back-off restarting failed container"), start=10)
    report = out(devmesh(settings, "ingest", "-f", "journald", "-", "--json", stdin=piped))
    assert (report["stored"], report["rejected"]) == (1, 0)
    again = out(devmesh(settings, "ingest", "-f", "journald", "-", "--json", stdin=piped))
    assert (again["stored"], again["duplicates"]) == (0, 1)

    page = out(devmesh(settings, "query", "logs", "--service", "kubelet", "--oldest-first", "--json"))
    assert [(e["level"], e["message"], e["host"], e["source"]) for e in page["events"]] == [
        ("ERROR", "Failed to pull image registry.local/shop/cart:1.25", "node-1", "journald"),
        ("ERROR", "Failed to pull image registry.local/shop/cart:7.2", "node-1", "journald"),
        ("WARN", "Back-off restarting failed container", "node-1", "journald"),
    ]
    assert page["next_cursor"] is None
    two = out(devmesh(settings, "query", "logs", "--limit", "2", "--json"))
    rest = out(devmesh(settings, "query", "logs", "--limit", "2", "--cursor", two["next_cursor"], "--json"))
    assert len(two["events"]) == len(rest["events"]) == 2 and rest["next_cursor"] is None

    count = out(devmesh(settings, "query", "sql", "SELECT count(*) AS n FROM logs", "--json"))
    assert count == {"columns": ["n"], "rows": [[4]]}

    refused = devmesh(settings, "query", "sql", "DELETE FROM logs", expect=1)
    assert b"error (statement): only SELECT is allowed here" in refused.stderr
    devmesh(settings, "query", "sql", "SELECT 1; DROP TABLE logs", expect=1)
    assert out(devmesh(settings, "query", "sql", "SELECT count(*) FROM logs", "--json"))["rows"] == [[4]]

    bad_level = devmesh(settings, "query", "logs", "--level", "LOUD", expect=1)
    assert b"error (--level): unknown level 'LOUD'" in bad_level.stderr


def test_ingest_of_bad_input_says_why_and_exits_non_zero(settings: Settings) -> None:
    settings.home.mkdir(parents=True)
    garbage = settings.home.parent / "garbage.bin"
    garbage.write_bytes(b"\x00\xff\xfe binary \x89PNG")
    proc = devmesh(settings, "ingest", str(garbage), expect=1)
    assert proc.stderr.decode().startswith("error (FILE): not JSON or JSON Lines")

    proc = devmesh(settings, "ingest", str(settings.home.parent / "missing.json"), expect=1)
    assert b"error (FILE): no such file" in proc.stderr

    bad = settings.home.parent / "bad.jsonl"
    bad.write_text(
        json.dumps({"timestamp": "2025-10-09T00:00:00Z", "message": "good line"})
        + "\n{broken\n"
        + json.dumps({"timestamp": True, "message": "x"})
        + "\n"
    )
    proc = devmesh(settings, "ingest", str(bad), expect=2)
    err = proc.stderr.decode()
    assert "rejected line 2: not JSON" in err
    assert "rejected line 3.timestamp: must be an ISO-8601 string or an epoch number, not a boolean" in err
    assert "received 3, stored 1, duplicates 0, rejected 2" in proc.stdout.decode()

    only_bad = settings.home.parent / "only-bad.json"
    only_bad.write_text(json.dumps({"events": [{"message": "no time"}]}))
    report = out(devmesh(settings, "ingest", str(only_bad), "--json", expect=1))
    assert (report["stored"], report["rejected"]) == (0, 1)
    assert report["errors"] == [{"index": 0, "field": "events[0].timestamp", "problem": "required field is missing"}]
    assert out(devmesh(settings, "query", "sql", "SELECT message FROM logs", "--json"))["rows"] == [["good line"]]


@pytest.mark.slow
def test_import_nezha_and_runbooks(settings: Settings, minilm: Any) -> None:
    nezha = out(devmesh(settings, "import", "nezha", str(REPO / "samples" / "nezha"), "--json", embedder="minilm"))
    assert (nezha["files"], nezha["faults"], nezha["warnings"]) == (55, 1, [])
    assert {
        k: (nezha[k]["received"], nezha[k]["stored"], nezha[k]["duplicates"]) for k in ("logs", "spans", "metrics")
    } == {
        "logs": (8765, 8654, 111),
        "spans": (16818, 16618, 200),
        "metrics": (60196, 60196, 0),
    }
    assert nezha["calls"] == 54 and nezha["logs"]["embedded"] == nezha["logs"]["new_templates"] > 0

    books = out(
        devmesh(settings, "import", "runbooks", str(REPO / "samples" / "runbooks"), "--json", embedder="minilm")
    )
    assert books == {"runbooks": 6, "sections": 24, "embedded": 24, "linked_services": 0, "alerts": 6, "warnings": []}

    found = out(
        devmesh(settings, "search", "logs", "no instances available for a service", "--json", embedder="minilm")
    )
    assert found["hits"][0]["text"].endswith("No instances available for <*> with root cause")

    missing = devmesh(settings, "import", "nezha", str(settings.home.parent / "nowhere"), expect=1)
    assert b"error (DIR):" in missing.stderr


@pytest.mark.slow
def test_demo(settings: Settings, minilm: Any) -> None:
    summary = out(devmesh(settings, "demo", "--json", embedder="minilm"))
    # the import, the detection and the explanation each under its own key: none overwrites another
    assert set(summary) == {
        "home",
        "imported",
        "services",
        "calls",
        "templates",
        "top_error_templates",
        "detection",
        "explanation",
    }
    assert summary["home"] == str(settings.home / "demo")
    assert summary["imported"]["telemetry"]["logs"]["stored"] == 8654
    assert summary["imported"]["runbooks"]["runbooks"] == 6
    assert "ts-verification-code-service" in summary["services"]
    assert summary["templates"] == 247  # a count of templates, as the report prints it
    assert len(summary["calls"]) == 15 and summary["calls"][0]["calls"] >= summary["calls"][-1]["calls"]
    top = summary["top_error_templates"]
    assert 0 < len(top) <= 10 and all(t["level"] in ("WARN", "ERROR", "FATAL") for t in top)
    assert [t["count"] for t in top] == sorted((t["count"] for t in top), reverse=True)
    # the busiest warning of the sample: 244 lines of ts-order-service saying a seat query found no tickets
    assert (top[0]["count"], top[0]["services"]) == (244, ["ts-order-service"])
    assert "[getSoldTickets][Seat][Left ticket info is empty]" in top[0]["text"]
    # the sample's labelled fault (a `return` fault in ts-verification-code-service, 09:49:34) is detected by the
    # run at 09:51 (new errors in that service) and ranked first
    assert detected(summary) == [
        (1_674_985_860_000_000_000, "errors", "ts-verification-code-service", "ts-verification-code-service")
    ]
    assert summary["detection"]["incident"]["id"] == summary["explanation"]["incident_id"]
    expl = summary["explanation"]
    assert expl["root_causes"][0]["service"] == "ts-verification-code-service"
    assert expl["runbooks"] and all({"id", "title", "steps"} <= set(r) for r in expl["runbooks"])

    # a second run starts from an empty demo home and gives the same report
    again = out(devmesh(settings, "demo", "--json", embedder="minilm"))
    assert again["imported"]["telemetry"]["logs"]["stored"] == 8654
    assert detected(again) == detected(summary)
    assert again["explanation"]["summary"] == expl["summary"]
    assert causes(again["explanation"]) == causes(expl)
    assert [r["id"] for r in again["explanation"]["runbooks"]] == [r["id"] for r in expl["runbooks"]]


def detected(report: dict[str, Any]) -> list[tuple[int, str, str, str]]:
    return [
        (r["end_ns"], r["triggers"][0]["rule"], r["triggers"][0]["service"], r["root_cause"])
        for r in report["detection"]["detected"]
    ]


def causes(expl: dict[str, Any]) -> list[tuple[str, float]]:
    return [(c["service"], c["confidence"]) for c in expl["root_causes"]]


def test_demo_will_not_empty_a_folder_it_did_not_make(settings: Settings, tmp_path: Path) -> None:
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("keep me")
    refused = devmesh(settings, "demo", "--home", str(elsewhere), expect=1)
    assert b"error (home):" in refused.stderr
    assert (elsewhere / "notes.txt").read_text() == "keep me"
