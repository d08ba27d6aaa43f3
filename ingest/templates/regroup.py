"""Late merging (step 5 of the miner, see `ingest.templates.miner`): regroup every remembered token
row of one token count as if all had arrived in one batch, and report which existing templates that
grouping puts together. Templates are only merged, never split, so an id handed out stays valid:
the merged ones become aliases of the oldest."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ingest.templates.cluster import Cluster
from ingest.templates.grouping import group_new_lines
from ingest.templates.variables import WILDCARD


def clusters_to_merge(
    clusters: Sequence[Cluster], max_values: int, min_gain: float, similarity: float
) -> list[list[Cluster]]:
    """Sets (of two or more, oldest first) of `clusters` whose rows one grouping puts together.

    `clusters` are of one token count, in creation order. Templates are merged when one group of
    the regrouping holds all the rows of each, and the merged template keeps at least `similarity`
    of its positions constant (few rows can make a grouping too coarse, and a merge is final);
    a template whose rows the grouping spreads over several groups is left as it is.
    """
    if len(clusters) < 2:
        return []
    rows: list[tuple[str, ...]] = []
    weights: list[int] = []
    owner: list[int] = []
    for k, cluster in enumerate(clusters):
        for row, lines in cluster.rows.items():
            rows.append(row)
            weights.append(lines)
            owner.append(k)
    parent = list(range(len(clusters)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    groups = group_new_lines(rows, weights, max_values, min_gain)
    home: dict[int, int] = {}  # cluster -> the one group holding all its rows, -1 if several do
    for g, (_, members) in enumerate(groups):
        for r in members:
            home[owner[r]] = g if home.get(owner[r], g) == g else -1
    for _, members in groups:
        whole = sorted({owner[r] for r in members if home[owner[r]] >= 0})
        chains: list[tuple[int, list[str]]] = []  # (first cluster, merged tokens), oldest first
        for k in whole:
            for c, (first, tokens) in enumerate(chains):
                merged = [a if a == b else WILDCARD for a, b in zip(tokens, clusters[k].tokens, strict=True)]
                if sum(t != WILDCARD for t in merged) >= similarity * len(merged):
                    chains[c] = (first, merged)
                    parent[k] = first  # the oldest survives
                    break
            else:
                chains.append((k, list(clusters[k].tokens)))
    sets: dict[int, list[Cluster]] = defaultdict(list)
    for k, cluster in enumerate(clusters):
        sets[root(k)].append(cluster)
    return [members for members in sets.values() if len(members) > 1]
