"""The shipping loop: read entries, filter, batch, spool, send oldest first, advance the cursor on a 2xx.

Entries are read from a `Source` into a batch that is closed when it holds `batch_size` entries to send or
is `flush_s` old (or the input ended). A closed batch is written to the spool first, then sent; only
when the server answered 2xx is the cursor file moved to the batch's end and the batch deleted. While
the API is down the batches wait in the spool (retries with backoff and jitter), reading goes on until
the spool is full, and they are replayed oldest first when it answers. Killed at any moment, a restart
resends at most the batch that was in flight, which the server stores once (an entry's event id is a
hash of its content, so a resent entry is counted as a duplicate). Entries the filters leave out, and
lines that are not JSON objects, are not sent; the cursor moves past them with the batch that holds them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from api.shipper.client import Backoff, Retry, Sent, send
from api.shipper.filters import NoiseFilter
from api.shipper.source import END, Entry, Source
from api.shipper.state import Cursor, Spool, Spooled, write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShipOptions:
    server: str
    cursor_file: Path
    api_key: str | None = None
    batch_size: int = 500
    flush_s: float = 2.0
    spool_max_bytes: int = 64 * 1024 * 1024
    timeout_s: float = 30.0
    once: bool = False
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0


@dataclass
class ShipStats:
    """What a run did: entries read, left out by the filters, not JSON; batches and entries acknowledged,
    the server's counts, retries, entries kept aside as refused."""

    read: int = 0
    filtered: int = 0
    bad: int = 0
    batches: int = 0
    sent: int = 0
    server: Sent = field(default_factory=Sent)
    retries: int = 0
    refused: int = 0
    acked_total: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["server"] = {k: v for k, v in asdict(self.server).items() if k not in ("refused", "why")}
        return out


def spool_dir(cursor_file: Path) -> Path:
    return cursor_file.with_name(cursor_file.name + ".spool")


def load_state(opts: ShipOptions) -> tuple[Cursor, Spool]:
    """The cursor and the spool, with batches a kill left behind after their acknowledgement dropped."""
    opts.cursor_file.parent.mkdir(parents=True, exist_ok=True)
    cursor = Cursor.load(opts.cursor_file)
    spool = Spool(spool_dir(opts.cursor_file), opts.spool_max_bytes)
    spool.drop_acked(cursor.seq)
    return cursor, spool


def resume_position(cursor: Cursor, spool: Spool) -> dict[str, Any]:
    """Where to read from: after the newest spooled batch, else after the acknowledged cursor."""
    newest = spool.newest()
    return newest.end if newest is not None else cursor.position


class Shipper:
    """One run of the loop (see the module doc). `stop()` (from a signal handler) ends it cleanly."""

    def __init__(
        self,
        opts: ShipOptions,
        source: Source,
        noise: NoiseFilter,
        cursor: Cursor,
        spool: Spool,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.opts, self.source, self.noise, self.transport = opts, source, noise, transport
        self.cursor, self.spool = cursor, spool
        self.stats = ShipStats(acked_total=cursor.acked)
        self.backoff = Backoff(opts.backoff_base_s, opts.backoff_cap_s)
        self._stop = threading.Event()
        newest = spool.newest()
        self._seq = max(cursor.seq, newest.seq if newest else 0)
        self._lines: list[str] = []
        self._end: dict[str, Any] | None = None
        self._opened = 0.0
        self._next_try = 0.0

    def stop(self) -> None:
        self._stop.set()
        self.source.stop()

    def run(self) -> ShipStats:
        self.source.start()
        try:
            with httpx.Client(timeout=self.opts.timeout_s, transport=self.transport) as client:
                self._loop(client)
        finally:
            self.source.stop()
        return self.stats

    def _loop(self, client: httpx.Client) -> None:
        ended = False
        while not self._stop.is_set():
            now = time.monotonic()
            if len(self.spool) and now >= self._next_try:
                self._send_oldest(client)
                continue
            if ended:
                if not len(self.spool):
                    return
                self._stop.wait(max(0.0, self._next_try - now))
                continue
            if self.spool.full():
                self._stop.wait(max(0.05, self._next_try - now))
                continue
            ended = self._read(now)

    def _read(self, now: float) -> bool:
        """Read one item (waiting at most until the batch is due or a retry is); True when the input ended."""
        due = self._opened + self.opts.flush_s if self._end is not None else now + 0.5
        if len(self.spool):
            due = min(due, self._next_try)
        item = self.source.get(due - now)
        if item is END:
            self._close()
            if self.source.error:
                log.error("journal source stopped", extra={"error": self.source.error})
            return True
        if isinstance(item, Entry):
            self._add(item)
        if self._end is not None and (
            len(self._lines) >= self.opts.batch_size or time.monotonic() >= self._opened + self.opts.flush_s
        ):
            self._close()
        return False

    def _add(self, entry: Entry) -> None:
        self.stats.read += 1
        if self._end is None:
            self._opened = time.monotonic()
        self._end = entry.position
        if entry.doc is None:
            self.stats.bad += 1
            log.warning("line is not a JSON object; left out", extra={"position": entry.position})
        elif self.noise.keep(entry.doc):
            self._lines.append(entry.line)
        else:
            self.stats.filtered += 1

    def _close(self) -> None:
        """Spool the open batch (or, when it holds nothing to send and nothing waits, just move the cursor)."""
        if self._end is None:
            return
        lines, end = self._lines, self._end
        self._lines, self._end = [], None
        self._seq += 1
        if not lines and not len(self.spool):
            self._ack(self._seq, end, 0)
            return
        self.spool.put(self._seq, lines, end)

    def _send_oldest(self, client: httpx.Client) -> None:
        item = self.spool.oldest()
        assert item is not None
        try:
            got = send(client, self.opts.server, item.lines, self.opts.api_key) if item.lines else Sent()
        except Retry as exc:
            self.stats.retries += 1
            wait = self.backoff.next(exc.after)
            log.warning("API not taking batches; retrying", extra={"reason": exc.reason, "in_s": round(wait, 2)})
            self._next_try = time.monotonic() + wait
            return
        self.backoff.reset()
        if got.refused:
            self._set_aside(item, got)
        self.stats.batches += 1
        self.stats.sent += len(item.lines)
        self.stats.server.add(Sent(got.received, got.stored, got.duplicates, got.rejected))  # counts only
        if got.rejected:
            log.warning("server rejected entries", extra={"rejected": got.rejected, "seq": item.seq})
        self._ack(item.seq, item.end, len(item.lines))
        self.spool.remove(item)

    def _ack(self, seq: int, end: dict[str, Any], n: int) -> None:
        self.cursor = Cursor(position=end, seq=seq, acked=self.cursor.acked + n)
        self.cursor.save(self.opts.cursor_file)
        self.stats.acked_total = self.cursor.acked

    def _set_aside(self, item: Spooled, got: Sent) -> None:
        """Entries the server will never take: kept in `<spool>/refused/` for the operator, then passed."""
        self.stats.refused += len(got.refused)
        aside = self.spool.folder / "refused"
        aside.mkdir(exist_ok=True)
        path = aside / item.path.name
        write_atomic(path, json.dumps({"why": got.why, "lines": got.refused}).encode())
        log.error("server refused entries; kept aside", extra={"reason": got.why, "kept": str(path)})
