"""Running `devmesh` as a user does, for the tests: a subprocess with its own home and the session's FalkorDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
