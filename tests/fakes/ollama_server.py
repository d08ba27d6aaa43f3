"""An Ollama-compatible HTTP server on 127.0.0.1 for tests, speaking the real /api JSON.

Endpoints: `POST /api/chat` and `POST /api/generate` (stream false, or NDJSON chunks when stream is
true or absent, as Ollama does), `POST /api/embed`, `POST /api/show` (the context length in
`model_info`), `GET /api/tags`, `GET /api/version`, `GET /`. The same fake speaks the OpenAI-compatible
API of llama.cpp's server too (`tests.fakes.openai_routes`: `/v1/chat/completions`, `/v1/models`,
`/props`, `/tokenize`), from the same script, so one suite tests both clients.
Replies to chat/generate come from a script (`FakeOllama.script(...)`), else from `responder(body)`,
else `default_content`. Scripted failure modes: HTTP errors with Ollama's `{"error": ...}` body,
replies delayed beyond a client's timeout, bodies that are not JSON, content that is not valid JSON
(just script it). Unknown models get Ollama's 404. Every request is recorded (bounded); bodies over
`max_body_bytes` get 413.

    with FakeOllama(models=["llama3.1:8b"]) as server:
        server.script(Scripted.failure(500), Scripted.reply('{"summary": "..."}'))
        OllamaLLM(server.url, "llama3.1:8b").chat(...)
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.loopback import LoopbackFake
from tests.fakes.openai_routes import OpenAIRoutes

EMBED_DIM = 8


@dataclass(frozen=True)
class Scripted:
    """One reply to one chat/generate request."""

    content: str = ""
    status: int = 200
    error: str = ""
    delay_s: float = 0.0
    raw_body: bytes | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    done_reason: str = "stop"
    cut_after: int | None = None  # streamed: the connection drops after this many characters, unfinished
    prompt_eval_ms: float = 500.0  # the timings the server reports (Ollama's durations, llama.cpp's `timings`)
    eval_ms: float = 1500.0
    cached_count: int | None = None  # prompt tokens taken from the cache; None: not reported

    @classmethod
    def reply(cls, content: str, **kw: Any) -> Scripted:
        return cls(content=content, **kw)

    @classmethod
    def failure(cls, status: int = 500, error: str = "llama runner process has terminated") -> Scripted:
        return cls(status=status, error=error)

    @classmethod
    def slow(cls, delay_s: float, content: str = "{}") -> Scripted:
        return cls(content=content, delay_s=delay_s)

    @classmethod
    def cut(cls, content: str, after: int) -> Scripted:
        """A streamed answer whose server dies after `after` characters (non-streamed: before any)."""
        return cls(content=content, cut_after=after)

    @classmethod
    def not_json(cls) -> Scripted:
        return cls(raw_body=b"<html>502 Bad Gateway</html>")


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeOllama(LoopbackFake):
    thread_name = "fake-ollama"

    def __init__(
        self,
        *,
        models: Sequence[str] = ("llama3.1:8b",),
        default_content: str = "{}",
        responder: Callable[[dict[str, Any]], str] | None = None,
        version: str = "0.12.6",
        context_length: int = 8192,
        tokenizer: bool = True,
        max_requests: int = 1000,
        max_body_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.models = list(models)
        self.default_content = default_content
        self.responder = responder
        self.version = version
        self.context_length = context_length
        self.tokenizer = tokenizer
        self.max_body_bytes = max_body_bytes
        self._script: deque[Scripted] = deque(maxlen=max_requests)
        self._requests: deque[Recorded] = deque(maxlen=max_requests)
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        super().__init__()

    # -- life cycle ---------------------------------------------------------------------------------

    def _make_server(self) -> _Server:
        return _Server(self)

    def stop(self) -> None:
        self.stopping.set()
        super().stop()

    # -- scripting and inspection -------------------------------------------------------------------

    def script(self, *replies: Scripted) -> None:
        with self._lock:
            if len(self._script) + len(replies) > (self._script.maxlen or 0):
                raise ValueError("too many scripted replies")
            self._script.extend(replies)

    def next_reply(self, body: dict[str, Any]) -> Scripted:
        with self._lock:
            if self._script:
                return self._script.popleft()
        return Scripted(content=self.responder(body) if self.responder else self.default_content)

    def record(self, entry: Recorded) -> None:
        with self._lock:
            self._requests.append(entry)

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def has_model(self, name: str) -> bool:
        def canon(n: str) -> str:
            return n if ":" in n else n + ":latest"

        return canon(name) in {canon(m) for m in self.models}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeOllama) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up while a slow reply was pending: expected, stay quiet.
        pass


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _vector(text: str) -> list[float]:
    return [b / 255 - 0.5 for b in hashlib.sha256(text.encode()).digest()[:EMBED_DIM]]


class _Handler(OpenAIRoutes, BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def fake(self) -> FakeOllama:
        return self.server.fake

    # -- plumbing -----------------------------------------------------------------------------------

    def _send_json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_raw(self, status: int, data: bytes, content_type: str = "text/html") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, chunks: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Connection", "close")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(json.dumps(chunk).encode() + b"\n")
            self.wfile.flush()
        self.close_connection = True

    def _read_body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.fake.max_body_bytes:
            self.close_connection = True
            self._send_json(413, {"error": "request body too large"})
            return None
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self.fake.record(Recorded("POST", self.path, raw.decode("utf-8", "replace"), dict(self.headers)))
            self._send_json(400, {"error": "invalid character in request body"})
            return None
        self.fake.record(Recorded("POST", self.path, body, dict(self.headers)))
        if not isinstance(body, dict):
            self._send_json(400, {"error": "request body must be a JSON object"})
            return None
        return body

    # -- routes ---------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self.fake.record(Recorded("GET", self.path, None, dict(self.headers)))
        if self.openai_get():
            return
        if self.path == "/":
            self._send_raw(200, b"Ollama is running", "text/plain; charset=utf-8")
        elif self.path == "/api/version":
            self._send_json(200, {"version": self.fake.version})
        elif self.path == "/api/tags":
            self._send_json(200, {"models": [self._model_entry(m) for m in self.fake.models]})
        else:
            self._send_raw(404, b"404 page not found", "text/plain")

    def do_POST(self) -> None:
        routes = {
            "/api/chat": self._generate,
            "/api/generate": self._generate,
            "/api/embed": self._embed,
            "/api/show": self._show,
            **self.openai_posts(),
        }
        handler = routes.get(self.path)
        if handler is None:
            self._read_body()
            self._send_raw(404, b"404 page not found", "text/plain")
            return
        body = self._read_body()
        if body is None:
            return
        model = body.get("model")
        if self.path in self.openai_unchecked:
            handler(body)
        elif not model:
            self._send_json(400, {"error": "model is required"})
        elif not self.fake.has_model(str(model)):
            self._send_json(404, {"error": f'model "{model}" not found, try pulling it first'})
        else:
            handler(body)

    def _model_entry(self, name: str) -> dict[str, Any]:
        digest = hashlib.sha256(name.encode()).hexdigest()
        return {
            "name": name,
            "model": name,
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 4_920_753_328,
            "digest": digest,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "8.0B",
                "quantization_level": "Q4_K_M",
            },
        }

    def _show(self, body: dict[str, Any]) -> None:
        info = {"general.architecture": "llama", "llama.context_length": self.fake.context_length}
        self._send_json(200, {"modelfile": "", "template": "", "details": {"format": "gguf"}, "model_info": info})

    def _embed(self, body: dict[str, Any]) -> None:
        inputs = body.get("input", "")
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        self._send_json(
            200,
            {
                "model": body["model"],
                "embeddings": [_vector(str(t)) for t in texts],
                "total_duration": 1_000_000,
                "load_duration": 10_000,
                "prompt_eval_count": sum(len(str(t).split()) for t in texts),
            },
        )

    def _generate(self, body: dict[str, Any]) -> None:
        reply = self.fake.next_reply(body)
        if reply.delay_s and self.fake.stopping.wait(reply.delay_s):
            return
        if reply.raw_body is not None:
            self._send_raw(reply.status, reply.raw_body)
            return
        if reply.status >= 400:
            self._send_json(reply.status, {"error": reply.error or "error"})
            return
        chat = self.path == "/api/chat"
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) if chat else 0
        prompt_chars += len(str(body.get("prompt", ""))) + len(str(body.get("system", "")))
        final = {
            "model": body["model"],
            "created_at": _now(),
            "done": True,
            "done_reason": reply.done_reason,
            "total_duration": 2_000_000_000,
            "load_duration": 5_000_000,
            "prompt_eval_count": reply.prompt_eval_count if reply.prompt_eval_count is not None else prompt_chars // 4,
            "prompt_eval_duration": int(reply.prompt_eval_ms * 1e6),
            "eval_count": reply.eval_count if reply.eval_count is not None else max(1, len(reply.content) // 4),
            "eval_duration": int(reply.eval_ms * 1e6),
        }
        if reply.cached_count is not None:
            final["prompt_eval_cached_count"] = reply.cached_count

        def piece(text: str) -> dict[str, Any]:
            return {"message": {"role": "assistant", "content": text}} if chat else {"response": text}

        if body.get("stream", True) is False:
            if reply.cut_after is not None:
                self.close_connection = True  # the server died before answering
                return
            self._send_json(200, {**final, **piece(reply.content)})
            return
        step = 8
        chunks = [
            {"model": body["model"], "created_at": _now(), **piece(reply.content[i : i + step]), "done": False}
            for i in range(0, len(reply.content), step)
        ]
        if reply.cut_after is not None:
            self._send_stream(chunks[: reply.cut_after // step])  # the server died mid-answer
            return
        self._send_stream([*chunks, {**final, **piece("")}])
