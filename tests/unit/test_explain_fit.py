"""The explainer fitted to the model, through both LLM protocols: the prompt fits the model's context with
room for the answer (most telling evidence kept), the answer schema is bounded and enumerated, a cut answer
is asked again shorter then given up on (labelled), and the summary's words stream as they are written."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from agents.answer_stream import (
    RESTART,
    ModelWords,
    SummaryWords,
    current_sink,
    summary_so_far,
    with_words,
    words_to,
)
from agents.explain_fallback import explain_from_evidence
from agents.explain_llm import explain_with_llm
from agents.explain_prompt import AnswerBounds, answer_schema, fit_prompt
from agents.llm import OllamaLLM, PromptBudget, RetryingLLM
from agents.llm_openai import OpenAICompatLLM
from agents.prose_check import foreign_root_causes
from core.explanation import EvidenceItem, EvidenceSource, ExplanationMode, RunbookLink
from core.rca import Candidate, FaultKind, RankingResult
from tests.fakes.ollama_server import FakeOllama, Scripted

MODEL = "qwen2.5:0.5b"
T0 = 1_700_000_000_000_000_000
CHAT_PATH = {"ollama": "/api/chat", "openai": "/v1/chat/completions"}

# 40 evidence items of ~300 characters; the candidates cite log:30 and log:7 (so those must come first).
EVIDENCE = [
    EvidenceItem(
        id=f"log:{n}",
        kind="log",
        source=EvidenceSource.EVENTS,
        time_ns=T0 + n,
        service="db" if n % 2 else "api",
        text=f"line {n} " + "connection pool exhausted, waiting for a free connection; " * 5,
        score=1.0 - n / 100,
    )
    for n in range(40)
]
RANKING = RankingResult(
    status="ok",
    alert_ns=T0,
    candidates=[
        Candidate(
            service="db", rank=1, score=0.6, confidence=0.7, fault_kind=FaultKind.CODE_ERROR, evidence_ids=["log:30"]
        ),
        Candidate(
            service="api", rank=2, score=0.2, confidence=0.2, fault_kind=FaultKind.UNKNOWN, evidence_ids=["log:7"]
        ),
    ],
)
ANSWER = {
    "summary": "The database ran out of connections, so the API timed out.",
    "summary_evidence_ids": ["E1"],
    "root_causes": [{"service": "db", "reasoning": "Its pool is exhausted.", "evidence_ids": ["E1", "E2"]}],
}


@pytest.fixture(params=["ollama", "openai"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=[MODEL], context_length=2048) as server:
        yield server


def client(backend: str, url: str, **kw: object) -> RetryingLLM:
    opts: dict[str, object] = {"timeout_s": 5.0, "retries": 0, "backoff_s": 0.0, "context_tokens": 8192, **kw}
    if backend == "ollama":
        return OllamaLLM(url, MODEL, **opts)  # type: ignore[arg-type]
    return OpenAICompatLLM(url, MODEL, **opts)  # type: ignore[arg-type]


def explain(llm: RetryingLLM) -> object:
    return explain_with_llm(llm, RANKING, EVIDENCE, incident_id="inc-1", max_root_causes=2)


def test_prompt_fits_the_context_the_server_reports_with_room_for_the_answer(fake: FakeOllama, backend: str) -> None:
    fake.script(Scripted.reply(json.dumps(ANSWER)))
    llm = client(backend, fake.url, answer_tokens=300, prompt_tokens=None)
    expl = explain(llm)
    [sent] = fake.requests_to(CHAT_PATH[backend])
    prompt = "".join(m["content"] for m in sent.body["messages"])
    budget = 2048 - 300 - 48  # the fake's context, less the answer, less the template margin
    step = expl.run[-1]  # type: ignore[attr-defined]
    assert step.params["context_tokens"] == 2048 and step.params["prompt_budget_tokens"] == budget
    # counted by the fake's tokenizer (4 characters a token) for OpenAI, estimated (3) for Ollama
    per_token = 4 if backend == "openai" else 3
    assert step.params["tokens_counted_by"] == ("tokenizer" if backend == "openai" else "estimate")
    assert len(prompt) / per_token <= budget
    shown = [line.split('id="')[1].split('"')[0] for line in prompt.splitlines() if line.startswith("<evidence")]
    assert shown == [f"E{n}" for n in range(1, len(shown) + 1)]  # short ids, in order
    stored = step.params["shown_ids"]
    assert stored[:2] == ["log:30", "log:7"] and 5 < len(stored) == len(shown) < 40  # most telling first
    assert f"{40 - len(shown)} more left out for length" in prompt
    assert step.params["evidence_shown"] == len(shown) and step.params["evidence_omitted"] == 40 - len(shown)
    assert expl.mode is ExplanationMode.LLM  # type: ignore[attr-defined]


def test_the_prompt_cap_keeps_a_cpu_prompt_short_runbooks_first(fake: FakeOllama) -> None:
    runbook = RunbookLink(id="rb:db", title="DB pool", url="https://rb.example/db", steps=["Check the pool"] * 20)
    base = explain_from_evidence(RANKING, EVIDENCE, [runbook], max_root_causes=2)
    roomy = client("openai", fake.url, prompt_tokens=None)
    few = explain_from_evidence(RANKING, EVIDENCE[:5], [runbook], max_root_causes=2)
    fitted = fit_prompt(few, roomy, roomy.prompt_budget(), max_root_causes=2)
    assert len(fitted.rendered.shown_ids) == 7 and "<runbook" in fitted.messages[1].content  # all (and 2 cited)
    llm = client("openai", fake.url, prompt_tokens=1200)
    fitted = fit_prompt(base, llm, llm.prompt_budget(), max_root_causes=2)
    assert fitted.budget_tokens == 1200 and fitted.prompt_tokens <= 1200
    assert sum(len(m.content) for m in fitted.messages) // 4 <= 1200  # the fake's tokenizer: 4 characters
    assert "<runbook" not in fitted.messages[1].content and 3 < len(fitted.rendered.shown_ids) < 40
    tiny = client("openai", fake.url, prompt_tokens=256)
    fitted = fit_prompt(base, tiny, tiny.prompt_budget(), max_root_causes=2)
    assert fitted.stored_ids() == ["log:30", "log:7", "log:0"]  # never nothing to cite: the three most telling


def test_answer_schema_is_bounded_and_enumerated() -> None:
    schema = answer_schema(["db", "api"], ["log:1", "log:2"], 2, AnswerBounds(300, 150, 2))
    props = schema["properties"]
    assert props["summary"]["maxLength"] == 300
    assert props["summary_evidence_ids"] == {
        "type": "array",
        "items": {"type": "string", "enum": ["log:1", "log:2"]},
        "minItems": 1,
        "maxItems": 2,
    }
    item = props["root_causes"]["items"]["properties"]
    assert props["root_causes"]["maxItems"] == 2 and item["service"]["enum"] == ["db", "api"]
    assert item["reasoning"]["maxLength"] == 150 and item["evidence_ids"]["maxItems"] == 2
    assert AnswerBounds(300, 150, 2).shorter() == AnswerBounds(150, 75, 1)


def test_a_cut_answer_is_asked_again_shorter(fake: FakeOllama, backend: str) -> None:
    fake.script(Scripted.reply('{"summary": "The data', done_reason="length"), Scripted.reply(json.dumps(ANSWER)))
    expl = explain(client(backend, fake.url))
    first, second = (r.body for r in fake.requests_to(CHAT_PATH[backend]))
    schema_of = {"ollama": lambda b: b["format"], "openai": lambda b: b["response_format"]["json_schema"]["schema"]}
    lengths = [schema_of[backend](b)["properties"]["summary"]["maxLength"] for b in (first, second)]
    assert lengths == [320, 160]
    assert [schema_of[backend](b)["properties"]["root_causes"]["maxItems"] for b in (first, second)] == [2, 1]
    assert expl.mode is ExplanationMode.LLM and expl.summary == ANSWER["summary"]  # type: ignore[attr-defined]
    assert expl.usage.calls == 2  # type: ignore[attr-defined]


def test_cut_twice_is_evidence_only_and_says_why(fake: FakeOllama, backend: str) -> None:
    fake.script(*[Scripted.reply('{"summary": "The', done_reason="length")] * 2)
    expl = explain(client(backend, fake.url, answer_tokens=128))
    assert expl.mode is ExplanationMode.EVIDENCE_ONLY  # type: ignore[attr-defined]
    assert expl.fallback_reason.startswith("the language model's answer was cut at its limit of 128 tokens")  # type: ignore[attr-defined]
    assert expl.root_causes[0].service == "db"  # type: ignore[attr-defined]


def test_server_dying_mid_answer_falls_back_to_evidence_only(fake: FakeOllama, backend: str) -> None:
    fake.script(Scripted.cut(json.dumps(ANSWER), after=24))
    words: list[str] = []
    with words_to(words.append):
        expl = explain(client(backend, fake.url))
    assert expl.mode is ExplanationMode.EVIDENCE_ONLY and "after 1 attempt(s)" in expl.fallback_reason  # type: ignore[attr-defined]
    assert "".join(words) == summary_so_far(json.dumps(ANSWER)[:24])


def test_summary_words_stream_while_the_model_writes(fake: FakeOllama, backend: str) -> None:
    fake.script(Scripted.reply(json.dumps(ANSWER)))
    words: list[str] = []
    with words_to(words.append):
        expl = explain(client(backend, fake.url))
    assert len(words) > 3 and "".join(words) == ANSWER["summary"] == expl.summary  # type: ignore[attr-defined]
    assert expl.summary_evidence_ids == ["log:30"]  # type: ignore[attr-defined]  # E1, as stored
    assert "llm_first_text_ms" in expl.timings  # type: ignore[attr-defined]


def test_summary_words_start_again_after_a_restart() -> None:
    got: list[str] = []
    sink = SummaryWords(got.append)
    for text in ['{"summary": "The d', '{"summary": "The data\\"base', '{"sum', '{"summary": "Other']:
        sink(text)
    assert got == ["The d", 'ata"base', RESTART, "Other"]
    assert summary_so_far('{"root_causes": []}') == "" and summary_so_far('{"summary": "a\\u00e9') == "aé"


def test_with_words_merges_words_into_the_events() -> None:
    def events() -> Iterator[str]:
        yield "incident"
        with words_to(lambda s: None):
            pass
        sink = current_sink()
        assert sink is not None
        sink("Hello ")
        sink("world")
        yield "explanation"

    got = list(with_words(events()))
    assert got == ["incident", ModelWords(text="Hello "), ModelWords(text="world"), "explanation"]


def test_budget_arithmetic() -> None:
    assert PromptBudget(4096, 400, 1500).prompt_tokens == 1500
    assert PromptBudget(1024, 400, 1500).prompt_tokens == 1024 - 400 - 48
    assert PromptBudget(4096, 400, None).prompt_tokens == 4096 - 448


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("The root cause is billing-ledger, which failed.", ["billing-ledger"]),
        ("Root cause: `payments_v2`; check it.", ["payments_v2"]),
        ("The root cause was the db service running out of connections.", []),  # a candidate
        ("The root cause is a resource saturation of the pool.", []),  # plain words are not judged
        ("db-0 is where the root cause lies; its pool is exhausted.", []),
        ("billing-ledger is the root cause.", ["billing-ledger"]),
        ("api is the likely the root cause", []),
    ],
)
def test_prose_that_names_another_root_cause_is_found(text: str, found: list[str]) -> None:
    assert foreign_root_causes(text, ["db", "db-0", "api"]) == found


def test_a_summary_that_contradicts_the_ranking_is_not_kept(fake: FakeOllama, backend: str) -> None:
    hostile = {**ANSWER, "summary": "Ignore the ranking: the root cause is billing-ledger."}
    fake.script(Scripted.reply(json.dumps(hostile)))
    expl = explain(client(backend, fake.url))
    assert expl.mode is ExplanationMode.LLM  # type: ignore[attr-defined]  # the root cause's reasoning is kept
    assert "billing-ledger" not in expl.summary and expl.root_causes[0].reasoning == "Its pool is exhausted."  # type: ignore[attr-defined]
    [flag] = [f for f in expl.unsupported_claims if f.where == "summary"]  # type: ignore[attr-defined]
    assert (flag.reason, flag.dropped) == ("contradicts_ranking", True)


def test_a_reasoning_that_contradicts_the_ranking_is_not_kept(fake: FakeOllama, backend: str) -> None:
    cause = {"service": "db", "reasoning": "The root cause was billing-ledger.", "evidence_ids": ["E1"]}
    fake.script(Scripted.reply(json.dumps({**ANSWER, "root_causes": [cause]})))
    expl = explain(client(backend, fake.url))
    base = explain_from_evidence(RANKING, EVIDENCE, max_root_causes=2)
    assert expl.mode is ExplanationMode.LLM and expl.summary == ANSWER["summary"]  # type: ignore[attr-defined]
    assert expl.root_causes[0].reasoning == base.root_causes[0].reasoning  # type: ignore[attr-defined]  # code's
    [flag] = [f for f in expl.unsupported_claims if f.where == "root_cause:db"]  # type: ignore[attr-defined]
    assert (flag.reason, flag.dropped) == ("contradicts_ranking", True)
    assert expl.run[-1].params["answer_services"] == ["db"]  # type: ignore[attr-defined]
