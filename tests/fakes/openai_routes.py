"""The OpenAI-compatible half of the LLM fake, as llama.cpp's server speaks it (a mix-in of its handler).

`POST /v1/chat/completions` (JSON, or server-sent events with `stream: true`, the usage in a last chunk when
`stream_options.include_usage`), `GET /v1/models` (with llama.cpp's `meta.n_ctx`), `GET /props`
(`default_generation_settings.n_ctx`), `POST /tokenize` (one token per 4 characters; 404 when the fake is made
with `tokenizer=False`, as vLLM or LM Studio would answer); answers carry llama.cpp's `timings`. Replies come
from the same script as the Ollama routes (`tests.fakes.ollama_server.Scripted`); errors use OpenAI's
`{"error": {...}}` body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

STEP = 8


class OpenAIRoutes:
    """Mixed into the fake's request handler, which provides `fake`, `_send_json`, `_send_raw`, `path`."""

    openai_unchecked = frozenset({"/tokenize"})  # llama.cpp does not ask which model

    fake: Any
    path: str
    wfile: Any
    close_connection: bool
    _send_json: Callable[..., None]
    _send_raw: Callable[..., None]
    send_response: Callable[..., None]
    send_header: Callable[..., None]
    end_headers: Callable[[], None]

    def openai_get(self) -> bool:
        if self.path == "/v1/models":
            n_ctx = self.fake.context_length
            data = [
                {"id": m, "object": "model", "owned_by": "fake", "meta": {"n_ctx": n_ctx}} for m in self.fake.models
            ]
            self._send_json(200, {"object": "list", "data": data})
        elif self.path == "/props":
            self._send_json(200, {"default_generation_settings": {"n_ctx": self.fake.context_length}, "total_slots": 1})
        else:
            return False
        return True

    def openai_posts(self) -> dict[str, Callable[[dict[str, Any]], None]]:
        return {"/v1/chat/completions": self._completions, "/tokenize": self._tokenize}

    def _tokenize(self, body: dict[str, Any]) -> None:
        if not self.fake.tokenizer:
            self._send_raw(404, b"404 page not found", "text/plain")
            return
        text = str(body.get("content", ""))
        self._send_json(200, {"tokens": list(range((len(text) + 3) // 4))})

    def _openai_error(self, status: int, message: str) -> None:
        kind = "not_found_error" if status == 404 else "server_error"
        self._send_json(status, {"error": {"code": status, "message": message, "type": kind}})

    def _completions(self, body: dict[str, Any]) -> None:
        reply = self.fake.next_reply(body)
        if reply.delay_s and self.fake.stopping.wait(reply.delay_s):
            return
        if reply.raw_body is not None:
            self._send_raw(reply.status, reply.raw_body)
            return
        if reply.status >= 400:
            self._openai_error(reply.status, reply.error or "error")
            return
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        usage = {
            "prompt_tokens": reply.prompt_eval_count if reply.prompt_eval_count is not None else prompt_chars // 4,
            "completion_tokens": reply.eval_count if reply.eval_count is not None else max(1, len(reply.content) // 4),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        cached = reply.cached_count or 0
        timings = {  # llama.cpp's: the tokens read (the cached ones apart) and the milliseconds
            "cache_n": cached,
            "prompt_n": usage["prompt_tokens"] - cached,
            "prompt_ms": reply.prompt_eval_ms,
            "predicted_n": usage["completion_tokens"],
            "predicted_ms": reply.eval_ms,
        }
        head = {"id": "chatcmpl-fake", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            if reply.cut_after is not None:
                self.close_connection = True
                return
            message = {"role": "assistant", "content": reply.content}
            choice = {"index": 0, "message": message, "finish_reason": reply.done_reason}
            body_out = {**head, "object": "chat.completion", "choices": [choice], "usage": usage, "timings": timings}
            self._send_json(200, body_out)
            return
        chunks = [
            {
                **head,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": reply.content[i : i + STEP]}, "finish_reason": None}],
            }
            for i in range(0, len(reply.content), STEP)
        ]
        if reply.cut_after is not None:
            self._send_events(chunks[: reply.cut_after // STEP], done=False)
            return
        last = {
            **head,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": reply.done_reason}],
        }
        tail = [last]
        if (body.get("stream_options") or {}).get("include_usage"):
            tail.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage, "timings": timings})
        self._send_events([*chunks, *tail], done=True)

    def _send_events(self, chunks: list[dict[str, Any]], *, done: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
        if done:
            self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True
