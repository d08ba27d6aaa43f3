"""Running Cypher on a FalkorDB graph: one read and one write helper that map a lost connection to
EngineUnavailable, and batched UNWIND writes.

A read of a graph that does not exist yet (nothing was ever written) returns no rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import redis
from falkordb import Graph

from core.errors import EngineUnavailable

BATCH: Final = 5000


def write(graph: Graph, query: str, params: dict[str, Any] | None = None) -> Any:
    """Run a write query; EngineUnavailable when the server is gone."""
    try:
        return graph.query(query, params)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise EngineUnavailable(f"lost the connection to FalkorDB: {exc}") from exc


def read(graph: Graph, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
    """Rows of a read-only query; [] when the graph does not exist yet, EngineUnavailable when the
    server is gone."""
    try:
        return graph.ro_query(query, params).result_set  # type: ignore[no-any-return]
    except redis.ResponseError as exc:
        if "empty key" in str(exc):  # the graph does not exist yet: nothing in it
            return []
        raise
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise EngineUnavailable(f"lost the connection to FalkorDB: {exc}") from exc


def batches(rows: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    """`rows` in slices of at most `size`."""
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def unwind(graph: Graph, query: str, rows: Sequence[Any]) -> None:
    """Run `query` (which reads `$rows`) once per batch of rows."""
    for chunk in batches(rows):
        write(graph, query, {"rows": list(chunk)})
