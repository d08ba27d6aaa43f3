"""`import api.cli` (what every `devmesh` command pays before it runs) loads no engine, agent, web framework
or data library: each command imports those in its body, so `devmesh --help` and `devmesh --server URL ...`
start without them (STYLE: nothing at import time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HEAVY = (
    # third-party libraries that take a noticeable time to import
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "yaml",
    "jinja2",
    "duckdb",
    "pyarrow",
    "numpy",
    "networkx",
    "ollama",
    "langgraph",
    "torch",
    "sentence_transformers",
    "qdrant_client",
    "qdrant_edge",
    "falkordb",
    "redis",
    "chdb",
    "clickhouse_connect",
    "mcp",
    # our packages that load them
    "agents",
    "detect",
    "graph",
    "retrieval",
    "ingest.pipeline",
    "api.port",
    "api.engine_port",
    "api.http_port",
    "api.http",
    "api.wiring",
    "api.measure.bench_explain",
    "api.measure.bench_chat",
    "api.render.terminal",
)

SNIPPET = f"""
import json, sys
import api.cli
print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))
"""


def test_importing_the_cli_loads_no_heavy_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SNIPPET], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
