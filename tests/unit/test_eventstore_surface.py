"""The ClickHouse event store answers every call the DuckDB one does, with the same parameters.

`retrieval.events.factory` hands the ClickHouse store to callers typed as the DuckDB `EventStore` (a cast:
moving every caller's hints to a Protocol would touch some thirty modules), so this is what keeps that cast
honest: a method added to one store and not the other fails here, not in a user's first call. The behaviour
behind the calls is the conformance suite's (tests/integration/test_eventstore*.py)."""

from __future__ import annotations

import inspect

from retrieval.events.clickhouse import ClickHouseEventStore
from retrieval.events.store import EventStore

ONLY_DUCKDB: set[str] = {"compact_in_place"}
"""Calls the ClickHouse store does not have (yet); their callers must check with hasattr."""


def public(cls: type) -> dict[str, object]:
    return {n: inspect.getattr_static(cls, n) for n in dir(cls) if not n.startswith("_")}


def params(fn: object) -> list[tuple[str, object, object]]:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def test_every_duckdb_call_exists_on_clickhouse_with_the_same_parameters() -> None:
    duck, ch = public(EventStore), public(ClickHouseEventStore)
    missing = set(duck) - set(ch) - ONLY_DUCKDB
    assert missing == set(), f"the ClickHouse store lacks {sorted(missing)}"
    assert set(duck) - set(ch) >= ONLY_DUCKDB, "a call listed as DuckDB-only exists on both now: unlist it"
    assert {"keyword_templates", "prune_before", "footprint", "snapshot_to"} <= set(ch)
    for name, attr in duck.items():
        if name in ONLY_DUCKDB:
            continue
        other = ch[name]
        assert type(attr) is type(other), f"{name}: {type(attr).__name__} vs {type(other).__name__}"
        if inspect.isfunction(attr):
            assert params(attr) == params(other), name
    assert (EventStore.atomic_batches, ClickHouseEventStore.atomic_batches) == (True, False)
