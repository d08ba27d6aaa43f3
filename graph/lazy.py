"""A graph connection that may start with its server down: the FalkorDB client is made on first use
(`falkordb.FalkorDB()` asks the server INFO as it is created, so a remote graph that is down at start would
stop `devmesh serve`), and every command goes through the engine's breaker. A server down at start is
the graph seen down: its supervision (`graph.supervise`) waits for it, then ensures the schema.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from falkordb import FalkorDB, Graph

from core.breaker import EngineHealth
from core.errors import EngineUnavailable
from core.redaction import redact_url
from graph.schema import ensure_schema

log = logging.getLogger(__name__)


class LazyClient:
    """The part of a FalkorDB client a `Graph` uses (`execute_command`, `connection`), made on first use."""

    def __init__(self, url: str, *, timeout_s: float) -> None:
        try:  # a URL that cannot be parsed is a setting to fix, said at start
            self._pool = redis.ConnectionPool.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=10, decode_responses=True
            )
        except ValueError as exc:
            raise EngineUnavailable(f"cannot use the FalkorDB URL {redact_url(url)}: {exc}") from exc
        self._db: FalkorDB | None = None
        self._lock = threading.Lock()

    def client(self) -> FalkorDB:
        """The FalkorDB client, made now if not yet (raises redis.ConnectionError while the server is down)."""
        with self._lock:
            if self._db is None:
                self._db = FalkorDB(connection_pool=self._pool)
            return self._db

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        return self.client().execute_command(*args, **kwargs)

    @property
    def connection(self) -> redis.Redis:
        return self.client().connection  # type: ignore[no-any-return]

    def close(self) -> None:
        self._pool.disconnect()


class LazyConnection:
    """A graph whose client is made on first use; `close()` drops the client's connections."""

    def __init__(self, client: LazyClient, graph: Graph) -> None:
        self.client = client
        self.graph = graph

    def close(self) -> None:
        self.client.close()


def open_lazy(url: str, graph_name: str, health: EngineHealth, *, timeout_s: float = 600.0) -> LazyConnection:
    """The graph at `url` with every command through `health`'s breaker; the schema ensured when the server
    answers, else the graph is left down (refused at once) for its supervisor to wait for. `timeout_s` bounds
    one reply (large batch writes)."""
    client = LazyClient(url, timeout_s=timeout_s)
    graph = Graph(client, graph_name)
    send = graph.execute_command
    graph.execute_command = lambda *args, **kw: health.call(send, *args, **kw)
    try:
        ensure_schema(graph)
    except (EngineUnavailable, redis.ConnectionError, redis.TimeoutError) as exc:
        health.mark_down(f"not reachable at start: {exc}")
        log.warning(
            "graph not reachable at start; waiting for it",
            extra={"url": redact_url(url), "error": str(exc)},
        )
    return LazyConnection(client, graph)
