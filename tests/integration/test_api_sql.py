"""GET /query/sql through `create_app` on the real event store: rows for a SELECT, every write, DDL, attach,
copy, pragma and file read refused with 400 naming `statement`, bad SQL 400 too, bounds as 422; and
`HttpPort.sql` over the same app answers what `EnginePort.sql` answers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.http_port import HttpPort
from api.port import MAX_SQL_CHARS, MAX_SQL_ROWS
from api.wiring import Services
from core.errors import InvalidStatement, ReadOnlyViolation
from core.settings import Settings

NS = 10**9
T = 1_760_000_000 * NS
REFUSED = [
    "DELETE FROM logs",
    "INSERT INTO logs (ts_ns, message) VALUES (1, 'x')",
    "UPDATE logs SET message = 'x'",
    "DROP TABLE logs",
    "CREATE TABLE stolen AS SELECT * FROM logs",
    "ALTER TABLE logs ADD COLUMN x INT",
    "ATTACH '/tmp/devmesh-other.db' AS other",
    "COPY logs TO '/tmp/devmesh-stolen.csv'",
    "PRAGMA enable_profiling",
    "SET enable_external_access = true",
    "SELECT 1; DROP TABLE logs",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM '/etc/passwd'",
    "INSTALL httpfs",
]
BAD = ["SELEC 1", "SELECT * FROM no_such_table", "   "]


@pytest.fixture
def client(settings: Settings, open_fn: Callable[[Settings], Services]) -> Iterator[TestClient]:
    with TestClient(create_app(settings, open_fn=open_fn), raise_server_exceptions=False) as c:
        events = [
            {"timestamp": (T + i * NS) // 1000, "message": f"job {i} done", "service": "jobs" if i % 2 else "web"}
            for i in range(6)
        ]
        assert c.post("/ingest/logs", json={"events": events}).status_code == 200
        yield c


def sql(client: TestClient, statement: str, **params: object) -> tuple[int, dict[str, object]]:
    r = client.get("/query/sql", params={"statement": statement, **params})
    return r.status_code, r.json()


def test_a_select_answers_columns_and_rows(client: TestClient) -> None:
    status, body = sql(client, "SELECT service, count(*) AS n FROM logs GROUP BY 1 ORDER BY 1")
    assert status == 200, body
    assert body == {"columns": ["service", "n"], "rows": [["jobs", 3], ["web", 3]]}
    status, body = sql(client, "SELECT message FROM logs ORDER BY ts_ns", limit=2)
    assert (status, body["rows"]) == (200, [["job 0 done"], ["job 1 done"]])
    status, body = sql(client, "SELECT TIMESTAMP '2025-10-09 08:53:20' AS t, 1.5::DECIMAL(4,2) AS d, [1, 2] AS l")
    assert (status, body["rows"]) == (200, [["2025-10-09 08:53:20", "1.50", [1, 2]]])


@pytest.mark.parametrize("statement", REFUSED)
def test_writes_ddl_attach_copy_pragma_and_files_are_refused_400(client: TestClient, statement: str) -> None:
    status, body = sql(client, statement)
    assert status == 400, body
    assert (body["error"], body["field"]) == ("ReadOnlyViolation", "statement")
    assert sql(client, "SELECT count(*) FROM logs")[1]["rows"] == [[6]]


@pytest.mark.parametrize("statement", BAD)
def test_sql_that_does_not_parse_or_fails_is_400_naming_the_statement(client: TestClient, statement: str) -> None:
    status, body = sql(client, statement)
    assert status == 400, body
    assert (body["error"], body["field"]) == ("InvalidStatement", "statement")


def test_bounds_are_in_the_schema(client: TestClient) -> None:
    assert sql(client, "SELECT 1", limit=MAX_SQL_ROWS + 1)[0] == 422
    assert sql(client, "SELECT 1 --" + "x" * MAX_SQL_CHARS)[0] == 422
    assert client.get("/query/sql").status_code == 422
    status, body = sql(client, "SELECT * FROM range(20000)", limit=MAX_SQL_ROWS)
    assert (status, len(body["rows"])) == (200, MAX_SQL_ROWS)  # type: ignore[arg-type]


def test_the_http_port_answers_what_the_route_does_and_raises_the_same_errors(client: TestClient) -> None:
    def through(request: httpx.Request) -> httpx.Response:
        r = client.request(request.method, request.url.raw_path.decode(), content=request.content)
        return httpx.Response(r.status_code, content=r.content, headers={"content-type": r.headers["content-type"]})

    with HttpPort("http://testserver", None, transport=httpx.MockTransport(through)) as port:
        assert port.sql("SELECT service, count(*) FROM logs GROUP BY 1 ORDER BY 1", limit=10) == (
            ["service", "count_star()"],
            [("jobs", 3), ("web", 3)],
        )
        with pytest.raises(ReadOnlyViolation) as refused:
            port.sql("DELETE FROM logs", limit=10)
        assert refused.value.field == "statement" and "only SELECT" in refused.value.message
        with pytest.raises(InvalidStatement) as bad:
            port.sql("SELEC 1", limit=10)
        assert bad.value.field == "statement"
