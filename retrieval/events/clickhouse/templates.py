"""Log templates in the ClickHouse event store: the same methods and answers as
`retrieval.events.templates` on DuckDB. A template row is changed by writing a new version of it
(ReplacingMergeTree, read with FINAL); read-modify-write runs under the store's write lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import InvalidInput
from retrieval.events.clickhouse.binder import Binder, log_where
from retrieval.events.query import LogQuery, levels_at_least
from retrieval.events.schema import LOG_SELECT, log_row, normalize
from retrieval.events.templates import ALIASES_KEY, StoredTemplate, TemplateDelta, merge_deltas

if TYPE_CHECKING:
    from retrieval.events.clickhouse.state import ClickHouseKeyValueStore, Versions

_TPL_COLS = "template_id, text, count, first_ns, last_ns, level, embedded"
_TPL_SCHEMA = pa.schema(
    [
        ("template_id", pa.string()),
        ("text", pa.string()),
        ("count", pa.int64()),
        ("first_ns", pa.int64()),
        ("last_ns", pa.int64()),
        ("level", pa.string()),
        ("embedded", pa.bool_()),
        ("version", pa.uint64()),
    ]
)


class ClickHouseTemplates:
    """Mixed into `ClickHouseEventStore`, which provides the plumbing below."""

    kv: ClickHouseKeyValueStore
    _versions: Versions
    _write_lock: threading.RLock

    def _rows(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        raise NotImplementedError

    def _insert(self, table: str, data: pa.Table) -> None:
        raise NotImplementedError

    def _write_templates(self, rows: list[StoredTemplate]) -> None:
        if not rows:
            return
        first = self._versions.next(len(rows))
        data = [{**r.__dict__, "version": first + i} for i, r in enumerate(rows)]
        self._insert("templates", pa.Table.from_pylist(data, schema=_TPL_SCHEMA))

    def upsert_templates(self, rows: Iterable[TemplateDelta | Mapping[str, Any]]) -> int:
        """Add templates or update them (count added, first/last widened); returns ids touched."""
        merged = merge_deltas(rows)
        if not merged:
            return 0
        with self._write_lock:
            stored = {t.template_id: t for t in self.templates(list(merged))}
            out = []
            for d in merged.values():
                t = stored.get(d.template_id)
                if t is None:
                    out.append(StoredTemplate(d.template_id, d.text, d.count, d.first_ns, d.last_ns, d.level, False))
                    continue
                firsts = [x for x in (t.first_ns, d.first_ns) if x]
                out.append(
                    StoredTemplate(
                        d.template_id,
                        d.text,
                        t.count + d.count,
                        min(firsts) if firsts else 0,
                        max(t.last_ns, d.last_ns),
                        d.level or t.level,
                        t.embedded and t.text == d.text,
                    )
                )
            self._write_templates(out)
        return len(merged)

    def alias_templates(self, aliases: Mapping[str, str], texts: Mapping[str, str]) -> None:
        """Record merged templates (old id -> live id, `texts` the live ids' texts)."""
        if not aliases:
            return
        with self._write_lock:
            known: dict[str, str] = self.kv.get(ALIASES_KEY, {})
            known.update(aliases)
            known = {old: aliases.get(new, new) for old, new in known.items()}
            self.kv.set(ALIASES_KEY, known)
            changed: dict[str, StoredTemplate] = {}
            ids = list(texts) + [old for old, new in known.items() if new in texts]
            for t in self.templates(ids):
                if t.template_id in texts:
                    text = texts[t.template_id]
                    changed[t.template_id] = t.__class__(
                        **{**t.__dict__, "text": text, "embedded": t.embedded and t.text == text}
                    )
                elif known.get(t.template_id) in texts:
                    changed[t.template_id] = t.__class__(**{**t.__dict__, "text": texts[known[t.template_id]]})
            self._write_templates(list(changed.values()))

    def resolve_templates(self, ids: Sequence[str]) -> dict[str, str]:
        """The live template id of each id (itself unless the miner merged it into another)."""
        known: dict[str, str] = self.kv.get(ALIASES_KEY, {})
        return {i: known.get(i, i) for i in ids}

    def templates(self, ids: Sequence[str] | None = None) -> list[StoredTemplate]:
        """Stored templates (all, or those with the given ids), most frequent first."""
        b = Binder()
        where = f"WHERE {b.one_of('template_id', list(ids))}" if ids is not None else ""
        _, rows = self._rows(
            f"SELECT {_TPL_COLS} FROM templates FINAL {where} ORDER BY count DESC, template_id", b.params
        )
        return [StoredTemplate(*r) for r in rows]

    def _set_embedded(self, ids: Sequence[str] | None, embedded: bool) -> int:
        with self._write_lock:
            found = self.templates(ids)
            self._write_templates([StoredTemplate(**{**t.__dict__, "embedded": embedded}) for t in found])
        return len(found)

    def mark_embedded(self, ids: Sequence[str]) -> int:
        """Record that these templates' vectors are stored; returns how many were found."""
        return self._set_embedded(list(ids), True) if ids else 0

    def mark_unembedded(self) -> int:
        """Record that no template's vector is stored; returns how many."""
        return self._set_embedded(None, False)

    def unembedded_templates(self, limit: int = 1000) -> list[StoredTemplate]:
        """Templates still to embed, most frequent first."""
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        _, rows = self._rows(
            f"SELECT {_TPL_COLS} FROM templates FINAL WHERE NOT embedded ORDER BY count DESC, template_id"
            " LIMIT {lim:UInt64}",
            {"lim": limit},
        )
        return [StoredTemplate(*r) for r in rows]

    def unembedded_count(self) -> int:
        """How many templates are still without a vector."""
        _, rows = self._rows("SELECT count() FROM templates FINAL WHERE NOT embedded")
        return int(rows[0][0])

    def recount_templates(self, ids: Sequence[str]) -> None:
        """Set these templates' count and first/last time from the stored lines."""
        if not ids:
            return
        b = Binder()
        _, rows = self._rows(
            "SELECT template_id, toInt64(count()), min(ts_ns), max(ts_ns) FROM logs"
            f" WHERE {b.one_of('template_id', list(ids))} GROUP BY template_id",
            b.params,
        )
        counts = {r[0]: r[1:] for r in rows}
        with self._write_lock:
            found = [t for t in self.templates(list(ids)) if t.template_id in counts]
            self._write_templates(
                [
                    StoredTemplate(**{**t.__dict__, "count": n, "first_ns": lo, "last_ns": hi})
                    for t in found
                    for n, lo, hi in [counts[t.template_id]]
                ]
            )

    def top_templates(
        self, *, min_level: str = "WARN", limit: int = 10, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[dict[str, Any]]:
        """Most frequent templates among lines at `min_level` or above, with their services."""
        b = Binder()
        clauses = [b.one_of("l.level", levels_at_least(min_level))]
        if start_ns is not None:
            clauses.append(f"l.ts_ns >= {b.int(start_ns)}")
        if end_ns is not None:
            clauses.append(f"l.ts_ns < {b.int(end_ns)}")
        _, rows = self._rows(
            "SELECT l.template_id, t.text, max(l.level), toInt64(count()) AS n,"
            " arraySort(groupUniqArray(toString(l.service))) FROM logs AS l"
            " INNER JOIN (SELECT template_id, text FROM templates FINAL) AS t ON t.template_id = l.template_id"
            f" WHERE {' AND '.join(clauses)} GROUP BY l.template_id, t.text ORDER BY n DESC, l.template_id"
            f" LIMIT {b.bind(limit, 'UInt64')}",
            b.params,
        )
        return [{"template_id": r[0], "text": r[1], "level": r[2], "count": r[3], "services": list(r[4])} for r in rows]

    def remember_examples(self, table: pa.Table, *, keep: int = 3) -> None:
        """Keep the newest `keep` lines of each template in `table` as examples."""
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
        if batch.num_rows:
            b = Binder()
            with self._write_lock:
                _, rows = self._rows(
                    f"SELECT event_id FROM template_examples WHERE {b.one_of('template_id', list(seen))}", b.params
                )
                have = pa.array([r[0] for r in rows], pa.uint64())
                mask = pc.invert(pc.is_in(batch["event_id"], value_set=have))
                batch = batch.filter(mask)
                if batch.num_rows:
                    self._insert("template_examples", batch)

    def cached_examples(self, template_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Examples kept by `remember_examples`, newest first (the newest 12 of each)."""
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in template_ids}
        if not template_ids:
            return out
        b = Binder()
        columns, rows = self._rows(
            f"SELECT {LOG_SELECT} FROM template_examples WHERE {b.one_of('template_id', list(template_ids))}"
            " ORDER BY template_id, ts_ns DESC, event_id DESC LIMIT 12 BY template_id",
            b.params,
        )
        for r in rows:
            event = log_row(columns, r)
            out[event["template_id"]].append(event)
        return out

    def latest_examples(
        self, q: LogQuery, template_ids: Sequence[str], per_template: int = 3, *, slices_s: Sequence[int] = (60, 3600)
    ) -> dict[str, list[dict[str, Any]]]:
        """The newest `per_template` lines of each template among the lines matching `q`'s filters."""
        if not template_ids:
            return {}
        del slices_s  # one query: the sort key and LIMIT BY make DuckDB's time slices unnecessary here
        known = [t.template_id for t in self.templates(list(template_ids))]
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in template_ids}
        if not known:
            return out
        b = Binder()
        sub = q.model_copy(update={"template_id": known, "cursor": None})
        columns, rows = self._rows(
            f"SELECT {LOG_SELECT} FROM logs WHERE {' AND '.join(log_where(sub, b))}"
            f" ORDER BY ts_ns DESC, event_id DESC LIMIT {b.bind(per_template, 'UInt64')} BY template_id",
            b.params,
        )
        for r in rows:
            event = log_row(columns, r)
            out[event["template_id"]].append(event)
        return out

    def example_lines(
        self, template_ids: Sequence[str], start_ns: int, end_ns: int, per_template: int = 3
    ) -> dict[str, list[dict[str, Any]]]:
        """The first `per_template` lines of each template within [start_ns, end_ns)."""
        if not template_ids:
            return {}
        b = Binder()
        columns, rows = self._rows(
            f"SELECT {LOG_SELECT} FROM logs WHERE ts_ns >= {b.int(start_ns)} AND ts_ns < {b.int(end_ns)}"
            f" AND {b.one_of('template_id', list(template_ids))}"
            f" ORDER BY template_id, ts_ns, event_id LIMIT {b.bind(per_template, 'UInt64')} BY template_id",
            b.params,
        )
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in template_ids}
        for r in rows:
            event = log_row(columns, r)
            out[event["template_id"]].append(event)
        return out
