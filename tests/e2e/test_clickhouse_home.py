"""A home whose events are on ClickHouse (chDB standing in for the server, `DEVMESH_EVENTS_URL=chdb://...`)
answers as the DuckDB home does: the bundled Nezha sample imported into both, the same incident explained
(same ranked root causes) and the same log pages. Then the CLI on a chDB home: `devmesh ingest`, `info`,
`prune` and the refusal of `backup`, which names ClickHouse's BACKUP statement.

Skipped when chdb is not installed (the `clickhouse` extra)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.wiring import Services
from core.settings import Settings
from core.timeutil import NS, now_ns
from tests.cli import DEVMESH, env_of
from tests.conftest import ImportedSample, drop_graph, import_sample, open_test_services

pytest.importorskip("chdb", reason="chdb is not installed (pip install 'devmesh[clickhouse]')")


@pytest.fixture(scope="module")
def chdb_home(
    sample: ImportedSample, tmp_path_factory: pytest.TempPathFactory, falkordb_url: str
) -> Iterator[Settings]:
    """The same sample imported, the same way, into a home whose events are in a chDB folder."""
    from retrieval.embedders import HashingEmbedder

    home = tmp_path_factory.mktemp("chdb_home")
    settings = sample.settings.model_copy(
        update={
            "home": home / "home",
            "graph_name": sample.settings.graph_name + "_ch",
            "events_url": f"chdb://{home / 'events'}",
            # a TTL counts from the wall clock: the sample's 2023 lines would go at the next merge
            "retain_logs": "none",
            "retain_spans": "none",
            "retain_metrics": "none",
        }
    )
    svc = open_test_services(settings, HashingEmbedder(384))
    try:
        assert svc.events.stats()["where"] == str(home / "events")
        import_sample(svc)
    finally:
        svc.close()
    yield settings
    drop_graph(falkordb_url, settings.graph_name)


def app_client(settings: Settings, open_fn: Callable[[Settings], Services]) -> TestClient:
    return TestClient(create_app(settings.model_copy(update={"allowed_hosts": ["testserver"]}), open_fn=open_fn))


def answers(client: TestClient, sample: ImportedSample) -> dict[str, Any]:
    """What a user sees: the explanation of the sample's fault and two pages of its service's log lines."""
    start, end = sample.fault_ns, sample.fault_ns + 300 * NS
    r = client.post("/explain", json={"service": sample.fault_service, "start_ns": start, "end_ns": end})
    assert r.status_code == 200, r.text
    expl = r.json()["explanation"]
    args = {"service": sample.fault_service, "since": str(start), "until": str(end), "limit": "25"}
    first = client.get("/query/logs", params=args)
    assert first.status_code == 200, first.text
    page = first.json()
    second = client.get("/query/logs", params={**args, "cursor": page["next_cursor"]}).json()
    info = client.get("/info").json()
    return {
        "causes": [(c["service"], c["confidence"]) for c in expl["root_causes"]],
        "mode": expl["mode"],
        "pages": [[(e["event_id"], e["message"]) for e in p["events"]] for p in (page, second)],
        "rows": info["events"]["tables"]["logs"]["rows"],
        "templates": info["events"]["templates"]["rows"],
        "backend": info["backends"]["events"],
    }


def test_a_clickhouse_home_explains_and_pages_as_the_duckdb_home_does(
    sample: ImportedSample, copied: Settings, chdb_home: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    with app_client(copied, open_fn) as duck_client:
        duck = answers(duck_client, sample)
    with app_client(chdb_home, open_fn) as ch_client:
        ch = answers(ch_client, sample)
    assert duck["backend"] == "duckdb" and ch["backend"] == f"clickhouse:{chdb_home.events_url}"
    assert duck["causes"] and duck["causes"][0][0] == ch["causes"][0][0]  # the same top candidate
    assert ch["causes"] == duck["causes"]  # and the same ranking, confidences included
    assert ch["mode"] == duck["mode"] == "evidence-only"
    assert len(duck["pages"][0]) == 25 and duck["pages"][1]
    assert ch["pages"] == duck["pages"]  # the same lines, in the same order, over the cursor too
    assert (ch["rows"], ch["templates"]) == (duck["rows"], duck["templates"])


# -- the CLI on a chDB home ------------------------------------------------------------------------------


def run(settings: Settings, url: str, *args: str, expect: int = 0, stdin: bytes | None = None) -> Any:
    env = {**env_of(settings), "DEVMESH_EVENTS_URL": url}
    proc = subprocess.run(
        [str(DEVMESH), *args], input=stdin, capture_output=True, env=env, timeout=300, check=False,
        cwd=settings.home.parent,
    )  # fmt: skip
    assert proc.returncode == expect, (proc.returncode, proc.stdout.decode()[-2000:], proc.stderr.decode()[-3000:])
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc


def test_cli_ingests_prunes_and_refuses_a_file_backup_on_a_chdb_home(settings: Settings, tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'events'}"
    t0 = (now_ns() - 3600 * NS) // (60 * NS) * (60 * NS)  # recent (within the TTL), on a whole minute
    lines = [
        {"timestamp": t0 + i * NS, "message": f"job {i} failed: disk full", "service": "jobs", "level": "ERROR"}
        for i in range(200)
    ]
    body = "\n".join(json.dumps(x) for x in lines).encode()
    first = json.loads(run(settings, url, "ingest", "-", "--json", stdin=body).stdout)
    again = json.loads(run(settings, url, "ingest", "-", "--json", stdin=body).stdout)
    assert (first["stored"], first["duplicates"]) == (200, 0)
    assert (again["stored"], again["duplicates"]) == (0, 200)  # acknowledged once, stored once

    info = json.loads(run(settings, url, "info", "--json").stdout)
    assert info["backends"]["events"] == f"clickhouse:{url}"
    assert info["events"]["tables"]["logs"]["rows"] == 200
    assert info["footprint"]["events"]["logs"]["rows"] == 200
    assert not (settings.home / "events.duckdb").exists()  # nothing went to a DuckDB file

    pruned = json.loads(run(settings, url, "prune", "--logs", "60s", "--json").stdout)
    (action,) = pruned["actions"]  # newest line t0+199s, less 60s: t0+139s, down to a whole minute
    assert (action["kind"], action["reason"], action["deleted"]) == ("logs", "age", 120)
    assert pruned["after"]["rows"]["logs"] == 80
    assert pruned["horizon_ns"] == {"logs": t0 + 120 * NS}
    counted = json.loads(run(settings, url, "query", "sql", "SELECT sum(count) AS n FROM log_rollup", "--json").stdout)
    assert counted["rows"] == [[120]]

    refused = run(settings, url, "backup", str(tmp_path / "backup"), expect=1)
    message = refused.stderr.decode() + refused.stdout.decode()
    assert "BACKUP DATABASE" in message and "ClickHouse" in message
    assert not os.path.exists(tmp_path / "backup")  # no empty folder left behind
