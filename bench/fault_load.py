"""The load of the fault matrix (`bench.faults`): a retrying ingest client and a reader of `/search/logs` and
`/explain`, each on its own thread against a live `devmesh serve` on loopback, and the checks made after
recovery: every acknowledged line stored once, the graph and the vectors what the event store implies.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.settings import Settings
from graph.access import read
from graph.server import connect_graph
from ingest import derive
from retrieval.collections import TEMPLATES
from retrieval.events import EventStore
from retrieval.vector_factory import open_vector_store

BATCH = 50
SERVICES = 24
SHAPES = (
    "order placed by user {u} in {ms} ms",
    "payment declined: card {u} expired",
    "cache miss for key item:{u}",
    "upstream timeout after {ms} ms calling inventory",
    "GET /api/items/{u} 200 {ms}ms",
)
"""Five templates all along; every line also carries `seq=N`, so each line sent can be found once stored."""
WORDS = [
    "amber",
    "birch",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "grove",
    "harbor",
    "island",
    "juniper",
    "kestrel",
    "lagoon",
    "meadow",
    "nectar",
    "orchard",
    "prairie",
    "quarry",
    "ravine",
    "summit",
    "tundra",
    "upland",
    "valley",
    "willow",
    "yarrow",
    "zephyr",
]
PHASE_BATCHES = 10
"""Every PHASE_BATCHES batches a new kind of line starts (new templates keep coming, outages included)."""


def lines(batch_no: int, first_seq: int, now_ns: int) -> list[dict[str, Any]]:
    """One batch: BATCH lines from a service that changes every few batches (new pods reach the graph)."""
    svc = f"svc{(batch_no // 4) % SERVICES}"
    out = []
    for i in range(BATCH):
        seq = first_seq + i
        text = SHAPES[seq % len(SHAPES)].format(u=seq % 97, ms=seq % 500)
        if i % 10 == 0:  # this phase's own kind of line
            phase = batch_no // PHASE_BATCHES
            text = " ".join(WORDS[(phase * 7 + k * 3) % len(WORDS)] for k in range(2 + phase % 5)) + " flushed"
        out.append(
            {
                "timestamp": (now_ns + i * 1000) // 1000,
                "message": f"{text} seq={seq}",
                "service": svc,
                "pod": f"{svc}-{batch_no % 3}",
                "host": f"node{batch_no % 5}",
                "level": "ERROR" if seq % 11 == 0 else "INFO",
            }
        )
    return out


@dataclass
class Tally:
    """What the clients saw."""

    acked: set[int] = field(default_factory=set)
    sent_batches: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    unacked_batches: int = 0
    reads: Counter[str] = field(default_factory=Counter)
    explain_notes: Counter[str] = field(default_factory=Counter)
    read_ms: list[float] = field(default_factory=list)


class Load:
    """Ingest and reads until `stop()`; the ingest client retries a batch (up to `retries` times) as a
    shipper would, so a refused batch sent again must not be stored twice."""

    def __init__(self, url: str, *, pause_s: float = 0.1, retries: int = 20) -> None:
        self.url = url
        self.pause_s = pause_s
        self.retries = retries
        self.tally = Tally()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._ingest, name="ingest", daemon=True),
            threading.Thread(target=self._read, name="read", daemon=True),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)

    def _ingest(self) -> None:
        seq, batch_no = 0, 0
        with httpx.Client(base_url=self.url, timeout=60.0) as http:
            while not self._stop.is_set():
                body = {"events": lines(batch_no, seq, time.time_ns())}
                self.tally.sent_batches += 1
                if self._send(http, body):
                    self.tally.acked.update(range(seq, seq + BATCH))
                else:
                    self.tally.unacked_batches += 1
                seq, batch_no = seq + BATCH, batch_no + 1
                self._stop.wait(self.pause_s)

    def _send(self, http: httpx.Client, body: dict[str, Any]) -> bool:
        for attempt in range(self.retries + 1):
            try:
                status = str(http.post("/ingest/logs", json=body).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            self.tally.statuses[status] += 1
            if status.startswith("2"):
                return True
            self.tally.retries += attempt < self.retries
            time.sleep(0.5)
        return False

    def _read(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120.0) as http:
            turn = 0
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    if turn % 2 == 0:
                        r = http.get("/search/logs", params={"q": "payment declined card expired", "limit": 5})
                        what = f"search {r.status_code}"
                    else:
                        now = time.time_ns()
                        req = {"service": "svc1", "start_ns": now - 120 * 10**9, "end_ns": now}
                        r = http.post("/explain", json=req)
                        what = f"explain {r.status_code}"
                        if r.status_code == 200:
                            expl = r.json()["explanation"]
                            reason = expl.get("fallback_reason", "")[:60]
                            self.tally.explain_notes[f"{expl['mode']}{': ' + reason if reason else ''}"] += 1
                            for note in expl["notes"]:
                                if note.startswith("topology unavailable"):
                                    self.tally.explain_notes["topology unavailable"] += 1
                except httpx.HTTPError as exc:
                    what = f"{'search' if turn % 2 == 0 else 'explain'} {type(exc).__name__}"
                self.tally.reads[what] += 1
                self.tally.read_ms.append((time.perf_counter() - t0) * 1000)
                turn += 1
                self._stop.wait(0.2)


def stored_lines(events: EventStore, acked: set[int]) -> dict[str, int]:
    """Lines stored vs acknowledged: missing (acknowledged, not stored) and twice (stored more than once)."""
    _, rows = events.sql(
        r"SELECT CAST(regexp_extract(message, 'seq=(\d+)', 1) AS BIGINT) AS seq, count(*) FROM logs GROUP BY 1",
        limit=10_000_000,
    )
    counts = {int(s): int(n) for s, n in rows if s is not None}
    return {
        "acknowledged": len(acked),
        "stored": sum(counts.values()),
        "stored_distinct": len(counts),
        "missing": len(acked - set(counts)),
        "stored_twice": sum(1 for n in counts.values() if n > 1),
        "stored_not_acknowledged": len(set(counts) - acked),
    }


def graph_consistency(settings: Settings, events: EventStore) -> dict[str, Any]:
    """The graph against what the stored events imply: pods and their services, EMITS pairs."""
    expected_pods = {(p.pod, p.service) for p in derive.placements(events).pods}
    _, rows = events.sql("SELECT DISTINCT service, template_id FROM logs WHERE service <> ''", limit=10_000_000)
    expected_emits = {(s, t) for s, t in rows}
    conn = connect_graph(settings, ensure=False)
    try:
        pods = {(p, s) for p, s in read(conn.graph, "MATCH (p:Pod)-[:INSTANCE_OF]->(s:Service) RETURN p.name, s.name")}
        emits = {(s, t) for s, t in read(conn.graph, "MATCH (s:Service)-[:EMITS]->(t:LogTemplate) RETURN s.name, t.id")}
    finally:
        conn.close()
    return {
        "pods_expected": len(expected_pods),
        "pods_missing": len(expected_pods - pods),
        "emits_expected": len(expected_emits),
        "emits_missing": len(expected_emits - emits),
        "consistent": expected_pods <= pods and expected_emits <= emits,
    }


def vector_consistency(settings: Settings, events: EventStore) -> dict[str, Any]:
    """Templates with a vector against templates stored (what `embedded` says, and what the store holds)."""
    stats = events.stats()["templates"]
    store = open_vector_store(settings)
    try:
        held = store.count(TEMPLATES) if TEMPLATES in store.collections() else 0
    finally:
        store.close()
    total = int(stats["rows"])
    return {
        "templates": total,
        "unembedded": int(stats["unembedded"]),
        "vectors_held": held,
        "consistent": int(stats["unembedded"]) == 0 and held >= total - int(stats["unembedded"]),
    }
