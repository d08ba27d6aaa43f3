"""The ClickHouse event store's own promises, on chDB (ClickHouse in-process) and through clickhouse-connect
over HTTP (the stand-in of tests/fakes/clickhouse_http.py): read-only SQL in ClickHouse's dialect with the
same guard semantics as DuckDB's (one SELECT, nothing written, no files or network, bounded rows and time),
parameters that carry hostile text unchanged (bound by the server over HTTP), the `DEVMESH_EVENTS_URL` forms,
what the HTTP connection says when the server refuses or is gone, and the tables' partitioning, sort keys
and TTL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.errors import EngineUnavailable, InvalidInput, ReadOnlyViolation
from retrieval.events import LogQuery

pytest.importorskip("chdb", reason="chdb is not installed (pip install 'devmesh[clickhouse]')")

from retrieval.events.clickhouse import ClickHouseEventStore, connect  # noqa: E402
from retrieval.events.clickhouse.connection import HttpConnection, param_text  # noqa: E402
from tests.fakes.clickhouse_http import StandIn, url_for_path  # noqa: E402
from tests.integration.test_eventstore import LOGS, table  # noqa: E402


def url_of(kind: str, path: Path) -> str:
    """chDB in a folder, or a database of its own on the HTTP stand-in (clickhouse-connect, over 127.0.0.1)."""
    return url_for_path(path) if kind == "clickhouse-http" else f"chdb://{path}"


@pytest.fixture(params=["chdb", "clickhouse-http"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "clickhouse-http":
        request.getfixturevalue("clickhouse_http")
    return str(request.param)


@pytest.fixture
def ch(kind: str, tmp_path: Path):
    st = ClickHouseEventStore(connect(url_of(kind, tmp_path / "events.chdb")), sql_timeout_s=1)
    assert st.append_logs(table(LOGS)).inserted == 10
    yield st
    st.close()


def test_permitted_select(ch: ClickHouseEventStore) -> None:
    cols, rows = ch.sql(
        "SELECT service, count() AS n FROM logs WHERE level IN ('ERROR', 'FATAL') GROUP BY service ORDER BY n DESC"
    )
    assert cols == ["service", "n"]
    assert rows == [("ts-order-service", 2), ("ts-station-service", 1)]
    _, rows = ch.sql("WITH x AS (SELECT * FROM logs) SELECT message FROM x ORDER BY ts_ns", limit=3)
    assert [r[0] for r in rows] == [e["message"] for e in LOGS[:3]]
    assert ch.sql("SELECT count() FROM numbers(5)")[1] == [(5,)]
    assert ("logs",) in ch.sql("SELECT name FROM system.tables WHERE database = currentDatabase()")[1]
    assert len(ch.sql("SELECT number FROM numbers(100000)", limit=7)[1]) == 7  # rows are bounded


CH_REFUSED = [
    "INSERT INTO logs (ts_ns, message) VALUES (1, 'x')",
    "INSERT INTO logs (ts_ns, message) SELECT 1, 'x'",
    "ALTER TABLE logs UPDATE message = 'x' WHERE 1",
    "ALTER TABLE logs DELETE WHERE 1",
    "DELETE FROM logs WHERE 1",
    "CREATE TABLE t (x Int8) ENGINE = Memory",
    "DROP TABLE logs",
    "TRUNCATE TABLE logs",
    "ALTER TABLE logs ADD COLUMN x Int32",
    "RENAME TABLE logs TO logs2",
    "OPTIMIZE TABLE logs FINAL",
    "SET readonly = 0",
    "SYSTEM DROP DNS CACHE",
    "KILL QUERY WHERE 1",
    "INSERT INTO FUNCTION file('/tmp/devmesh-stolen.csv', 'CSV') SELECT * FROM logs",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')",
    "SELECT * FROM s3('http://127.0.0.1:9/devmesh-bucket/k.csv', 'CSV')",
    "SELECT * FROM remote('127.0.0.1:9', system.one)",
    "SELECT * FROM logs WHERE message IN (SELECT line FROM file('/etc/hostname', 'LineAsString'))",
    "SELECT (SELECT count() FROM file('/etc/hostname', 'LineAsString'))",
    "SELECT * FROM file('/etc/hostname', 'LineAsString') SETTINGS readonly = 0",
    "SELECT 1; DROP TABLE logs",
    "SELECT 1; SELECT 2",
]


@pytest.mark.parametrize("statement", CH_REFUSED)
def test_sql_refuses_anything_that_writes_or_reads_files(ch: ClickHouseEventStore, statement: str) -> None:
    with pytest.raises(ReadOnlyViolation) as e:
        ch.sql(statement)
    assert e.value.field == "statement"
    assert ch.sql("SELECT count() FROM logs")[1] == [(10,)]
    assert not Path("/tmp/devmesh-stolen.csv").exists()


def test_sql_errors_and_timeout_are_invalid_input(ch: ClickHouseEventStore) -> None:
    for bad in ("", "SELEC 1", "SELECT * FROM no_such_table", "SELECT * FROM logs FORMAT JSON"):
        with pytest.raises(InvalidInput) as e:
            ch.sql(bad)
        assert not isinstance(e.value, ReadOnlyViolation)
    with pytest.raises(InvalidInput, match="longer than"):
        ch.sql("SELECT count() FROM numbers(10000000000) WHERE sipHash64(number) = 0")
    assert ch.sql("SELECT 1 AS one")[1] == [(1,)]


HOSTILE = ["' OR 1=1 --", "a\\b", "tab\there", "line\nbreak", "back`tick", "{p0:String}", "日本\\'", "\x00\x01"]


@pytest.mark.parametrize("text", HOSTILE)
def test_parameters_carry_any_text_unchanged(ch: ClickHouseEventStore, text: str) -> None:
    ch.append_logs(table([dict(LOGS[0], message=f"x{text}y", service=text)]))
    (event,) = ch.query_logs(LogQuery(service=text)).events
    assert event["message"] == f"x{text}y"
    assert [e["message"] for e in ch.query_logs(LogQuery(contains=text)).events] == [f"x{text}y"]
    ch.kv.set(text, {"v": text})
    assert ch.kv.get(text) == {"v": text}
    assert ch.sql("SELECT count() FROM logs")[1] == [(11,)]


def test_param_text_is_clickhouse_escaped_text() -> None:
    assert param_text("a'b\\c\td\ne`") == "a\\'b\\\\c\\\td\\\ne\\`"
    assert param_text(["x'", "y"]) == "['x\\'','y']"
    assert param_text([1, 2]) == "[1,2]"
    assert param_text(True) == "1"
    with pytest.raises(InvalidInput):
        param_text(object())


def test_tables_are_partitioned_by_day_sorted_for_window_and_service(kind: str, tmp_path: Path) -> None:
    st = ClickHouseEventStore(connect(url_of(kind, tmp_path / "ttl.chdb")), ttl_days={"logs": 14, "spans": 7})
    _, rows = st._rows(
        "SELECT name, partition_key, sorting_key, engine_full FROM system.tables"
        " WHERE database = currentDatabase() AND name IN ('logs', 'spans', 'metrics') ORDER BY name"
    )
    got: dict[str, Any] = {r[0]: r[1:] for r in rows}
    assert got["logs"][0] == "toYYYYMMDD(fromUnixTimestamp64Nano(ts_ns))"
    assert got["logs"][1] == "service, ts_ns, event_id"
    assert "TTL toDateTime(intDiv(ts_ns, 1000000000)) + toIntervalDay(14)" in got["logs"][2]
    assert "toIntervalDay(7)" in got["spans"][2] and "TTL" not in got["metrics"][2]
    st.close()


def test_events_url_forms(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as e:
        connect("postgres://x")
    assert e.value.field == "events_url"
    conn = connect(f"chdb://{tmp_path / 'u'}")
    assert conn.where == str(tmp_path / "u")
    conn.close()


def test_http_connection_names_what_went_wrong(tmp_path: Path) -> None:
    """clickhouse-connect against a stand-in of its own: a percent-encoded password (space, slash, @, colon,
    percent) is decoded; wrong credentials, a missing database and a stopped server are EngineUnavailable naming
    the URL without its credentials; a refused statement reads as on chDB (`Code: N. DB::Exception: ...`)."""
    with StandIn(str(tmp_path / "data"), lifetime=300) as server:
        url = server.database("dm")
        conn = connect(url)
        assert isinstance(conn, HttpConnection)
        assert conn.where == f"clickhouse://127.0.0.1:{server.port}/dm"
        conn.close()
        with pytest.raises(EngineUnavailable, match="refused user 'devmesh': wrong user or password") as e:
            connect(server.url("dm", password="not-it"))
        assert "not-it" not in str(e.value) and StandIn.PASSWORD not in str(e.value)
        with pytest.raises(EngineUnavailable, match="has no database 'nodb'"):
            connect(server.url("nodb"))
        st = ClickHouseEventStore(connect(url))
        assert st.append_logs(table(LOGS)).inserted == 10
        with pytest.raises(InvalidInput, match=r"^query failed: Code: 47\. DB::Exception: .*nope"):
            st.sql("SELECT nope FROM logs")
    with pytest.raises(
        EngineUnavailable, match=f"event store at clickhouse://127.0.0.1:{server.port}/dm is unreachable"
    ):
        st.query_logs(LogQuery())
    st.close()
