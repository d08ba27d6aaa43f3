"""Two DevMesh installs, each with its own home, share one ClickHouse event store over HTTP: the HTTP stand-in
(tests/fakes/clickhouse_http.py, chDB behind ClickHouse's HTTP interface) in a process of its own, reached by
clickhouse-connect as a server would be. What one `devmesh` process ingests, another reads; two ingesting at
the same moment both land, and the same lines sent by the second are duplicates of the first's.

chDB alone cannot show this: it allows one process per folder. Skipped without the `clickhouse` extra."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from core.timeutil import NS, now_ns
from tests.cli import DEVMESH, env_of
from tests.fakes.clickhouse_http import StandIn

pytest.importorskip("chdb", reason="chdb is not installed (pip install 'devmesh[clickhouse]')")
pytest.importorskip("clickhouse_connect", reason="clickhouse-connect is not installed")


def lines(service: str, t0: int, n: int) -> bytes:
    return "\n".join(
        json.dumps({"timestamp": t0 + i * NS, "message": f"{service} job {i} failed", "service": service})
        for i in range(n)
    ).encode()


def start(home: Path, settings: Settings, url: str, *args: str, stdin: bytes | None = None) -> subprocess.Popen[bytes]:
    env = {**env_of(settings.model_copy(update={"home": home})), "DEVMESH_EVENTS_URL": url}
    env.update({"DEVMESH_RETAIN_LOGS": "none", "DEVMESH_RETAIN_SPANS": "none", "DEVMESH_RETAIN_METRICS": "none"})
    proc = subprocess.Popen(
        [str(DEVMESH), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        cwd=home.parent,
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(stdin or b"")
    proc.stdin.close()
    return proc


def finish(proc: subprocess.Popen[bytes]) -> Any:
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.wait(timeout=300) == 0, (out.decode()[-2000:], err.decode()[-3000:])
    assert b"Traceback" not in err, err.decode()
    return json.loads(out)


def run(home: Path, settings: Settings, url: str, *args: str, stdin: bytes | None = None) -> Any:
    return finish(start(home, settings, url, *args, stdin=stdin))


def test_two_installs_share_one_event_store_over_http(settings: Settings, tmp_path: Path) -> None:
    t0 = (now_ns() - 3600 * NS) // (60 * NS) * (60 * NS)
    home_a, home_b = tmp_path / "a" / "home", tmp_path / "b" / "home"
    home_a.parent.mkdir()
    home_b.parent.mkdir()
    with StandIn(str(tmp_path / "clickhouse"), lifetime=600) as server:
        url = server.database("devmesh")

        # A writes, B reads: B's home has never seen these lines
        first = run(home_a, settings, url, "ingest", "-", "--json", stdin=lines("jobs", t0, 120))
        assert (first["stored"], first["duplicates"]) == (120, 0)
        page = run(home_b, settings, url, "query", "logs", "--service", "jobs", "--since", str(t0), "--json")
        assert len(page["events"]) == 50 and page["next_cursor"]
        assert {e["message"] for e in page["events"]} <= {f"jobs job {i} failed" for i in range(120)}
        info = run(home_b, settings, url, "info", "--json")
        assert info["backends"]["events"] == f"clickhouse:clickhouse://devmesh:***@127.0.0.1:{server.port}/devmesh"
        assert StandIn.PASSWORD not in json.dumps(info)
        assert info["events"]["tables"]["logs"]["rows"] == 120

        # B sends A's lines again: the shared store already holds them
        again = run(home_b, settings, url, "ingest", "-", "--json", stdin=lines("jobs", t0, 120))
        assert (again["stored"], again["duplicates"]) == (0, 120)

        # both ingest at the same moment, different lines: both land, each read back by the other
        a = start(home_a, settings, url, "ingest", "-", "--json", stdin=lines("billing", t0, 300))
        b = start(home_b, settings, url, "ingest", "-", "--json", stdin=lines("search", t0, 200))
        assert (finish(a)["stored"], finish(b)["stored"]) == (300, 200)
        sql = "SELECT service, count() AS n FROM logs GROUP BY service ORDER BY service"
        by_a = run(home_a, settings, url, "query", "sql", sql, "--json")
        by_b = run(home_b, settings, url, "query", "sql", sql, "--json")
        assert by_a["rows"] == by_b["rows"] == [["billing", 300], ["jobs", 120], ["search", 200]]
    assert not (home_a / "events.duckdb").exists() and not (home_b / "events.duckdb").exists()
