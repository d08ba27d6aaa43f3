"""Late merging (step 5 of the miner, see `ingest.templates.miner`): regroup every remembered token
row of one token count as if all had arrived in one batch, and report which existing templates that
grouping puts together. Templates are only merged, never split, so an id handed out stays valid:
the merged ones become aliases of the oldest."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ingest.templates.cluster import Cluster
from ingest.templates.grouping import group_new_lines


def clusters_to_merge(clusters: Sequence[Cluster], max_values: int, min_gain: float) -> list[list[Cluster]]:
    """Sets (of two or more, oldest first) of `clusters` whose rows one grouping puts together.

    `clusters` are of one token count, in creation order. Two templates are merged when some group
    of the regrouping holds rows of both (transitively).
    """
    rows: list[tuple[str, ...]] = []
    weights: list[int] = []
    owner: list[int] = []
    for k, cluster in enumerate(clusters):
        for row, lines in cluster.rows.items():
            rows.append(row)
            weights.append(lines)
            owner.append(k)
    if len(clusters) < 2 or not rows:
        return []
    parent = list(range(len(clusters)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for _, members in group_new_lines(rows, weights, max_values, min_gain):
        roots = sorted({root(owner[r]) for r in members})
        for k in roots[1:]:
            parent[k] = roots[0]  # the oldest survives
    sets: dict[int, list[Cluster]] = defaultdict(list)
    for k, cluster in enumerate(clusters):
        sets[root(k)].append(cluster)
    return [members for members in sets.values() if len(members) > 1]
