"""Keyword matching of log templates in the event store: the text search `/search/logs` falls back to while the
vector store or the embedder is down (`retrieval.text_search` picks the tokens and documents the score).

`KeywordSearch` is mixed into `EventStore` and works on its DuckDB file (tables `logs` and `templates`). Every
token is a bound parameter (`contains(lower(...), ?)`), never pasted into the SQL text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from retrieval.events.db import Database
from retrieval.events.query import LogQuery, where_clause


@dataclass(frozen=True)
class KeywordMatch:
    """A template with lines under the filters, and how many of the query's tokens it matched."""

    template_id: str
    text: str
    level: str
    matched: int
    """Distinct query tokens found in the template's text or in at least one of its lines under the filters."""
    count: int
    """Its lines under the filters."""
    last_ns: int
    """Its newest line under the filters."""


class KeywordSearch:
    """`keyword_templates`; mixed into `EventStore`, which sets `_db`."""

    _db: Database

    def keyword_templates(self, tokens: Sequence[str], where: LogQuery, *, limit: int) -> list[KeywordMatch]:
        """Templates with lines under `where` (its cursor and template ids ignored) whose text or lines hold at
        least one of `tokens` (lower-case; each a case-insensitive substring), best first: most tokens matched,
        then the newest line, then the most lines, then the id. Reads every line under the filters once."""
        if not tokens:
            return []
        q = where.model_copy(update={"cursor": None, "template_id": None})
        clauses, where_params = where_clause(q)
        in_lines = ", ".join(f"bool_or(contains(lower(message), ?)) AS k{i}" for i in range(len(tokens)))
        in_either = " + ".join(
            f"CAST(contains(lower(coalesce(t.text, '')), ?) OR l.k{i} AS INTEGER)" for i in range(len(tokens))
        )
        sql = (
            f"WITH l AS (SELECT template_id, count(*) AS n, max(ts_ns) AS last_ns, {in_lines}"
            f" FROM logs WHERE {' AND '.join(clauses) or 'true'} GROUP BY template_id),"
            " m AS (SELECT l.template_id, coalesce(t.text, '') AS text, coalesce(t.level, '') AS level,"
            f" {in_either} AS matched, l.n, l.last_ns FROM l LEFT JOIN templates t ON t.template_id = l.template_id)"
            " SELECT template_id, text, level, matched, n, last_ns FROM m WHERE matched > 0"
            " ORDER BY matched DESC, last_ns DESC, n DESC, template_id LIMIT ?"
        )
        params: list[Any] = [*tokens, *where_params, *tokens, limit]
        _, rows = self._db.all(sql, params)
        return [KeywordMatch(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]
