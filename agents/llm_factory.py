"""The language-model client the settings ask for: an OpenAI-compatible server (`DEVMESH_LLM_URL`), else
Ollama (`OLLAMA_HOST`), else none (evidence-only explanations), with the token limits and latency targets
they set. The server's measured speeds are kept in the home (`llm_speeds.json`), so that a one-shot CLI
command, a process per question, sizes its prompt from the answers before it."""

from __future__ import annotations

from agents.llm import OllamaLLM, RetryingLLM
from agents.llm_openai import OpenAICompatLLM
from agents.llm_speed import LatencyTargets, SpeedBook
from core.settings import Settings

SPEEDS_FILE = "llm_speeds.json"


def make_llm(settings: Settings) -> RetryingLLM | None:
    """The client (close it with `.close()`), or None when no model server is configured."""
    s = settings
    common = {
        "timeout_s": s.llm_timeout_s,
        "retries": s.llm_retries,
        "context_tokens": s.llm_context_tokens,
        "answer_tokens": s.llm_answer_tokens,
        "prompt_tokens": s.llm_prompt_tokens,
        "targets": LatencyTargets(s.llm_first_words_s, s.llm_answer_s),
        "speed_book": SpeedBook(s.home / SPEEDS_FILE),
    }
    if s.llm_url:
        key = s.llm_api_key.get_secret_value() if s.llm_api_key else None
        return OpenAICompatLLM(s.llm_url, s.llm_model, api_key=key, **common)  # type: ignore[arg-type]
    if s.ollama_host:
        return OllamaLLM(s.ollama_host, s.llm_model, **common)  # type: ignore[arg-type]
    return None


def describe_llm(settings: Settings) -> str:
    """What writes explanations, for `devmesh info` and reports."""
    if settings.llm_url:
        return f"openai-compatible:{settings.llm_model} at {settings.llm_url}"
    if settings.ollama_host:
        return f"ollama:{settings.llm_model}"
    return "none (evidence-only)"
