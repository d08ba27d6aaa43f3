"""Grouping a batch's new lines of one token count into templates, Brain-style (step 3 of the miner,
see `ingest.templates.miner`): a core of tokens sharing the line's most common position-frequency,
then splits on positions with few distinct words; `holds_data` tells a slot that carries data."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from ingest.templates.variables import WILDCARD


def group_new_lines(
    rows: Sequence[tuple[str, ...]], weights: Sequence[int], max_values: int, min_gain: float
) -> list[tuple[list[str], list[int]]]:
    """Group token rows of one length; returns (template tokens, row indices) per group.

    A row's core is its tokens whose position-frequency is the most common one among its tokens
    (ties to the higher frequency); rows with the same core start a group, which is then split on
    positions with few distinct words (at most `max_values`), fewest first.
    """
    if not rows:
        return []
    n = len(rows[0])
    freq: list[Counter[str]] = [Counter() for _ in range(n)]
    for tokens, weight in zip(rows, weights, strict=True):
        for p, token in enumerate(tokens):
            freq[p][token] += weight
    cores: dict[tuple[tuple[int, str], ...], list[int]] = {}
    for r, tokens in enumerate(rows):
        fs = [freq[p][t] for p, t in enumerate(tokens) if t != WILDCARD]
        core: tuple[tuple[int, str], ...] = ()
        if fs:
            counts = Counter(fs)
            mode = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
            core = tuple((p, t) for p, t in enumerate(tokens) if t != WILDCARD and freq[p][t] == mode)
        cores.setdefault(core, []).append(r)
    out: list[tuple[list[str], list[int]]] = []
    for core, members in cores.items():
        _split(rows, weights, members, frozenset(p for p, _ in core), (max_values, min_gain), out)
    return out


def _split(
    rows: Sequence[tuple[str, ...]],
    weights: Sequence[int],
    members: list[int],
    fixed: frozenset[int],
    params: tuple[int, float],
    out: list[tuple[list[str], list[int]]],
) -> None:
    max_values, min_gain = params
    n = len(rows[members[0]])
    open_columns: dict[int, set[str]] = {}
    for p in range(n):
        if p not in fixed:
            values = {rows[r][p] for r in members}
            if len(values) > 1:
                open_columns[p] = values
    best: tuple[int, int] | None = None
    for p, values in open_columns.items():
        if len(values) <= max_values and not holds_data(values) and (best is None or len(values) < best[0]):
            best = (len(values), p)
    if best is None and len(open_columns) > 1:
        top = 0.0
        for p, values in open_columns.items():
            if holds_data(values):
                continue
            gain = _split_gain(rows, weights, members, p, open_columns)
            if gain >= min_gain and gain > top:
                top, best = gain, (len(values), p)
    if best is None:
        first = rows[members[0]]
        template = [WILDCARD if p in open_columns else first[p] for p in range(n)]
        out.append((template, members))
        return
    p = best[1]
    parts: dict[str, list[int]] = {}
    for r in members:
        parts.setdefault(rows[r][p], []).append(r)
    for part in parts.values():
        _split(rows, weights, part, fixed | {p}, params, out)


def _split_gain(
    rows: Sequence[tuple[str, ...]],
    weights: Sequence[int],
    members: list[int],
    p: int,
    open_columns: dict[int, set[str]],
) -> float:
    """Average number (over lines) of other open columns that a split on column p makes constant.

    A part made of a single line counts as no gain (one line is trivially constant), so two
    unmasked variables that are unique per line never vouch for each other.
    """
    parts: dict[str, list[int]] = {}
    for r in members:
        parts.setdefault(rows[r][p], []).append(r)
    gained = 0
    total = 0
    for part in parts.values():
        weight = sum(weights[r] for r in part)
        total += weight
        if weight < 2:
            continue
        first = rows[part[0]]
        for q in open_columns:
            if q != p and all(rows[r][q] == first[q] for r in part):
                gained += weight
    return gained / total


def holds_data(values: set[str]) -> bool:
    """A masked value here matches another value: the slot carries data.

    `chdir(<*>)` matches `chdir(pwd)`, `<*>` matches `(host-<*>)`, `rhost=<*>` matches
    `rhost=adsl-<*>`: one line's variable covers what another line holds there.
    """
    masked = [v for v in values if WILDCARD in v]
    if not masked or len(values) < 2:
        return False
    for v in masked:
        pattern = _pattern(v)
        if any(other != v and pattern.fullmatch(other) for other in values):
            return True
    return False


@lru_cache(maxsize=4096)
def _pattern(masked: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in masked.split(WILDCARD)), re.DOTALL)
