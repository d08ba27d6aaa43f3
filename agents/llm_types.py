"""The language-model interface the agents use (`LLMClient`) and the values it passes: messages, replies,
the prompt's token budget. `agents.llm` holds the clients; this module holds no behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from agents.llm_speed import LatencyTargets, ServerTimings, Speeds

TEMPLATE_MARGIN = 48  # chat-template tokens around the messages, and rounding


@dataclass(frozen=True)
class PromptBudget:
    """Tokens for the prompt: the context less the answer's share (and a margin), capped for speed."""

    context_tokens: int = 4096
    answer_tokens: int = 400
    max_prompt_tokens: int | None = 1500

    @property
    def prompt_tokens(self) -> int:
        room = self.context_tokens - self.answer_tokens - TEMPLATE_MARGIN
        return max(0, min(room, self.max_prompt_tokens) if self.max_prompt_tokens else room)


TextSink = Callable[[str], None]
"""Called with the answer written so far (the whole text each time; it starts again after a retry)."""


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
    first_text_ms: float | None = None
    timings: ServerTimings | None = None  # as the server reported them (None: it did not)
    cached_tokens: int | None = None  # prompt tokens the server took from its cache (None: it did not say)

    @property
    def truncated(self) -> bool:
        """The model stopped at the token limit, so the answer is cut (Ollama and OpenAI both say "length")."""
        return self.done_reason == "length"


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
        max_tokens: int | None = None,
        on_text: TextSink | None = None,
    ) -> LLMReply:
        """The model's answer; raises LLMUnavailable when it cannot be had."""
        ...

    def available(self) -> bool:
        """Whether the model can be called now (server reachable, model present, breaker closed)."""
        ...

    def context_length(self) -> int:
        """Tokens of context the model runs with (asked from the server once; the configured value otherwise)."""
        ...

    def count_tokens(self, text: str) -> int | None:
        """`text` in the model's own tokens, or None when the server has no tokenizer endpoint."""
        ...

    def prompt_budget(self) -> PromptBudget:
        """How many tokens a prompt and its answer may take with this model (context asked from the server)."""
        ...

    def speeds(self) -> Speeds:
        """The server's reading and writing speeds, as measured on the answers so far."""
        ...

    def latency_targets(self) -> LatencyTargets:
        """The seconds a person should wait for first words and for the answer."""
        ...
