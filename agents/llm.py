"""The language-model client: a small protocol and its Ollama implementation.

`OllamaLLM.chat` sends one non-streaming `/api/chat` request (with a JSON schema as `format` when
structured output is wanted), retries transient failures (connection errors, timeouts, HTTP 5xx
and 429) with exponential backoff, and counts failed calls in a `CircuitBreaker`: after
`failure_threshold` failed calls in a row it stops calling for `cooldown_s`, then lets one trial
call through (half-open). Every failure reaches the caller as `core.errors.LLMUnavailable`, which
the explainer answers with an evidence-only explanation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

import httpx
import ollama

from core.errors import LLMUnavailable

logger = logging.getLogger(__name__)

DEFAULT_OPTIONS: dict[str, Any] = {"temperature": 0.0}
# Worth retrying: refused or dropped connections, timeouts (the ollama client turns httpx.ConnectError
# into ConnectionError and lets other httpx transport errors through).
_TRANSIENT_ERRORS: tuple[type[Exception], ...] = (ConnectionError, httpx.TransportError)


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class LLMReply:
    content: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_ms: float = 0.0
    attempts: int = 1
    done_reason: str = ""


class LLMClient(Protocol):
    """What the agents need from a language model."""

    @property
    def model(self) -> str: ...

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        schema: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> LLMReply:
        """The model's answer; raises LLMUnavailable when it cannot be had."""
        ...

    def available(self) -> bool:
        """Whether the model can be called now (server reachable, model present, breaker closed)."""
        ...


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failed calls; half-open after `cooldown_s`."""

    def __init__(
        self, failure_threshold: int = 3, cooldown_s: float = 30.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """True if a call may go out now (closed, or the one trial call of half-open)."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def retry_in_s(self) -> float:
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial_running or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._trial_running = False


class OllamaLLM:
    """An Ollama model through the `ollama` client (`/api/chat`), with retries and a circuit breaker."""

    def __init__(
        self,
        host: str | None,
        model: str,
        *,
        timeout_s: float = 120.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        breaker: CircuitBreaker | None = None,
        options: Mapping[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host = host or "http://127.0.0.1:11434"
        self._model = model
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.breaker = breaker or CircuitBreaker()
        self.options = dict(DEFAULT_OPTIONS if options is None else options)
        self._sleep = sleep
        self._client = ollama.Client(host=self.host, timeout=timeout_s)

    @property
    def model(self) -> str:
        return self._model

    def close(self) -> None:
        self._client.close()

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        schema: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> LLMReply:
        if not self.breaker.allow():
            raise LLMUnavailable(
                f"Ollama at {self.host} failed {self.breaker.failure_threshold} times in a row; not calling it "
                f"for another {self.breaker.retry_in_s():.0f} s (circuit breaker open)",
                details={"breaker": "open"},
            )
        payload = [{"role": m.role, "content": m.content} for m in messages]
        opts = {**self.options, **(options or {})}
        try:
            reply = self._call(payload, dict(schema) if schema else None, opts)
        except BaseException:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return reply

    def _call(self, payload: list[dict[str, str]], schema: dict[str, Any] | None, opts: dict[str, Any]) -> LLMReply:
        started = time.perf_counter()
        last: Exception | None = None
        for attempt in range(1, self.retries + 2):
            try:
                response = self._client.chat(model=self._model, messages=payload, format=schema, options=opts)
            except _TRANSIENT_ERRORS as exc:
                last = exc
            except ollama.ResponseError as exc:
                if exc.status_code < 500 and exc.status_code not in (408, 429):
                    raise LLMUnavailable(self._refused(exc), details={"status": exc.status_code}) from exc
                last = exc
            except ValueError as exc:  # a body that is not JSON, or JSON that is not a chat response
                raise LLMUnavailable(f"Ollama at {self.host} sent an answer that is not a chat reply: {exc}") from exc
            else:
                return LLMReply(
                    content=response.message.content or "",
                    model=response.model or self._model,
                    prompt_tokens=response.prompt_eval_count or 0,
                    completion_tokens=response.eval_count or 0,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    attempts=attempt,
                    done_reason=response.done_reason or "",
                )
            logger.warning(
                "LLM call failed",
                extra={"host": self.host, "model": self._model, "attempt": attempt, "error": _describe(last)},
            )
            if attempt <= self.retries:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
        raise LLMUnavailable(
            f"cannot get an answer from Ollama at {self.host} with {self._model!r} after {self.retries + 1} "
            f"attempt(s) ({_describe(last)}); start Ollama, check OLLAMA_HOST, or use the evidence-only explanation",
            details={"attempts": self.retries + 1},
        ) from last

    def available(self) -> bool:
        if self.breaker.state is BreakerState.OPEN:
            return False
        try:
            listed = self._client.list()
        except (ollama.ResponseError, ValueError, ConnectionError, httpx.TransportError) as exc:
            logger.info("Ollama not available", extra={"host": self.host, "error": str(exc)})
            return False
        names = {m.model for m in listed.models if m.model}
        return _canonical(self._model) in {_canonical(n) for n in names}

    def _refused(self, exc: ollama.ResponseError) -> str:
        text = f"Ollama at {self.host} refused {self._model!r} (HTTP {exc.status_code}: {exc.error})"
        if exc.status_code == 404:
            text += f"; run `ollama pull {self._model}` or set DEVMESH_LLM_MODEL"
        return text


def _canonical(name: str) -> str:
    return name if ":" in name else name + ":latest"


def _describe(exc: Exception | None) -> str:
    if exc is None:
        return "no attempt made"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out: {type(exc).__name__}"
    if isinstance(exc, ollama.ResponseError):
        return f"HTTP {exc.status_code}: {exc.error}"
    return f"{type(exc).__name__}: {exc}"
