"""The template miner's parameters (`MinerParams`): one set for every system; the reasons for
each value are in docs/research/templates.md."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidInput


@dataclass(frozen=True)
class MinerParams:
    """Parameters of `TemplateMiner`; one set for every system."""

    max_chars: int = 1024
    """Lines are templated on their first `max_chars` characters (bounds time on huge lines)."""
    max_values: int = 3
    """A position holding more distinct constant words than this is a variable."""
    min_gain: float = 1.0
    """A position with more values is still split on when that makes, on average, this many other
    positions constant (tells a logger name from a user name in a shared header)."""
    similarity: float = 0.5
    """Share of positions that must stay constant when a new group generalizes an existing template
    or when templates are merged late."""
    cache_size: int = 50_000
    """Masked lines remembered for the hot path; the oldest tenth is dropped when full."""
    max_rows: int = 32
    """Distinct token rows a template remembers for late merging (bounds memory and state size)."""

    def __post_init__(self) -> None:
        if self.max_chars < 16:
            raise InvalidInput("max_chars must be at least 16", field="max_chars")
        if self.max_values < 1:
            raise InvalidInput("max_values must be at least 1", field="max_values")
        if not 0.0 <= self.similarity <= 1.0:
            raise InvalidInput("similarity must be between 0 and 1", field="similarity")
        if self.cache_size < 1:
            raise InvalidInput("cache_size must be at least 1", field="cache_size")
        if self.max_rows < 1:
            raise InvalidInput("max_rows must be at least 1", field="max_rows")
