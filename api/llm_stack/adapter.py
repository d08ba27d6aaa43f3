"""Ollama's API in front of an OpenAI-compatible server (llama.cpp's, which speaks only `/v1`).

`GET /`, `GET /api/version`, `GET /api/tags` (the one model, under the name given), `POST /api/show`
(`model_info["llama.context_length"]` from the server's `/props`), `POST /api/chat` (non-streamed JSON, or
NDJSON chunks when `stream` is true or absent, as Ollama does). A chat's `format` (a JSON schema, or
"json") becomes `response_format`, `options.num_predict` becomes `max_tokens`, the finish reason becomes
`done_reason`, the usage `prompt_eval_count` (cached tokens included) / `eval_count`, and llama.cpp's
`timings` `prompt_eval_duration` / `eval_duration` / `prompt_eval_cached_count` (as newer Ollama reports
them). Upstream errors keep their status with
Ollama's `{"error": ...}` body; an unreachable upstream is a 502.

    python -m api.llm_stack.adapter --listen 127.0.0.1:11434 --upstream http://127.0.0.1:11435 --name smollm2:135m
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

log = logging.getLogger(__name__)

VERSION = "0.12.6-devmesh-adapter"
_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "seed": "seed", "stop": "stop", "num_predict": "max_tokens"}


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """An Ollama `/api/chat` body as a `/v1/chat/completions` body."""
    out: dict[str, Any] = {
        "model": body.get("model", ""),
        "messages": [{"role": m.get("role"), "content": m.get("content", "")} for m in body.get("messages", [])],
        "stream": body.get("stream", True) is not False,
    }
    options = body.get("options") or {}
    out.update({_OPTIONS[k]: v for k, v in options.items() if k in _OPTIONS and v is not None})
    fmt = body.get("format")
    if isinstance(fmt, dict):
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "strict": True, "schema": fmt},
        }
    elif fmt == "json":
        out["response_format"] = {"type": "json_object"}
    if out["stream"]:
        out["stream_options"] = {"include_usage": True}
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def final_chunk(
    model: str, finish: str, usage: dict[str, Any], elapsed_ns: int, timings: dict[str, Any] | None = None
) -> dict[str, Any]:
    t = timings or {}
    durations = {
        field: int(float(t[key]) * 1e6)
        for field, key in (("prompt_eval_duration", "prompt_ms"), ("eval_duration", "predicted_ms"))
        if isinstance(t.get(key), int | float)
    }
    cached = {"prompt_eval_cached_count": int(t["cache_n"])} if isinstance(t.get("cache_n"), int) else {}
    return {
        **durations,
        **cached,
        "model": model,
        "created_at": _now(),
        "done": True,
        "done_reason": "length" if finish == "length" else "stop",
        "total_duration": elapsed_ns,
        "prompt_eval_count": int(usage.get("prompt_tokens") or 0),
        "eval_count": int(usage.get("completion_tokens") or 0),
    }


class Adapter:
    """The translation state: the upstream client, the model's name, its context length (asked once)."""

    def __init__(self, upstream: str, name: str, *, timeout_s: float = 600.0) -> None:
        self.http = httpx.Client(base_url=upstream.rstrip("/"), timeout=timeout_s)
        self.name = name
        self._ctx: int | None = None
        self._lock = threading.Lock()

    def context_length(self) -> int:
        with self._lock:
            if self._ctx is None:
                props = self.http.get("/props").json()
                self._ctx = int((props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx"))
            return self._ctx

    def knows(self, model: str) -> bool:
        def canon(n: str) -> str:
            return n if ":" in n else n + ":latest"

        return canon(model) == canon(self.name)

    def stream_lines(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The upstream's streamed chunks as Ollama NDJSON chunks (the last with `done: true`)."""
        start = _clock_ns()
        finish, usage, timings = "", dict[str, Any](), dict[str, Any]()
        with self.http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                response.read()
                raise UpstreamError(response.status_code, _error_text(response))
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                usage = chunk.get("usage") or usage
                timings = chunk.get("timings") or timings
                for choice in chunk.get("choices") or []:
                    finish = choice.get("finish_reason") or finish
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        yield {
                            "model": self.name,
                            "created_at": _now(),
                            "message": {"role": "assistant", "content": piece},
                            "done": False,
                        }
        if not finish:
            raise UpstreamError(502, "the upstream stream ended before the answer was finished")
        yield {
            **final_chunk(self.name, finish, usage, _clock_ns() - start, timings),
            "message": {"role": "assistant", "content": ""},
        }

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        start = _clock_ns()
        response = self.http.post("/v1/chat/completions", json=body)
        if response.status_code >= 400:
            raise UpstreamError(response.status_code, _error_text(response))
        data = response.json()
        choice = data["choices"][0]
        message = {"role": "assistant", "content": choice["message"].get("content") or ""}
        usage = data.get("usage") or {}
        return {
            **final_chunk(
                self.name, choice.get("finish_reason") or "", usage, _clock_ns() - start, data.get("timings")
            ),
            "message": message,
        }


def _clock_ns() -> int:
    return int(datetime.now(UTC).timestamp() * 1e9)


class UpstreamError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return response.text[:300]
    return str(error.get("message") if isinstance(error, dict) else error)[:300]


class AdapterServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], adapter: Adapter) -> None:
        super().__init__(address, _Handler)
        self.adapter = adapter


class _Handler(BaseHTTPRequestHandler):
    server: AdapterServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("adapter: " + format, *args)

    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        a = self.server.adapter
        if self.path == "/":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/api/version":
            self._json(200, {"version": VERSION})
        elif self.path == "/api/tags":
            entry = {"name": a.name, "model": a.name, "modified_at": _now(), "size": 0, "digest": "", "details": {}}
            self._json(200, {"models": [entry]})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        a = self.server.adapter
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"error": "invalid JSON body"})
            return
        if self.path not in ("/api/chat", "/api/show"):
            self._json(404, {"error": "not found"})
            return
        model = str(body.get("model") or body.get("name") or "")
        if not a.knows(model):
            self._json(404, {"error": f'model "{model}" not found, try pulling it first'})
            return
        try:
            if self.path == "/api/show":
                info = {"general.architecture": "llama", "llama.context_length": a.context_length()}
                self._json(200, {"modelfile": "", "template": "", "details": {"format": "gguf"}, "model_info": info})
            elif body.get("stream", True) is False:
                self._json(200, {**a.complete(to_openai(body)), "created_at": _now()})
            else:
                self._stream(a.stream_lines(to_openai(body)))
        except UpstreamError as exc:
            self._json(exc.status, {"error": exc.message})
        except httpx.TransportError as exc:
            self._json(502, {"error": f"the model server did not answer: {type(exc).__name__}"})

    def _stream(self, chunks: Iterator[dict[str, Any]]) -> None:
        first = next(chunks)  # upstream errors surface here, before the status line
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for chunk in itertools.chain([first], chunks):
                self.wfile.write(json.dumps(chunk).encode() + b"\n")
                self.wfile.flush()
        except (UpstreamError, httpx.TransportError) as exc:  # the stream has started: end it unfinished
            log.warning("upstream failed mid-answer: %s", exc)


def serve(listen: str, upstream: str, name: str) -> AdapterServer:
    host, _, port = listen.rpartition(":")
    return AdapterServer((host or "127.0.0.1", int(port)), Adapter(upstream, name))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Ollama's API in front of an OpenAI-compatible server.")
    ap.add_argument("--listen", default="127.0.0.1:11434")
    ap.add_argument("--upstream", default="http://127.0.0.1:11435")
    ap.add_argument("--name", required=True, help="The model name the adapter answers to (e.g. smollm2:135m).")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = serve(args.listen, args.upstream, args.name)
    log.info("Ollama API on %s for %s at %s", args.listen, args.name, args.upstream)
    server.serve_forever()


if __name__ == "__main__":
    main()
