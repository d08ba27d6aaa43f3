"""A protocol fake as a process of its own, on a fixed loopback port, so that a benchmark can kill it and start
it again (`bench.faults`): `python -m tests.fakes.serve_fake ollama|qdrant --port N [--path DIR]`. Runs until
killed."""

from __future__ import annotations

import argparse
from http.server import ThreadingHTTPServer

from tests.fakes import ollama_server
from tests.fakes.qdrant_rest import QdrantRestServer


class _FixedPortServer(ollama_server._Server):
    def __init__(self, fake: ollama_server.FakeOllama, port: int) -> None:
        ThreadingHTTPServer.__init__(self, ("127.0.0.1", port), ollama_server._Handler)
        self.fake = fake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["ollama", "qdrant"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="llama3.1:8b")
    parser.add_argument("--path", default="", help="qdrant: the folder of its local-mode data")
    args = parser.parse_args()
    server: ThreadingHTTPServer
    if args.kind == "qdrant":
        server = QdrantRestServer(args.port, args.path)
    else:
        server = _FixedPortServer(ollama_server.FakeOllama(models=[args.model], max_requests=100_000), args.port)
    server.daemon_threads = True
    print(f"serving {args.kind} on 127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
