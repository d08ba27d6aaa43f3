"""Two thin connections to ClickHouse that run the same SQL: a server through clickhouse-connect
(`clickhouse://` or `http(s)://` URLs), and chDB, ClickHouse in-process (`chdb://<path>`), which
stands in for a server where none can run, as qdrant-client's local mode does for Qdrant.

Every statement the store sends is a string with `{name:Type}` query parameters and a dict of
Python values. clickhouse-connect binds them server-side; chDB takes each value as the text the
server's HTTP interface would receive (`param_text`). Nothing from input is pasted into SQL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from core.errors import EngineUnavailable, InvalidInput

log = logging.getLogger(__name__)

Params = Mapping[str, Any]


class ClickHouseError(Exception):
    """A statement ClickHouse refused; `code` is ClickHouse's error code when known (164: READONLY)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class Connection(Protocol):
    """What the ClickHouse event store needs of a connection."""

    where: str
    """Where the data is (a chDB folder, or the server URL without credentials)."""

    def query(self, sql: str, params: Params | None = None) -> pa.Table:
        """Rows of one SELECT as an Arrow table."""
        ...

    def command(self, sql: str, params: Params | None = None) -> None:
        """Run one statement that returns nothing (DDL, ALTER, DELETE)."""
        ...

    def insert(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        """Append an Arrow table whose columns are the table's, in order; with `dedup_token` (hex), the
        server drops the insert when a block with the same token is among the table's recent ones."""
        ...

    def close(self) -> None: ...


def param_text(value: Any) -> str:
    """A parameter value as ClickHouse's escaped text format (what the HTTP interface's param_x takes)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _escape(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_quoted(v) for v in value) + "]"
    raise InvalidInput(f"cannot pass a {type(value).__name__} as a query parameter", field="params")


def _escape(s: str) -> str:
    return "".join("\\" + c if c in "\\'`\t\n" else c for c in s)


def _quoted(v: Any) -> str:
    return f"'{_escape(v)}'" if isinstance(v, str) else param_text(v)


def _hex(token: str) -> str:
    """A dedup token goes into SETTINGS as text: only hex digits are accepted."""
    if not token or any(c not in "0123456789abcdef" for c in token):
        raise InvalidInput("a dedup token must be lowercase hex", field="dedup_token")
    return token


def _code_of(exc: BaseException) -> int | None:
    text = str(exc)
    if "Code: " in text:
        digits = text.split("Code: ", 1)[1].split(".", 1)[0]
        return int(digits) if digits.isdigit() else None
    return None


class ChdbConnection:
    """chDB: one in-process session on a folder (`path=None`: a temporary one). One per process."""

    def __init__(self, path: Path | None) -> None:
        try:
            from chdb import session  # the optional `clickhouse` extra
        except ImportError as exc:
            raise EngineUnavailable(
                "chdb is not installed: pip install 'devmesh[clickhouse]' to use a chdb:// event store"
            ) from exc
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        self.where = str(path) if path else "chdb (temporary)"
        self._lock = threading.Lock()  # one statement at a time on the session
        try:
            self._session = session.Session(str(path) if path else None)
        except Exception as exc:  # chDB refuses a folder another process has open
            raise EngineUnavailable(
                f"cannot open the chDB event store at {self.where}: another process holds it"
                f" (is `devmesh serve` running?): {str(exc).splitlines()[0][:200]}"
            ) from exc

    def query(self, sql: str, params: Params | None = None) -> pa.Table:
        text = {k: param_text(v) for k, v in (params or {}).items()}
        with self._lock:
            try:
                out = self._session.query(sql, "ArrowTable", params=text or None)
            except Exception as exc:  # chdb raises ChdbError/RuntimeError with ClickHouse's message
                self._drain()
                raise ClickHouseError(str(exc), _code_of(exc)) from exc
        if not isinstance(out, pa.Table):  # pragma: no cover - an empty answer of some chdb versions
            return pa.table({})
        return out

    def _drain(self) -> None:
        """After a query stopped mid-way (a timeout), chDB's next Arrow answer comes back empty: take it here."""
        try:
            self._session.query("SELECT 1", "ArrowTable")
        except Exception:  # noqa: BLE001 - the stale answer; the session is usable afterwards
            log.debug("chdb: drained a stale answer")

    def command(self, sql: str, params: Params | None = None) -> None:
        text = {k: param_text(v) for k, v in (params or {}).items()}
        with self._lock:
            try:
                self._session.query(sql, "Null", params=text or None)
            except Exception as exc:
                raise ClickHouseError(str(exc), _code_of(exc)) from exc

    def insert(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        _batch = data  # noqa: F841 - chDB's Python() table function reads this local by name
        token = f" SETTINGS insert_deduplication_token = '{_hex(dedup_token)}'" if dedup_token else ""
        with self._lock:
            try:
                self._session.query(f"INSERT INTO {table}{token} SELECT * FROM Python(_batch)")
            except Exception as exc:
                raise ClickHouseError(str(exc), _code_of(exc)) from exc

    def close(self) -> None:
        with self._lock:
            self._session.close()


AUTHENTICATION_FAILED = 516
UNKNOWN_DATABASE = 81


def _server_text(exc: BaseException) -> str:
    """ClickHouse's own message (`Code: N. DB::Exception: ...`) out of clickhouse-connect's wrapping, so an error
    reads the same from a server as from chDB; the whole text when there is none."""
    text = str(exc)
    if "server response: " in text:
        text = text.split("server response: ", 1)[1]
    return text.split(" (for url ", 1)[0].strip()


class HttpConnection:
    """A ClickHouse server through clickhouse-connect (HTTP). Thread-safe per statement.

    Failures are split as the store's callers need them: a statement the server refused is a ClickHouseError
    (its code kept: READONLY, TIMEOUT_EXCEEDED...); a server that cannot be reached, refuses the credentials or
    lacks the database is EngineUnavailable naming the URL without its credentials (HTTP 503 at the API).
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 10, receive_timeout_s: float = 300) -> None:
        try:
            import clickhouse_connect
        except ImportError as exc:
            raise EngineUnavailable(
                "clickhouse-connect is not installed: pip install 'devmesh[clickhouse]' for DEVMESH_EVENTS_URL"
            ) from exc
        parts = urlsplit(url)
        secure = parts.scheme in ("https", "clickhouses")
        port = parts.port or (8443 if secure else 8123)
        database = unquote(parts.path.strip("/")) or "default"
        self.where = f"{parts.scheme}://{parts.hostname}:{port}/{database}"
        user = unquote(parts.username or "") or "default"
        try:
            self._client = clickhouse_connect.get_client(
                host=parts.hostname or "localhost",
                port=port,
                username=user,
                password=unquote(parts.password or ""),  # percent-encoded in the URL, as any URL's userinfo
                database=database,
                secure=secure,
                autogenerate_session_id=False,
                connect_timeout=connect_timeout_s,
                send_receive_timeout=receive_timeout_s,
            )
        except Exception as exc:
            code = _code(exc)
            if code == AUTHENTICATION_FAILED:
                raise EngineUnavailable(
                    f"the ClickHouse event store at {self.where} refused user {user!r}: wrong user or password"
                    " (the userinfo of DEVMESH_EVENTS_URL, percent-encoded)"
                ) from exc
            if code == UNKNOWN_DATABASE:
                raise EngineUnavailable(
                    f"the ClickHouse event store at {self.where} has no database {database!r}: create it"
                    f" (CREATE DATABASE {database}) or name another in DEVMESH_EVENTS_URL"
                ) from exc
            raise EngineUnavailable(
                f"cannot reach the ClickHouse event store at {self.where}: {_server_text(exc)}"
            ) from exc

    def _failure(self, exc: Exception) -> Exception:
        """The DevMesh error for a failed call: unavailable when the server was not reached, else the refusal."""
        from clickhouse_connect.driver.exceptions import OperationalError

        code = _code(exc)
        if isinstance(exc, OperationalError) and not code:  # transport: refused, reset, timed out, 503 after retries
            return EngineUnavailable(f"the ClickHouse event store at {self.where} is unreachable: {_server_text(exc)}")
        return ClickHouseError(_server_text(exc), code)

    def query(self, sql: str, params: Params | None = None) -> pa.Table:
        try:
            return self._client.query_arrow(sql, parameters=dict(params or {}))
        except Exception as exc:
            raise self._failure(exc) from exc

    def command(self, sql: str, params: Params | None = None) -> None:
        try:
            self._client.command(sql, parameters=dict(params or {}))
        except Exception as exc:
            raise self._failure(exc) from exc

    def insert(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        settings = {"insert_deduplication_token": _hex(dedup_token)} if dedup_token else None
        try:
            self._client.insert_arrow(table, data, settings=settings)
        except Exception as exc:
            raise self._failure(exc) from exc

    def close(self) -> None:
        self._client.close()


def _code(exc: BaseException) -> int | None:
    """ClickHouse's error code: clickhouse-connect's `code` (from X-ClickHouse-Exception-Code), else the text."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) and code else _code_of(exc)


def connect(url: str) -> Connection:
    """The connection a DEVMESH_EVENTS_URL names: chdb://<folder>, clickhouse://, http(s)://."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "chdb":
        rest = url.split("://", 1)[1]
        return ChdbConnection(Path(rest).expanduser() if rest else None)
    if scheme in ("clickhouse", "clickhouses", "http", "https"):
        return HttpConnection(url)
    raise InvalidInput(
        f"DEVMESH_EVENTS_URL must start with chdb://, clickhouse:// or http(s)://, not {url.split('://')[0]!r}",
        field="events_url",
    )
