"""The web console in a real browser: Debian's chromium driven by Playwright (explicit executable path, never a
downloaded browser) against `devmesh serve` on 127.0.0.1 holding the bundled Nezha sample, imported once for the
module with the real MiniLM embedder, and the small chain incident of `tests/chain_incident.py` (hours later,
its ranking has a propagation path), with an API key configured and both faults explained.

Skipped, saying why, when the `playwright` package or the chromium binary is missing. Screenshots go to
`$DEVMESH_SCREENSHOTS` when set, else to a pytest temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from core.timeutil import NS
from tests.chain_incident import ALERT, ingest_chain
from tests.cli import env_of, serve
from tests.conftest import drop_graph, free_port

CHROMIUM = Path(os.environ.get("DEVMESH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.is_file():
        return f"no chromium at {CHROMIUM} (apt-get install chromium, or set DEVMESH_CHROMIUM)"
    return None


@dataclass(frozen=True)
class Console:
    url: str
    key: str
    settings: Settings
    incident_id: str
    fault_service: str
    fault_ns: int
    chain_id: str = ""
    """The explained incident of `tests/chain_incident.py` (ranked db, path db -> api -> frontend)."""

    def api(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(
            method, self.url + path, headers={"Authorization": f"Bearer {self.key}"}, timeout=120, trust_env=False, **kw
        )
        assert r.status_code == 200, r.text
        return r.json()


def _import_sample(settings: Settings, embedder: Any) -> tuple[int, str]:
    from ingest import nezha
    from ingest.importers import import_nezha
    from samples import sample_path
    from tests.conftest import import_sample_runbooks, open_test_services

    svc = open_test_services(settings, embedder)
    try:
        import_nezha(svc.pipeline, sample_path() / "nezha")
        ingest_chain(svc.pipeline)
        import_sample_runbooks(svc)
    finally:
        svc.close()
    (fault,) = nezha.load_faults(nezha.plan(sample_path() / "nezha"))
    return fault.inject_ns, fault.service


def _start(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = env_of(settings, embedder="minilm")
    env["DEVMESH_MODEL_DIR"] = str(settings.model_dir)
    return serve(env, port)


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, falkordb_url: str, minilm_dir: Path, minilm: Any
) -> Iterator[Console]:
    """A live `devmesh serve` (keys configured) over the imported sample, its fault explained once."""
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    from api.keystore import KeyStore

    settings = Settings(
        home=tmp_path_factory.mktemp("console") / "home",
        model_dir=minilm_dir,
        falkordb_url=falkordb_url,
        graph_name=f"console_{uuid.uuid4().hex[:8]}",
        embedder="none",
        qdrant_url=None,
        ollama_host=None,
    )
    fault_ns, fault_service = _import_sample(settings, minilm)
    key, _ = KeyStore(settings.keys_path).create(["admin"], "browser tests")
    port = free_port()
    proc = _start(settings, port)
    try:
        c = Console(f"http://127.0.0.1:{port}", key, settings, "", fault_service, fault_ns)
        body = {"service": fault_service, "start_ns": fault_ns, "end_ns": fault_ns + 300 * NS}
        out = c.api("POST", "/explain", json=body)
        chain = c.api("POST", "/explain", json={"service": "frontend", "start_ns": ALERT, "end_ns": ALERT + 300 * NS})
        yield Console(c.url, key, settings, out["incident"]["id"], fault_service, fault_ns, chain["incident"]["id"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        drop_graph(falkordb_url, settings.graph_name)


@pytest.fixture(scope="module")
def browser(console: Console) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: $DEVMESH_SCREENSHOTS, else this test's temporary folder."""
    folder = Path(os.environ["DEVMESH_SCREENSHOTS"]) if os.environ.get("DEVMESH_SCREENSHOTS") else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
