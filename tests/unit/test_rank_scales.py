"""A question that names only its end is ranked over several windows and the rankings combined
(`detect.rank.scales`); questions that say when the incident began keep one window."""

from __future__ import annotations

import pytest

from core.incident import InvestigationRequest
from core.rca import Candidate, FaultKind, Modality, PropagationStep, RankingResult, Signal, SignalKind, TimeRange
from core.timeutil import NS
from detect.incidents import ALERT_LEAD_S, IncidentBook
from detect.rank.scales import QUESTION_SCALES_S, combine_scales
from detect.rank.windows import incident_options

END = 1_700_000_000 * NS


def cand(svc: str, rank: int, conf: float, score: float, *, weak: bool = False, dev: float = 1.0) -> Candidate:
    sig = Signal(
        service=svc,
        modality=Modality.METRICS if weak else Modality.LOGS,
        kind=SignalKind.METRIC_DEVIATION if weak else SignalKind.LOG_ERROR_TEMPLATE,
        key=f"k-{svc}",
        family="cpu" if weak else "error",
        score=dev if weak else 5.0,
    )
    return Candidate(
        service=svc,
        rank=rank,
        score=score,
        confidence=conf,
        fault_kind=FaultKind.CODE_ERROR,
        own_evidence=conf,
        signals=[sig],
        weak=weak,
    )


def result(width_s: int, *cands: Candidate, status: str = "ok") -> RankingResult:
    return RankingResult(
        status=status,
        alert_ns=END - width_s * NS,
        window=TimeRange(start_ns=END - width_s * NS, end_ns=END),
        candidates=list(cands),
        modalities_used=[Modality.LOGS],
        signals=[s for c in cands for s in c.signals],
        notes=[f"window of {width_s} s"],
    )


def test_a_change_that_stands_out_in_the_short_windows_comes_first() -> None:
    # five minutes hold two of normal traffic: there `b` leads a little; the last two and three minutes
    # (all fault) say `a` clearly
    short = result(120, cand("a", 1, 0.8, 0.8), cand("b", 2, 0.1, 0.2))
    mid = result(180, cand("a", 1, 0.6, 0.6), cand("b", 2, 0.2, 0.4))
    long = result(300, cand("b", 1, 0.4, 0.55), cand("a", 2, 0.35, 0.45))
    out = combine_scales([short, mid, long], None, limit=10, scales_s=(120, 180, 300))
    assert [c.service for c in out.candidates] == ["a", "b"]
    assert [c.rank for c in out.candidates] == [1, 2]
    assert out.candidates[0].confidence == pytest.approx((0.8 + 0.6 + 0.35) / 3, abs=1e-4)
    assert out.candidates[1].confidence == pytest.approx((0.1 + 0.2 + 0.4) / 3, abs=1e-4)
    assert out.window == long.window and out.alert_ns == long.alert_ns
    assert out.notes[0] == "window of 300 s"
    assert "120 s, 180 s, 300 s" in out.notes[-1]


def test_one_window_alone_cannot_outvote_the_others() -> None:
    # a service only the longest window lists gets a third of its confidence there
    short = result(120, cand("a", 1, 0.5, 1.0))
    mid = result(180, cand("a", 1, 0.5, 1.0))
    long = result(300, cand("z", 1, 0.9, 0.7), cand("a", 2, 0.4, 0.3))
    out = combine_scales([short, mid, long], None, limit=10)
    assert [c.service for c in out.candidates] == ["a", "z"]
    assert out.candidates[1].confidence == pytest.approx(0.3, abs=1e-4)


def test_weak_candidates_follow_by_their_deviation_and_the_limit_holds() -> None:
    short = result(120, cand("a", 1, 0.5, 1.0), cand("w1", 2, 0.0, 0.1, weak=True, dev=2.0))
    long = result(300, cand("a", 1, 0.5, 1.0), cand("w2", 2, 0.0, 0.1, weak=True, dev=3.0))
    out = combine_scales([short, long], None, limit=10)
    assert [(c.service, c.weak) for c in out.candidates] == [("a", False), ("w2", True), ("w1", True)]
    assert out.candidates[0].score > out.candidates[1].score > out.candidates[2].score
    assert [c.service for c in combine_scales([short, long], None, limit=2).candidates] == ["a", "w2"]


def test_a_service_weak_in_one_window_and_named_by_a_signal_in_another_is_not_weak() -> None:
    short = result(120, cand("a", 1, 0.6, 1.0))
    long = result(300, cand("b", 1, 0.7, 1.0), cand("a", 2, 0.0, 0.1, weak=True))
    out = combine_scales([short, long], None, limit=10)
    assert [(c.service, c.weak) for c in out.candidates] == [("b", False), ("a", False)]


def test_equal_evidence_across_windows_is_a_tie() -> None:
    edge = [PropagationStep(source="db", target="api")]
    a = cand("api", 1, 0.4, 0.5).model_copy(update={"path": edge})
    b = cand("db", 2, 0.4, 0.5)
    out = combine_scales([result(120, a, b), result(300, b.model_copy(update={"rank": 1}), a)], None, limit=10)
    assert len(out.ties) == 1 and set(out.ties[0].services) == {"api", "db"}
    # the pair is linked through the candidates' paths, so a call graph is not what would separate them
    assert "no_call_graph" not in {s.kind.value for s in out.ties[0].separators}


def test_nothing_ranked_anywhere_gives_the_longest_window_as_it_was() -> None:
    none = [result(w, status="insufficient_evidence") for w in (120, 300)]
    assert combine_scales(none, None, limit=10) is none[-1]
    with pytest.raises(ValueError):
        combine_scales([], None, limit=10)


class _NoDocs:
    def get(self, *_: object) -> None:
        return None

    def put(self, *_: object, **__: object) -> None:
        return None


class _Events:
    docs = _NoDocs()


@pytest.mark.parametrize(
    ("body", "scales", "lead"),
    [
        ({"end_ns": END}, QUESTION_SCALES_S, 0),  # only its end: no start known
        ({"end_ns": END, "at_ns": END - 200 * NS}, (), 0),
        ({"start_ns": END - 600 * NS, "end_ns": END}, (), 0),
        ({"at_ns": END}, (), 0),
        ({"alert": {"labels": {"alertname": "X"}, "startsAt": "2023-11-14T22:13:20Z"}}, (), ALERT_LEAD_S),
    ],
)
def test_only_a_question_without_a_start_is_ranked_over_several_windows(
    body: dict[str, object], scales: tuple[int, ...], lead: int
) -> None:
    book = IncidentBook.__new__(IncidentBook)
    book.events = _Events()  # type: ignore[assignment]
    book.save = lambda incident: None  # type: ignore[method-assign]
    inc = book.open(InvestigationRequest.model_validate(body), source="api", now=END)
    opt = incident_options(inc)
    assert (opt.scales_s, opt.lead_s) == (scales, lead)
    assert inc.onset_given is (not scales)
