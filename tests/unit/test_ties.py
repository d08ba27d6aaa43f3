"""Ties: candidates the evidence cannot separate are reported as such, with what would separate them,
and the explanation says so instead of naming one of them."""

from __future__ import annotations

import json
import random

import networkx as nx
import pytest

from agents.explain_fallback import explain_from_evidence, standing_ties
from agents.explain_llm import explain_with_llm
from agents.llm import OllamaLLM
from api.render.markdown import to_markdown
from api.render.terminal import to_terminal
from api.render.text import to_json
from core.explanation import ExplanationMode
from core.rca import (
    Candidate,
    FaultKind,
    Modality,
    RankingResult,
    Separator,
    SeparatorKind,
    Signal,
    SignalKind,
    TieGroup,
)
from detect.rank.callgraph import call_graph
from detect.rank.ranking import RankOptions, rank_signals, rank_window
from detect.rank.ties import SEPARATOR_TEXT, TIE_RELATIVE, close, find_ties, tied
from tests.fakes.ollama_server import FakeOllama, Scripted
from tests.unit.test_ranking import ALERT, T0, chain, metric_rows

LOGS_ONLY = [Modality.LOGS]


def error(svc: str, key: str = "tpl-disk", score: float = 6.0, fold: float = 8.0, dependency: str = "") -> Signal:
    return Signal(
        service=svc,
        modality=Modality.LOGS,
        kind=SignalKind.LOG_ERROR_TEMPLATE,
        key=key,
        family="error",
        score=score,
        fold=fold,
        dependency=dependency,
        dependency_via="error" if dependency else "",
        description=f"{svc}: new error {key}",
        evidence_ids=[f"log:{svc}-{key}", f"template:{key}"],
    )


def sig(svc: str, kind: SignalKind, modality: Modality, family: str = "", key: str = "k") -> Signal:
    return Signal(service=svc, modality=modality, kind=kind, key=key, family=family, score=6.0, fold=8.0)


def ranked(signals: list[Signal], graph: nx.DiGraph | None = None) -> list[Candidate]:
    return rank_signals(signals, graph if graph is not None else nx.DiGraph(), RankOptions())


def separator_kinds(tie: TieGroup) -> list[SeparatorKind]:
    return [s.kind for s in tie.separators]


# -- the tolerance ------------------------------------------------------------------------------------


def test_close_is_relative_to_the_larger_value_with_a_floor() -> None:
    assert TIE_RELATIVE == 0.05
    assert close(0.32, 0.305) and close(0.305, 0.32)  # 0.015 <= 5% of 0.32
    assert not close(0.32, 0.30)  # 0.02 > 0.016
    assert close(0.0001, 0.0002, 1e-4) and not close(0.0001, 0.0002)  # the floor only where given


# -- tie groups in the ranking -------------------------------------------------------------------------


def test_identical_evidence_on_two_services_is_a_tie_with_what_would_separate_them() -> None:
    candidates = ranked([error("db"), error("api"), error("web", "tpl-5xx", score=2.0, fold=2.0)])
    assert [(c.rank, c.service) for c in candidates] == [(1, "api"), (2, "db"), (3, "web")]
    assert candidates[0].confidence == candidates[1].confidence == 0.3448
    assert tied(candidates[0], candidates[1]) and not tied(candidates[1], candidates[2])
    assert find_ties(candidates, nx.DiGraph(), LOGS_ONLY) == [
        TieGroup(
            services=["api", "db"],
            confidence=0.3448,
            shared_kinds=[SignalKind.LOG_ERROR_TEMPLATE],
            separators=[
                Separator(kind=SeparatorKind.NO_TRACES, text=SEPARATOR_TEXT[SeparatorKind.NO_TRACES]),
                Separator(kind=SeparatorKind.NO_CALL_GRAPH, text=SEPARATOR_TEXT[SeparatorKind.NO_CALL_GRAPH]),
                Separator(kind=SeparatorKind.NO_METRICS, text=SEPARATOR_TEXT[SeparatorKind.NO_METRICS]),
                Separator(kind=SeparatorKind.SAME_ERRORS, text=SEPARATOR_TEXT[SeparatorKind.SAME_ERRORS].format(n=1)),
            ],
        )
    ]


def test_a_clear_winner_is_no_tie() -> None:
    candidates = ranked([error("db", score=9.0, fold=20.0), error("api", "tpl-call", score=3.0, fold=2.0)])
    assert [c.service for c in candidates] == ["db", "api"]
    assert find_ties(candidates, nx.DiGraph(), LOGS_ONLY) == []


def test_separators_follow_what_the_ranking_had() -> None:
    candidates = ranked([error("db"), error("cache", "tpl-evict")])
    siblings = call_graph([("api", "db"), ("api", "cache")])  # both called, neither calls the other
    [tie] = find_ties(candidates, siblings, [Modality.LOGS, Modality.TRACES, Modality.METRICS])
    assert separator_kinds(tie) == [SeparatorKind.NO_CALLS_BETWEEN]
    chained = call_graph([("cache", "db")])
    [tie] = find_ties(candidates, chained, [Modality.LOGS, Modality.TRACES, Modality.METRICS])
    assert separator_kinds(tie) == [SeparatorKind.ONSET]  # nothing lacking: which one changed first
    [tie] = find_ties(candidates, chained, [Modality.METRICS, Modality.TRACES])
    assert separator_kinds(tie) == [SeparatorKind.NO_LOGS]


def test_an_error_one_service_reports_about_another_is_not_the_same_error_twice() -> None:
    # the api's error names the db; the db also has its own error with the same template id
    same = [error("db", "tpl-x"), error("api", "tpl-x")]
    [tie] = find_ties(ranked(same), nx.DiGraph(), LOGS_ONLY)
    assert SeparatorKind.SAME_ERRORS in separator_kinds(tie)
    different = [error("db", "tpl-x"), error("api", "tpl-y")]
    [tie] = find_ties(ranked(different), nx.DiGraph(), LOGS_ONLY)
    assert SeparatorKind.SAME_ERRORS not in separator_kinds(tie)


def test_ties_are_found_below_the_top_too_and_the_order_stays() -> None:
    signals = [error("db", score=9.0, fold=20.0), error("api", "tpl-a"), error("web", "tpl-b")]
    candidates = ranked(signals)
    assert [(c.rank, c.service) for c in candidates] == [(1, "db"), (2, "api"), (3, "web")]
    assert [t.services for t in find_ties(candidates, nx.DiGraph(), LOGS_ONLY)] == [["api", "web"]]


def test_rank_window_records_the_tie_of_two_hosts_with_the_same_cpu_saturation() -> None:
    rnd = random.Random(5)
    hist = [10 + rnd.random() for _ in range(30)]
    base = metric_rows("db-0", "db", "cpu_usage_rate", T0, hist) + metric_rows(
        "cache-0", "cache", "cpu_usage_rate", T0, hist
    )
    win = metric_rows("db-0", "db", "cpu_usage_rate", ALERT, [11, 95, 97, 96]) + metric_rows(
        "cache-0", "cache", "cpu_usage_rate", ALERT, [11, 95, 97, 96]
    )
    res = rank_window(None, None, None, None, win, base, None, alert_ns=ALERT)
    assert [c.service for c in res.candidates] == ["cache", "db"]
    assert [c.fault_kind for c in res.candidates] == [FaultKind.RESOURCE_SATURATION] * 2
    [tie] = res.ties
    assert tie.services == ["cache", "db"] and tie.confidence == res.candidates[0].confidence
    assert tie.shared_kinds == [SignalKind.METRIC_DEVIATION]
    assert separator_kinds(tie) == [SeparatorKind.NO_TRACES, SeparatorKind.NO_CALL_GRAPH, SeparatorKind.NO_LOGS]


def test_rank_window_with_a_clear_root_cause_has_no_tie() -> None:
    sb, lb = chain(T0, 60, db_self_ms=5, prefix="b")
    sw, lw = chain(ALERT, 60, db_self_ms=5, db_fail_every=2, prefix="w", seed=2)
    res = rank_window(lw, lb, sw, sb, None, None, None, alert_ns=ALERT)
    assert [c.service for c in res.candidates] == ["db", "api"] and res.ties == []


# -- fault kinds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "kind"),
    [
        (error("db"), FaultKind.CODE_ERROR),
        (sig("db", SignalKind.METRIC_DEVIATION, Modality.METRICS, "cpu"), FaultKind.RESOURCE_SATURATION),
        (sig("db", SignalKind.METRIC_DEVIATION, Modality.METRICS, "io"), FaultKind.RESOURCE_SATURATION),
        (sig("db", SignalKind.METRIC_DEVIATION, Modality.METRICS, "success"), FaultKind.CODE_ERROR),
        (sig("db", SignalKind.METRIC_DEVIATION, Modality.METRICS, "error"), FaultKind.CODE_ERROR),
        (sig("db", SignalKind.SPAN_SELF_LATENCY, Modality.TRACES), FaultKind.RESOURCE_SATURATION),
        (sig("db", SignalKind.EDGE_LATENCY, Modality.TRACES), FaultKind.NETWORK_DELAY),
        (error("api", dependency="db"), FaultKind.DEPENDENCY_FAILURE),
        # these say that something changed, not what kind of fault it is
        (sig("db", SignalKind.SPAN_LATENCY, Modality.TRACES), FaultKind.UNKNOWN),
        (sig("db", SignalKind.LOG_VOLUME, Modality.LOGS), FaultKind.UNKNOWN),
        (sig("db", SignalKind.METRIC_DEVIATION, Modality.METRICS, "latency"), FaultKind.UNKNOWN),
        (sig("db", SignalKind.METRIC_DEVIATION, Modality.METRICS, "workload"), FaultKind.UNKNOWN),
    ],
)
def test_every_candidate_carries_the_fault_kind_its_signals_suggest(signal: Signal, kind: FaultKind) -> None:
    candidates = ranked([signal])
    assert candidates and all(c.fault_kind == kind for c in candidates)


# -- the explanation -------------------------------------------------------------------------------------


def tied_ranking() -> RankingResult:
    signals = [error("db"), error("api"), error("web", "tpl-5xx", score=2.0, fold=2.0)]
    candidates = ranked(signals)
    return RankingResult(
        status="ok",
        candidates=candidates,
        modalities_used=LOGS_ONLY,
        modalities_missing=[Modality.TRACES, Modality.METRICS],
        signals=signals,
        ties=find_ties(candidates, nx.DiGraph(), LOGS_ONLY),
    )


def test_the_summary_of_a_tie_names_none_as_the_root_cause() -> None:
    ranking = tied_ranking()
    expl = explain_from_evidence(ranking)
    assert expl.ties == ranking.ties
    first, rest = expl.summary.split(". ", 1)
    assert first == "The evidence cannot separate api (code error) and db (code error): both at about 34% confidence"
    assert "most likely" not in expl.summary
    assert rest.startswith("What would separate them: no traces:")
    assert all(s.text in expl.summary for s in ranking.ties[0].separators)
    assert rest.endswith("Other candidates: web (9%, code error).")
    # the root causes keep their order and each shows its fault kind; no path from a root nobody named
    assert [(rc.rank, rc.service, rc.fault_kind) for rc in expl.root_causes] == [
        (1, "api", FaultKind.CODE_ERROR),
        (2, "db", FaultKind.CODE_ERROR),
        (3, "web", FaultKind.CODE_ERROR),
    ]
    assert expl.propagation_path == []
    assert expl.summary_evidence_ids == ["log:api-tpl-disk", "template:tpl-disk", "log:db-tpl-disk"]
    assert expl.cited_ids() <= expl.evidence_ids()


def test_a_tie_below_the_top_is_named_after_the_root_cause() -> None:
    signals = [error("db", score=9.0, fold=20.0), error("api", "tpl-a"), error("web", "tpl-b")]
    candidates = ranked(signals)
    ranking = RankingResult(
        status="ok", candidates=candidates, ties=find_ties(candidates, nx.DiGraph(), LOGS_ONLY), signals=signals
    )
    expl = explain_from_evidence(ranking)
    assert expl.summary.startswith("db is the most likely root cause")
    assert expl.summary.endswith("The evidence cannot separate api and web (about 28% each).")
    assert [t.services for t in expl.ties] == [["api", "web"]]


def test_feedback_that_raised_one_of_the_tied_separates_it() -> None:
    ranking = tied_ranking()
    raised = ranking.candidates[1].model_copy(update={"confidence": 0.6, "rank": 1})
    moved = [raised, ranking.candidates[0].model_copy(update={"rank": 2}), ranking.candidates[2]]
    after = ranking.model_copy(update={"candidates": moved})
    assert standing_ties(after) == []
    expl = explain_from_evidence(after)
    assert expl.ties == [] and expl.summary.startswith("db is the most likely root cause")


def test_json_markdown_and_terminal_show_the_tie() -> None:
    expl = explain_from_evidence(tied_ranking())
    data = json.loads(to_json(expl))
    assert [(t["services"], t["confidence"]) for t in data["ties"]] == [(["api", "db"], 0.3448)]
    assert [s["kind"] for s in data["ties"][0]["separators"]] == [
        "no_traces",
        "no_call_graph",
        "no_metrics",
        "same_errors",
    ]
    lines = to_markdown(expl).splitlines()
    at = lines.index("## Not separated by the evidence")
    assert lines[at + 2] == "- **api**, **db**: about 34% each; what would separate them:"
    assert lines[at + 3].startswith("  - no traces: ")
    text = to_terminal(expl, width=100).splitlines()
    at = text.index("Not separated by the evidence")
    assert text[at + 1] == "- api, db: about 34% each"
    assert text[at + 2].startswith("  · no traces: ")


MODEL = "llama3.1:8b"


def test_the_llm_summary_is_led_by_the_tie() -> None:
    answer = {
        "summary": "api fails on disk errors.",
        "summary_evidence_ids": ["log:api-tpl-disk"],
        "root_causes": [],
    }
    with FakeOllama(models=[MODEL]) as fake:
        fake.script(Scripted.reply(json.dumps(answer)))
        llm = OllamaLLM(fake.url, MODEL, timeout_s=5, retries=0, backoff_s=0, sleep=lambda s: None)
        expl = explain_with_llm(llm, tied_ranking())
        [sent] = fake.requests_to("/api/chat")
    assert expl.mode is ExplanationMode.LLM
    base = explain_from_evidence(tied_ranking())
    lead = base.summary.split(" Other candidates:")[0]
    assert expl.summary == f"{lead} api fails on disk errors."
    assert expl.ties == base.ties
    prompt = sent.body["messages"][1]["content"]
    assert 'service="api" confidence="0.34" fault_kind="code_error" tied_with="db"' in prompt
