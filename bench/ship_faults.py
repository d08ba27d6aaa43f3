"""The shipper's fault script: a recorded journal shipped while the API is killed and the shipper is killed.

`python -m bench.ship_faults JOURNAL [--lines N] [--exclude-identifier X]` prints one JSON document. It runs,
on loopback, in a fresh home (or with the engines `env` gives):

1. `devmesh serve`, an `ingest` key for the shipper and a `read` key for the count;
2. `devmesh ship journald` following a file that the script writes in three parts (the journal growing);
3. the API SIGKILLed once the shipper has had a fifth of the journal acknowledged, and restarted after
   the second part is written and the shipper has spooled a batch it could not send;
4. the shipper SIGKILLed while batches are spooled (mid-batch), the third part written, and the shipper
   started again with `--once`, which ends when everything read is acknowledged;
5. the stored lines read back (GET /query/logs) and compared with the journal after the filter, as a
   multiset of (time, host): `missing` and `extra` are the goal's two figures (both 0: equal, none twice).

Every wait is bounded. The journal may be gzip; it is written out plain (the shipper follows a plain file).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

CLI = [sys.executable, "-c", "from api.cli.main import main; main()"]
WAIT_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(what: str, ok: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Api:
    """`devmesh serve` on a fixed loopback port, killed and restarted on it."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env, self.log_path = dict(env), log_path
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port = self.url.rsplit(":", 1)[1]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*CLI, "serve", "--host", "127.0.0.1", "--port", port], env=self.env, stdout=log, stderr=log
            )
        wait_for("devmesh serve", self.up)

    def up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"devmesh serve exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
        try:
            return httpx.get(self.url + "/health", timeout=2, trust_env=False).status_code in (200, 503)
        except httpx.TransportError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)


def cursor_of(path: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
        return doc
    except (OSError, ValueError):
        return {}


def spooled(cursor_file: Path) -> int:
    folder = cursor_file.with_name(cursor_file.name + ".spool")
    return len(list(folder.glob("*.batch.json"))) if folder.exists() else 0


def stored_lines(url: str, key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000, "order": "asc"}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60, trust_env=False) as http:
        while True:
            body = http.get("/query/logs", params=params).raise_for_status().json()
            out += body["events"]
            if not body["next_cursor"]:
                return out
            params["cursor"] = body["next_cursor"]


def new_key(env: Mapping[str, str], scope: str) -> str:
    done = subprocess.run(
        [*CLI, "keys", "create", "--scope", scope, "--json"],
        env=dict(env),
        capture_output=True,
        timeout=120,
        check=True,
    )
    key: str = json.loads(done.stdout)["key"]
    return key


def run(
    lines: list[str], work: Path, env: Mapping[str, str], *, exclude_identifier: str = "", batch_size: int = 100
) -> dict[str, Any]:
    """The script (see the module doc) on `lines` (journald JSON); `env` holds DEVMESH_HOME and the engines."""
    t0 = time.monotonic()
    env = {**env, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    ingest_key, read_key = new_key(env, "ingest"), new_key(env, "read")
    journal, cursor_file = work / "journal.json", work / "state" / "cursor.json"
    journal.write_text("")
    api = Api(env, work / "serve.log")
    api.start()
    ship = [*CLI, "ship", "journald", "--server", api.url, "--cursor-file", str(cursor_file), "--file", str(journal)]
    ship += ["--batch-size", str(batch_size), "--flush-seconds", "0.2", "--json"]
    if exclude_identifier:
        ship += ["--exclude-identifier", exclude_identifier]
    ship_env = {**env, "DEVMESH_API_KEY": ingest_key}
    n = len(lines)
    parts = [lines[: n * 2 // 5], lines[n * 2 // 5 : n * 7 // 10], lines[n * 7 // 10 :]]
    kept = [x for x in lines if json.loads(x).get("SYSLOG_IDENTIFIER") != exclude_identifier or not exclude_identifier]
    with journal.open("a") as f:
        f.write("".join(x + "\n" for x in parts[0]))
    with (work / "ship1.log").open("ab") as log:
        shipper = subprocess.Popen(ship, env=ship_env, stdout=log, stderr=log)
    try:
        wait_for("a fifth acknowledged", lambda: cursor_of(cursor_file).get("acked", 0) >= len(kept) // 5)
        api.kill()  # the API dies mid-stream
        with journal.open("a") as f:
            f.write("".join(x + "\n" for x in parts[1]))
        wait_for("a batch spooled while the API is down", lambda: spooled(cursor_file) > 0)
        time.sleep(1.0)  # a few retries against the dead port
        api.start()
        acked_then = cursor_of(cursor_file).get("acked", 0)
        wait_for(
            "more acknowledged and a batch spooled",
            lambda: cursor_of(cursor_file).get("acked", 0) > acked_then and spooled(cursor_file) > 0,
        )
        shipper.kill()  # SIGKILL, batches read but not acknowledged
        shipper.wait(timeout=60)
        acked_at_kill, spooled_at_kill = cursor_of(cursor_file).get("acked", 0), spooled(cursor_file)
        with journal.open("a") as f:
            f.write("".join(x + "\n" for x in parts[2]))
        done = subprocess.run([*ship, "--once"], env=ship_env, capture_output=True, timeout=WAIT_S, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"shipper --once failed: {done.stderr.decode()[-2000:]}")
        last = json.loads(done.stdout)
        rows = stored_lines(api.url, read_key)
    finally:
        if shipper.poll() is None:
            shipper.kill()
        if api.proc is not None and api.proc.poll() is None:
            api.kill(signal.SIGTERM)
        _stop_falkordb(Path(env["DEVMESH_HOME"]))
    want = Counter(
        (int(json.loads(x)["__REALTIME_TIMESTAMP"]) * 1000, json.loads(x).get("_HOSTNAME", "")) for x in kept
    )
    got = Counter((r["ts_ns"], r["host"]) for r in rows)
    return {
        "journal_lines": n,
        "after_filters": len(kept),
        "stored": len(rows),
        "missing": sum((want - got).values()),
        "extra": sum((got - want).values()),
        "api_kills": 1,
        "shipper_kills": 1,
        "acked_at_shipper_kill": acked_at_kill,
        "spooled_at_shipper_kill": spooled_at_kill,
        "restart_run": {k: last[k] for k in ("read", "sent", "server", "retries")},
        "cursor_acked": cursor_of(cursor_file).get("acked"),
        "seconds": round(time.monotonic() - t0, 1),
    }


def _stop_falkordb(home: Path) -> None:
    """The embedded FalkorDB outlives a killed `devmesh serve` (by design); stop this home's one by its pid file."""
    pid_file = home / "falkordb" / "redis.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30  # it saves on the way out: wait before the home is deleted
        while time.monotonic() < deadline:
            os.kill(pid, 0)  # OSError once it is gone
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def read_journal(path: Path, limit: int | None) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        out = [line.rstrip("\n") for line in f if line.strip()]
    return out[:limit] if limit else out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("journal", type=Path, help="journalctl -o json lines (gzip or plain)")
    ap.add_argument("--lines", type=int, default=None, help="the first N lines only")
    ap.add_argument("--exclude-identifier", default="", help="a SYSLOG_IDENTIFIER the shipper leaves out")
    ap.add_argument("--batch-size", type=int, default=100)
    args = ap.parse_args()
    lines = read_journal(args.journal, args.lines)
    with tempfile.TemporaryDirectory(prefix="devmesh-ship-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEVMESH_")}
        env.update({"DEVMESH_HOME": str(work / "home"), "DEVMESH_EMBEDDER": "none", "DEVMESH_LOG_LEVEL": "WARNING"})
        result = run(lines, work, env, exclude_identifier=args.exclude_identifier, batch_size=args.batch_size)
    sys.stdout.write(json.dumps({"journal": str(args.journal), **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
