"""The ClickHouse HTTP stand-in (tests/fakes/clickhouse_http.py) answers as ClickHouse's HTTP interface does, so
that the HTTP tests of the event store test clickhouse-connect's real requests: plain requests for the parts of
the protocol (ping, auth, errors and their headers, GET read-only, settings scoped to one request, compressed
bodies both ways, multipart forms), clickhouse-connect for the formats it reads and writes."""

from __future__ import annotations

import base64
import gzip
import json
import urllib.error
import urllib.request
from typing import Any

import pyarrow as pa
import pytest

from tests.fakes.clickhouse_http import StandIn

pytest.importorskip("chdb", reason="chdb is not installed (pip install 'devmesh[clickhouse]')")
clickhouse_connect = pytest.importorskip("clickhouse_connect", reason="clickhouse-connect is not installed")


def call(
    server: StandIn,
    body: bytes | None = None,
    *,
    path: str = "/",
    params: str = "",
    password: str | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    url = f"http://127.0.0.1:{server.port}{path}" + (f"?{params}" if params else "")
    request = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
    secret = StandIn.PASSWORD if password is None else password
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{StandIn.USER}:{secret}".encode()).decode())
    request.add_header("Content-Type", "text/plain")
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture
def client(clickhouse_http: StandIn) -> Any:
    clickhouse_http.database("standin")
    c = clickhouse_connect.get_client(
        host="127.0.0.1",
        port=clickhouse_http.port,
        username=StandIn.USER,
        password=StandIn.PASSWORD,
        database="standin",
        autogenerate_session_id=False,
    )
    yield c
    c.close()


def test_ping_auth_and_errors_as_the_server_gives_them(clickhouse_http: StandIn) -> None:
    assert call(clickhouse_http, path="/ping", password="")[::2] == (200, b"Ok.\n")  # no auth on /ping
    status, headers, body = call(clickhouse_http, b"SELECT 1", password="wrong")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (401, "516")
    assert body.startswith(b"Code: 516. DB::Exception: devmesh: Authentication failed") and b"wrong" not in body
    status, headers, body = call(clickhouse_http, b"SELEC 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    assert body.startswith(b"Code: 62. DB::Exception: Syntax error") and b"(SYNTAX_ERROR)" in body
    status, headers, _ = call(clickhouse_http, b"SELECT * FROM no_such_table")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "60")
    status, headers, body = call(clickhouse_http, params="query=SELECT%2040%2B2")
    assert (status, body, headers["X-ClickHouse-Format"]) == (200, b"42\n", "TabSeparated")
    assert json.loads(headers["X-ClickHouse-Summary"])["read_rows"] == "1" and headers["X-ClickHouse-Query-Id"]
    status, headers, _ = call(clickhouse_http, params="query=CREATE%20TABLE%20g%20(x%20Int8)%20ENGINE%3DMemory")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "164")  # GET implies readonly


def test_parameters_settings_and_compression(clickhouse_http: StandIn) -> None:
    status, _, body = call(clickhouse_http, b"SELECT {s:String}, {n:UInt8}", params="param_s=a%5Ctb&param_n=7")
    assert (status, body) == (200, b"a\\tb\t7\n")  # escaped text in, TabSeparated out
    _, _, body = call(clickhouse_http, b"SELECT getSetting('max_threads')", params="max_threads=3")
    assert body == b"3\n"
    _, _, body = call(clickhouse_http, b"SELECT getSetting('max_threads') = 3")
    assert body == b"0\n"  # a setting holds for its own request only
    status, headers, _ = call(clickhouse_http, b"SELECT 1", params="no_such_setting=1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "115")
    packed = gzip.compress(b"SELECT number FROM numbers(3) FORMAT JSONEachRow")
    status, headers, body = call(
        clickhouse_http,
        packed,
        params="enable_http_compression=1",
        headers={"Content-Encoding": "gzip", "Accept-Encoding": "gzip"},
    )
    assert (status, headers["Content-Encoding"], headers["X-ClickHouse-Format"]) == (200, "gzip", "JSONEachRow")
    assert [json.loads(x)["number"] for x in gzip.decompress(body).splitlines()] == [0, 1, 2]


def test_what_clickhouse_connect_reads_and_writes(client: Any) -> None:
    assert client.server_version and client.ping()
    client.command(
        "CREATE TABLE IF NOT EXISTS t (id UInt32, name LowCardinality(String), note String, up String"
        " MATERIALIZED upperUTF8(note)) ENGINE = MergeTree ORDER BY id"
        " SETTINGS non_replicated_deduplication_window = 10"
    )
    client.command("TRUNCATE TABLE t")
    client.insert("t", [[1, "a", "x\ty"], [2, "b", "é'"]], column_names=["id", "name", "note"])  # Native, lz4
    arrow = pa.table({"id": pa.array([3, 4], pa.uint32()), "name": ["c", "c"], "note": ["", "z"]})
    for _ in range(2):  # the same block with the same token: the engine keeps one
        client.insert_arrow("t", arrow, settings={"insert_deduplication_token": "feed01"})
    assert client.query("SELECT id, name, note, up FROM t ORDER BY id").result_rows == [
        (1, "a", "x\ty", "X\tY"),
        (2, "b", "é'", "É'"),
        (3, "c", "", ""),
        (4, "c", "z", "Z"),
    ]  # Native out, LowCardinality included
    table = client.query_arrow(
        "SELECT name, count() AS n FROM t WHERE id > {m:UInt32} GROUP BY name ORDER BY name", parameters={"m": 1}
    )
    assert table.to_pylist() == [{"name": "b", "n": 1}, {"name": "c", "n": 2}]
    ids = [f"id-{i:05d}" for i in range(4000)]  # long enough for clickhouse-connect's multipart form
    assert client.query("SELECT length({ids:Array(String)})", parameters={"ids": ids}).result_rows == [(4000,)]
    with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError) as e:
        client.command("SELECT nope FROM t")
    assert e.value.code == 47
