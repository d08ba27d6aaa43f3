"""Shared fixtures: one embedded FalkorDB server per session, per-test settings, services and embedders.

Every test gets its own DEVMESH_HOME (the DuckDB file, Qdrant Edge shards) and its own graph name on the
shared FalkorDB server, so tests share the server process, never state. The embedder is the dependency-free
HashingEmbedder unless a test is marked `minilm`, which gets the real all-MiniLM-L6-v2 (loaded once a session).
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from core.settings import Settings
from graph.server import EmbeddedFalkorDB

if TYPE_CHECKING:
    from api.wiring import Services
    from retrieval.embedders import Embedder


# -- engines shared by the session (process state only, no data shared between tests) ---------------


@pytest.fixture(scope="session")
def falkordb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One embedded FalkorDB server for the session (tests keep apart by graph name); stopped at the end."""
    server = EmbeddedFalkorDB(tmp_path_factory.mktemp("graph") / "falkordb")
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def minilm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session keeps the MiniLM ONNX export (settings.model_dir; DEVMESH_MODEL_DIR for the CLI)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def minilm(minilm_dir: Path) -> Embedder:
    """The real all-MiniLM-L6-v2 (ONNX export made once a session under minilm_dir)."""
    from retrieval.embedder_minilm import MiniLMEmbedder

    embedder = MiniLMEmbedder(cache_dir=minilm_dir)
    embedder.embed(["warm up"])  # export and load now, once
    return embedder


# -- per test --------------------------------------------------------------------------------------


def unique_graph_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"\W", "_", request.node.name)[:50] + "_" + uuid.uuid4().hex[:8]


@pytest.fixture
def settings(tmp_path: Path, falkordb_url: str, minilm_dir: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings of this test: its own home and graph on the session's FalkorDB (the graph is deleted after)."""
    s = Settings(
        home=tmp_path / "home",
        model_dir=minilm_dir,
        falkordb_url=falkordb_url,
        graph_name=unique_graph_name(request),
        embedder="none",
        qdrant_url=None,
        ollama_host=None,
        allowed_hosts=["testserver"],  # the Host FastAPI's TestClient sends (live servers use 127.0.0.1)
    )
    yield s
    drop_graph(falkordb_url, s.graph_name)


def drop_graph(url: str, name: str) -> None:
    from graph.server import connect_url

    conn = connect_url(url, name)
    try:
        if name in conn.db.list_graphs():
            conn.graph.delete()
    finally:
        conn.close()


@pytest.fixture
def embedder(request: pytest.FixtureRequest) -> Embedder:
    """HashingEmbedder, or the real MiniLM for tests marked `minilm`."""
    if request.node.get_closest_marker("minilm") is not None:
        return request.getfixturevalue("minilm")  # type: ignore[no-any-return]
    from retrieval.embedders import HashingEmbedder

    return HashingEmbedder(384)


def open_test_services(settings: Settings, embedder: Embedder | None) -> Services:
    """api.wiring.open_services with `embedder` (None: no vectors) in place of the one settings name."""
    from api.wiring import open_services
    from retrieval.vector_factory import open_vector_store

    svc = open_services(settings.model_copy(update={"embedder": "none"}), graph=True, vectors=False)
    if embedder is not None:
        try:
            svc.vectors = open_vector_store(settings)
        except BaseException:
            svc.close()
            raise
        svc._closers.append(svc.vectors.close)
        svc.embedder = embedder
    return svc


def import_sample_runbooks(svc: Services) -> None:
    """The bundled sample's runbooks into `svc`, linked to the services its graph knows."""
    from ingest.importers import import_runbooks
    from samples import sample_path

    assert svc.graph is not None
    import_runbooks(
        sample_path() / "runbooks",
        graph=svc.graph,
        vectors=svc.vectors,
        embedder=svc.embedder,
        known_services=svc.graph.services(),
    )


def import_sample(svc: Services) -> None:
    """The bundled Nezha sample, then its runbooks, into `svc`."""
    from ingest.importers import import_nezha
    from samples import sample_path

    import_nezha(svc.pipeline, sample_path() / "nezha")
    import_sample_runbooks(svc)


@pytest.fixture
def open_fn(embedder: Embedder) -> Callable[[Settings], Services]:
    """Opens services the way the tests want them (for create_app and restarts)."""
    return lambda s: open_test_services(s, embedder)


@pytest.fixture
def services(settings: Settings, open_fn: Callable[[Settings], Services]) -> Iterator[Services]:
    svc = open_fn(settings)
    yield svc
    svc.close()


# -- the bundled Nezha sample and runbooks, imported once per module; a private copy per test -------


@dataclass(frozen=True)
class ImportedSample:
    settings: Settings
    fault_ns: int
    fault_service: str


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, falkordb_url: str) -> Iterator[ImportedSample]:
    """The sample imported once for the module (services closed after, graph dropped at the end)."""
    from ingest import nezha
    from retrieval.embedders import HashingEmbedder
    from samples import sample_path

    settings = Settings(
        home=tmp_path_factory.mktemp("sample") / "home",
        model_dir=tmp_path_factory.mktemp("models"),
        falkordb_url=falkordb_url,
        graph_name=f"sample_{uuid.uuid4().hex[:8]}",
        embedder="none",
        qdrant_url=None,
        ollama_host=None,
    )
    svc = open_test_services(settings, HashingEmbedder(384))
    try:
        import_sample(svc)
    finally:
        svc.close()
    (fault,) = nezha.load_faults(nezha.plan(sample_path() / "nezha"))
    yield ImportedSample(settings, fault.inject_ns, fault.service)
    drop_graph(falkordb_url, settings.graph_name)


@pytest.fixture
def copied(sample: ImportedSample, settings: Settings) -> Settings:
    """A private copy of the imported sample under this test's settings (home copied, graph cloned)."""
    from graph.server import connect_url

    shutil.copytree(sample.settings.home, settings.home)
    conn = connect_url(str(settings.falkordb_url), sample.settings.graph_name)
    try:
        conn.graph.copy(settings.graph_name)
    finally:
        conn.close()
    return settings


# -- a real HTTP server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving an ASGI app on 127.0.0.1 in a thread; stops itself after `max_s` at the latest."""

    def __init__(self, app: Any, *, max_s: float = 240.0) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)
        self.watchdog = threading.Timer(max_s, self.stop_soon)
        self.watchdog.daemon = True

    def stop_soon(self) -> None:
        self.server.should_exit = True

    def __enter__(self) -> LiveServer:
        self.thread.start()
        self.watchdog.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop_soon()
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.watchdog.cancel()
        self.stop_soon()
        self.thread.join(timeout=60)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout=10)


@pytest.fixture
def serve() -> Iterator[Callable[[Any], LiveServer]]:
    """serve(app) -> a LiveServer for it, running until the end of the test."""
    servers: list[LiveServer] = []

    def start(app: Any) -> LiveServer:
        srv = LiveServer(app).__enter__()
        servers.append(srv)
        return srv

    yield start
    for srv in reversed(servers):
        srv.__exit__(None, None, None)


@pytest.fixture
def live_server(
    settings: Settings, open_fn: Callable[[Settings], Services], serve: Callable[[Any], LiveServer]
) -> LiveServer:
    """The DevMesh API on a free 127.0.0.1 port, with this test's settings and services."""
    from api.http.app import create_app

    return serve(create_app(settings, open_fn=open_fn))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test carries the marker of its tier (its folder): `-m unit`, `-m integration`, `-m e2e`."""
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))
