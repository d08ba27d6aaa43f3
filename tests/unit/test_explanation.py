"""Explanations: the evidence-only fallback (exact values), the LLM path through a fake Ollama,
citation checks, and the JSON / Markdown / terminal renderings."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from agents.citations import UNKNOWN_MARK, Claim, verify_claims
from agents.explain_fallback import NO_LLM, explain_from_evidence
from agents.explain_llm import answer_schema, explain_with_llm
from agents.llm import CircuitBreaker, OllamaLLM
from api.render.markdown import to_markdown
from api.render.terminal import to_terminal
from api.render.text import to_json
from core.explanation import (
    EvidenceItem,
    EvidenceSource,
    Explanation,
    ExplanationMode,
    RootCause,
    RunbookLink,
    SimilarIncident,
    StepStatus,
    UnsupportedClaim,
)
from core.rca import (
    Candidate,
    FaultKind,
    Modality,
    PropagationStep,
    RankingResult,
    Signal,
    SignalKind,
    TimeRange,
)
from tests.fakes.ollama_server import FakeOllama, Scripted

MODEL = "llama3.1:8b"
POD = "ts-order-service-5b6-mv5hb"
T0 = 1_675_000_000_000_000_000
METRIC_ID = f"metric:{POD}:cpu_usage@{T0}-{T0 + 900_000_000_000}"
EDGE_ID = "edge:ts-travel-service->ts-order-service"

S_ERR = Signal(
    service="ts-order-service",
    pod=POD,
    modality=Modality.LOGS,
    kind=SignalKind.LOG_ERROR_TEMPLATE,
    key="tpl-7",
    family="error",
    score=8.5,
    description="new error template: java.sql.SQLException Connection refused (0 -> 12.0 per 100 requests)",
    evidence_ids=["log:101", "template:tpl-7"],
)
S_SPAN = Signal(
    service="ts-order-service",
    modality=Modality.TRACES,
    kind=SignalKind.SPAN_ERROR,
    key="POST /order",
    family="error",
    score=5.2,
    description="error spans of POST /order rose from 0.0% to 35.0%",
    evidence_ids=["span:t1:s1"],
)
S_CPU = Signal(
    service="ts-order-service",
    pod=POD,
    modality=Modality.METRICS,
    kind=SignalKind.METRIC_DEVIATION,
    key="cpu_usage",
    family="cpu",
    score=4.0,
    description="cpu_usage rose 4.2x",
    evidence_ids=[METRIC_ID],
)
S_LAT = Signal(
    service="ts-travel-service",
    modality=Modality.TRACES,
    kind=SignalKind.SPAN_LATENCY,
    key="GET /trips",
    score=3.14,
    evidence_ids=["span:t2:s9"],
)
PATH = [
    PropagationStep(
        source="ts-order-service",
        target="ts-travel-service",
        description="ts-travel-service calls ts-order-service: 35% errors",
        evidence_ids=[EDGE_ID],
    ),
    PropagationStep(source="ts-travel-service", target="ts-ui-dashboard"),
]
RANKING = RankingResult(
    status="ok",
    alert_ns=T0 + 600_000_000_000,
    candidates=[
        Candidate(
            service="ts-order-service",
            pod=POD,
            rank=1,
            score=0.41,
            confidence=0.62,
            fault_kind=FaultKind.CODE_ERROR,
            evidence_ids=["log:101", "template:tpl-7", "span:t1:s1"],
            signals=[S_ERR, S_SPAN],
            path=PATH,
        ),
        Candidate(
            service="ts-travel-service",
            rank=2,
            score=0.2,
            confidence=0.21,
            fault_kind=FaultKind.DEPENDENCY_FAILURE,
            evidence_ids=["span:t2:s9"],
            signals=[S_LAT],
        ),
        Candidate(service="ts-auth-service", rank=3, score=0.05, confidence=0.05),
        Candidate(service="ts-user-service", rank=4, score=0.01, confidence=0.02),
    ],
    modalities_used=[Modality.LOGS, Modality.TRACES, Modality.METRICS],
    signals=[S_ERR, S_SPAN, S_CPU, S_LAT],
)
EVIDENCE = [
    EvidenceItem(
        id="log:101",
        kind="log",
        source=EvidenceSource.EVENTS,
        time_ns=T0 + 523_000_000_000,
        service="ts-order-service",
        pod=POD,
        text="2023-01-29 10:08:43 ERROR [OrderServiceImpl] java.sql.SQLException: Connection refused",
        provenance="events.query_logs service=ts-order-service level>=ERROR",
    ),
    EvidenceItem(
        id="span:t1:s1",
        kind="span",
        source=EvidenceSource.EVENTS,
        time_ns=T0 + 524_000_000_000,
        service="ts-order-service",
        text="POST /order status=ERROR duration 5012 ms",
    ),
    EvidenceItem(
        id="template:tpl-7",
        kind="template",
        source=EvidenceSource.VECTOR,
        text="<*> ERROR [OrderServiceImpl] java.sql.SQLException: Connection refused",
        score=0.91,
    ),
]
RUNBOOK = RunbookLink(
    id="rb:kubernetes/KubePodCrashLooping",
    title="KubePodCrashLooping",
    url="https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
    steps=["Check the previous container's logs: kubectl logs -p <pod>", "Describe the pod for restart reasons"],
    section_ids=["rb:kubernetes/KubePodCrashLooping#2"],
)
SIMILAR = SimilarIncident(incident_id="inc-7", summary="order DB down", root_cause="ts-order-service", similarity=0.83)
WINDOW = TimeRange(start_ns=T0, end_ns=T0 + 900_000_000_000)
SUMMARY = (
    "ts-order-service is the most likely root cause (62% confidence, fault kind: code error, "
    f"pod {POD}). Strongest signal: new error template: java.sql.SQLException Connection refused "
    "(0 -> 12.0 per 100 requests). The fault propagates ts-order-service -> ts-travel-service -> "
    "ts-ui-dashboard. Other candidates: ts-travel-service (21%, dependency failure), "
    "ts-auth-service (5%, kind unknown)."
)


def fallback() -> Explanation:
    return explain_from_evidence(RANKING, EVIDENCE, [RUNBOOK], similar=[SIMILAR], incident_id="inc-42", window=WINDOW)


# -- evidence-only -----------------------------------------------------------------------------------


def test_fallback_is_complete_with_exact_values() -> None:
    expl = fallback()
    assert expl.mode is ExplanationMode.EVIDENCE_ONLY and expl.model == "" and expl.fallback_reason == NO_LLM
    assert expl.status == "ok"
    assert expl.summary == SUMMARY
    assert expl.summary_evidence_ids == ["log:101", "template:tpl-7", "span:t1:s1"]
    assert expl.root_causes == [
        RootCause(
            rank=1,
            service="ts-order-service",
            pod=POD,
            confidence=0.62,
            fault_kind=FaultKind.CODE_ERROR,
            evidence_ids=["log:101", "template:tpl-7", "span:t1:s1"],
            reasoning="new error template: java.sql.SQLException Connection refused (0 -> 12.0 per 100 requests); "
            "error spans of POST /order rose from 0.0% to 35.0%",
        ),
        RootCause(
            rank=2,
            service="ts-travel-service",
            confidence=0.21,
            fault_kind=FaultKind.DEPENDENCY_FAILURE,
            evidence_ids=["span:t2:s9"],
            reasoning="span_latency on GET /trips (score 3.1)",
        ),
        RootCause(rank=3, service="ts-auth-service", confidence=0.05, reasoning="ranked 3 by the call-graph walk"),
    ]
    assert expl.propagation_path == PATH
    assert expl.runbooks == [RUNBOOK] and expl.similar_incidents == [SIMILAR]
    assert expl.incident_id == "inc-42" and expl.window == WINDOW


def test_fallback_evidence_resolves_every_cited_id() -> None:
    expl = fallback()
    assert [e.id for e in expl.evidence] == [
        "log:101",
        "span:t1:s1",
        "template:tpl-7",
        METRIC_ID,
        "span:t2:s9",
        EDGE_ID,
    ]
    assert expl.cited_ids() <= expl.evidence_ids()
    metric = expl.evidence[3]
    assert (metric.kind, metric.source, metric.time_ns, metric.text) == (
        "metric",
        EvidenceSource.SIGNALS,
        T0,
        "cpu_usage rose 4.2x",
    )
    assert metric.time == "2023-01-29T13:46:40Z"
    assert expl.evidence[5].text == "ts-travel-service calls ts-order-service: 35% errors"


def test_fallback_for_insufficient_evidence() -> None:
    ranking = RankingResult(
        status="insufficient_evidence",
        modalities_used=[Modality.LOGS],
        modalities_missing=[Modality.TRACES, Modality.METRICS],
        notes=["no error or latency signal above threshold"],
    )
    expl = explain_from_evidence(ranking, EVIDENCE[:1])
    assert expl.status == "insufficient_evidence" and expl.root_causes == [] and expl.propagation_path == []
    assert expl.summary == (
        "Insufficient evidence to name a root cause. No traces or metrics data in the window. "
        "No error or latency signal above threshold."
    )
    assert expl.notes == ["no error or latency signal above threshold", "missing modalities: traces, metrics"]
    assert [e.id for e in expl.evidence] == ["log:101"]


def test_explain_without_llm_is_the_fallback() -> None:
    expl = explain_with_llm(None, RANKING, EVIDENCE, [RUNBOOK], similar=[SIMILAR], incident_id="inc-42", window=WINDOW)
    assert expl.model_copy(update={"timings": {}}) == fallback()
    assert set(expl.timings) == {"explain_ms"}


# -- citations ---------------------------------------------------------------------------------------


def test_verify_claims_removes_unknown_ids_and_drops_uncited_claims() -> None:
    known = {"log:101", "span:t1:s1"}
    kept, flags = verify_claims(
        [
            Claim("summary", "DB refused connections (log:101), see also log:999.", ["log:101", "log:555"]),
            Claim("root_cause:a", "no citation at all", []),
            Claim("root_cause:b", "only fake ids", ["log:555"]),
            Claim("root_cause:c", "clean", ["span:t1:s1", "span:t1:s1"]),
        ],
        known,
    )
    assert [(c.where, c.text, c.valid_ids) for c in kept] == [
        ("summary", f"DB refused connections (log:101), see also {UNKNOWN_MARK}.", ["log:101"]),
        ("root_cause:c", "clean", ["span:t1:s1"]),
    ]
    assert flags == [
        UnsupportedClaim(
            where="summary",
            text=f"DB refused connections (log:101), see also {UNKNOWN_MARK}.",
            cited_ids=["log:101", "log:555"],
            unknown_ids=["log:555", "log:999"],
            reason="unknown_ids",
            dropped=False,
        ),
        UnsupportedClaim(where="root_cause:a", text="no citation at all", reason="no_valid_citation", dropped=True),
        UnsupportedClaim(
            where="root_cause:b",
            text="only fake ids",
            cited_ids=["log:555"],
            unknown_ids=["log:555"],
            reason="no_valid_citation",
            dropped=True,
        ),
    ]


def test_verify_claims_can_keep_uncited_claims_flagged() -> None:
    kept, flags = verify_claims([Claim("summary", "x", [])], {"log:1"}, drop_uncited=False)
    assert [c.where for c in kept] == ["summary"] and flags[0].dropped is False


# -- the LLM path through the fake Ollama ---------------------------------------------------------------


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama(models=[MODEL]) as fake:
        yield fake


def llm_for(fake_ollama: FakeOllama, retries: int = 0) -> OllamaLLM:
    return OllamaLLM(fake_ollama.url, MODEL, timeout_s=5, retries=retries, backoff_s=0, sleep=lambda s: None)


def explain(fake_ollama: FakeOllama, answer: object | str, retries: int = 0) -> Explanation:
    content = answer if isinstance(answer, str) else json.dumps(answer)
    fake_ollama.script(Scripted.reply(content, prompt_eval_count=900, eval_count=120))
    return explain_with_llm(
        llm_for(fake_ollama, retries),
        RANKING,
        EVIDENCE,
        [RUNBOOK],
        similar=[SIMILAR],
        incident_id="inc-42",
        window=WINDOW,
        alert_text="checkout p99 latency above 2 s",
    )


LLM_SUMMARY = "ts-order-service cannot reach its database, so POST /order fails and its callers see errors."
LLM_REASON = "SQLException Connection refused since 10:08 in the order service."


def test_llm_answer_with_valid_citations_is_merged(fake_ollama: FakeOllama) -> None:
    expl = explain(
        fake_ollama,
        {
            "summary": LLM_SUMMARY,
            "summary_evidence_ids": ["log:101", "span:t1:s1"],
            "root_causes": [{"service": "ts-order-service", "reasoning": LLM_REASON, "evidence_ids": ["log:101"]}],
        },
    )
    base = fallback()
    assert expl.mode is ExplanationMode.LLM and expl.model == MODEL and expl.fallback_reason == ""
    assert expl.summary == LLM_SUMMARY and expl.summary_evidence_ids == ["log:101", "span:t1:s1"]
    assert expl.root_causes[0] == base.root_causes[0].model_copy(update={"reasoning": LLM_REASON})
    assert expl.root_causes[1:] == base.root_causes[1:]
    assert expl.unsupported_claims == []
    assert expl.propagation_path == PATH and expl.evidence == base.evidence
    assert expl.usage is not None and (expl.usage.prompt_tokens, expl.usage.completion_tokens) == (900, 120)
    assert {"llm_ms", "explain_ms"} <= set(expl.timings)
    [step] = expl.run
    assert (step.agent, step.tool, step.query, step.status) == ("explainer", "llm.chat", MODEL, StepStatus.OK)
    assert step.params["evidence_shown"] == 6


def test_llm_request_carries_the_schema_of_shown_ids_and_candidates(fake_ollama: FakeOllama) -> None:
    expl = explain(fake_ollama, {"summary": LLM_SUMMARY, "summary_evidence_ids": ["E1"], "root_causes": []})
    [sent] = fake_ollama.requests_to("/api/chat")
    # ids the candidates cite come first, then the rest in order; the model sees them as E1, E2, ...
    expected_ids = ["log:101", "template:tpl-7", "span:t1:s1", "span:t2:s9", METRIC_ID, EDGE_ID]
    services = ["ts-order-service", "ts-travel-service", "ts-auth-service"]
    assert sent.body["format"] == answer_schema(services, [f"E{n}" for n in range(1, 7)], 3)
    assert expl.run[-1].params["shown_ids"] == expected_ids and expl.summary_evidence_ids == ["log:101"]
    assert (
        sent.body["options"] == {"num_ctx": 4096, "temperature": 0.0, "num_predict": 400}
        and sent.body["stream"] is False
    )
    system, user = sent.body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert "<alert>checkout p99 latency above 2 s</alert>" in user["content"]


def test_unknown_ids_services_and_uncited_claims_are_flagged(fake_ollama: FakeOllama) -> None:
    expl = explain(
        fake_ollama,
        {
            "summary": LLM_SUMMARY,
            "summary_evidence_ids": ["log:101", "log:999"],
            "root_causes": [
                {"service": "ts-payment-service", "reasoning": "made up", "evidence_ids": ["log:101"]},
                {"service": "ts-travel-service", "reasoning": "slow trips", "evidence_ids": ["span:nope"]},
            ],
        },
    )
    assert expl.mode is ExplanationMode.LLM
    assert expl.summary == LLM_SUMMARY and expl.summary_evidence_ids == ["log:101"]
    assert expl.root_causes == fallback().root_causes  # neither root-cause claim survived
    assert [(c.where, c.reason, c.unknown_ids, c.dropped) for c in expl.unsupported_claims] == [
        ("root_cause:ts-payment-service", "unknown_service", [], True),
        ("summary", "unknown_ids", ["log:999"], False),
        ("root_cause:ts-travel-service", "no_valid_citation", ["span:nope"], True),
    ]
    assert "log:999" not in expl.cited_ids() and "span:nope" not in expl.cited_ids()


def test_answer_without_any_supported_claim_is_evidence_only(fake_ollama: FakeOllama) -> None:
    expl = explain(fake_ollama, {"summary": "trust me", "summary_evidence_ids": [], "root_causes": []})
    assert expl.mode is ExplanationMode.EVIDENCE_ONLY and expl.model == ""
    assert expl.summary == SUMMARY
    assert expl.fallback_reason == "no claim of the language model's answer cited valid evidence"
    assert [c.reason for c in expl.unsupported_claims] == ["no_valid_citation"]


@pytest.mark.parametrize("content", ['{"summary": "cut off', "[]", '{"root_causes": []}', "not json at all"])
def test_invalid_llm_output_falls_back(fake_ollama: FakeOllama, content: str) -> None:
    expl = explain(fake_ollama, content)
    assert expl.mode is ExplanationMode.EVIDENCE_ONLY and expl.summary == SUMMARY
    assert expl.fallback_reason.startswith("the language model's answer did not match the schema")
    assert expl.run[-1].status is StepStatus.ERROR
    assert expl.usage is not None and expl.usage.completion_tokens == 120


def test_json_in_a_code_fence_is_accepted(fake_ollama: FakeOllama) -> None:
    answer = {"summary": LLM_SUMMARY, "summary_evidence_ids": ["log:101"], "root_causes": []}
    expl = explain(fake_ollama, "```json\n" + json.dumps(answer) + "\n```")
    assert expl.mode is ExplanationMode.LLM and expl.summary == LLM_SUMMARY


def test_unreachable_llm_falls_back_with_the_reason(fake_ollama: FakeOllama) -> None:
    fake_ollama.script(Scripted.failure(500), Scripted.failure(500))
    expl = explain_with_llm(llm_for(fake_ollama, retries=1), RANKING, EVIDENCE, incident_id="inc-42")
    assert expl.mode is ExplanationMode.EVIDENCE_ONLY and expl.summary == SUMMARY
    assert "after 2 attempt(s) (HTTP 500" in expl.fallback_reason
    assert expl.run[-1].status is StepStatus.ERROR and expl.usage is None


def test_open_breaker_falls_back_without_calling(fake_ollama: FakeOllama) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=3600)
    breaker.record_failure()
    llm = OllamaLLM(fake_ollama.url, MODEL, retries=0, breaker=breaker)
    expl = explain_with_llm(llm, RANKING, EVIDENCE)
    assert expl.mode is ExplanationMode.EVIDENCE_ONLY and "circuit breaker open" in expl.fallback_reason
    assert fake_ollama.requests_to("/api/chat") == []


def test_no_candidates_skips_the_llm(fake_ollama: FakeOllama) -> None:
    expl = explain_with_llm(llm_for(fake_ollama), RankingResult(status="insufficient_evidence"), EVIDENCE)
    assert expl.mode is ExplanationMode.EVIDENCE_ONLY and expl.status == "insufficient_evidence"
    assert fake_ollama.requests_to("/api/chat") == []


# -- renderings --------------------------------------------------------------------------------------


def test_json_has_the_contract_fields_and_round_trips() -> None:
    expl = fallback()
    data = json.loads(to_json(expl))
    assert data["mode"] == "evidence-only" and data["summary"] == SUMMARY
    assert [(r["service"], r["confidence"], r["evidence_ids"]) for r in data["root_causes"]][0] == (
        "ts-order-service",
        0.62,
        ["log:101", "template:tpl-7", "span:t1:s1"],
    )
    assert data["propagation_path"][0]["source"] == "ts-order-service"
    assert [e["id"] for e in data["evidence"]][:3] == ["log:101", "span:t1:s1", "template:tpl-7"]
    assert data["evidence"][0]["time"] == "2023-01-29T13:55:23Z"
    assert data["runbooks"][0]["steps"] == RUNBOOK.steps
    assert data["window"] == {
        "start_ns": T0,
        "end_ns": T0 + 900_000_000_000,
        "start": "2023-01-29T13:46:40Z",
        "end": "2023-01-29T14:01:40Z",
    }
    assert Explanation.model_validate_json(to_json(expl)) == expl


def test_markdown_report() -> None:
    hostile = EvidenceItem(
        id="log:666", kind="log", source=EvidenceSource.EVENTS, text="a | b [click](http://evil) <img src=x>\nnext"
    )
    expl = explain_from_evidence(RANKING, [*EVIDENCE, hostile], [RUNBOOK], similar=[SIMILAR], incident_id="inc-42")
    lines = to_markdown(expl).splitlines()
    assert lines[0] == "# Incident explanation: inc-42"
    assert lines[2] == (
        "> **Mode: evidence-only, built from the ranked candidates and the evidence alone: "
        "no language model configured (set OLLAMA\\_HOST to use one)**"
    )
    assert (
        "| 1 | ts-order-service | ts-order-service-5b6-mv5hb | 62% | code error | "
        "`log:101`, `template:tpl-7`, `span:t1:s1` |"
    ) in lines
    assert "ts-order-service → ts-travel-service → ts-ui-dashboard" in lines
    assert "| `log:666` | log | events |  |  | a \\| b \\[click\\](http://evil) \\<img src=x> next |" in lines
    assert (
        "- ts-order-service → ts-travel-service: ts-travel-service calls ts-order-service: 35% errors "
        "(`edge:ts-travel-service->ts-order-service`)"
    ) in lines
    assert (
        "### [KubePodCrashLooping](<https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping>)"
    ) in lines
    assert "1. Check the previous container's logs: kubectl logs -p \\<pod>" in lines
    assert "- `inc-7` (similarity 0.83, root cause ts-order-service): order DB down" in lines


def test_markdown_labels_llm_mode_and_lists_unsupported_claims() -> None:
    expl = fallback().model_copy(
        update={
            "mode": ExplanationMode.LLM,
            "model": MODEL,
            "fallback_reason": "",
            "unsupported_claims": [
                UnsupportedClaim(
                    where="summary",
                    text="x",
                    cited_ids=["log:9"],
                    unknown_ids=["log:9"],
                    reason="unknown_ids",
                    dropped=False,
                )
            ],
        }
    )
    text = to_markdown(expl)
    assert "> **Mode: llm (llama3.1:8b); every citation checked against the evidence**" in text.splitlines()
    assert "- summary (unknown_ids, kept without the unknown ids; unknown ids `log:9`): x" in text.splitlines()


def test_terminal_report_is_labelled_and_inert() -> None:
    hostile = EvidenceItem(
        id="log:666", kind="log", source=EvidenceSource.EVENTS, text="\x1b[31mRED\x1b[0m [bold]markup[/bold]"
    )
    expl = explain_from_evidence(RANKING, [*EVIDENCE, hostile], [RUNBOOK], incident_id="inc-42")
    text = to_terminal(expl, width=160)
    assert text.splitlines()[0].startswith("Mode: evidence-only, built from the ranked candidates")
    assert "\x1b" not in text
    assert "[31mRED[0m [bold]markup[/bold]" in text
    assert "ts-order-service -> ts-travel-service -> ts-ui-dashboard" in text
    assert "1. Check the previous container's logs: kubectl logs -p <pod>" in text
    colored = to_terminal(expl, width=160, color=True)
    assert "\x1b[" in colored and "\x1b[31mRED" not in colored


def test_summary_says_why_a_weaker_candidate_is_listed_first() -> None:
    from agents.explain_fallback import summary_of
    from core.explanation import RootCause
    from core.rca import Candidate, RankingResult

    cands = [
        Candidate(service="verify", rank=1, score=0.2, confidence=0.21),
        Candidate(service="order", rank=2, score=0.4, confidence=0.41),
    ]
    ranking = RankingResult(status="ok", candidates=cands)
    roots = [RootCause(rank=c.rank, service=c.service, confidence=c.confidence) for c in cands]
    text = summary_of(ranking, roots)
    assert "verify is listed first because the incident is about it" in text
    assert "on the evidence alone order scores higher" in text
    plain = summary_of(ranking, roots[::-1])  # in confidence order: nothing to explain
    assert "listed first" not in plain
