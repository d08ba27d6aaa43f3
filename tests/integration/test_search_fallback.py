"""GET /search/logs degrades instead of failing: while the vector store is down (a Qdrant REST server killed and
started again on its folder) or the embedder cannot be reached, it answers keyword matches from the event store
(mode text_fallback, with a note), and semantic answers come back when the vector store does.

Real engines: DuckDB, the real MiniLM; the vector store is `tests/fakes/qdrant_rest.py` (qdrant-client's local
mode behind Qdrant's REST API: no Qdrant server binary can run here), reached by the real `ServerVectorStore`.
Every wait is bounded; none is a timing assertion.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from api.http.app import create_app
from api.wiring import Services
from core.settings import Settings
from core.timeutil import NS, iso
from retrieval.embedder_ollama import OllamaEmbedder
from retrieval.embedders import Embedder
from retrieval.events import EventStore
from retrieval.qdrant_server import ServerVectorStore
from retrieval.text_search import query_tokens
from retrieval.vector_factory import open_vector_store
from tests.conftest import free_port
from tests.fakes.qdrant_rest import QdrantRestServer

T = 1_700_000_000 * NS
BOUND_S = 60.0
LINES = [
    ("auth", "INFO", "user 17 logged in from 10.0.0.17"),
    ("auth", "INFO", "user 42 logged in from 10.0.0.42"),
    ("checkout", "ERROR", "Connection refused to db-primary:5432"),
    ("checkout", "ERROR", "Connection refused to db-primary:5433"),
    ("payment", "WARN", "payment declined for card ending 4242: insufficient funds"),
    ("payment", "WARN", "payment declined for card ending 1881: insufficient funds"),
    ("gateway", "ERROR", "upstream request timed out after 30 s"),
    ("gateway", "ERROR", "upstream request timed out after 31 s"),
]
EVENTS = [
    {"timestamp": iso(T + i * NS), "service": s, "level": lvl, "message": m} for i, (s, lvl, m) in enumerate(LINES)
]


class QdrantFake:
    """The Qdrant REST fake on a fixed loopback port, in a thread; stopped and started again on its folder."""

    def __init__(self, path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.path = path
        self.server: QdrantRestServer | None = None

    def start(self) -> None:
        self.server = QdrantRestServer(self.port, str(self.path))
        threading.Thread(target=self.server.serve_forever, name="qdrant-fake", daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server.client.close()  # local mode holds a lock on its folder
        self.server = None


@pytest.fixture
def qdrant(tmp_path: Path) -> Iterator[QdrantFake]:
    fake = QdrantFake(tmp_path / "qdrant")
    fake.start()
    yield fake
    if fake.server is not None:
        fake.stop()


def search(client: TestClient, q: str, **params: Any) -> dict[str, Any]:
    r = client.get("/search/logs", params={"q": q, **params})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {BOUND_S:.0f} s: {what}")
        time.sleep(0.2)


@pytest.mark.minilm
@pytest.mark.slow
def test_search_falls_back_to_keywords_while_the_vector_store_is_down(
    tmp_path: Path, qdrant: QdrantFake, minilm: Embedder
) -> None:
    settings = Settings(home=tmp_path / "home", embedder="none", qdrant_url=qdrant.url, allowed_hosts=["testserver"])

    def open_fn(s: Settings) -> Services:
        svc = Services(settings=s, events=EventStore(s.events_path))
        vectors = ServerVectorStore(QdrantClient(url=qdrant.url, timeout=5, check_compatibility=False))
        svc.vectors, svc.embedder = vectors, minilm
        svc.engines["vectors"] = vectors.health  # supervised: probed until it answers again
        svc._closers += [svc.events.close, vectors.close]
        return svc

    with TestClient(create_app(settings, open_fn=open_fn)) as client:
        assert client.post("/ingest/logs", json=EVENTS).json()["new_templates"] == 4
        semantic = search(client, "cannot connect to the database")
        assert (semantic["mode"], semantic.get("note")) == ("semantic", None)
        assert semantic["hits"][0]["text"] == "Connection refused to db-primary:<*>"

        qdrant.stop()
        down = search(client, "connection refused")
        assert down["mode"] == "text_fallback"
        assert down["note"].startswith("Semantic search is unavailable (the vector store: ")
        hit = down["hits"][0]
        assert (hit["text"], hit["score"], hit["count"], hit["level"]) == (
            "Connection refused to db-primary:<*>",
            1.0,
            2,
            "ERROR",
        )
        assert [e["message"] for e in hit["examples"]] == [
            "Connection refused to db-primary:5433",
            "Connection refused to db-primary:5432",
        ]
        assert [h["text"] for h in down["hits"]] == ["Connection refused to db-primary:<*>"]

        # A word only the lines hold (a variable of the template) finds it too; half the words: score 0.5,
        # ties to the newest line (payment's lines come after checkout's).
        assert [h["text"] for h in search(client, "db-primary 5433")["hits"]] == [
            "Connection refused to db-primary:<*>"
        ]
        mixed = search(client, "refused payment")["hits"]
        assert [(h["text"], h["score"]) for h in mixed] == [
            ("payment declined for card ending <*>: insufficient funds", 0.5),
            ("Connection refused to db-primary:<*>", 0.5),
        ]
        # Filters hold as in semantic mode; a limit bounds the hits.
        assert search(client, "connection refused", service="auth")["hits"] == []
        assert [h["text"] for h in search(client, "timed out", level="ERROR")["hits"]] == [
            "upstream request timed out after <*> s"
        ]
        assert len(search(client, "refused payment", limit=1)["hits"]) == 1

        qdrant.start()
        wait_for(lambda: search(client, "cannot connect to the database")["mode"] == "semantic", "semantic again")
        back = search(client, "cannot connect to the database")
        assert back.get("note") is None
        assert back["hits"][0]["text"] == "Connection refused to db-primary:<*>"


def test_search_falls_back_to_keywords_when_the_embedder_cannot_be_reached(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = Settings(home=tmp_path / "home", embedder="none", qdrant_url=None, allowed_hosts=["testserver"])

    def open_fn(s: Settings) -> Services:
        svc = Services(settings=s, events=EventStore(s.events_path))
        svc.vectors, svc.embedder = open_vector_store(s), OllamaEmbedder(dead, "all-minilm", timeout_s=5)
        svc._closers += [svc.events.close, svc.vectors.close]
        return svc

    with TestClient(create_app(settings, open_fn=open_fn)) as client:
        assert client.post("/ingest/logs", json=EVENTS).json()["stored"] == len(EVENTS)
        found = search(client, "Payment DECLINED")
        assert found["mode"] == "text_fallback"
        assert found["note"].startswith("Semantic search is unavailable (the embedder: ")
        assert [(h["text"], h["score"], h["count"]) for h in found["hits"]] == [
            ("payment declined for card ending <*>: insufficient funds", 1.0, 2)
        ]


def test_query_tokens() -> None:
    assert query_tokens("Connection REFUSED to the db-primary:5432!") == [
        "connection",
        "refused",
        "db",
        "primary",
        "5432",
    ]
    assert query_tokens("the") == ["the"]  # only common words: they count
    assert query_tokens("a b ! _") == []
    assert len(query_tokens(" ".join(f"w{i}" for i in range(20)))) == 8
