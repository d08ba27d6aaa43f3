"""Run llama.cpp's HTTP server (the `xllamacpp` wheel) on one model until SIGTERM.

Started by `api.llm_stack.stack` with the Python of the stack's own virtual environment (`.llm/venv`),
so it imports only the standard library and `xllamacpp`:

    .llm/venv/bin/python api/llm_stack/llama_main.py MODEL.gguf --port 11435 --ctx 4096 --threads 1
"""

from __future__ import annotations

import argparse
import importlib
import signal
import threading


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=11435)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--alias", default="")
    args = ap.parse_args(argv)
    xlc = importlib.import_module("xllamacpp")
    params = xlc.CommonParams()
    params.model.path = args.model
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.cache_prompt = True
    if args.alias:
        params.model_alias = args.alias
    server = xlc.Server(params)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"llama.cpp server on {server.listening_address}", flush=True)
    stop.wait()


if __name__ == "__main__":
    main()
