"""Weighted reciprocal-rank fusion and the cross-signal reranker, on hand-made lists with known answers."""

from __future__ import annotations

import pytest

from core.explanation import EvidenceSource
from retrieval.evidence.fusion import (
    Hit,
    RankedList,
    RerankWeights,
    candidate_weights,
    features,
    rerank,
    rrf_fuse,
    to_evidence,
)

G, V, E = EvidenceSource.GRAPH, EvidenceSource.VECTOR, EvidenceSource.EVENTS


def hits(*ids: str, **fields: object) -> list[Hit]:
    return [Hit(id=i, kind=i.split(":", 1)[0], **fields) for i in ids]  # type: ignore[arg-type]


def test_rrf_scores_and_order_follow_the_formula() -> None:
    fused = rrf_fuse(
        [
            RankedList("graph", G, hits("t:x", "t:y", "t:z")),
            RankedList("vector:templates", V, hits("t:y", "t:w"), weight=0.5),
        ],
        k=60,
    )
    assert [f.id for f in fused] == ["t:y", "t:x", "t:z", "t:w"]
    by_id = {f.id: f for f in fused}
    assert by_id["t:y"].rrf == pytest.approx(1 / 62 + 0.5 / 61)
    assert by_id["t:x"].rrf == pytest.approx(1 / 61)
    assert by_id["t:z"].rrf == pytest.approx(1 / 63)
    assert by_id["t:w"].rrf == pytest.approx(0.5 / 62)
    assert [(p.list, p.rank) for p in by_id["t:y"].provenances] == [("graph", 2), ("vector:templates", 1)]
    assert by_id["t:y"].sources == [G, V]
    assert by_id["t:x"].sources == [G]


def test_a_repeated_id_counts_once_in_its_list_and_ranks_count_distinct_ids() -> None:
    fused = rrf_fuse([RankedList("graph", G, hits("a:1", "a:1", "a:2"))], k=0)
    assert [(f.id, f.rrf) for f in fused] == [("a:1", 1.0), ("a:2", 0.5)]
    assert len(fused[0].provenances) == 1


def test_lists_weighing_nothing_are_left_out() -> None:
    fused = rrf_fuse([RankedList("graph", G, hits("a:1")), RankedList("vector:x", V, hits("a:2"), weight=0.0)])
    assert [f.id for f in fused] == ["a:1"]


def test_merging_keeps_what_each_list_knew() -> None:
    fused = rrf_fuse(
        [
            RankedList(
                "graph",
                G,
                [Hit(id="template:T1", kind="template", service="cart", level="INFO", services=frozenset({"cart"}))],
            ),
            RankedList(
                "vector:templates",
                V,
                [
                    Hit(
                        id="template:T1",
                        kind="template",
                        text="disk full",
                        service="db",
                        level="ERROR",
                        in_window=True,
                        similarity=0.7,
                        time_ns=5,
                    )
                ],
            ),
            RankedList(
                "events:templates", E, [Hit(id="template:T1", kind="template", in_window=False, similarity=0.4)]
            ),
        ]
    )
    (item,) = fused
    assert item.text == "disk full"
    assert item.service == "cart"  # the first list that named one
    assert item.services == frozenset({"cart", "db"})
    assert item.level == "ERROR"
    assert item.in_window is True
    assert item.similarity == 0.7
    assert item.time_ns == 5
    assert item.sources == [G, V, E]


def test_features_are_the_documented_ones() -> None:
    (item,) = rrf_fuse(
        [
            RankedList(
                "graph",
                G,
                [
                    Hit(
                        id="template:T1",
                        kind="template",
                        services=frozenset({"checkout", "db"}),
                        level="WARNING",
                        similarity=-0.3,
                    )
                ],
            )
        ]
    )
    cands = candidate_weights(["payment", "checkout", "payment"])
    assert cands == {"payment": 1.0, "checkout": 0.5}
    assert features(item, cands, rrf_max=item.rrf * 2) == {
        "fusion": 0.5,
        "service": 0.5,
        "window": 0.5,
        "error": 0.5,
        "similarity": 0.0,
    }


def test_rerank_mixes_fusion_with_service_window_error_and_similarity() -> None:
    lists = [
        RankedList(
            "graph",
            G,
            [
                Hit(id="template:old", kind="template", service="mailer", in_window=False, level="INFO"),
                Hit(id="template:new", kind="template", service="payment", in_window=True, level="ERROR"),
                Hit(id="service:payment", kind="service", service="payment"),
            ],
        ),
        RankedList("vector:templates", V, [Hit(id="template:new", kind="template", similarity=0.8)]),
    ]
    ranked = rerank(rrf_fuse(lists), candidates={"payment": 1.0})
    assert [f.id for f in ranked] == ["template:new", "service:payment", "template:old"]
    top = ranked[0]
    assert top.features == {"fusion": 1.0, "service": 1.0, "window": 1.0, "error": 1.0, "similarity": 0.8}
    assert top.score == pytest.approx(0.40 + 0.25 + 0.15 + 0.10 + 0.08)
    old = ranked[2]
    rrf_max = top.rrf
    assert old.score == pytest.approx(0.40 * (1 / 61) / rrf_max)
    svc = ranked[1]
    assert svc.score == pytest.approx(0.40 * (1 / 63) / rrf_max + 0.25 + 0.15 * 0.5)


def test_rerank_weights_can_change_the_order() -> None:
    lists = [
        RankedList("graph", G, hits("a:first", "a:second")),
        RankedList("vector:x", V, [Hit(id="a:second", kind="a", similarity=1.0)]),
    ]
    by_fusion_only = rerank(rrf_fuse(lists), candidates={}, weights=RerankWeights(1, 0, 0, 0, 0))
    assert [f.id for f in by_fusion_only] == ["a:second", "a:first"]
    lists = [RankedList("graph", G, [Hit(id="a:first", kind="a"), Hit(id="a:second", kind="a", in_window=True)])]
    by_window_only = rerank(rrf_fuse(lists), candidates={}, weights=RerankWeights(0, 0, 1, 0, 0))
    assert [f.id for f in by_window_only] == ["a:second", "a:first"]


def test_rerank_caps_each_kind_and_the_total() -> None:
    lists = [RankedList("graph", G, hits("t:1", "t:2", "t:3", "s:1", "s:2", "l:1"))]
    ranked = rerank(rrf_fuse(lists), candidates={}, max_per_kind=2)
    assert [f.id for f in ranked] == ["t:1", "t:2", "s:1", "s:2", "l:1"]
    assert [f.id for f in rerank(rrf_fuse(lists), candidates={}, max_per_kind=2, limit=3)] == ["t:1", "t:2", "s:1"]


def test_to_evidence_names_every_provenance_and_the_strongest_source() -> None:
    lists = [
        RankedList("graph", G, [*hits("x:0", "x:1", "x:2"), Hit(id="runbook:rb1", kind="runbook", detail="COVERS")]),
        RankedList("vector:runbooks", V, [Hit(id="runbook:rb1", kind="runbook", text="Gateway", score=0.61)]),
    ]
    item = next(f for f in rerank(rrf_fuse(lists), candidates={}) if f.id == "runbook:rb1")
    ev = to_evidence(item)
    assert ev.id == "runbook:rb1"
    assert ev.source == EvidenceSource.VECTOR  # rank 1 there, rank 4 in the graph
    assert ev.provenance == "graph #4 (COVERS); vector:runbooks #1 score 0.61"
    assert ev.text == "Gateway"
    assert ev.score == round(item.score, 4)
