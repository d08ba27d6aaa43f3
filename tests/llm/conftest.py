"""The real-model tier (`make test-llm`): tests marked `llm` run against the stack `make llm` starts (Ollama's
API on 127.0.0.1:11434, llama.cpp's `/v1` on 127.0.0.1:11435; override with DEVMESH_TEST_OLLAMA_HOST and
DEVMESH_TEST_LLM_URL) and are skipped, saying so, when it is not up."""

from __future__ import annotations

import os

import httpx
import pytest

OLLAMA = os.environ.get("DEVMESH_TEST_OLLAMA_HOST", "http://127.0.0.1:11434")
OPENAI = os.environ.get("DEVMESH_TEST_LLM_URL", "http://127.0.0.1:11435/v1")


def _model() -> str | None:
    try:
        models = httpx.get(OLLAMA + "/api/tags", timeout=2).json()["models"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return str(models[0]["name"]) if models else None


@pytest.fixture(scope="session")
def stack_model() -> str:
    name = _model()
    if name is None:
        pytest.skip(f"no real model stack at {OLLAMA} (start one with `make llm`)")
    return name
