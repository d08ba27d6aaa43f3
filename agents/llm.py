"""The language-model clients: one protocol, the retry and breaker logic they share, and Ollama's.

`LLMClient` is what the agents use: `chat` (a JSON schema as structured output, an answer-length cap,
optionally the answer as it is written through `on_text`), `context_length` (what the server says, or
the configured fallback) and `count_tokens` (the model's own tokenizer when the server offers one).
`RetryingLLM` retries transient failures (refused or dropped connections, timeouts, HTTP 5xx and 429)
with exponential backoff and counts failed calls in a `CircuitBreaker`. Every failure reaches the
caller as `core.errors.LLMUnavailable`, which the explainer answers with an evidence-only explanation.

`OllamaLLM` speaks Ollama's `/api/chat` through the `ollama` client (context length from `/api/show`,
sent back as `options.num_ctx`); `agents.llm_openai.OpenAICompatLLM` speaks `/v1/chat/completions`.
Each answer's timings (`agents.llm_speed`) go into the client's `SpeedBook`, for the explainer's latency budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx
import ollama

from agents.llm_speed import LatencyTargets, SpeedBook, Speeds, client_timed, ollama_timings
from agents.llm_types import TEMPLATE_MARGIN, ChatMessage, LLMClient, LLMReply, PromptBudget, TextSink
from core.breaker import BreakerState, CircuitBreaker
from core.errors import LLMUnavailable
from core.redaction import redact_urls

__all__ = [
    "BreakerState",
    "ChatMessage",
    "CircuitBreaker",
    "LLMClient",
    "LLMReply",
    "OllamaLLM",
    "PromptBudget",
    "RetryingLLM",
    "TEMPLATE_MARGIN",
    "TextSink",
    "TransientLLMError",
]

logger = logging.getLogger(__name__)

DEFAULT_OPTIONS: dict[str, Any] = {"temperature": 0.0}
DEFAULT_CONTEXT_TOKENS = 4096
# Worth retrying: refused or dropped connections, timeouts (the ollama client turns httpx.ConnectError
# into ConnectionError and lets other httpx transport errors through).
_TRANSIENT_ERRORS: tuple[type[Exception], ...] = (ConnectionError, httpx.TransportError)


class TransientLLMError(Exception):
    """One attempt failed in a way worth retrying; `cause` says how."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class RetryingLLM:
    """Breaker, retries and backoff around one attempt (`_attempt`, written by each backend)."""

    kind = "LLM server"

    def __init__(
        self,
        host: str,
        model: str,
        *,
        timeout_s: float = 120.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        breaker: CircuitBreaker | None = None,
        options: Mapping[str, Any] | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        answer_tokens: int = 400,
        prompt_tokens: int | None = 1500,
        targets: LatencyTargets | None = None,
        speed_book: SpeedBook | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host = host
        self._model = model
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.breaker = breaker or CircuitBreaker()
        self.options = dict(DEFAULT_OPTIONS if options is None else options)
        self.context_tokens = context_tokens
        self.answer_tokens = answer_tokens
        self.prompt_tokens = prompt_tokens
        self.targets = targets or LatencyTargets()
        self.speed_book = speed_book or SpeedBook()
        self._sleep = sleep
        self._context: int | None = None

    @property
    def model(self) -> str:
        return self._model

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        schema: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
        on_text: TextSink | None = None,
    ) -> LLMReply:
        if not self.breaker.allow():
            raise LLMUnavailable(
                f"{self.kind} at {self.host} failed {self.breaker.failure_threshold} times in a row; not calling it "
                f"for another {self.breaker.retry_in_s():.0f} s (circuit breaker open)",
                details={"breaker": "open"},
            )
        payload = [{"role": m.role, "content": m.content} for m in messages]
        opts = {**self.options, **(options or {})}
        try:
            reply = self._call(payload, dict(schema) if schema else None, opts, max_tokens, on_text)
        except BaseException:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        seen = reply.timings
        if seen is None and reply.attempts == 1:  # no durations from the server: timed here, from the stream
            read = reply.prompt_tokens - (reply.cached_tokens or 0)
            seen = client_timed(
                read, reply.completion_tokens, reply.first_text_ms, reply.duration_ms, reply.cached_tokens
            )
        if seen is not None:
            self.speed_book.record(self.host, self._model, seen)
        return reply

    def _call(
        self,
        payload: list[dict[str, str]],
        schema: dict[str, Any] | None,
        opts: dict[str, Any],
        max_tokens: int | None,
        on_text: TextSink | None,
    ) -> LLMReply:
        started = time.perf_counter()
        last: Exception | None = None
        for attempt in range(1, self.retries + 2):
            try:
                reply = self._attempt(payload, schema, opts, max_tokens, on_text, started)
            except TransientLLMError as exc:
                last = exc.cause
            else:
                duration = (time.perf_counter() - started) * 1000
                return replace(reply, duration_ms=duration, attempts=attempt)
            logger.warning(
                "LLM call failed",
                extra={
                    "host": redact_urls(self.host),
                    "model": self._model,
                    "attempt": attempt,
                    "error": describe(last),
                },
            )
            if attempt <= self.retries:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
        raise LLMUnavailable(
            f"cannot get an answer from the {self.kind} at {self.host} with {self._model!r} after "
            f"{self.retries + 1} attempt(s) ({describe(last)}); start the server, check its address "
            "(OLLAMA_HOST or DEVMESH_LLM_URL), or use the evidence-only explanation",
            details={"attempts": self.retries + 1},
        ) from last

    def _attempt(
        self,
        payload: list[dict[str, str]],
        schema: dict[str, Any] | None,
        opts: dict[str, Any],
        max_tokens: int | None,
        on_text: TextSink | None,
        started: float,
    ) -> LLMReply:
        raise NotImplementedError

    def context_length(self) -> int:
        if self._context is None:
            found = self._ask_context_length()
            if not found:  # not cached: the server may be back, or reachable, next time
                return self.context_tokens
            self._context = min(found, self.context_tokens)
        return self._context

    def _ask_context_length(self) -> int | None:
        return None

    def prompt_budget(self) -> PromptBudget:
        return PromptBudget(self.context_length(), self.answer_tokens, self.prompt_tokens)

    def speeds(self) -> Speeds:
        return self.speed_book.get(self.host, self._model)

    def latency_targets(self) -> LatencyTargets:
        return self.targets

    def available(self) -> bool:
        raise NotImplementedError

    def reachable(self) -> bool:
        """Whether the server answers at all, whatever the breaker and the model list say (what the supervisor
        probes: a missing model is not an outage). The backends override this."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connections (the backends override this)."""

    def count_tokens(self, text: str) -> int | None:
        return None


class OllamaLLM(RetryingLLM):
    """An Ollama model through the `ollama` client (`/api/chat`), with retries and a circuit breaker."""

    kind = "Ollama server"

    def __init__(self, host: str | None, model: str, **kw: Any) -> None:
        super().__init__(host or "http://127.0.0.1:11434", model, **kw)
        self._client = ollama.Client(host=self.host, timeout=self.timeout_s)

    def close(self) -> None:
        self._client.close()

    def _attempt(
        self,
        payload: list[dict[str, str]],
        schema: dict[str, Any] | None,
        opts: dict[str, Any],
        max_tokens: int | None,
        on_text: TextSink | None,
        started: float,
    ) -> LLMReply:
        opts = {"num_ctx": self.context_length(), **opts}
        text = ""  # else Ollama runs its default, cutting prompts silently
        if max_tokens is not None:
            opts["num_predict"] = max_tokens
        try:
            # the client's own request (its chat() parses into a model that drops the cached-token count)
            body: dict[str, Any] = {"model": self._model, "messages": payload, "options": opts}
            body.update({"format": schema} if schema is not None else {})
            if on_text is None:
                body["stream"] = False
                response = self._client._request(_ChatReply, "POST", "/api/chat", json=body, stream=False)
                return self._reply(response.message.content or "", response, None)
            first_ms, last_chunk = None, None
            body["stream"] = True
            for chunk in self._client._request(_ChatReply, "POST", "/api/chat", json=body, stream=True):
                piece = chunk.message.content or ""
                if piece:
                    text += piece
                    first_ms = first_ms if first_ms is not None else (time.perf_counter() - started) * 1000
                    on_text(text)
                last_chunk = chunk
            if last_chunk is None or not last_chunk.done:
                raise TransientLLMError(ConnectionError("the answer stream ended before Ollama said it was done"))
            return self._reply(text, last_chunk, first_ms)
        except _TRANSIENT_ERRORS as exc:
            raise TransientLLMError(exc) from exc
        except ollama.ResponseError as exc:
            if exc.status_code < 500 and exc.status_code not in (408, 429):
                raise LLMUnavailable(self._refused(exc), details={"status": exc.status_code}) from exc
            raise TransientLLMError(exc) from exc
        except ValueError as exc:  # a body that is not JSON, or JSON that is not a chat response
            if on_text is not None and text:  # a line cut off: the server went away mid-answer
                raise TransientLLMError(ConnectionError(f"the answer stream broke off: {exc}")) from exc
            raise LLMUnavailable(f"Ollama at {self.host} sent an answer that is not a chat reply: {exc}") from exc

    def _reply(self, content: str, response: _ChatReply, first_ms: float | None) -> LLMReply:
        r = response
        return LLMReply(
            content=content,
            model=r.model or self._model,
            prompt_tokens=r.prompt_eval_count or 0,
            completion_tokens=r.eval_count or 0,
            done_reason=r.done_reason or "",
            first_text_ms=first_ms,
            timings=ollama_timings(
                r.prompt_eval_count, r.prompt_eval_duration, r.eval_count, r.eval_duration, r.prompt_eval_cached_count
            ),
            cached_tokens=r.prompt_eval_cached_count,
        )

    def _ask_context_length(self) -> int | None:
        """`/api/show`'s `model_info["<architecture>.context_length"]`: what the model was trained for."""
        try:
            shown = self._client.show(self._model)
        except (ollama.ResponseError, ValueError, ConnectionError, httpx.TransportError) as exc:
            logger.info("no context length from Ollama", extra={"host": redact_urls(self.host), "error": str(exc)})
            return None
        info = shown.modelinfo or {}
        found = [int(v) for k, v in info.items() if k.endswith(".context_length") and isinstance(v, int | float)]
        return found[0] if found else None

    def available(self) -> bool:
        if self.breaker.state is BreakerState.OPEN:
            return False
        listed = self._list()
        if listed is None:
            return False
        names = {m.model for m in listed.models if m.model}
        return _canonical(self._model) in {_canonical(n) for n in names}

    def reachable(self) -> bool:
        return self._list() is not None

    def _list(self) -> ollama.ListResponse | None:
        try:
            return self._client.list()
        except (ollama.ResponseError, ValueError, ConnectionError, httpx.TransportError) as exc:
            logger.info("Ollama not available", extra={"host": redact_urls(self.host), "error": str(exc)})
            return None

    def _refused(self, exc: ollama.ResponseError) -> str:
        text = f"Ollama at {self.host} refused {self._model!r} (HTTP {exc.status_code}: {exc.error})"
        if exc.status_code == 404:
            text += f"; run `ollama pull {self._model}` or set DEVMESH_LLM_MODEL"
        return text


class _ChatReply(ollama.ChatResponse):
    """Ollama's chat response with the prompt tokens it took from its cache (newer servers say; the
    client's own model drops the field)."""

    prompt_eval_cached_count: int | None = None


def _canonical(name: str) -> str:
    return name if ":" in name else name + ":latest"


def describe(exc: BaseException | None) -> str:
    """A failure in a few words, for messages and logs."""
    if exc is None:
        return "no attempt made"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out: {type(exc).__name__}"
    if isinstance(exc, ollama.ResponseError):
        return f"HTTP {exc.status_code}: {exc.error}"
    return f"{type(exc).__name__}: {exc}"
