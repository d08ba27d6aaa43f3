"""The CLI while `devmesh serve` owns the home: every command goes through the server's API with the user's
key and prints what it prints on the home directly (checked against the same commands after the server
stopped); without the key a clear refusal; a serve.json left by a dead server is ignored (all on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from api.cli.serve_file import read, serve_path
from api.keystore import KeyStore
from core.settings import Settings
from tests.cli import DEVMESH, env_of, serve
from tests.conftest import free_port

T0 = 1_760_000_000  # 2025-10-09T08:53:20Z
WINDOW = ("--since", str(T0 - 60), "--until", str(T0 + 600))


def events() -> bytes:
    """JSON Lines: a checkout service that calls a payment service, which starts failing at T0 + 120 s."""
    lines = []
    for i in range(240):
        t = T0 + i
        lines.append({"timestamp": t, "service": "checkout", "level": "INFO", "message": f"order {i} placed"})
        if i >= 120:
            msg = f"payment {i} failed: connection refused to db-1:5432"
            lines.append({"timestamp": t, "service": "payment", "level": "ERROR", "message": msg, "host": "node-1"})
        else:
            lines.append({"timestamp": t, "service": "payment", "level": "INFO", "message": f"payment {i} ok"})
    return ("\n".join(json.dumps(e) for e in lines) + "\n").encode()


def journal() -> bytes:
    """`journalctl -o json` lines of a unit on node-1 (one priority each), and a line that is not JSON."""
    entries = [
        {
            "__CURSOR": f"s=1;i={i}",
            "__REALTIME_TIMESTAMP": str((T0 + i) * 1_000_000),
            "_HOSTNAME": "node-1",
            "_SYSTEMD_UNIT": "kubelet.service",
            "SYSLOG_IDENTIFIER": "kubelet",
            "PRIORITY": "3" if i % 3 else "6",
            "MESSAGE": f"Failed to pull image registry.local/shop/cart:{i}" if i % 3 else f"pod {i} started",
        }
        for i in range(30)
    ]
    return ("\n".join(json.dumps(e) for e in entries) + "\n{not json\n").encode()


def run(settings: Settings, *args: str, key: str | None, expect: int = 0) -> subprocess.CompletedProcess[bytes]:
    env = env_of(settings, embedder="minilm")
    if key is not None:
        env["DEVMESH_API_KEY"] = key
    proc = subprocess.run([str(DEVMESH), *args], capture_output=True, env=env, timeout=300, check=False)
    assert proc.returncode == expect, (proc.returncode, proc.stdout.decode()[-2000:], proc.stderr.decode()[-4000:])
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc


def js(proc: subprocess.CompletedProcess[bytes]) -> Any:
    return json.loads(proc.stdout)


def start_server(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = env_of(settings, embedder="minilm")
    return serve(env, port)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=120)


def reads(settings: Settings, key: str | None) -> dict[str, Any]:
    """What the read commands print (the parts that do not depend on the clock)."""
    search = js(run(settings, "search", "logs", "connection refused to the database", *WINDOW, "--json", key=key))
    info = js(run(settings, "info", "--json", key=key))
    sql = (
        "query",
        "sql",
        "SELECT service, level, count(*) AS n, make_timestamp(min(ts_ns) // 1000) AS first "
        "FROM logs GROUP BY ALL ORDER BY ALL",
    )
    return {
        "sql": js(run(settings, *sql, "--json", key=key)),
        "sql_table": run(settings, *sql, key=key).stdout.decode(),
        "sql_refused": " ".join(
            run(settings, "query", "sql", "DELETE FROM logs", key=key, expect=1).stderr.decode().split()
        ),
        "logs": js(
            run(settings, "query", "logs", *WINDOW, "--service", "payment", "--level", "ERROR", "--json", key=key)
        ),
        "page2": js(run(settings, "query", "logs", *WINDOW, "--oldest-first", "--limit", "7", "--json", key=key)),
        "search": [(h["template_id"], h["count"], h["examples"]) for h in search["hits"]],
        "incidents": js(run(settings, "incidents", "list", "--json", key=key)),
        "info": {  # the file's and the WAL's bytes change when the server closes the store (a checkpoint)
            "home": info["home"],
            "backends": info["backends"],
            "events": {k: v for k, v in info["events"].items() if not k.endswith("_bytes")},
        },
    }


def explained(settings: Settings, key: str | None, incident: str) -> dict[str, Any]:
    expl = js(run(settings, "explain", "--incident", incident, "--format", "json", key=key))
    return {k: expl[k] for k in ("incident_id", "status", "mode", "root_causes")}


@pytest.mark.slow
def test_the_cli_goes_through_a_running_server_and_prints_the_same(settings: Settings, tmp_path: Path) -> None:
    key, _ = KeyStore(settings.keys_path).create(["admin"], "me")
    data = tmp_path / "events.jsonl"
    data.write_bytes(events())
    journald = tmp_path / "journal.json"
    journald.write_bytes(journal())
    as_journald = ("ingest", "--format", "journald", str(journald), "--json")
    port = free_port()
    server = start_server(settings, port)
    try:
        url = f"http://127.0.0.1:{port}"
        assert read(settings.home) is not None and read(settings.home).url == url  # type: ignore[union-attr]
        first = js(run(settings, "ingest", str(data), "--json", key=key))
        assert (first["received"], first["stored"], first["duplicates"], first["rejected"]) == (480, 480, 0, 0)
        again_served = js(run(settings, "ingest", str(data), "--json", key=key))
        journald_first = js(run(settings, *as_journald, key=key, expect=2))
        journald_served = js(run(settings, *as_journald, key=key, expect=2))
        opened = js(
            run(settings, "explain", "--service", "payment", "--at", str(T0 + 120), "--format", "json", key=key)
        )
        incident = opened["incident_id"]
        served_expl = explained(settings, key, incident)
        served = reads(settings, key)  # after the second explanation, as the reads on the home below

        refused = run(settings, "query", "logs", "--json", key=None, expect=1)
        message = " ".join(refused.stderr.decode().split())
        assert url in message and "answered 401" in message and "DEVMESH_API_KEY" in message
        message = " ".join(run(settings, "backfill", "--json", key=key, expect=1).stderr.decode().split())
        assert url in message and "stop that server" in message, message  # no route (yet)
    finally:
        stop(server)
    assert not serve_path(settings.home).exists()  # removed on a clean exit

    again_direct = js(run(settings, "ingest", str(data), "--json", key=None))
    journald_direct = js(run(settings, *as_journald, key=None, expect=2))
    direct = reads(settings, None)
    direct_expl = explained(settings, None, incident)
    same = ("kind", "received", "stored", "duplicates", "rejected", "errors", "new_templates", "embedded")
    assert {k: again_served[k] for k in same} == {k: again_direct[k] for k in same}
    assert (again_direct["stored"], again_direct["duplicates"]) == (0, 480)
    assert (journald_first["stored"], journald_first["rejected"], journald_first["lines"]) == (30, 1, 31)
    lines_same = (*same, "source", "lines", "later")
    assert {k: journald_served[k] for k in lines_same} == {k: journald_direct[k] for k in lines_same}
    assert (journald_direct["stored"], journald_direct["duplicates"], journald_direct["rejected"]) == (0, 30, 1)
    assert journald_direct["errors"][0]["field"] == "line 31"
    assert "error (statement): only SELECT is allowed here" in served.pop("sql_refused")
    assert "error (statement): only SELECT is allowed here" in direct.pop("sql_refused")
    for name in served:
        assert served[name] == direct[name], name
    assert served["sql"]["columns"] == ["service", "level", "n", "first"]
    assert served["sql"]["rows"][0] == ["checkout", "INFO", 240, "2025-10-09 08:53:20"]
    assert [e["service"] for e in served["logs"]["events"]] == ["payment"] * 50
    assert [i["id"] for i in served["incidents"]] == [incident]
    assert served_expl == direct_expl and served_expl["incident_id"] == incident


def test_a_stale_serve_file_is_ignored(settings: Settings) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    nobody = f"http://127.0.0.1:{free_port()}"
    for pid in (gone.pid, os.getpid()):  # a dead server; a live process that does not answer /health
        settings.home.mkdir(parents=True, exist_ok=True)
        serve_path(settings.home).write_text(json.dumps({"url": nobody, "pid": pid}))
        page = js(run(settings, "query", "logs", "--json", key=None))
        assert page == {"events": [], "next_cursor": None}
