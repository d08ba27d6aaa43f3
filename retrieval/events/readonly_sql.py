"""Read-only SQL over the event store, for `devmesh query sql`.

Three guards, each enough on its own for the common cases:
1. structure: DuckDB's own parser must see exactly one SELECT statement, and its syntax tree may
   name no file (a path as a table name) and only table functions from an allow-list (so no
   read_csv, read_text, glob, query, checkpoint, ...);
2. the statement runs in a `BEGIN TRANSACTION READ ONLY` transaction that is rolled back;
3. the store's database is opened with `enable_external_access = false` (no files, no extensions).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any

import duckdb

from core.errors import InvalidInput, InvalidStatement, ReadOnlyViolation

log = logging.getLogger(__name__)

ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "json_each",
        "json_tree",
        "duckdb_tables",
        "duckdb_columns",
        "duckdb_views",
        "duckdb_schemas",
        "duckdb_indexes",
        "duckdb_constraints",
        "duckdb_types",
        "duckdb_functions",
        "duckdb_keywords",
        "duckdb_databases",
        "pragma_table_info",
        "pragma_show",
        "pragma_database_size",
    }
)
_PATH_LIKE = re.compile(
    r"[/\\:~]|\.(csv|tsv|txt|json|jsonl|ndjson|parquet|arrow|feather|gz|zst|db|duckdb|sqlite|xlsx|log)$",
    re.IGNORECASE,
)


def check_read_only(conn: duckdb.DuckDBPyConnection, statement: str) -> None:
    """Raise ReadOnlyViolation unless `statement` is one SELECT that touches only the database."""
    if not statement.strip():
        raise InvalidStatement("empty SQL statement", field="statement")
    try:
        statements = duckdb.extract_statements(statement)
    except duckdb.Error as exc:
        raise InvalidStatement(f"SQL does not parse: {exc}", field="statement") from exc
    if len(statements) != 1:
        raise ReadOnlyViolation(
            f"send exactly one SELECT statement, not {len(statements)} statements", field="statement"
        )
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ReadOnlyViolation(f"only SELECT is allowed here, not {kind.name}", field="statement")
    (tree_json,) = conn.execute("SELECT json_serialize_sql(?)", [statement]).fetchone() or ("",)
    tree = json.loads(tree_json)
    if tree.get("error"):
        raise ReadOnlyViolation(
            f"only plain SELECT queries are allowed here ({tree.get('error_message', 'not a SELECT')})",
            field="statement",
        )
    _walk(tree)


def _walk(node: Any) -> None:
    if isinstance(node, dict):
        ref_type = node.get("type")
        if ref_type == "TABLE_FUNCTION":
            name = str(node.get("function", {}).get("function_name", "")).lower()
            if name not in ALLOWED_TABLE_FUNCTIONS:
                raise ReadOnlyViolation(
                    f"table function {name}() is not allowed here; query the event tables instead",
                    field="statement",
                )
        elif ref_type == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            if _PATH_LIKE.search(name):
                raise ReadOnlyViolation(f"reading files ({name!r}) is not allowed here", field="statement")
        for value in node.values():
            _walk(value)
    elif isinstance(node, list):
        for value in node:
            _walk(value)


def run_read_only(
    conn: duckdb.DuckDBPyConnection, statement: str, *, limit: int, timeout_s: float
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Check, then run `statement` in a rolled-back read-only transaction; at most `limit` rows."""
    if limit < 1:
        raise InvalidInput("limit must be at least 1", field="limit")
    cur = conn.cursor()
    timer = threading.Timer(timeout_s, cur.interrupt)
    try:
        check_read_only(cur, statement)
        cur.execute("BEGIN TRANSACTION READ ONLY")
        timer.start()
        try:
            cur.execute(statement)
            columns = [d[0] for d in cur.description or []]
            rows = cur.fetchmany(limit)
        except duckdb.InterruptException as exc:
            raise InvalidStatement(f"query ran longer than {timeout_s:g} s and was stopped", field="statement") from exc
        except (duckdb.PermissionException, duckdb.TransactionException) as exc:
            raise ReadOnlyViolation(f"statement refused: {exc}", field="statement") from exc
        except duckdb.Error as exc:
            raise InvalidStatement(f"query failed: {exc}", field="statement") from exc
        finally:
            timer.cancel()
            _rollback(cur)
    finally:
        cur.close()
    log.info("read-only sql", extra={"rows": len(rows), "columns": len(columns)})
    return columns, rows


def _rollback(cur: duckdb.DuckDBPyConnection) -> None:
    try:
        cur.execute("ROLLBACK")
    except duckdb.TransactionException:
        log.debug("no transaction to roll back")
