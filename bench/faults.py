"""The fault matrix: each engine killed during a sustained ingest with concurrent /search/logs and /explain,
against a live `devmesh serve` on loopback, and what came of it.

    python -m bench.faults --json [--seconds 60] [--engines graph,llm,vectors]

Per engine, on a fresh home: the load runs `seconds` (`bench.fault_load`); a third of the way in the engine
is killed (SIGKILL). The embedded FalkorDB is left to come back by itself (the server's supervisor restarts
it); the LLM (an Ollama-compatible fake in its own process) and the vector store (a Qdrant REST fake over
qdrant-client's local mode, in its own process: no Qdrant server binary can be installed here) are started
again two thirds of the way in, as an operator of those servers would. Then the load stops, the owed writes
are waited for (bounded), the server is stopped, and the stores are compared with the event store.

Figures: lines acknowledged, stored, missing, stored twice; answers of the ingest and the reads by status;
explanations labelled "topology unavailable"; seconds from the kill (or the engine's return) until /health
says the engine is up and nothing is owed, with no operator; graph and vectors consistent after repair.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.attack_server import Server, base_env, free_port
from bench.fault_load import Load, graph_consistency, stored_lines, vector_consistency
from core.settings import Settings
from graph.server import EmbeddedFalkorDB
from retrieval.events import EventStore

RECOVER_BOUND_S = 180.0
FAKE_START_S = 30.0


class FakeProcess:
    """A protocol fake (`tests.fakes.serve_fake`) in its own process on a fixed loopback port."""

    def __init__(self, kind: str, port: int, log: Path, *extra: str) -> None:
        self.kind, self.port, self.log, self.extra = kind, port, log, extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "tests.fakes.serve_fake", self.kind, "--port", str(self.port), *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + FAKE_START_S
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + ("/api/version" if self.kind == "ollama" else "/collections"), timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"the {self.kind} fake did not answer within {FAKE_START_S:.0f} s; see {self.log}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.proc = None


def health(url: str) -> dict[str, Any]:
    try:
        body: dict[str, Any] = httpx.get(f"{url}/health", timeout=10.0).json()
        return body
    except (httpx.HTTPError, ValueError):
        return {}


def wait_recovered(url: str, engine: str, since: float) -> dict[str, float | None]:
    """Seconds from `since` until /health has `engine` up (`up_s`) and, besides, nothing owed (`done_s`);
    None past the bound."""
    up: float | None = None
    while time.monotonic() - since < RECOVER_BOUND_S:
        h = health(url)
        if h.get("engines", {}).get(engine, {}).get("state") == "up":
            up = up if up is not None else round(time.monotonic() - since, 2)
            if not any(h.get("owed", {}).values()):
                return {"up_s": up, "done_s": round(time.monotonic() - since, 2)}
        time.sleep(0.1)
    return {"up_s": up, "done_s": None}


def wait_down(url: str, engine: str, since: float, bound_s: float = 30.0) -> float | None:
    """Seconds from `since` until /health no longer has `engine` up; None past the bound."""
    while time.monotonic() - since < bound_s:
        if health(url).get("engines", {}).get(engine, {}).get("state") not in (None, "up"):
            return round(time.monotonic() - since, 2)
        time.sleep(0.05)
    return None


def embedded_pid(home: Path) -> int:
    state = json.loads((home / "falkordb" / "server.json").read_text())
    return int(state["pid"])


def run_engine(engine: str, seconds: float, work: Path) -> dict[str, Any]:
    home = work / engine / "home"
    home.mkdir(parents=True)
    extra = {"DEVMESH_RATE_INGEST_PER_MIN": "0", "DEVMESH_RATE_EXPLAIN_PER_MIN": "0", "DEVMESH_EMBEDDER": "minilm"}
    fake: FakeProcess | None = None
    if engine == "llm":
        fake = FakeProcess("ollama", free_port(), work / engine / "fake.log")
        extra.update({"OLLAMA_HOST": fake.url, "DEVMESH_LLM_MODEL": "llama3.1:8b"})
    elif engine == "vectors":
        fake = FakeProcess("qdrant", free_port(), work / engine / "fake.log", "--path", str(work / engine / "qdrant"))
        extra["DEVMESH_QDRANT_URL"] = fake.url
    if fake is not None:
        fake.start()
    server = Server(base_env(home, extra), work / engine / "serve.log")
    server.start()
    load = Load(server.url)
    result: dict[str, Any] = {"engine": engine, "seconds": seconds}
    try:
        load.start()
        began = time.monotonic()
        time.sleep(seconds / 3)
        killed_at = time.monotonic()
        if engine == "graph":
            os.kill(embedded_pid(home), signal.SIGKILL)
        else:
            assert fake is not None
            fake.kill()
        seen_down = wait_down(server.url, engine, killed_at)
        back_at = killed_at
        if fake is not None:  # an outside server: down for a third of the run, then started again
            time.sleep(seconds / 3)
            result["owed_before_return"] = health(server.url).get("owed")
            fake.start()
            back_at = time.monotonic()
        recovered = wait_recovered(server.url, engine, back_at)
        time.sleep(max(0.0, began + seconds - time.monotonic()))
        load.stop()
        settled = wait_recovered(server.url, engine, time.monotonic())
        h = health(server.url)
        result.update(
            seen_down_s=seen_down,
            recover_s=recovered,
            recover_from="kill (restarted by the supervisor)" if engine == "graph" else "engine started again",
            settle_after_load_s=settled,
            health_after=h.get("engines", {}).get(engine),
            owed_after=h.get("owed"),
        )
    finally:
        load.stop()
        server.stop()
    t = load.tally
    settings = Settings(home=home, qdrant_url=fake.url if engine == "vectors" and fake else None)
    events = EventStore(settings.events_path)
    try:
        result["lines"] = stored_lines(events, t.acked)
        result["graph"] = graph_consistency(settings, events)
        result["vectors"] = vector_consistency(settings, events)
    finally:
        events.close()
        if fake is not None:
            fake.kill()
    stop_embedded(settings)
    ms = sorted(t.read_ms) or [0.0]
    result.update(
        ingest={
            "batches": t.sent_batches,
            "answers": dict(t.statuses),
            "retries": t.retries,
            "batches_never_acknowledged": t.unacked_batches,
        },
        reads=dict(t.reads),
        explanations=dict(t.explain_notes),
        read_ms={"p50": round(ms[len(ms) // 2], 1), "p95": round(ms[int(len(ms) * 0.95)], 1), "max": round(ms[-1], 1)},
    )
    return result


def stop_embedded(settings: Settings) -> None:
    """The embedded FalkorDB a check started (the server stops the one it started itself)."""
    EmbeddedFalkorDB(settings.falkordb_dir).stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="load per engine (the issue asks 120)")
    parser.add_argument("--engines", default="graph,llm,vectors")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output there is)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="devmesh-faults-") as tmp:
        results = [run_engine(e.strip(), args.seconds, Path(tmp)) for e in args.engines.split(",") if e.strip()]
    print(json.dumps({"benchmark": "faults", "seconds_per_engine": args.seconds, "results": results}, indent=2))


if __name__ == "__main__":
    main()
