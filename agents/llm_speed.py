"""How fast a model server reads prompts and writes answers, learnt from what it reports on each answer.

`ServerTimings` is one answer's report: Ollama's `prompt_eval_count` / `prompt_eval_duration` /
`eval_count` / `eval_duration` (and `prompt_eval_cached_count` when it says), llama.cpp's `timings`
(`prompt_n`, `prompt_ms`, `cache_n`, `predicted_n`, `predicted_ms`) or OpenAI's
`usage.prompt_tokens_details.cached_tokens`; a server that reports no durations (vLLM, LM Studio) is timed
by the client from a streamed answer (the first words, then the rest), which counts the network and the
answer's JSON lead as reading, so it errs slow.

`Speeds` is the running estimate for one (server, model): an exponentially weighted mean of reading and
writing tokens/s (the latest answer weighs `WEIGHT`, so a machine that gets busier is followed within a few
answers), and how many prompt tokens the server last said it had cached. `SpeedBook` keeps one per
(server, model), in memory and, when given a path, in a small JSON file in the home: a CLI command is one
process per question, so an estimate kept only in memory would never be used there; the file is rewritten
whole (atomically) after each answer, the last writer winning, which is fine for an estimate.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

WEIGHT = 0.4  # of the latest answer in the running means
MIN_READ_TOKENS = 32  # fewer tokens read than this time the server's fixed costs more than its speed
MIN_WRITTEN_TOKENS = 16


@dataclass(frozen=True)
class LatencyTargets:
    """Seconds a person should wait: to the first words and to the whole answer, from sending the prompt;
    0 turns a target off."""

    first_words_s: float = 5.0
    answer_s: float = 20.0


@dataclass(frozen=True)
class ServerTimings:
    """What one answer cost, as the server reported it (or as the client timed it: `measured_by`)."""

    read_tokens: int  # prompt tokens the server read (the cached ones not included)
    read_ms: float | None  # None: not reported
    written_tokens: int
    write_ms: float | None
    cached_tokens: int | None = None  # prompt tokens taken from the server's cache; None: it did not say
    measured_by: str = "server"  # or "client"

    @property
    def read_tps(self) -> float | None:
        if self.read_ms is None or self.read_ms <= 0 or self.read_tokens < MIN_READ_TOKENS:
            return None
        return self.read_tokens / (self.read_ms / 1000)

    @property
    def write_tps(self) -> float | None:
        if self.write_ms is None or self.write_ms <= 0 or self.written_tokens < MIN_WRITTEN_TOKENS:
            return None
        return self.written_tokens / (self.write_ms / 1000)


@dataclass(frozen=True)
class Speeds:
    """The running estimate for one (server, model); None: not measured yet."""

    read_tps: float | None = None
    write_tps: float | None = None
    cached_tokens: int = 0  # prompt tokens the server said it had cached on the latest answer
    answers: int = 0
    measured_by: str = ""

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "read_tps": None if self.read_tps is None else round(self.read_tps, 1),
            "write_tps": None if self.write_tps is None else round(self.write_tps, 1),
            "cached_tokens": self.cached_tokens,
            "answers": self.answers,
            "measured_by": self.measured_by,
        }


def _mean(old: float | None, new: float | None, weight: float) -> float | None:
    if new is None:
        return old
    return new if old is None else (1 - weight) * old + weight * new


def observe(old: Speeds, seen: ServerTimings, weight: float = WEIGHT) -> Speeds:
    """The estimate after one more answer (a reading or writing too short to time leaves its mean as it was)."""
    return Speeds(
        read_tps=_mean(old.read_tps, seen.read_tps, weight),
        write_tps=_mean(old.write_tps, seen.write_tps, weight),
        cached_tokens=seen.cached_tokens or 0,
        answers=old.answers + 1,
        measured_by=seen.measured_by,
    )


def client_timed(
    read_tokens: int, written_tokens: int, first_text_ms: float | None, total_ms: float, cached: int | None = None
) -> ServerTimings | None:
    """Timings from the client's clock, for a server that reports none: reading until the first text of a
    streamed answer, writing the rest. None without a streamed first text."""
    if first_text_ms is None or total_ms <= first_text_ms:
        return None
    return ServerTimings(read_tokens, first_text_ms, written_tokens, total_ms - first_text_ms, cached, "client")


def ollama_timings(
    prompt_count: int | None,
    prompt_ns: int | None,
    eval_count: int | None,
    eval_ns: int | None,
    cached: int | None = None,
) -> ServerTimings | None:
    """An Ollama answer's timings. `prompt_eval_count` counts the cached tokens too when the server says how
    many it took from its cache (`prompt_eval_cached_count`, which also means newer semantics); older
    servers count only the tokens they read. None without durations."""
    if prompt_ns is None and eval_ns is None:
        return None
    read = max(0, (prompt_count or 0) - (cached or 0))
    return ServerTimings(
        read,
        None if prompt_ns is None else prompt_ns / 1e6,
        eval_count or 0,
        None if eval_ns is None else eval_ns / 1e6,
        cached,
    )


def llamacpp_timings(data: Mapping[str, Any]) -> ServerTimings | None:
    """llama.cpp's `timings` object of an OpenAI-style answer (or its last streamed chunk); None without it."""
    t = data.get("timings")
    if not isinstance(t, Mapping):
        return None

    def number(key: str) -> float | None:
        value = t.get(key)
        return float(value) if isinstance(value, int | float) else None

    cached = number("cache_n")
    return ServerTimings(
        int(number("prompt_n") or 0),
        number("prompt_ms"),
        int(number("predicted_n") or 0),
        number("predicted_ms"),
        None if cached is None else int(cached),
    )


def cached_of(usage: Mapping[str, Any]) -> int | None:
    """OpenAI's `usage.prompt_tokens_details.cached_tokens` (vLLM, newer llama.cpp); None when not said."""
    details = usage.get("prompt_tokens_details")
    value = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return int(value) if isinstance(value, int) else None


class SpeedBook:
    """`Speeds` per (server, model), in memory, and in `path` (JSON) when one is given. Read on first use."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._speeds: dict[str, Speeds] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _key(server: str, model: str) -> str:
        return f"{server} {model}"

    def _load(self) -> dict[str, Speeds]:
        if self._speeds is None:
            self._speeds = {}
            if self.path is not None and self.path.exists():
                try:
                    raw = json.loads(self.path.read_text())
                    self._speeds = {k: Speeds(**v) for k, v in raw.items() if isinstance(v, dict)}
                except (OSError, ValueError, TypeError) as exc:  # a damaged file: start again, say so
                    logger.warning("LLM speed file unreadable", extra={"path": str(self.path), "error": str(exc)})
        return self._speeds

    def get(self, server: str, model: str) -> Speeds:
        with self._lock:
            return self._load().get(self._key(server, model), Speeds())

    def record(self, server: str, model: str, seen: ServerTimings) -> Speeds:
        with self._lock:
            speeds = self._load()
            key = self._key(server, model)
            speeds[key] = observe(speeds.get(key, Speeds()), seen)
            self._save(speeds)
            return speeds[key]

    def _save(self, speeds: dict[str, Speeds]) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.part")
            partial.write_text(json.dumps({k: asdict(v) for k, v in speeds.items()}, indent=1))
            os.replace(partial, self.path)
        except OSError as exc:  # the estimate still works in memory
            logger.warning("LLM speed file not written", extra={"path": str(self.path), "error": str(exc)})


__all__ = [
    "LatencyTargets",
    "ServerTimings",
    "SpeedBook",
    "Speeds",
    "cached_of",
    "client_timed",
    "llamacpp_timings",
    "observe",
    "ollama_timings",
]
