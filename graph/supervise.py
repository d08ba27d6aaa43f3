"""The graph server under supervision: its health (what counts as a lost server), and the watch the
supervisor keeps on it: the embedded FalkorDB is restarted on its own data files when its process is gone;
a remote one (DEVMESH_FALKORDB_URL) is probed until it answers again. Clients reconnect by themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from core.breaker import CircuitBreaker, EngineHealth
from core.redaction import redact_url
from core.supervisor import Watch
from graph.lazy import LazyConnection
from graph.schema import ensure_schema
from graph.server import EmbeddedFalkorDB, GraphConnection

GRAPH_FAILURES: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
"""A lost or silent server (BusyLoadingError, while it reloads its files, is a ConnectionError)."""


def graph_health(*, cooldown_s: float = 2.0, url: str = "") -> EngineHealth:
    """The graph's health: one lost connection opens the breaker, a trial call every `cooldown_s`; `url` (its
    credentials redacted) is named in the refusals."""
    return EngineHealth(
        "graph",
        failures=GRAPH_FAILURES,
        breaker=CircuitBreaker(failure_threshold=1, cooldown_s=cooldown_s),
        where=(redact_url(url) or "") if url else "",
    )


def ping(url: str, *, timeout_s: float = 2.0) -> bool:
    """Whether the server at `url` answers PING within `timeout_s` (a fresh connection, not the breaker's)."""
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def graph_watch(
    health: EngineHealth, conn: GraphConnection | LazyConnection, url: str, *, server: EmbeddedFalkorDB | None
) -> Watch:
    """The supervisor's watch on the graph: restarts `server` when given (the embedded one), else probes
    `url`; once back, the schema's indexes are ensured first (a server restarted empty has none)."""
    back: list[Callable[[], object]] = [lambda: ensure_schema(conn.graph)]
    if server is not None:
        return Watch(health=health, probe=server.is_running, revive=server.start, on_back=back)
    return Watch(health=health, probe=lambda: ping(url), on_back=back)
