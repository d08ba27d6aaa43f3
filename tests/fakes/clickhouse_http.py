"""ClickHouse's HTTP interface on 127.0.0.1, answered by chDB (ClickHouse in-process, same parser, engines and
formats) on a data folder. No ClickHouse server can run here (Debian's 18.16 is far too old), so the tests of
DevMesh's HTTP connection (`retrieval.events.clickhouse.connection.HttpConnection`, clickhouse-connect) run
against this process instead:

    python -m tests.fakes.clickhouse_http --port P --data DIR --user U --password W [--database D] [--lifetime S]

`--port 0` takes a free port; the first line on stdout names it (`listening on http://127.0.0.1:N`). It stops on
SIGTERM, after `--lifetime` seconds, or when the process that started it exits. `StandIn` starts one for tests.

What it speaks, as clickhouse-connect sends it:

- the query in the POST body, in the `query` URL parameter, or both (the parameter first, the body after it:
  an INSERT's data), or as a multipart/form-data field (clickhouse-connect's form encoding of long
  parameters); `param_<name>` query parameters for `{name:Type}` placeholders (escaped text, bound by the
  engine); `database`, `default_format`, `query_id`; every other URL parameter is a setting for that request
  only (applied with SET on the one chDB session and undone before a request that does not send it);
- any output format chDB writes (the query's FORMAT clause, else `default_format`, else TabSeparated: Native,
  RowBinaryWithNamesAndTypes, Arrow, JSON...); `INSERT INTO t [(cols)] [SETTINGS ...] FORMAT F` followed by
  data in any input format chDB reads (Native, Arrow, RowBinary, TabSeparated...), parsed by the engine as
  the table's columns; request bodies with Content-Encoding gzip, deflate, zstd, lz4 or br, chunked or not;
  responses compressed when `enable_http_compression=1` and Accept-Encoding allows it;
- headers X-ClickHouse-Query-Id, -Format, -Timezone, -Summary (JSON of read/written rows and bytes) and, on
  errors, -Exception-Code, with the body `Code: N. DB::Exception: ... (NAME) (version V)` and the status the
  server gives that code (400, 401, 403, 404, 500);
- GET /ping and GET / (`Ok.`); basic auth, X-ClickHouse-User/-Key headers or user/password parameters: a wrong
  user or password is `Code: 516` (AUTHENTICATION_FAILED) with HTTP 401; GET runs read-only statements only
  (164 READONLY otherwise), as on a server; `readonly=1` as a URL setting likewise.

What it is not: see docs/scaling.md ("What the HTTP stand-in does not cover"). In short, statements run one
at a time on one chDB session; sessions (`session_id`) are not kept apart; `client_protocol_version` is
ignored (clickhouse-connect then reads Native at protocol 0, as from a server behind a proxy that drops it);
ClickHouse's own compressed framing (`compress=1`/`decompress=1`), external data, progress headers, users,
grants, quotas and replication are absent.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zlib
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

# URL parameters that are not settings (the HTTP handler's own), and settings the stand-in reads itself.
_NOT_SETTINGS = {
    "query", "database", "default_format", "query_id", "user", "password", "quota_key", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "buffer_size", "wait_end_of_query",
    "client_protocol_version", "role", "stacktrace", "enable_http_compression", "readonly",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms",
}  # fmt: skip
_INSERT = re.compile(
    rb"^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+(?:SETTINGS\s+(?P<settings>.+?)\s+)?FORMAT\s+(?P<fmt>\w+)[ \t]*(?:\r?\n)?",
    re.IGNORECASE | re.DOTALL,
)
_TARGET = re.compile(r"^(?P<table>[^\s(]+)\s*(?:\((?P<cols>.*)\))?\s*$", re.DOTALL)
_FORMAT_AT_END = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_READ_ONLY = re.compile(r"^\s*(?:\(\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.IGNORECASE)
_CODE = re.compile(r"Code: (\d+)\.")
_NAME = re.compile(r"\(([A-Z_]+)\)\s*$")
# The status ClickHouse's HTTP handler gives an exception code (HTTPHandler's exceptionCodeToHTTPStatus, a subset).
_STATUS = {
    **dict.fromkeys((192, 193, 194, 195, 516), 401),
    **dict.fromkeys((164, 291, 497, 499), 403),
    **dict.fromkeys((60, 81, 46, 47, 73, 115), 404),
    **dict.fromkeys((6, 25, 26, 27, 32, 33, 34, 35, 36, 38, 41, 42, 43, 44, 53, 62, 70, 72, 117, 130, 190), 400),
    48: 501,
    202: 503,
}
_CONTENT_TYPE = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
}


class ClickHouseException(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _refusal(code: int, name: str, message: str) -> ClickHouseException:
    """An exception in the server's words: `Code: N. DB::Exception: message. (NAME)`."""
    return ClickHouseException(code, f"Code: {code}. DB::Exception: {message}. ({name})")


class Answer:
    def __init__(self, body: bytes, fmt: str, summary: dict[str, str]) -> None:
        self.body, self.fmt, self.summary = body, fmt, summary


def _exception(exc: BaseException) -> ClickHouseException:
    text = str(exc).strip() or type(exc).__name__
    m = _CODE.search(text)
    code = int(m.group(1)) if m else 1001
    if not text.startswith("Code: "):
        text = f"Code: {code}. DB::Exception: {text}. (STD_EXCEPTION)"
    return ClickHouseException(code, text)


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _unquote_ident(s: str) -> str:
    s = s.strip()
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] and s[0] in '`"' else s


class Engine:
    """One chDB session on the data folder; statements run one at a time (chDB's session is single-threaded)."""

    def __init__(self, data: str, database: str | None) -> None:
        from chdb import session as chdb_session  # the `clickhouse` extra; importing this module needs none

        os.makedirs(data, exist_ok=True)
        self._session = chdb_session.Session(data)
        self._lock = threading.Lock()
        self._scratch = tempfile.mkdtemp(prefix="ch-http-insert-")
        self._applied: dict[str, str] = {}  # the settings SET on the session now
        self._database = "default"
        if database:
            self._session.query(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        version, tz = self._session.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split()
        self.version, self.timezone = version, tz

    def close(self) -> None:
        with self._lock:
            self._session.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _run(self, sql: str, fmt: str = "TabSeparated", params: dict[str, str] | None = None) -> Any:
        try:
            return self._session.query(sql, fmt, params=params or None)
        except Exception as exc:  # noqa: BLE001 - chDB raises ChdbError/RuntimeError with ClickHouse's text
            with contextlib.suppress(Exception):  # after a query stopped mid-way chDB's next answer is empty: take it
                self._session.query("SELECT 1", "TabSeparated")
            raise _exception(exc) from None

    def _prepare(self, database: str, settings: dict[str, str]) -> None:
        if database != self._database:
            self._run(f"USE `{database.replace('`', '')}`")
            self._database = database
        for key in [k for k in self._applied if k not in settings]:
            self._run(f"SET `{key}` = DEFAULT")
            del self._applied[key]
        for key, value in settings.items():
            if self._applied.get(key) != value:
                if not re.fullmatch(r"\w+", key):
                    raise ClickHouseException(
                        115, f"Code: 115. DB::Exception: Unknown setting '{key}'. (UNKNOWN_SETTING)"
                    )
                self._run(f"SET `{key}` = {_quote(value)}")
                self._applied[key] = value

    def execute(
        self, query: bytes, data: bytes | None, *, database: str, settings: dict[str, str], params: dict[str, str],
        default_format: str, read_only: bool,
    ) -> Answer:  # fmt: skip
        insert = _INSERT.match(query) if data is not None or b"FORMAT" in query.upper() else None
        if insert is not None and data is None:  # the data follows the statement in the body
            data, query = query[insert.end() :], query[: insert.end()]
        text = query.decode("utf-8", errors="replace")
        if read_only and not _READ_ONLY.match(text):
            raise ClickHouseException(
                164,
                "Code: 164. DB::Exception: Cannot execute query in readonly mode. For queries over HTTP, method GET"
                " implies readonly. You should use method POST for modifying queries. (READONLY)",
            )
        start = time.perf_counter_ns()
        with self._lock:
            self._prepare(database, settings)
            if insert is not None:
                result = self._insert(insert, data or b"", params)
                fmt = ""
            else:
                m = _FORMAT_AT_END.search(text)
                fmt = m.group(1) if m else default_format
                result = self._run(text, fmt, params)
        body = b"" if result is None else result.bytes() or b""
        summary = {
            "read_rows": str(result.rows_read() if result is not None else 0),
            "read_bytes": str(result.bytes_read() if result is not None else 0),
            "written_rows": str(result.rows_written() if result is not None else 0),
            "written_bytes": str(result.bytes_written() if result is not None else 0),
            "total_rows_to_read": "0",
            "result_rows": "0",
            "result_bytes": str(len(body)),
            "elapsed_ns": str(time.perf_counter_ns() - start),
        }
        return Answer(body, fmt, summary)

    def _insert(self, m: re.Match[bytes], data: bytes, params: dict[str, str]) -> Any:
        """INSERT ... FORMAT F with data: the engine parses the data as the target's columns (file() with their
        structure), as a server parses an INSERT's body."""
        target = _TARGET.match(m.group("target").decode())
        if target is None:
            raise ClickHouseException(
                62, "Code: 62. DB::Exception: Syntax error: cannot read the INSERT target. (SYNTAX_ERROR)"
            )
        if not data:
            return None
        table, cols = target.group("table"), target.group("cols")
        described = self._run(f"DESCRIBE TABLE {table}", "TabSeparated").bytes().decode()
        types: dict[str, str] = {}
        for line in described.splitlines():
            name, type_, default_kind = (line.split("\t") + ["", ""])[:3]
            if default_kind not in ("MATERIALIZED", "ALIAS", "EPHEMERAL"):
                types[name.encode().decode("unicode_escape")] = type_
        names = [_unquote_ident(c) for c in cols.split(",")] if cols else list(types)
        unknown = [n for n in names if n not in types]
        if unknown:
            raise _refusal(16, "NO_SUCH_COLUMN_IN_TABLE", f"No such column {unknown[0]} in table {table}")
        structure = ", ".join(f"`{n}` {types[n]}" for n in names)
        path = os.path.join(self._scratch, f"{uuid.uuid4().hex}.data")
        with open(path, "wb") as f:
            f.write(data)
        column_list = ", ".join(f"`{n}`" for n in names)
        settings = f" SETTINGS {m.group('settings').decode()}" if m.group("settings") else ""
        fmt = m.group("fmt").decode()
        try:
            return self._run(
                f"INSERT INTO {table} ({column_list}){settings} SELECT * FROM file({_quote(path)}, {_quote(fmt)},"
                f" {_quote(structure)})",
                "TabSeparated",
                params,
            )
        finally:
            os.unlink(path)


class ClickHouseHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, engine: Engine, user: str, password: str) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.engine, self.user, self.password = engine, user, password


def _decode_body(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.decompress(body)
    if encoding == "br":
        import brotli

        return bytes(brotli.decompress(body))
    raise ClickHouseException(
        48, f"Code: 48. DB::Exception: Unknown HTTP content encoding {encoding!r}. (NOT_IMPLEMENTED)"
    )


def _encode_body(body: bytes, accept: str) -> tuple[bytes, str]:
    offered = {a.split(";")[0].strip().lower() for a in accept.split(",")}
    if "gzip" in offered:
        return gzip.compress(body, 3), "gzip"
    if "deflate" in offered:
        return zlib.compress(body, 3), "deflate"
    if "zstd" in offered:
        try:
            import zstandard
        except ImportError:
            pass
        else:
            return zstandard.ZstdCompressor().compress(body), "zstd"
    if "lz4" in offered:
        import lz4.frame

        return lz4.frame.compress(body), "lz4"
    return body, ""


class _Handler(BaseHTTPRequestHandler):
    server: ClickHouseHttpServer
    protocol_version = "HTTP/1.1"  # keep-alive, as clickhouse-connect's pool expects

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_HEAD(self) -> None:
        self._reply(200, b"", {})

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", "timeout=30")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, exc: ClickHouseException, query_id: str) -> None:
        text = f"{exc} (version {self.server.engine.version})\n".encode()
        headers = {
            "X-ClickHouse-Exception-Code": str(exc.code),
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Server-Display-Name": "devmesh-clickhouse-http-stand-in",
            "Content-Type": "text/plain; charset=UTF-8",
        }
        self._reply(_STATUS.get(exc.code, 500), text, headers)

    def _credentials(self, params: dict[str, str]) -> tuple[str, bool]:
        """The user the request names, and whether its password is right."""
        user, password = params.get("user"), params.get("password", "")
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except ValueError:
                return "", False
        elif self.headers.get("X-ClickHouse-User"):
            user, password = self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        user = user or "default"
        return user, (user, password) == (self.server.user, self.server.password)

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self._read_body() if method == "POST" else b""
        query_id = params.get("query_id") or str(uuid.uuid4())
        if url.path in ("/ping", "/replicas_status") or (url.path == "/" and method == "GET" and "query" not in params):
            self._reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        if url.path != "/":
            message = f"Code: 0. DB::Exception: There is no handle {url.path}. (UNKNOWN_HANDLER)"
            self._reply(404, (message + "\n").encode(), {"Content-Type": "text/plain; charset=UTF-8"})
            return
        try:
            user, authenticated = self._credentials(params)
            if not authenticated:
                raise ClickHouseException(
                    516,
                    f"Code: 516. DB::Exception: {user}: Authentication failed: password is incorrect, or there is"
                    " no user with such name. (AUTHENTICATION_FAILED)",
                )
            body = _decode_body(body, self.headers.get("Content-Encoding") or "")
            ctype = (self.headers.get("Content-Type") or "").lower()
            if ctype.startswith("multipart/form-data"):  # a urlencoded body is the query, as curl -d sends it
                params.update(self._form(body))
                body = b""
            query = params.get("query", "").encode()
            data: bytes | None = None
            if query and body:
                data = body  # INSERT ... FORMAT F in the parameter, its data in the body
                if not _INSERT.match(query):
                    query, data = query + b"\n" + body, None
            elif body:
                query = body
            if not query.strip():
                raise ClickHouseException(62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
            settings = {k: v for k, v in params.items() if k not in _NOT_SETTINGS and not k.startswith("param_")}
            answer = self.server.engine.execute(
                query,
                data,
                database=params.get("database") or "default",
                settings=settings,
                params={k[6:]: v for k, v in params.items() if k.startswith("param_")},
                default_format=params.get("default_format") or "TabSeparated",
                read_only=method == "GET" or params.get("readonly", "0") not in ("", "0"),
            )
        except ClickHouseException as exc:
            self._error(exc, query_id)
            return
        except Exception as exc:  # noqa: BLE001 - anything else is the server's own failure, still in its format
            self._error(_exception(exc), query_id)
            return
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.server.engine.timezone,
            "X-ClickHouse-Server-Display-Name": "devmesh-clickhouse-http-stand-in",
            "X-ClickHouse-Summary": json.dumps(answer.summary),
            "Content-Type": _CONTENT_TYPE.get(answer.fmt, "application/octet-stream")
            if answer.fmt
            else "text/plain; charset=UTF-8",
        }
        if answer.fmt:
            headers["X-ClickHouse-Format"] = answer.fmt
        out = answer.body
        if out and params.get("enable_http_compression") in ("1", "true"):
            out, encoding = _encode_body(out, self.headers.get("Accept-Encoding") or "")
            if encoding:
                headers["Content-Encoding"] = encoding
        self._reply(200, out, headers)

    def _form(self, body: bytes) -> dict[str, str]:
        header = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(header + body)
        fields: dict[str, str] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename():
                raise _refusal(48, "NOT_IMPLEMENTED", "external data is not supported by the stand-in")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload.decode()
        return fields


class StandIn:
    """The stand-in as a process of its own (`python -m tests.fakes.clickhouse_http`), for tests: started on a
    free loopback port, stopped by `stop()` or, at the latest, by itself after `lifetime` seconds."""

    USER = "devmesh"
    PASSWORD = "stand-in s3cret/@:%"  # characters a URL's userinfo must percent-encode
    current: StandIn | None = None
    """The one a session fixture started (tests/integration/conftest.py), for `url_for_path`."""

    def __init__(self, data: str, *, lifetime: float = 1800, start_timeout: float = 60) -> None:
        self.data, self.lifetime, self.start_timeout = data, lifetime, start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> StandIn:
        cmd = [sys.executable, "-m", "tests.fakes.clickhouse_http", "--port", "0", "--data", self.data]
        cmd += ["--user", self.USER, "--password", self.PASSWORD, "--lifetime", str(self.lifetime)]
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        os.makedirs(os.path.dirname(os.path.abspath(self.data)), exist_ok=True)
        with open(os.path.abspath(self.data) + ".log", "ab") as log:  # its stderr, beside the data, for a failed start
            self.proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=log, text=True)
        line: list[str] = []
        reader = threading.Thread(
            target=lambda: line.append(self.proc.stdout.readline() if self.proc and self.proc.stdout else ""),
            daemon=True,
        )
        reader.start()
        reader.join(self.start_timeout)
        m = re.search(r"127\.0\.0\.1:(\d+)", line[0] if line else "")
        if m is None:
            self.stop()
            raise RuntimeError(f"the ClickHouse HTTP stand-in did not start within {self.start_timeout} s")
        self.port = int(m.group(1))
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, database: str = "default", *, password: str | None = None) -> str:
        """A DEVMESH_EVENTS_URL for `database` (a wrong `password` to test refusals)."""
        secret = quote(self.PASSWORD if password is None else password, safe="")
        return f"clickhouse://{self.USER}:{secret}@127.0.0.1:{self.port}/{database}"

    def statement(self, sql: str) -> bytes:
        """One statement over plain HTTP (no clickhouse-connect), e.g. CREATE DATABASE before a client needs it."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/", data=sql.encode(), method="POST")
        token = base64.b64encode(f"{self.USER}:{self.PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
            return bytes(response.read())

    def database(self, name: str) -> str:
        """A database of that name (created when missing); its URL."""
        self.statement(f"CREATE DATABASE IF NOT EXISTS `{name}`")
        return self.url(name)


def url_for_path(path: str | os.PathLike[str]) -> str:
    """The URL of a database of its own on the running stand-in for a store at `path` (the same path: the same
    database, so a store opened again finds its data)."""
    if StandIn.current is None:
        raise RuntimeError("request the clickhouse_http fixture before opening a clickhouse-http store")
    return StandIn.current.database("t_" + hashlib.sha1(os.fspath(path).encode()).hexdigest()[:16])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ClickHouse's HTTP interface over chDB, on 127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0: a free port (printed on the first line)")
    parser.add_argument("--data", required=True, help="the chDB data folder")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    parser.add_argument("--database", default="", help="created at start, as the server image's CLICKHOUSE_DB")
    parser.add_argument(
        "--lifetime",
        type=float,
        default=0,
        help="seconds after which it stops itself (0: never); it also stops when the process that started it exits",
    )
    args = parser.parse_args(argv)
    parent = os.getppid()  # before the ready line: the parent may exit as soon as it has read it
    engine = Engine(args.data, args.database or None)
    server = ClickHouseHttpServer(args.port, engine, args.user, args.password)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        deadline = time.monotonic() + (args.lifetime or float("inf"))
        while not stop.wait(0.5) and time.monotonic() < deadline and os.getppid() == parent:
            pass  # stops on SIGTERM, after its lifetime, or when the process that started it is gone
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
        engine.close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
