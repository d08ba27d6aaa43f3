"""`OpenAICompatLLM`: a model behind an OpenAI-compatible `/v1/chat/completions` (llama.cpp's server,
vLLM, LM Studio, LocalAI), with the retries and breaker of `agents.llm.RetryingLLM`.

Structured output goes as `response_format: {"type": "json_schema", ...}`; the answer cap as
`max_tokens`; with `on_text` the answer is streamed (server-sent events). The context length comes
from llama.cpp's `GET /props` (`default_generation_settings.n_ctx`) or `/v1/models` (`meta.n_ctx_train`,
vLLM's `max_model_len`); tokens are counted with llama.cpp's `POST /tokenize` when the server has it.
The answer's timings are llama.cpp's `timings` and OpenAI's `usage.prompt_tokens_details.cached_tokens`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from agents.llm import LLMReply, RetryingLLM, TextSink, TransientLLMError
from agents.llm_speed import cached_of, llamacpp_timings
from core.breaker import BreakerState
from core.errors import LLMUnavailable
from core.redaction import redact_urls

logger = logging.getLogger(__name__)

_RETRY_STATUS = {408, 429}
# Sampling options both APIs know, under their OpenAI names (Ollama's `num_predict` is `max_tokens`).
_OPTION_NAMES = {"temperature": "temperature", "top_p": "top_p", "seed": "seed", "stop": "stop"}


def base_url(url: str) -> str:
    """The server's root: `http://h:p/v1` and `http://h:p/v1/` both become `http://h:p`."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class OpenAICompatLLM(RetryingLLM):
    """A model behind `/v1/chat/completions`."""

    kind = "OpenAI-compatible server"

    def __init__(self, url: str, model: str, *, api_key: str | None = None, **kw: Any) -> None:
        super().__init__(base_url(url), model, **kw)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.host, timeout=self.timeout_s, headers=headers)
        self._tokenizer: bool | None = None

    def close(self) -> None:
        self._http.close()

    def _body(
        self, payload: list[dict[str, str]], schema: dict[str, Any] | None, opts: dict[str, Any], max_tokens: int | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self._model, "messages": payload}
        body.update({_OPTION_NAMES[k]: v for k, v in opts.items() if k in _OPTION_NAMES})
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "strict": True, "schema": schema},
            }
        return body

    def _attempt(
        self,
        payload: list[dict[str, str]],
        schema: dict[str, Any] | None,
        opts: dict[str, Any],
        max_tokens: int | None,
        on_text: TextSink | None,
        started: float,
    ) -> LLMReply:
        body = self._body(payload, schema, opts, max_tokens)
        try:
            if on_text is None:
                response = self._http.post("/v1/chat/completions", json={**body, "stream": False})
                self._check(response)
                return self._reply(_json(response, self.host))
            body.update(stream=True, stream_options={"include_usage": True})
            with self._http.stream("POST", "/v1/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                return self._streamed(response.iter_lines(), on_text, started)
        except httpx.TransportError as exc:
            raise TransientLLMError(exc) from exc

    def _check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        error = _error_text(response)
        if response.status_code >= 500 or response.status_code in _RETRY_STATUS:
            raise TransientLLMError(RuntimeError(f"HTTP {response.status_code}: {error}"))
        raise LLMUnavailable(
            f"the {self.kind} at {self.host} refused {self._model!r} (HTTP {response.status_code}: {error})",
            details={"status": response.status_code},
        )

    def _reply(self, data: Mapping[str, Any]) -> LLMReply:
        try:
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMUnavailable(f"the {self.kind} at {self.host} sent an answer that is not a chat reply") from exc
        usage = data.get("usage") or {}
        return LLMReply(
            content=str(content),
            model=str(data.get("model") or self._model),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            done_reason=str(choice.get("finish_reason") or ""),
            timings=llamacpp_timings(data),
            cached_tokens=cached_of(usage),
        )

    def _streamed(self, lines: Iterable[str], on_text: TextSink, started: float) -> LLMReply:
        text, finish, model, done = "", "", self._model, False
        first_ms: float | None = None
        usage: dict[str, Any] = {}
        timings = None
        for line in lines:
            if not line.startswith("data:"):
                continue
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError as exc:
                raise LLMUnavailable(f"the {self.kind} at {self.host} streamed a chunk that is not JSON") from exc
            model = str(chunk.get("model") or model)
            usage = chunk.get("usage") or usage
            timings = llamacpp_timings(chunk) or timings
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") or ""
                finish = choice.get("finish_reason") or finish
                if piece:
                    text += piece
                    first_ms = first_ms if first_ms is not None else (time.perf_counter() - started) * 1000
                    on_text(text)
        if not done and not finish:
            raise TransientLLMError(ConnectionError("the answer stream ended before the server finished it"))
        return LLMReply(
            content=text,
            model=model,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            done_reason=finish,
            first_text_ms=first_ms,
            timings=timings,
            cached_tokens=cached_of(usage),
        )

    def _get(self, path: str) -> Any:
        try:
            response = self._http.get(path)
        except httpx.TransportError as exc:
            logger.info(
                "LLM server not reachable", extra={"host": redact_urls(self.host), "path": path, "error": str(exc)}
            )
            return None
        if response.status_code != 200:
            return None
        try:
            return response.json()
        except ValueError:
            return None

    def _ask_context_length(self) -> int | None:
        props = self._get("/props")
        if isinstance(props, dict):
            settings = props.get("default_generation_settings") or {}
            for value in (settings.get("n_ctx"), props.get("n_ctx")):
                if isinstance(value, int) and value > 0:
                    return value
        models = self._get("/v1/models")
        for entry in (models or {}).get("data", []) if isinstance(models, dict) else []:
            if entry.get("id") not in (self._model, None) and len(models["data"]) > 1:
                continue
            meta = entry.get("meta") or {}
            for value in (entry.get("max_model_len"), meta.get("n_ctx"), meta.get("n_ctx_train")):
                if isinstance(value, int) and value > 0:
                    return value
        return None

    def count_tokens(self, text: str) -> int | None:
        """llama.cpp's `POST /tokenize`; None (and not asked again) when the server has no such endpoint."""
        if self._tokenizer is False:
            return None
        try:
            response = self._http.post("/tokenize", json={"content": text})
        except httpx.TransportError:
            return None
        if response.status_code in (404, 405, 501):
            self._tokenizer = False
            return None
        try:
            tokens = response.json()["tokens"] if response.status_code == 200 else None
        except (ValueError, KeyError, TypeError):
            tokens = None
        if not isinstance(tokens, list):
            return None
        self._tokenizer = True
        return len(tokens)

    def reachable(self) -> bool:
        try:
            self._http.get("/v1/models")
        except httpx.TransportError:
            return False
        return True  # any answer, even an error status, is a server that is there

    def available(self) -> bool:
        if self.breaker.state is BreakerState.OPEN:
            return False
        models = self._get("/v1/models")
        if not isinstance(models, dict):
            return False
        ids = [str(m.get("id")) for m in models.get("data", []) if isinstance(m, dict)]
        return self._model in ids or len(ids) == 1  # a llama.cpp server serves its one model under any name


def _json(response: httpx.Response, host: str) -> Mapping[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise LLMUnavailable(f"the server at {host} sent an answer that is not a chat reply (not JSON)") from exc
    if not isinstance(data, dict):
        raise LLMUnavailable(f"the server at {host} sent an answer that is not a chat reply")
    return data


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return response.text[:200]
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error or response.text)[:300]
