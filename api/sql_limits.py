"""The bounds of the read-only SQL front ends (`devmesh query sql`, GET /query/sql): a module of its own so
that the CLI reads them without importing the port and the engines behind it (`api.port` re-exports them)."""

MAX_SQL_ROWS = 10_000
"""Most rows one read-only SQL statement returns (the CLI's --limit and GET /query/sql's limit)."""
MAX_SQL_CHARS = 4000
"""Longest read-only SQL statement: it travels in a URL (GET /query/sql), at most 3 bytes a character encoded."""
