"""The ClickHouse HTTP stand-in (tests/fakes/clickhouse_http.py) for the event-store conformance suites: one
process per test session on a free loopback port, a database per store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.clickhouse_http import StandIn


@pytest.fixture(scope="session")
def clickhouse_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    """The stand-in, started once for the session and stopped at its end (it also stops itself after 30 min)."""
    pytest.importorskip("chdb", reason="chdb is not installed (pip install 'devmesh[clickhouse]')")
    pytest.importorskip("clickhouse_connect", reason="clickhouse-connect is not installed")
    with StandIn(str(tmp_path_factory.mktemp("clickhouse-http") / "data")) as stand_in:
        StandIn.current = stand_in
        yield stand_in
        StandIn.current = None
