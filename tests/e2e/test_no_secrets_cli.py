"""`devmesh info` as a user runs it, with a known secret in every secret setting: none in its output.

Debug logging is on (`-v`), so every log line on stderr is searched too, on success and on failure
(a FalkorDB URL with a password that cannot be reached).
"""

from __future__ import annotations

import json
import subprocess

from core.settings import Settings
from tests.cli import DEVMESH, env_of
from tests.integration.test_no_secrets import (
    ALERTS,
    APP_TOKEN,
    BOT,
    FALKOR_PW,
    HOOK,
    LLM_KEY,
    LLM_PW,
    QDRANT_KEY,
    SIGNING,
    closed_port,
    secrets,
)


def run_info(settings: Settings, **env: str) -> subprocess.CompletedProcess[str]:
    port = closed_port()
    full = env_of(settings) | {
        "DEVMESH_LLM_URL": f"http://llm:{LLM_PW}@127.0.0.1:{port}/v1",
        "DEVMESH_LLM_API_KEY": LLM_KEY,
        "DEVMESH_QDRANT_API_KEY": QDRANT_KEY,
        "DEVMESH_SLACK_BOT_TOKEN": BOT,
        "DEVMESH_SLACK_SIGNING_SECRET": SIGNING,
        "DEVMESH_SLACK_APP_TOKEN": APP_TOKEN,
        "DEVMESH_ALERTS_TOKEN": ALERTS,
        "DEVMESH_CHAT_WEBHOOK_URL": f"http://127.0.0.1:{port}/hooks/{HOOK}",
    }
    return subprocess.run(
        [str(DEVMESH), "-v", "info", "--json"],
        capture_output=True,
        text=True,
        env=full | env,
        cwd=settings.home.parent,
        timeout=300,
        check=False,
    )


def test_devmesh_info_shows_no_secret(settings: Settings) -> None:
    ok = run_info(settings)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "at http://llm:***@127.0.0.1:" in json.loads(ok.stdout)["backends"]["llm"]
    failed = run_info(settings, DEVMESH_FALKORDB_URL=f"redis://devmesh:{FALKOR_PW}@127.0.0.1:{closed_port()}")
    assert failed.returncode == 1
    assert "redis://devmesh:***@127.0.0.1:" in failed.stdout + failed.stderr
    for proc in (ok, failed):
        for secret in secrets():
            assert secret not in proc.stdout + proc.stderr, secret
