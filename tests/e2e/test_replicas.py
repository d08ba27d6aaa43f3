"""Two `devmesh serve` replicas, each with its own home, on the same servers: one FalkorDB (the session's), one
Qdrant (the REST fake over qdrant-client's local mode, tests/fakes/qdrant_rest.py) and one ClickHouse event store
over HTTP (the stand-in, tests/fakes/clickhouse_http.py), each fake in a process of its own. The bundled Nezha
sample imported once into those stores: both replicas page the same log lines; an incident one opens the other
lists and explains with the same causes, and its explanation keeps the root-cause edges the first wrote (issue
13: two installs with their own homes on one FalkorDB split the brain)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from core.timeutil import NS
from graph.server import connect_url
from ingest import nezha
from retrieval.embedders import Embedder
from samples import sample_path
from tests.cli import DEVMESH, env_of, serve
from tests.conftest import free_port
from tests.fakes.clickhouse_http import StandIn

pytest.importorskip("chdb", reason="chdb is not installed (pip install 'devmesh[clickhouse]')")
pytest.importorskip("clickhouse_connect", reason="clickhouse-connect is not installed")


def replica_env(settings: Settings, home: Path, events_url: str, qdrant_url: str) -> dict[str, str]:
    env = env_of(settings.model_copy(update={"home": home}), embedder="minilm")
    env.update({"DEVMESH_EVENTS_URL": events_url, "DEVMESH_QDRANT_URL": qdrant_url})
    env.update({"DEVMESH_RETAIN_LOGS": "none", "DEVMESH_RETAIN_SPANS": "none"})
    env["DEVMESH_RETAIN_METRICS"] = "none"
    return env


def start_qdrant(path: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tests.fakes.serve_fake", "qdrant", "--port", str(port), "--path", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/collections", timeout=2, trust_env=False)
            return proc
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "the Qdrant fake did not come up"
        time.sleep(0.2)


def root_cause_edges(settings: Settings, incident: str) -> list[str]:
    conn = connect_url(str(settings.falkordb_url), settings.graph_key)
    try:
        rows = conn.graph.query(
            "MATCH (:Incident {id: $id})-[:ROOT_CAUSE]->(s:Service) RETURN s.name ORDER BY s.name", {"id": incident}
        ).result_set
    finally:
        conn.close()
    return [r[0] for r in rows]


@pytest.mark.slow
def test_two_replicas_answer_as_one(settings: Settings, tmp_path: Path, minilm: Embedder) -> None:
    (fault,) = nezha.load_faults(nezha.plan(sample_path() / "nezha"))
    qdrant_port = free_port()
    qdrant = start_qdrant(tmp_path / "qdrant", qdrant_port)
    with contextlib.ExitStack() as stop, StandIn(str(tmp_path / "clickhouse"), lifetime=600) as clickhouse:
        stop.callback(qdrant.wait, timeout=60)
        stop.callback(qdrant.terminate)
        url = clickhouse.database("devmesh")
        qdrant_url = f"http://127.0.0.1:{qdrant_port}"
        env_a = replica_env(settings, tmp_path / "a", url, qdrant_url)
        env_b = replica_env(settings, tmp_path / "b", url, qdrant_url)
        # the bundled sample into the shared stores, by a CLI on A's home before any server runs
        imported = subprocess.run(
            [str(DEVMESH), "import", "nezha", str(sample_path() / "nezha"), "--json"],
            capture_output=True, env=env_a, timeout=600, check=False,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stderr.decode()[-3000:]
        port_a, port_b = free_port(), free_port()
        a = serve(env_a, port_a)
        stop.callback(a.wait, timeout=120)
        stop.callback(a.terminate)
        b = serve(env_b, port_b)
        stop.callback(b.wait, timeout=120)
        stop.callback(b.terminate)
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{port_a}", timeout=300, trust_env=False) as at_a,
            httpx.Client(base_url=f"http://127.0.0.1:{port_b}", timeout=300, trust_env=False) as at_b,
        ):
            window = {"service": fault.service, "since": str(fault.inject_ns), "until": str(fault.inject_ns + 300 * NS)}
            page_a = at_a.get("/query/logs", params={**window, "limit": "25"}).json()
            page_b = at_b.get("/query/logs", params={**window, "limit": "25"}).json()
            assert page_a["events"] and page_b == page_a

            body = {"service": fault.service, "start_ns": fault.inject_ns, "end_ns": fault.inject_ns + 300 * NS}
            r = at_a.post("/explain", json=body)
            assert r.status_code == 200, r.text
            incident = r.json()["incident"]["id"]
            first = r.json()["explanation"]
            causes = [(c["service"], c["confidence"]) for c in first["root_causes"]]
            assert causes, first
            edges = root_cause_edges(settings, incident)
            assert edges

            listed = at_b.get("/incidents").json()  # the incident A opened, as B lists and shows it
            assert incident in [i["id"] for i in listed]
            assert at_b.get(f"/incidents/{incident}").status_code == 200
            r = at_b.post("/explain", json={"incident_id": incident})  # B explains it again from the same evidence
            assert r.status_code == 200, r.text
            second = r.json()["explanation"]
            assert [(c["service"], c["confidence"]) for c in second["root_causes"]] == causes
            assert root_cause_edges(settings, incident) == edges  # the other replica kept the root-cause edges
