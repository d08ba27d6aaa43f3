"""Read-only SQL over the ClickHouse event store, for `devmesh query sql`: the same promises as
`retrieval.events.readonly_sql` (one SELECT, nothing written, no files, bounded rows and time) in
ClickHouse's dialect.

1. structure: ClickHouse's own parser (`formatQuery`, given the statement as a parameter) must see
   exactly one statement, and it must be a SELECT (or WITH ... SELECT);
2. the statement runs as a subquery under `SETTINGS readonly = 1`: the engine refuses writes, DDL,
   changes of settings and every table function that reaches outside (file, url, s3, remote, ...);
   a SETTINGS clause inside the statement cannot lower it;
3. an outer LIMIT bounds the rows sent back and `max_execution_time` the time.
"""

from __future__ import annotations

import logging
from typing import Any

from core.errors import InvalidInput, InvalidStatement, ReadOnlyViolation
from retrieval.events.clickhouse.connection import ClickHouseError, Connection

log = logging.getLogger(__name__)

READONLY_CODE = 164
TIMEOUT_CODES = frozenset({159, 394})  # TIMEOUT_EXCEEDED, QUERY_WAS_CANCELLED


def check_read_only(conn: Connection, statement: str) -> str:
    """The statement as ClickHouse's parser formats it; ReadOnlyViolation unless it is one SELECT."""
    if not statement.strip():
        raise InvalidStatement("empty SQL statement", field="statement")
    try:
        table = conn.query("SELECT formatQuery({s:String}) AS q", {"s": statement})
    except ClickHouseError as exc:
        text = str(exc)
        if "Multi-statements are not allowed" in text:
            raise ReadOnlyViolation("send exactly one SELECT statement, not several", field="statement") from exc
        raise InvalidStatement(f"SQL does not parse: {_first_line(text)}", field="statement") from exc
    formatted = str(table.column(0)[0].as_py())
    head = formatted.lstrip("( \n").split(None, 1)[0].upper() if formatted.strip() else ""
    if head not in ("SELECT", "WITH"):
        raise ReadOnlyViolation(f"only SELECT is allowed here, not {head or 'this statement'}", field="statement")
    return formatted


def run_read_only(
    conn: Connection, statement: str, *, limit: int, timeout_s: float
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Check, then run `statement` read-only; at most `limit` rows."""
    if limit < 1:
        raise InvalidInput("limit must be at least 1", field="limit")
    formatted = check_read_only(conn, statement)
    sql = (
        f"SELECT * FROM ({formatted}) LIMIT {{lim:UInt64}}"
        f" SETTINGS readonly = 1, max_execution_time = {float(timeout_s):g}"
    )
    try:
        table = conn.query(sql, {"lim": limit})
    except ClickHouseError as exc:
        if exc.code == READONLY_CODE:
            raise ReadOnlyViolation(f"statement refused: {_first_line(str(exc))}", field="statement") from exc
        if exc.code in TIMEOUT_CODES:
            raise InvalidStatement(f"query ran longer than {timeout_s:g} s and was stopped", field="statement") from exc
        raise InvalidStatement(f"query failed: {_first_line(str(exc))}", field="statement") from exc
    columns = table.column_names
    rows = list(zip(*(c.to_pylist() for c in table.columns), strict=True)) if columns else []
    log.info("read-only sql", extra={"rows": len(rows), "columns": len(columns)})
    return columns, rows


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else text
