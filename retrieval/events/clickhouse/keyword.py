"""Keyword matching of log templates on ClickHouse: the same `keyword_templates` call and answers as the
DuckDB store's (`retrieval.events.keyword`, which `/search/logs` falls back to while the vector store or the
embedder is down). Tokens come lower-case; text is lowered with `lowerUTF8` (DuckDB's `lower` is Unicode
too), and every token is a `{k<i>:String}` parameter, never pasted into the SQL text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from retrieval.events.clickhouse.binder import Binder, log_where
from retrieval.events.keyword import KeywordMatch
from retrieval.events.query import LogQuery


class ClickHouseKeywordSearch:
    """`keyword_templates`; mixed into `ClickHouseEventStore`."""

    def _rows(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        raise NotImplementedError

    def keyword_templates(self, tokens: Sequence[str], where: LogQuery, *, limit: int) -> list[KeywordMatch]:
        """Templates with lines under `where` (its cursor and template ids ignored) whose text or lines hold at
        least one of `tokens` (lower-case; each a case-insensitive substring), best first: most tokens matched,
        then the newest line, then the most lines, then the id."""
        if not tokens:
            return []
        q = where.model_copy(update={"cursor": None, "template_id": None})
        b = Binder()
        keys = [b.text(t) for t in tokens]
        clauses = log_where(q, b)
        in_lines = ", ".join(f"max(position(lowerUTF8(message), {k}) > 0) AS k{i}" for i, k in enumerate(keys))
        in_either = " + ".join(f"toInt64((position(lowerUTF8(t.text), {k}) > 0) OR l.k{i})" for i, k in enumerate(keys))
        _, rows = self._rows(
            "SELECT template_id, text, level, matched, n, last_ns FROM ("
            f"SELECT l.template_id AS template_id, t.text AS text, t.level AS level, {in_either} AS matched,"
            " l.n AS n, l.last_ns AS last_ns FROM"
            f" (SELECT template_id, toInt64(count()) AS n, max(ts_ns) AS last_ns, {in_lines} FROM logs"
            f" WHERE {' AND '.join(clauses) or '1'} GROUP BY template_id) AS l"
            " LEFT JOIN (SELECT template_id, text, level FROM templates FINAL) AS t ON t.template_id = l.template_id)"
            " WHERE matched > 0 ORDER BY matched DESC, last_ns DESC, n DESC, template_id"
            f" LIMIT {b.bind(limit, 'UInt64')}",
            b.params,
        )
        return [KeywordMatch(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]
