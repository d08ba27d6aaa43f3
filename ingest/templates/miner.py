"""Online log-template mining: lines in, stable template ids out.

How a line finds its template:

1. Hot path. The line (cut to `max_chars`) goes through `mask_fast` (every word holding a digit
   becomes `<*>`); the masked text is looked up in an exact cache. Most lines stop here: one regex
   pass and one dict lookup.
2. Known template. A new masked text is normalized into tokens
   (`ingest.templates.variables.normalize`) and compared with the templates of the same token
   count; it joins the most specific template whose constant tokens it carries.
3. New lines of a batch. Lines that fit no template are grouped together, Brain-style: within a
   token count, the tokens of a line that share its most common position-frequency are its
   template's core; the other positions are split on when they hold at most `max_values` distinct
   words, and are variables when they hold more (or when a masked value there shows that the slot
   carries data). Each group then either generalizes a compatible template (its text gains `<*>`,
   its id stays) or becomes a new template.
4. Late merging. Each template remembers up to `max_rows` distinct token rows with their line
   counts. When a token count has gained new rows, all its rows are grouped again as in step 3, as
   if they had come in one batch (`ingest.templates.regroup`); templates that grouping puts
   together are merged into the oldest, whose id stays, and the others become its aliases
   (`resolve`, `aliases`). So lines that came one at a time end up grouped as a batch would group
   them, and every id ever handed out still resolves. Lines of the call that made a merge are
   handed the surviving template.

Ids are `T` + 12 hex digits of a hash of the first template text, fixed at creation and never
reused; two miners fed the same lines assign the same ids, and so does a miner restored from
`state()`. `add` is `add_many` of one line.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from itertools import islice
from typing import Any

from core.errors import InvalidInput
from ingest.templates.cluster import Cluster, TemplateMatch
from ingest.templates.grouping import group_new_lines, holds_data
from ingest.templates.params import MinerParams
from ingest.templates.regroup import clusters_to_merge
from ingest.templates.variables import WILDCARD, mask_fast, normalize

log = logging.getLogger(__name__)

STATE_VERSION = 2


class TemplateMiner:
    """Drain/Brain-style online template miner with an exact-line cache (see module doc).

    Parameters (keywords, see `MinerParams`): `max_chars` (1024), `max_values` (3),
    `similarity` (0.5), `min_gain` (1.0), `cache_size` (50,000).

    `revision` grows whenever a batch taught the miner something (a new cached line, template or
    template text): save `state()` when it moved, so a restored miner answers the same.
    """

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(MinerParams.__dataclass_fields__)
        if unknown:
            raise InvalidInput(f"unknown template miner parameter(s): {sorted(unknown)}", field="params")
        self.params = MinerParams(**params)
        self._cache: dict[str, Cluster] = {}
        self._by_len: dict[int, list[Cluster]] = defaultdict(list)
        self._by_id: dict[str, Cluster] = {}
        self._aliases: dict[str, str] = {}  # merged id -> id it was merged into (always a live one)
        self._merged: dict[str, str] = {}  # aliases made since `take_merges`
        self._dirty: set[int] = set()  # token counts with rows not yet regrouped
        self.revision = 0

    # -- public API ---------------------------------------------------------------------------

    def add(self, message: str) -> TemplateMatch:
        """Assign one line to a template, learning from it."""
        return self.add_many([message])[0]

    def add_many(self, messages: Sequence[str]) -> list[TemplateMatch]:
        """Assign a batch of lines, in order; new lines of the batch are grouped together."""
        out: list[TemplateMatch | None] = [None] * len(messages)
        cache = self._cache
        max_chars = self.params.max_chars
        mask = mask_fast
        pending: dict[str, list[int]] = {}
        for i, message in enumerate(messages):
            if not isinstance(message, str):
                raise InvalidInput(f"log line {i} is {type(message).__name__}, not text", field="message")
            if len(message) > max_chars:
                message = message[:max_chars]
            key = mask(message)
            cluster = cache.get(key)
            if cluster is not None:
                cluster.count += 1
                out[i] = cluster.hit
            elif key in pending:
                pending[key].append(i)
            else:
                pending[key] = [i]
        if pending:
            self._learn(pending, out)
            made = self.regroup()
            if made:
                self._hand_out_live(out, made)  # type: ignore[arg-type]
        return out  # type: ignore[return-value]

    def regroup(self) -> dict[str, str]:
        """Regroup the token counts that gained rows (step 4) and merge what the grouping puts
        together; returns the aliases it made (merged id -> surviving id). `add_many` calls it."""
        made: dict[str, str] = {}
        p = self.params
        for n in sorted(self._dirty):
            for members in clusters_to_merge(self._by_len.get(n, []), p.max_values, p.min_gain, p.similarity):
                made.update(self._merge(members[0], members[1:]))
        self._dirty.clear()
        if made:
            self.revision += 1
            for key, cluster in self._cache.items():
                if cluster.id in made:
                    self._cache[key] = self._by_id[made[cluster.id]]
            self._merged.update(made)
        return made

    def resolve(self, template_id: str) -> str:
        """The live id a template id stands for now (itself unless it was merged)."""
        return self._aliases.get(template_id, template_id)

    def aliases(self) -> dict[str, str]:
        """Every merged id and the live id it resolves to."""
        return dict(self._aliases)

    def take_merges(self) -> dict[str, str]:
        """Aliases made since the last call (merged id -> live id), for whoever stores the ids."""
        made, self._merged = self._merged, {}
        return {old: self.resolve(new) for old, new in made.items()}

    def match(self, message: str) -> str | None:
        """Template id for a line without learning from it; None if no template fits."""
        if not isinstance(message, str):
            raise InvalidInput(f"log line is {type(message).__name__}, not text", field="message")
        key = mask_fast(message[: self.params.max_chars])
        cluster = self._cache.get(key)
        if cluster is None:
            cluster = self._find(normalize(key))
        return None if cluster is None else cluster.id

    def templates(self) -> list[tuple[str, str, int]]:
        """(id, text, count) of every template, in creation order."""
        return [(c.id, c.text, c.count) for c in self._by_id.values()]

    def state(self) -> dict[str, Any]:
        """JSON-serialisable state; `from_state` of it continues with the same ids."""
        return {
            "version": STATE_VERSION,
            "params": asdict(self.params),
            "clusters": [
                [c.id, c.tokens, c.count, [[list(r), n] for r, n in c.rows.items()]] for c in self._by_id.values()
            ],
            "cache": {key: c.id for key, c in self._cache.items()},
            "aliases": dict(self._aliases),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TemplateMiner:
        """Rebuild a miner from `state()` output."""
        try:
            if state["version"] not in (1, STATE_VERSION):
                raise InvalidInput(
                    f"template miner state version {state['version']!r} is not {STATE_VERSION}",
                    field="version",
                )
            miner = cls(**state["params"])
            for cluster_id, tokens, count, *rows in state["clusters"]:
                cluster = Cluster(str(cluster_id), [str(t) for t in tokens], int(count))
                cluster.rows = {tuple(str(t) for t in r): int(n) for r, n in (rows[0] if rows else [])}
                miner._add_cluster(cluster)
            miner._cache = {str(key): miner._by_id[cid] for key, cid in state["cache"].items()}
            miner._aliases = {str(k): str(v) for k, v in state.get("aliases", {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"template miner state is malformed: {exc!r}", field="state") from exc
        return miner

    # -- learning -----------------------------------------------------------------------------

    def _learn(self, pending: dict[str, list[int]], out: list[TemplateMatch | None]) -> None:
        """Place the lines whose masked text was not cached."""
        self.revision += 1
        assigned: list[tuple[Cluster, list[int]]] = []
        events: dict[str, tuple[int, bool, bool]] = {}  # cluster id -> (line, is_new, changed)
        new_rows: dict[tuple[str, ...], list[str]] = {}
        for key, lines in pending.items():
            tokens = tuple(normalize(key))
            cluster = self._find(tokens)
            if cluster is None:
                new_rows.setdefault(tokens, []).append(key)
            else:
                self._cache[key] = cluster
                cluster.count += len(lines)
                assigned.append((cluster, lines))
                self._remember(cluster, tokens, len(lines))
        by_len: dict[int, list[tuple[tuple[str, ...], list[str]]]] = defaultdict(list)
        for tokens, keys in new_rows.items():
            by_len[len(tokens)].append((tokens, keys))
        for rows in by_len.values():
            weights = [sum(len(pending[k]) for k in keys) for _, keys in rows]
            groups = group_new_lines([t for t, _ in rows], weights, self.params.max_values, self.params.min_gain)
            for template, members in groups:
                cluster, created, changed = self._place(template)
                lines = [i for j in members for key in rows[j][1] for i in pending[key]]
                for j in members:
                    for key in rows[j][1]:
                        self._cache[key] = cluster
                    self._remember(cluster, rows[j][0], weights[j])
                cluster.count += len(lines)
                assigned.append((cluster, lines))
                if (created or changed) and cluster.id not in events:
                    events[cluster.id] = (min(lines), created, changed)
        for cluster, lines in assigned:
            for i in lines:
                out[i] = cluster.hit
        for cluster_id, (i, is_new, changed) in events.items():
            out[i] = TemplateMatch(cluster_id, self._by_id[cluster_id].text, is_new, changed)
        self._trim_cache()

    def _hand_out_live(self, out: list[TemplateMatch], made: dict[str, str]) -> None:
        """Lines of this call whose template was merged in it get the template it was merged into."""
        born = {m.template_id for m in out if m.is_new}
        told: set[str] = set()
        for i, m in enumerate(out):
            live = self._by_id[made.get(m.template_id, m.template_id)]
            if live.id == m.template_id and live.text == m.template:
                continue
            is_new = m.is_new and live.id == m.template_id
            out[i] = TemplateMatch(live.id, live.text, is_new, m.changed or live.id not in told)
            told.add(live.id)
        for old in born & set(made):  # never handed out: nobody stored it, no alias to keep
            self._merged.pop(old, None)
            self._aliases.pop(old, None)

    def _remember(self, cluster: Cluster, row: tuple[str, ...], lines: int) -> None:
        if cluster.remember(row, lines, self.params.max_rows):
            self._dirty.add(len(row))

    def _merge(self, survivor: Cluster, others: Sequence[Cluster]) -> dict[str, str]:
        """Fold `others` into `survivor` (same token count); their ids become its aliases."""
        made: dict[str, str] = {}
        for other in others:
            survivor.generalize(other.tokens)
            survivor.count += other.count
            for row, lines in other.rows.items():
                if row in survivor.rows or len(survivor.rows) < self.params.max_rows:
                    survivor.rows[row] = survivor.rows.get(row, 0) + lines
            self._by_len[len(other.tokens)].remove(other)
            del self._by_id[other.id]
            made[other.id] = survivor.id
        for old, new in self._aliases.items():
            if new in made:
                self._aliases[old] = survivor.id
        self._aliases.update(made)
        return made

    def _find(self, tokens: Sequence[str]) -> Cluster | None:
        """Most specific existing template whose constants the tokens carry (oldest on ties)."""
        best: Cluster | None = None
        for cluster in self._by_len.get(len(tokens), ()):
            if (best is None or cluster.n_const > best.n_const) and cluster.accepts(tokens):
                best = cluster
        return best

    def _place(self, template: list[str]) -> tuple[Cluster, bool, bool]:
        """Cluster for a new group: (cluster, created, changed)."""
        n = len(template)
        candidates = self._by_len.get(n, [])
        best: Cluster | None = None
        best_equal = -1
        for cluster in candidates:
            equal = 0
            for mine, theirs in zip(cluster.tokens, template, strict=True):
                if mine == theirs:
                    equal += 1
                elif mine != WILDCARD and theirs != WILDCARD and not holds_data({mine, theirs}):
                    break
            else:
                if equal > best_equal:
                    best, best_equal = cluster, equal
        if best is not None and (n == 0 or best_equal / n >= self.params.similarity):
            return best, False, best.generalize(template)
        cluster = Cluster(self._new_id(template), list(template))
        self._add_cluster(cluster)
        return cluster, True, False

    def _new_id(self, template: Sequence[str]) -> str:
        text = " ".join(template)
        salt = 0
        while True:
            data = f"{text}\x00{salt}" if salt else text
            digest = hashlib.blake2b(data.encode("utf-8", "replace"), digest_size=6).hexdigest()
            cluster_id = "T" + digest
            if cluster_id not in self._by_id:
                return cluster_id
            salt += 1

    def _add_cluster(self, cluster: Cluster) -> None:
        self._by_id[cluster.id] = cluster
        self._by_len[len(cluster.tokens)].append(cluster)

    def _trim_cache(self) -> None:
        size = self.params.cache_size
        if len(self._cache) > size:
            drop = len(self._cache) - size + size // 10
            for key in list(islice(self._cache, drop)):
                del self._cache[key]
            log.debug("template cache trimmed", extra={"dropped": drop})
