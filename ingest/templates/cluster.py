"""A template as the miner keeps it (`Cluster`: tokens, count, id, the distinct token rows it was
built from) and what a line is told (`TemplateMatch`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ingest.templates.variables import WILDCARD


@dataclass(frozen=True)
class TemplateMatch:
    """The template a line was assigned to."""

    template_id: str  # 'T' + 12 hex, fixed at cluster creation
    template: str  # current text, variables as <*>
    is_new: bool  # a cluster was created by this line
    changed: bool  # the cluster's template text changed by this line


class Cluster:
    """One template: its tokens (variables as `<*>`), lines seen, the match handed out for it, and
    up to `max_rows` distinct token rows with their line counts (what a later regrouping reads)."""

    __slots__ = ("id", "tokens", "count", "n_const", "hit", "rows")

    def __init__(self, cluster_id: str, tokens: list[str], count: int = 0) -> None:
        self.id = cluster_id
        self.tokens = tokens
        self.count = count
        self.n_const = 0
        self.hit = TemplateMatch(cluster_id, "", False, False)
        self.rows: dict[tuple[str, ...], int] = {}
        self._refresh()

    def _refresh(self) -> None:
        self.n_const = sum(1 for t in self.tokens if t != WILDCARD)
        self.hit = TemplateMatch(self.id, " ".join(self.tokens), False, False)

    @property
    def text(self) -> str:
        return self.hit.template

    def generalize(self, tokens: Sequence[str]) -> bool:
        """Make every position where `tokens` differs a variable; True if the text changed."""
        changed = False
        for p, (mine, theirs) in enumerate(zip(self.tokens, tokens, strict=True)):
            if mine != theirs and mine != WILDCARD:
                self.tokens[p] = WILDCARD
                changed = True
        if changed:
            self._refresh()
        return changed

    def accepts(self, tokens: Sequence[str]) -> bool:
        """Every constant of the template is in `tokens` at the same position."""
        return all(mine in (theirs, WILDCARD) for mine, theirs in zip(self.tokens, tokens, strict=True))

    def remember(self, row: tuple[str, ...], lines: int, max_rows: int) -> bool:
        """Count `lines` lines of token row `row`; True if the row is new and was kept."""
        if row in self.rows:
            self.rows[row] += lines
            return False
        if len(self.rows) >= max_rows:
            return False
        self.rows[row] = lines
        return True
