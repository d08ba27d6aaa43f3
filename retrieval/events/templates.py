"""Log templates in the event store: their counts and first/last times, which of them are embedded,
and example lines (cached at ingest, or looked up in the stored lines).

`TemplateTables` is mixed into `EventStore` and works on its DuckDB file (tables `templates`,
`template_examples` and `logs`). Templates the miner merged late keep their ids on the stored lines;
their aliases (merged id -> live id) are kept in the key-value store (`alias_templates`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from core.errors import InvalidInput
from core.timeutil import NS
from retrieval.events.db import Database
from retrieval.events.kv import KeyValueStore
from retrieval.events.query import LogQuery, in_clause, levels_at_least, where_clause
from retrieval.events.schema import LOG_SELECT, log_row, normalize


@dataclass(frozen=True)
class TemplateDelta:
    """Lines newly seen for a template: `count` is added to the stored count."""

    template_id: str
    text: str
    count: int = 1
    first_ns: int = 0
    last_ns: int = 0
    level: str = ""


@dataclass(frozen=True)
class StoredTemplate:
    template_id: str
    text: str
    count: int
    first_ns: int
    last_ns: int
    level: str
    embedded: bool


ALIASES_KEY = "template_aliases"
"""Key-value entry holding {merged template id: live template id}."""


class TemplateTables:
    """Template bookkeeping and example lines; mixed into `EventStore`, which sets `_db`."""

    _db: Database
    kv: KeyValueStore
    _example_writes = 0  # remember_examples calls, to trim old examples now and then

    def upsert_templates(self, rows: Iterable[TemplateDelta | Mapping[str, Any]]) -> int:
        """Add templates or update them (count added, first/last widened); returns ids touched.

        A template whose text changes is marked not embedded again.
        """
        merged = merge_deltas(rows)
        if not merged:
            return 0
        table = pa.Table.from_pylist([asdict(d) for d in merged.values()])
        with self._db.write() as cur:
            cur.register("_tpl", table)
            try:
                cur.execute(
                    "INSERT INTO templates SELECT template_id, text, count, first_ns, last_ns, level, false"
                    " FROM _tpl ON CONFLICT (template_id) DO UPDATE SET"
                    " count = templates.count + excluded.count,"
                    " first_ns = CASE WHEN templates.first_ns = 0 THEN excluded.first_ns"
                    "   WHEN excluded.first_ns = 0 THEN templates.first_ns"
                    "   ELSE least(templates.first_ns, excluded.first_ns) END,"
                    " last_ns = greatest(templates.last_ns, excluded.last_ns),"
                    " level = CASE WHEN excluded.level = '' THEN templates.level ELSE excluded.level END,"
                    " embedded = templates.embedded AND templates.text = excluded.text,"
                    " text = excluded.text"
                )
            finally:
                cur.unregister("_tpl")
        return len(merged)

    def alias_templates(self, aliases: Mapping[str, str], texts: Mapping[str, str]) -> None:
        """Record merged templates (old id -> live id, `texts` the live ids' texts).

        Lines stored under an old id keep it, and its template row now shows the live text, so every
        stored line still joins its template; `resolve_templates` maps old ids to live ones.
        """
        if not aliases:
            return
        known: dict[str, str] = self.kv.get(ALIASES_KEY, {})
        known.update(aliases)
        known = {old: aliases.get(new, new) for old, new in known.items()}  # keep it one step deep
        self.kv.set(ALIASES_KEY, known)
        with self._db.write() as cur:
            for tid, text in texts.items():  # the live template's text changed with the merge: embed it again
                cur.execute(
                    "UPDATE templates SET embedded = embedded AND text = ?, text = ? WHERE template_id = ?",
                    [text, text, tid],
                )
            for old, new in known.items():
                if new in texts:
                    cur.execute("UPDATE templates SET text = ? WHERE template_id = ?", [texts[new], old])

    def resolve_templates(self, ids: Sequence[str]) -> dict[str, str]:
        """The live template id of each id (itself unless the miner merged it into another)."""
        known: dict[str, str] = self.kv.get(ALIASES_KEY, {})
        return {i: known.get(i, i) for i in ids}

    def templates(self, ids: Sequence[str] | None = None) -> list[StoredTemplate]:
        """Stored templates (all, or those with the given ids), most frequent first."""
        params: list[Any] = []
        where = f"WHERE {in_clause('template_id', list(ids), params)}" if ids is not None else ""
        _, rows = self._db.all(
            "SELECT template_id, text, count, first_ns, last_ns, level, embedded FROM templates"
            f" {where} ORDER BY count DESC, template_id",
            params,
        )
        return [StoredTemplate(*r) for r in rows]

    def mark_embedded(self, ids: Sequence[str]) -> int:
        """Record that these templates' vectors are stored; returns how many were found."""
        if not ids:
            return 0
        params: list[Any] = []
        cond = in_clause("template_id", list(ids), params)
        with self._db.write() as cur:
            row = cur.execute(f"UPDATE templates SET embedded = true WHERE {cond}", params).fetchone()
        return int(row[0]) if row else 0

    def unembedded_templates(self, limit: int = 1000) -> list[StoredTemplate]:
        """Templates still to embed, most frequent first: call, embed, mark_embedded, repeat."""
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        _, rows = self._db.all(
            "SELECT template_id, text, count, first_ns, last_ns, level, embedded FROM templates"
            " WHERE NOT embedded ORDER BY count DESC, template_id LIMIT ?",
            [limit],
        )
        return [StoredTemplate(*r) for r in rows]

    def unembedded_count(self) -> int:
        """How many templates are still without a vector."""
        return int(self._db.one("SELECT count(*) FROM templates WHERE NOT embedded")[0])

    def mark_unembedded(self) -> int:
        """Record that no template's vector is stored (before embedding them all again); returns how many."""
        with self._db.write() as cur:
            row = cur.execute("UPDATE templates SET embedded = false").fetchone()
        return int(row[0]) if row else 0

    def recount_templates(self, ids: Sequence[str]) -> None:
        """Set these templates' count and first/last time from the stored lines (after de-duplication)."""
        if not ids:
            return
        params: list[Any] = []
        cond = in_clause("template_id", list(ids), params)
        with self._db.write() as cur:  # lines pruned by retention are counted from their rollup
            cur.execute(
                "UPDATE templates SET count = s.n, first_ns = s.lo, last_ns = s.hi FROM"
                " (SELECT tid, sum(n) AS n, min(lo) AS lo, max(hi) AS hi FROM"
                " (SELECT template_id AS tid, count(*) AS n, min(ts_ns) AS lo, max(ts_ns) AS hi FROM logs"
                f" WHERE {cond} GROUP BY template_id UNION ALL SELECT template_id, sum(count), min(first_ns),"
                f" max(last_ns) FROM log_rollup WHERE {cond} GROUP BY template_id) GROUP BY tid) AS s"
                " WHERE templates.template_id = s.tid",
                params + params,
            )

    def top_templates(
        self, *, min_level: str = "WARN", limit: int = 10, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[dict[str, Any]]:
        """Most frequent templates among lines at `min_level` or above, with their services."""
        params: list[Any] = []
        clauses = [in_clause("l.level", levels_at_least(min_level), params)]
        if start_ns is not None:
            clauses.append("l.ts_ns >= ?")
            params.append(start_ns)
        if end_ns is not None:
            clauses.append("l.ts_ns < ?")
            params.append(end_ns)
        _, rows = self._db.all(
            "SELECT l.template_id, t.text, max(l.level), count(*) AS n, list(DISTINCT l.service ORDER BY l.service)"
            " FROM logs l JOIN templates t ON t.template_id = l.template_id"
            f" WHERE {' AND '.join(clauses)} GROUP BY l.template_id, t.text ORDER BY n DESC, l.template_id LIMIT ?",
            [*params, limit],
        )
        return [{"template_id": r[0], "text": r[1], "level": r[2], "count": r[3], "services": list(r[4])} for r in rows]

    def remember_examples(self, table: pa.Table, *, keep: int = 3) -> None:
        """Keep the newest `keep` lines of each template in `table` (logs with template_id) as examples."""
        if table.num_rows == 0 or "template_id" not in table.column_names:
            return
        batch = normalize("logs", table)
        tids = batch["template_id"].to_pylist()
        seen: dict[str, int] = {}
        newest: list[int] = []
        for i in np.argsort(-batch["ts_ns"].to_numpy(), kind="stable").tolist():
            n = seen.get(tids[i], 0)
            if n < keep and tids[i]:
                newest.append(i)
                seen[tids[i]] = n + 1
        batch = batch.take(pa.array(newest, pa.int64()))
        with self._db.write() as cur:
            cur.register("_ex", batch)
            try:
                cur.execute(
                    "INSERT INTO template_examples SELECT * FROM _ex WHERE event_id NOT IN"
                    " (SELECT event_id FROM template_examples WHERE template_id IN (SELECT template_id FROM _ex))"
                )
                self._example_writes += 1
                if self._example_writes % 64 == 0:  # older examples are only trimmed now and then
                    cur.execute(
                        "DELETE FROM template_examples WHERE rowid NOT IN (SELECT rowid FROM template_examples"
                        " QUALIFY row_number() OVER (PARTITION BY template_id ORDER BY ts_ns DESC, event_id DESC)"
                        " <= ?)",
                        [keep * 4],
                    )
            finally:
                cur.unregister("_ex")

    def cached_examples(self, template_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Examples kept by `remember_examples`, newest first."""
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in template_ids}
        if not template_ids:
            return out
        params: list[Any] = []
        cond = in_clause("template_id", list(template_ids), params)
        columns, rows = self._db.all(
            f"SELECT {LOG_SELECT} FROM template_examples WHERE {cond} ORDER BY template_id, ts_ns DESC", params
        )
        for r in rows:
            event = log_row(columns, r)
            out[event["template_id"]].append(event)
        return out

    def latest_examples(
        self, q: LogQuery, template_ids: Sequence[str], per_template: int = 3, *, slices_s: Sequence[int] = (60, 3600)
    ) -> dict[str, list[dict[str, Any]]]:
        """The newest `per_template` lines of each template among the lines matching `q`'s filters.

        Looks first in short slices of time before each template's last line (or the filter's end), so that
        the time zone maps keep it from scanning every row; templates with no match there are looked up over
        the whole filter range.
        """
        if not template_ids:
            return {}
        last = {t.template_id: t.last_ns for t in self.templates(list(template_ids))}
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in template_ids}
        missing = [t for t in template_ids if t in last]
        for slice_s in (*slices_s, None):
            if not missing:
                break
            parts: list[str] = []
            params: list[Any] = []
            for tid in missing:
                sub = q.model_copy(update={"template_id": [tid], "cursor": None})
                if slice_s is not None:
                    end = min(q.end_ns, last[tid] + 1) if q.end_ns is not None else last[tid] + 1
                    lo = end - slice_s * NS
                    start = max(q.start_ns, lo) if q.start_ns is not None else lo
                    sub = sub.model_copy(update={"start_ns": start, "end_ns": end})
                clauses, sub_params = where_clause(sub)
                parts.append(
                    f"(SELECT {LOG_SELECT} FROM logs WHERE {' AND '.join(clauses)}"
                    " ORDER BY ts_ns DESC, event_id DESC LIMIT ?)"
                )
                params += [*sub_params, per_template]
            columns, rows = self._db.all(" UNION ALL ".join(parts), params)
            for r in rows:
                event = log_row(columns, r)
                out[event["template_id"]].append(event)
            missing = [t for t in missing if len(out[t]) < per_template]
            for t in missing:
                out[t] = []
        for events in out.values():
            events.sort(key=lambda e: (-e["ts_ns"], -e["event_id"]))
        return out

    def example_lines(
        self, template_ids: Sequence[str], start_ns: int, end_ns: int, per_template: int = 3
    ) -> dict[str, list[dict[str, Any]]]:
        """The first `per_template` lines of each template within [start_ns, end_ns)."""
        if not template_ids:
            return {}
        params: list[Any] = [start_ns, end_ns]
        cond = in_clause("template_id", list(template_ids), params)
        columns, rows = self._db.all(
            f"SELECT {LOG_SELECT} FROM logs WHERE ts_ns >= ? AND ts_ns < ? AND {cond}"
            " QUALIFY row_number() OVER (PARTITION BY template_id ORDER BY ts_ns, event_id) <= ?"
            " ORDER BY template_id, ts_ns, event_id",
            [*params, per_template],
        )
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in template_ids}
        for r in rows:
            event = log_row(columns, r)
            out[event["template_id"]].append(event)
        return out


def merge_deltas(rows: Iterable[TemplateDelta | Mapping[str, Any]]) -> dict[str, TemplateDelta]:
    """The deltas of one upsert, one per template id: counts added, first/last widened, the last text and the
    last non-empty level kept (both event stores merge a batch this way before reading what is stored)."""
    merged: dict[str, TemplateDelta] = {}
    for raw in rows:
        d = raw if isinstance(raw, TemplateDelta) else _template_delta(raw)
        if not d.template_id:
            raise InvalidInput("a template needs a non-empty template_id", field="template_id")
        old = merged.get(d.template_id)
        if old is not None:
            firsts = [x for x in (old.first_ns, d.first_ns) if x]
            d = TemplateDelta(
                d.template_id,
                d.text,
                old.count + d.count,
                min(firsts) if firsts else 0,
                max(old.last_ns, d.last_ns),
                d.level or old.level,
            )
        merged[d.template_id] = d
    return merged


def _template_delta(row: Mapping[str, Any]) -> TemplateDelta:
    try:
        return TemplateDelta(
            template_id=str(row["template_id"]),
            text=str(row["text"]),
            count=int(row.get("count", 1)),
            first_ns=int(row.get("first_ns", 0) or 0),
            last_ns=int(row.get("last_ns", 0) or 0),
            level=str(row.get("level", "") or ""),
        )
    except KeyError as exc:
        raise InvalidInput(f"a template row needs {exc.args[0]!r}", field=str(exc.args[0])) from exc
