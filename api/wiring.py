"""Wiring: build the engines and services from settings, once, at the start of a command or the server.

Nothing here holds logic; everything below takes these objects as explicit arguments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from agents.investigate import detection_context
from agents.llm_factory import make_llm
from agents.masking import Masker, MaskOptions
from agents.toolbox import Budget, Toolbox
from api.retention import policy_from_settings
from core.breaker import EngineHealth
from core.settings import Settings
from core.supervisor import Supervisor, Watch
from detect.incidents import IncidentBook
from detect.runner import DetectContext
from graph.lazy import open_lazy
from graph.server import EmbeddedFalkorDB
from graph.store import GraphStore
from graph.supervise import graph_health, graph_watch
from ingest.pipeline import Pipeline
from retrieval.embedder_factory import make_embedder
from retrieval.embedders import Embedder
from retrieval.events import EventStore
from retrieval.events.factory import open_event_store
from retrieval.vector_factory import open_vector_store
from retrieval.vectors import VectorStore

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The opened engines. Close with `close()` (or use as a context manager)."""

    settings: Settings
    events: EventStore
    graph: GraphStore | None = None
    vectors: VectorStore | None = None
    embedder: Embedder | None = None
    graph_url: str | None = None
    """The FalkorDB server's URL (the detection lease lives there too); None without a graph."""
    engines: dict[str, EngineHealth] = field(default_factory=dict)
    """The health of each engine that can go away and come back (graph, a Qdrant server, the LLM)."""
    watches: list[Watch] = field(default_factory=list)
    """What `api.supervision.supervise` watches (the graph; the rest it adds itself)."""
    supervisor: Supervisor | None = None
    _pipeline: Pipeline | None = None
    _llm: Any = None
    _closers: list[Any] = field(default_factory=list)
    _closed: bool = False

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = Pipeline(
                self.events,
                self.graph,
                self.vectors,
                self.embedder,
                max_message_chars=self.settings.max_message_chars,
            )
        return self._pipeline

    def detection(self, *, explain: bool = True) -> DetectContext:
        """What scheduled detection works with: the toolbox's stores, the agent team to explain."""
        return detection_context(self.toolbox(), explain=explain)

    @property
    def llm(self) -> Any:
        """The language-model client the settings name (built once), or None."""
        s = self.settings
        if self._llm is None and (s.ollama_host or s.llm_url):
            self._llm = make_llm(s)
            self._closers.append(self._llm.close)
        return self._llm

    def toolbox(self, *, modalities: tuple[str, ...] = ("logs", "traces", "metrics")) -> Toolbox:
        """What the agent team works with, built from these engines and the settings."""
        s = self.settings
        return Toolbox(
            events=self.events,
            graph=self.graph,
            vectors=self.vectors,
            embedder=self.embedder,
            book=IncidentBook(self.events, self.graph, self.vectors, self.embedder),
            llm=self.llm,
            masker=Masker(MaskOptions()) if s.mask_prompts else None,
            budget=Budget(seconds=s.investigation_budget_s),
            modalities=modalities,
        )

    def close(self) -> None:
        """Save the pipeline's state and close every engine; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._pipeline is not None:
            self._pipeline.save_state()
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # closing must go on for the other engines
                log.exception("error while closing an engine")
        self._closers.clear()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_services(settings: Settings, *, graph: bool = True, vectors: bool = True) -> Services:
    """Open the event store, and the graph and vector stores unless asked not to."""
    settings.home.mkdir(parents=True, exist_ok=True)
    retain = policy_from_settings(settings).retain_ns if settings.events_url else None
    events = open_event_store(settings.events_path, settings.events_url, retain_ns=retain, namespace=settings.namespace)
    svc = Services(settings=settings, events=events)
    svc._closers.append(events.close)
    try:
        if graph:
            url = settings.falkordb_url
            server = None
            if not url:
                server = EmbeddedFalkorDB(settings.falkordb_dir)
                url = server.start()
                if server.launched:  # started by this process: stop it (with a save) when done
                    svc._closers.append(server.stop)
            health = svc.engines["graph"] = graph_health(url=url)
            svc.graph_url = url
            conn = open_lazy(url, settings.graph_key, health)  # a remote graph may be down: waited for
            svc._closers.append(conn.close)
            svc.graph = GraphStore(conn.graph)
            svc.watches.append(graph_watch(health, conn, url, server=server))
        if vectors:
            svc.embedder = make_embedder(settings, settings.home / "models")
            if svc.embedder is not None:
                svc.vectors = open_vector_store(settings)
                svc._closers.append(svc.vectors.close)
                vector_health = getattr(svc.vectors, "health", None)  # a Qdrant server's (Edge is in-process)
                if isinstance(vector_health, EngineHealth):
                    svc.engines["vectors"] = vector_health
    except BaseException:
        svc.close()
        raise
    return svc
