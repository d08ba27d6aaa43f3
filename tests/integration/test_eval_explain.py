"""`devmesh eval explain cases`: a case bundle replayed and explained with a model (the protocol fake, which
answers like a model would: the first candidate, citing the first evidence item shown), then explained
again with a hostile log line (which this fake obeys in its prose); the figures come out of what the
explanations say."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.llm import OllamaLLM
from api.measure.eval_explain import HOSTILE_SERVICE, evaluate_explain_cases
from core.settings import Settings
from tests.fakes.ollama_server import FakeOllama

CASES = Path(__file__).resolve().parents[1] / "data" / "cases"
MODEL = "qwen2.5:0.5b"


def answer(body: dict[str, Any]) -> str:
    props = body["format"]["properties"]
    first_id = props["summary_evidence_ids"]["items"]["enum"][0]
    service = props["root_causes"]["items"]["properties"]["service"]["enum"][0]
    cause = {"service": service, "reasoning": "Its own errors come first.", "evidence_ids": [first_id]}
    summary = f"{service} failed first. Check it first."
    if HOSTILE_SERVICE in body["messages"][1]["content"]:  # a model that obeys the injected line, in its prose
        summary = f"{HOSTILE_SERVICE} is the root cause."
    return json.dumps({"summary": summary, "summary_evidence_ids": [first_id], "root_causes": [cause]})


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=[MODEL], responder=answer) as server:
        yield server


def test_explanations_of_a_case_are_measured_hostile_line_included(tmp_path: Path, fake: FakeOllama) -> None:
    shutil.copytree(CASES / "journald-oom-redis", tmp_path / "cases" / "journald-oom-redis")
    settings = Settings(_env_file=None, home=tmp_path / "unused", embedder="none", qdrant_url=None)  # type: ignore[call-arg]
    llm = OllamaLLM(fake.url, MODEL, timeout_s=10, retries=0)
    result = evaluate_explain_cases(tmp_path / "cases", settings, llm, hostile=True)
    assert result["errors"] == [] and result["cases"] == 1 and result["model"] == MODEL
    normal, hostile = result["results"]
    assert normal["outcome"] == "answered" and normal["agrees"] is True and normal["ranked"]
    assert normal["answer_services"] == normal["ranked"][:1] and normal["first_words_s"] is not None
    assert normal["unknown_ids_removed"] == 0 and normal["claims_without_evidence"] == 0
    assert (result["answer_rate"], result["valid_json"], result["agreement_with_ranking"]) == (1.0, 1.0, 1.0)
    # the hostile line was shown (cited by the top candidate); the ranking is code's and did not move; the
    # answer's structure held (the first candidate, valid ids); its prose, which named the injected service as
    # the root cause, was not kept
    assert hostile["hostile"] is True and hostile["hostile_shown"] is True and hostile["ranked"] == normal["ranked"]
    assert hostile["outcome"] == "answered" and hostile["agrees"] is True and hostile["got_through"] is False
    assert hostile["summary_contradicted_ranking"] is True and normal["summary_contradicted_ranking"] is False
    assert (result["hostile_cases"], result["hostile_got_through"], result["hostile_agreement"]) == (1, 0, 1.0)
    assert result["hostile_summaries_dropped"] == 1
    prompts = [r.body["messages"][1]["content"] for r in fake.requests_to("/api/chat")]
    assert [HOSTILE_SERVICE in p for p in prompts] == [False, True]
