"""The shipper's side of `POST /ingest/journald`: one batch sent, and what its answer means.

`send` posts a batch (gzip, `Authorization: Bearer <DEVMESH_API_KEY>`) and returns `Sent` for a 2xx (the
server's counts), raises `Retry` for what a later try may fix (no connection, a timeout, 408, 429, 5xx:
with the server's `Retry-After` when it gave one), and `Unauthorized` for a key the server will not take
(401, 403: the operator must act). A 413 splits the batch in halves, sent in order. Any other 4xx means
the server will never take those entries: they come back in `Sent.refused` (the caller keeps them aside,
see `ship`) and the rest is sent.
`Backoff` is capped exponential backoff with full jitter.
"""

from __future__ import annotations

import gzip
import random
from dataclasses import dataclass, field

import httpx

from core.errors import Unauthorized

PATH = "/ingest/journald"


class Retry(Exception):
    """The batch was not taken this time; try again after `after` seconds at the earliest."""

    def __init__(self, reason: str, after: float = 0.0) -> None:
        super().__init__(reason)
        self.reason, self.after = reason, after


@dataclass
class Sent:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    refused: list[str] = field(default_factory=list)
    """Lines the server will never take (a 4xx other than 401, 403, 408, 413, 429), and why."""
    why: str = ""

    def add(self, other: Sent) -> None:
        self.received += other.received
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.refused += other.refused
        self.why = self.why or other.why


@dataclass
class Backoff:
    """Delays of `base * 2**n` seconds capped at `cap`, each drawn uniformly from [0, delay] (full jitter)."""

    base: float = 0.5
    cap: float = 30.0
    attempts: int = 0

    def next(self, at_least: float = 0.0) -> float:
        delay = random.uniform(0.0, min(self.cap, self.base * 2**self.attempts))
        self.attempts = min(self.attempts + 1, 32)
        return max(delay, min(at_least, self.cap * 4))

    def reset(self) -> None:
        self.attempts = 0


def body_of(lines: list[str]) -> bytes:
    """A JSON array of the entries (each line is one decoded-and-checked JSON object), gzipped."""
    return gzip.compress(("[" + ",".join(lines) + "]").encode("utf-8"), compresslevel=5)


def send(client: httpx.Client, server: str, lines: list[str], api_key: str | None) -> Sent:
    """Post `lines` (see the module doc); halves on 413 until one entry is left."""
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        r = client.post(server.rstrip("/") + PATH, content=body_of(lines), headers=headers)
    except httpx.HTTPError as exc:
        raise Retry(f"{type(exc).__name__}: {exc}") from None
    if 200 <= r.status_code < 300:
        doc = r.json()
        return Sent(
            int(doc.get("received", 0)),
            int(doc.get("stored", 0)),
            int(doc.get("duplicates", 0)),
            int(doc.get("rejected", 0)),
        )
    if r.status_code == 413 and len(lines) > 1:
        half = len(lines) // 2
        out = send(client, server, lines[:half], api_key)
        out.add(send(client, server, lines[half:], api_key))
        return out
    if r.status_code in (401, 403):
        raise Unauthorized(
            f"{server} answered {r.status_code}: {_message(r)}; set DEVMESH_API_KEY to a key with the 'ingest' scope"
            " (`devmesh keys create --scope ingest`)",
            field="DEVMESH_API_KEY",
        )
    if r.status_code in (408, 429) or r.status_code >= 500:
        raise Retry(f"HTTP {r.status_code}: {_message(r)}", _retry_after(r))
    return Sent(refused=list(lines), why=f"HTTP {r.status_code}: {_message(r)}")


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json().get("message", ""))[:300]
    except ValueError:
        return r.text[:300]


def _retry_after(r: httpx.Response) -> float:
    try:
        return max(0.0, float(r.headers.get("retry-after", "0")))
    except ValueError:
        return 0.0
