"""Running `devmesh` as a user does, for the tests: a subprocess with its own home and the session's FalkorDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from core.settings import Settings

DEVMESH = Path(sys.executable).parent / "devmesh"


def env_of(settings: Settings, *, embedder: str = "none") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVMESH_") and k != "OLLAMA_HOST"}
    env.update(
        {
            "DEVMESH_MODEL_DIR": os.environ.get("DEVMESH_MODEL_DIR", str(settings.model_dir)),
            "DEVMESH_HOME": str(settings.home),
            "DEVMESH_FALKORDB_URL": str(settings.falkordb_url),
            "DEVMESH_GRAPH_NAME": settings.graph_name,
            "DEVMESH_EMBEDDER": embedder,
            "DEVMESH_LOG_LEVEL": "WARNING",
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
    )
    return env


def devmesh(
    settings: Settings, *args: str, stdin: bytes | None = None, embedder: str = "none", expect: int = 0
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        [str(DEVMESH), *args],
        input=stdin,
        capture_output=True,
        env=env_of(settings, embedder=embedder),
        cwd=settings.home.parent,
        timeout=300,
        check=False,
    )
    assert proc.returncode == expect, (proc.returncode, proc.stdout.decode()[-2000:], proc.stderr.decode()[-4000:])
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc


def out(proc: subprocess.CompletedProcess[bytes]) -> Any:
    return json.loads(proc.stdout)


def serve(env: dict[str, str], port: int, *, within_s: float = 180) -> subprocess.Popen[bytes]:
    """`devmesh serve` on 127.0.0.1:`port`, returned once /health answers (200, or 503 while degraded);
    killed, and the test failed, when it exits or does not answer within `within_s`."""
    proc = subprocess.Popen(
        [str(DEVMESH), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + within_s
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5, trust_env=False).status_code in (200, 503):
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(30)
            raise AssertionError("devmesh serve did not come up")
        time.sleep(0.3)
