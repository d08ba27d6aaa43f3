"""Where the shipper reads journal entries: `journalctl -o json` (followed), or a file of its lines.

Each source runs a reader thread that puts `Entry` items (the raw line, the decoded object or None when
the line is not a JSON object, and the position just after it) on a bounded queue, then `END` when the
input is over (a file read `--once`, or `journalctl` without `-f` that finished). A full queue stops the
reader, so memory stays bounded whatever the input's pace.

Positions are what the cursor file stores: `{"kind": "journal", "cursor": __CURSOR}` for journalctl (a
restart runs `journalctl --after-cursor` with it), `{"kind": "file", "path", "inode", "offset"}` for a file
(a restart seeks to the byte after the last acknowledged line; a file with another inode, or shorter than
the offset, was rotated or truncated and is read from its start). A followed file is read like `tail -f`:
a line is taken once its newline is written, and a rotation is followed to the new file.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InvalidInput

log = logging.getLogger(__name__)

POLL_S = 0.2
"""How often a followed file is checked for new lines at its end."""


@dataclass(frozen=True, slots=True)
class Entry:
    line: str
    doc: dict[str, Any] | None
    position: dict[str, Any]


END = object()
"""Put on the queue when the input is over."""


def decode(line: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


class Source:
    """A reader thread feeding a bounded queue; `get` takes the next item (an Entry, END, or None on timeout)."""

    def __init__(self, capacity: int) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self.stopping = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._guarded, name="devmesh-ship-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def get(self, timeout: float) -> Any:
        try:
            return self.queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def stop(self) -> None:
        self.stopping.set()

    def _put(self, item: Any) -> bool:
        """Put an item, waiting while the queue is full; False once the source is stopping."""
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _guarded(self) -> None:
        try:
            self.run()
        except OSError as exc:
            self.error = f"reading stopped: {exc}"
            log.error("journal source failed", extra={"error": str(exc)})
        self._put(END)

    def run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class FileSource(Source):
    """A file of `journalctl -o json` lines, from a byte offset; followed like `tail -f` unless `once`."""

    def __init__(self, path: Path, start: dict[str, Any], *, once: bool, capacity: int) -> None:
        super().__init__(capacity)
        if not path.is_file():
            raise InvalidInput(f"no such file: {path}", field="file")
        self.path, self.once = path, once
        st = path.stat()
        self.offset = 0
        if (
            start.get("kind") == "file"
            and start.get("inode") == st.st_ino
            and int(start.get("offset", 0)) <= st.st_size
        ):
            self.offset = int(start["offset"])
        elif start:
            log.warning("journal file was rotated or truncated since the cursor; reading it from its start")

    def run(self) -> None:
        stream = self.path.open("rb")
        inode = os.fstat(stream.fileno()).st_ino
        stream.seek(self.offset)
        offset = self.offset
        try:
            while not self.stopping.is_set():
                raw = stream.readline()
                if raw.endswith(b"\n") or (raw and self.once):
                    offset += len(raw)
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    pos = {"kind": "file", "path": str(self.path.resolve()), "inode": inode, "offset": offset}
                    if line.strip() and not self._put(Entry(line, decode(line), pos)):
                        return
                    continue
                stream.seek(offset)  # a partial last line: wait for its newline
                if self.once:
                    return
                time.sleep(POLL_S)
                rotated = self._rotated(inode, offset)
                if rotated:
                    stream.close()
                    stream = self.path.open("rb")
                    inode, offset = os.fstat(stream.fileno()).st_ino, 0
        finally:
            stream.close()

    def _rotated(self, inode: int, offset: int) -> bool:
        """Whether the path now names another file (rotated) or a shorter one (truncated)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False  # between the rename and the new file: keep reading the old one
        if st.st_ino != inode:
            log.info("journal file rotated; following the new one")
            return True
        if st.st_size < offset:
            log.warning("journal file truncated; reading it from its start")
            return True
        return False


class JournalSource(Source):
    """`journalctl -o json [-f] [--after-cursor C]`: entries after the acknowledged cursor."""

    def __init__(
        self, start: dict[str, Any], *, once: bool, capacity: int, from_start: bool, command: Sequence[str]
    ) -> None:
        super().__init__(capacity)
        args = [*command, "-o", "json", "--no-pager"]
        if not once:
            args.append("-f")
        if start.get("kind") == "journal" and start.get("cursor"):
            args += ["--after-cursor", str(start["cursor"])]
        elif not from_start:
            args += ["-n", "0"]  # no cursor yet: from now on (--from-start ships what the journal holds)
        self.args = args
        self._proc: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        self._proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self._proc.stdout is not None
        try:
            for raw in self._proc.stdout:
                if self.stopping.is_set():
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                doc = decode(line)
                cursor = doc.get("__CURSOR") if doc else None
                if not isinstance(cursor, str):
                    log.warning("journalctl line without a __CURSOR left out")
                    continue
                if not self._put(Entry(line, doc, {"kind": "journal", "cursor": cursor})):
                    return
            code = self._proc.wait()
            if code != 0:
                self.error = f"journalctl exited with status {code}"
        finally:
            if self._proc.poll() is None:
                self._proc.terminate()
                self._proc.wait(timeout=5)

    def stop(self) -> None:
        super().stop()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
