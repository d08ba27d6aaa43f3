"""What the shipper keeps on disk: the cursor file (how far the server has acknowledged) and the spool.

Both are written atomically (a temporary file, fsync, rename, fsync of the folder), so a kill at any moment
leaves either the old or the new version, never a torn one.

- The cursor file holds the position of the last entry the server acknowledged (2xx) and the sequence
  number of the spooled batch that carried it. It never moves past an entry the server has not answered.
- The spool (`<cursor file>.spool/`) holds batches read but not yet acknowledged, one file each, named by
  a rising sequence number and replayed oldest first. A batch is spooled before it is sent, so what was
  read survives a kill or an API outage; it is deleted after its acknowledgement is in the cursor file (a
  batch at or below the cursor's sequence number is a leftover of a kill between the two and is dropped).
  The spool is bounded in bytes: when it is full the shipper stops reading (the journal or file keeps the
  rest, nothing is dropped) until the API answers again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InvalidInput

CURSOR_VERSION = 1


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old or the new content: tmp, fsync, rename, fsync dir."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Cursor:
    """The acknowledged position: a journal `__CURSOR` or a file offset, the spool sequence number that
    carried it, and how many entries the server has acknowledged so far (sent, after the filters)."""

    position: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    acked: int = 0

    @classmethod
    def load(cls, path: Path) -> Cursor:
        """The cursor in `path`; an empty one when there is no file yet."""
        if not path.exists():
            return cls()
        try:
            doc = json.loads(path.read_bytes())
            return cls(position=dict(doc["position"]), seq=int(doc["seq"]), acked=int(doc.get("acked", 0)))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(
                f"cursor file {path} is not one the shipper wrote ({exc}); move it away to start over",
                field="cursor-file",
            ) from None

    def save(self, path: Path) -> None:
        doc = {"version": CURSOR_VERSION, "position": self.position, "seq": self.seq, "acked": self.acked}
        write_atomic(path, json.dumps(doc, sort_keys=True).encode())


@dataclass(frozen=True)
class Spooled:
    """One spooled batch: its sequence number, the raw journald JSON lines to send, and the position after
    its last entry (filtered-out entries included)."""

    seq: int
    lines: list[str]
    end: dict[str, Any]
    path: Path
    size: int


class Spool:
    """The bounded folder of batches waiting for an acknowledgement (see the module doc)."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._sizes: dict[Path, int] = {p: p.stat().st_size for p in self._files()}

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob("*.batch.json"))

    def drop_acked(self, seq: int) -> int:
        """Delete batches at or below `seq` (acknowledged before a kill kept them); how many."""
        gone = [p for p in self._sizes if _seq_of(p) <= seq]
        for p in gone:
            self._remove(p)
        return len(gone)

    def put(self, seq: int, lines: list[str], end: dict[str, Any]) -> Spooled:
        path = self.folder / f"{seq:016d}.batch.json"
        data = json.dumps({"seq": seq, "end": end, "lines": lines}).encode()
        write_atomic(path, data)
        self._sizes[path] = len(data)
        return Spooled(seq, lines, end, path, len(data))

    def oldest(self) -> Spooled | None:
        if not self._sizes:
            return None
        path = min(self._sizes, key=_seq_of)
        doc = json.loads(path.read_bytes())
        return Spooled(int(doc["seq"]), list(doc["lines"]), dict(doc["end"]), path, self._sizes[path])

    def newest(self) -> Spooled | None:
        if not self._sizes:
            return None
        path = max(self._sizes, key=_seq_of)
        doc = json.loads(path.read_bytes())
        return Spooled(int(doc["seq"]), list(doc["lines"]), dict(doc["end"]), path, self._sizes[path])

    def remove(self, item: Spooled) -> None:
        self._remove(item.path)

    def _remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._sizes.pop(path, None)

    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    def full(self) -> bool:
        return self.bytes >= self.max_bytes


def _seq_of(path: Path) -> int:
    return int(path.name.split(".", 1)[0])
