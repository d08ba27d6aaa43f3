"""`devmesh bench explain [DIR]`: POST /explain latency in evidence-only mode on an imported Nezha-layout
data set, and `devmesh demo` end to end.

A Nezha-layout folder (default: the bundled sample; or e.g. ../shared/datasets/nezha-trainticket) and the
bundled runbooks are imported into a temporary DEVMESH_HOME with the real wiring (embedded FalkorDB, Qdrant
Edge, DuckDB, the configured embedder; no Ollama). The real app then serves on 127.0.0.1 (uvicorn in a
thread, or FastAPI's TestClient with --client testclient) and `--runs` POST /explain calls are timed, each
for the alert time of one of the first `--faults` labelled faults (in turn) with the faulty service as the
alert's service. One call before the clock starts loads what a running server has loaded (its time is
reported as `cold_ms`). Per-stage medians come from the explanations' own timings and their recorded tool
calls. With --demo, `devmesh demo` is then run as a user runs it (a subprocess, a fresh home, and by default
a fresh model folder, so the MiniLM export is included).

One JSON object: runs, p50_ms, p95_ms, peak_rss_mb, per_stage_ms_p50, and the import and demo figures.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from api.http.app import create_app
from api.wiring import open_services
from core.errors import DatasetError, InvalidInput
from core.settings import Settings
from core.timeutil import NS
from graph.server import EmbeddedFalkorDB
from ingest import nezha
from ingest.importers import import_nezha, import_runbooks
from samples import sample_path


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`, rounded to 0.1."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 1)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float | None:
    """Current (VmRSS) or peak (VmHWM) resident memory of a process, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def falkordb_peak_mb(settings: Settings) -> float | None:
    try:
        pid = int(EmbeddedFalkorDB(settings.falkordb_dir).pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return rss_mb(pid, "VmHWM")


# -- import --------------------------------------------------------------------------------------------


def import_data(settings: Settings, root: Path) -> dict[str, Any]:
    """Import ROOT (Nezha layout) and the bundled runbooks into settings.home, as `devmesh import` does."""
    t0 = time.perf_counter()
    with open_services(settings) as svc:
        imported = import_nezha(svc.pipeline, root)
        books = import_runbooks(
            sample_path() / "runbooks",
            graph=svc.graph,
            vectors=svc.vectors,
            embedder=svc.embedder,
            known_services=svc.graph.services() if svc.graph else (),
        )
    return {
        "seconds": round(time.perf_counter() - t0, 2),
        "logs": imported.reports["logs"].stored,
        "spans": imported.reports["spans"].stored,
        "metrics": imported.reports["metrics"].stored,
        "templates": imported.reports["logs"].new_templates,
        "services": imported.services,
        "runbook_sections": books.sections,
    }


QUESTIONS = ("at", "end")
END_AFTER_S = 180


def fault_requests(root: Path, faults: int | None, question: str = "at") -> list[dict[str, Any]]:
    """One POST /explain body per labelled fault (the first `faults`): with `question` "at", its time and its
    service, as an alert names them; with "end", only an end `END_AFTER_S` after it ("what was going on up to
    now", asked three minutes in: ranked over several windows, `detect.rank.scales`)."""
    if question not in QUESTIONS:
        raise InvalidInput(f"question must be one of {', '.join(QUESTIONS)}", field="question")
    found = sorted(nezha.load_faults(nezha.plan(root)), key=lambda f: f.inject_ns)
    if not found:
        raise DatasetError(
            f"{root}: no labelled faults (a YYYY-MM-DD-fault_list.json) to take alert times from", field="DIR"
        )
    chosen = found[: faults or len(found)]
    if question == "end":
        return [{"end_ns": f.inject_ns + END_AFTER_S * NS} for f in chosen]
    return [{"at_ns": f.inject_ns, "service": f.service} for f in chosen]


# -- the app ---------------------------------------------------------------------------------------------


@contextmanager
def serving(settings: Settings, how: str) -> Iterator[Any]:
    """An HTTP client of the real app: uvicorn on 127.0.0.1 in a thread, or FastAPI's TestClient."""
    app = create_app(settings)
    if how == "testclient":
        from fastapi.testclient import TestClient

        with TestClient(app) as client:
            yield client
        return
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="bench-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=120)


def time_explains(client: Any, bodies: list[dict[str, Any]], runs: int) -> dict[str, Any]:
    def post(body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        t0 = time.perf_counter()
        r = client.post("/explain", json=body)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"POST /explain answered {r.status_code}: {r.text[:500]}")
        return ms, r.json()["explanation"]

    cold_ms, _ = post(bodies[0])
    rss_before = rss_mb()
    latencies: list[float] = []
    stages: dict[str, list[float]] = defaultdict(list)
    modes: dict[str, int] = defaultdict(int)
    statuses: dict[str, int] = defaultdict(int)
    for i in range(runs):
        ms, expl = post(bodies[i % len(bodies)])
        latencies.append(ms)
        modes[expl["mode"]] += 1
        statuses[expl["status"]] += 1
        for stage, value in expl["timings"].items():
            stages[stage].append(float(value))
        per_tool: dict[str, float] = defaultdict(float)
        for step in expl["run"]:
            per_tool[f"{step['agent']}:{step['tool']}"] += float(step["duration_ms"])
        for tool, value in per_tool.items():
            stages[tool].append(value)
    top_tools = sorted((k for k in stages if ":" in k), key=lambda k: -statistics.median(stages[k]))[:8]
    return {
        "runs": runs,
        "p50_ms": pct(latencies, 0.5),
        "p95_ms": pct(latencies, 0.95),
        "max_ms": round(max(latencies), 1),
        "cold_ms": round(cold_ms, 1),
        "modes": dict(modes),
        "statuses": dict(statuses),
        "per_stage_ms_p50": {
            k: round(statistics.median(stages[k]), 1)
            for k in [*(k for k in stages if ":" not in k), *top_tools]
            if stages[k]
        },
        "rss_before_runs_mb": rss_before,
        "rss_after_runs_mb": rss_mb(),
    }


# -- devmesh demo ------------------------------------------------------------------------------------------


def time_demo(fresh_models: bool, model_dir: Path | None) -> dict[str, Any]:
    """`devmesh demo --json` in a fresh home (and a fresh model folder unless told otherwise)."""
    exe = Path(sys.executable).parent / "devmesh"
    with tempfile.TemporaryDirectory(prefix="devmesh-demo-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEVMESH_") and k != "OLLAMA_HOST"}
        env.update({"DEVMESH_HOME": str(Path(tmp) / "home"), "DEVMESH_LOG_LEVEL": "WARNING", "NO_COLOR": "1"})
        if fresh_models:
            env["DEVMESH_MODEL_DIR"] = str(Path(tmp) / "models")
        elif model_dir is not None:
            env["DEVMESH_MODEL_DIR"] = str(model_dir)
        t0 = time.perf_counter()
        proc = subprocess.run([str(exe), "demo", "--json"], env=env, capture_output=True, timeout=600, check=False)
        seconds = time.perf_counter() - t0
    out: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "exit_code": proc.returncode,
        "fresh_model_dir": fresh_models,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    if proc.returncode != 0:
        out["stderr"] = proc.stderr.decode(errors="replace")[-2000:]
        return out
    expl = json.loads(proc.stdout).get("explanation") or {}
    out.update(
        {
            "mode": expl.get("mode"),
            "status": expl.get("status"),
            "root_cause": (expl.get("root_causes") or [{}])[0].get("service"),
            "explain_ms": expl.get("timings", {}).get("total"),
        }
    )
    return out


# -- the whole ----------------------------------------------------------------------------------------------


def run_explain_bench(
    root: Path,
    base: Settings,
    *,
    faults: int | None = None,
    runs: int = 20,
    embedder: str = "minilm",
    client: str = "uvicorn",
    demo: bool = True,
    fresh_demo_models: bool = True,
    question: str = "at",
) -> dict[str, Any]:
    """Import ROOT into a temporary home (`base` settings on the embedded engines, no Ollama), time `runs` POST
    /explain calls, and with `demo` time `devmesh demo`."""
    bodies = fault_requests(root, faults, question)
    with tempfile.TemporaryDirectory(prefix="devmesh-bench-explain-") as tmp:
        settings = base.model_copy(
            update={
                "home": Path(tmp) / "home",
                "falkordb_url": None,
                "qdrant_url": None,
                "ollama_host": None,
                "embedder": embedder,
                "graph_name": "devmesh",
            }
        )
        imported = import_data(settings, root)
        with serving(settings, client) as http:
            result = time_explains(http, bodies, runs)
            result["falkordb_peak_rss_mb"] = falkordb_peak_mb(settings)
    result = {
        "data": str(root),
        "faults": len(bodies),
        "question": question,
        "embedder": embedder,
        "client": client,
        **result,
        "peak_rss_mb": peak_rss_mb(),
        "import": imported,
    }
    if demo:
        result["demo"] = time_demo(fresh_demo_models, base.model_dir)
    return result
