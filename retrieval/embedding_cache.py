"""A cache in front of any Embedder: each distinct text is embedded once, across restarts.

Vectors are keyed by (embedder name, sha1 of the text) and kept in a bounded in-memory LRU and in a
SQLite file (WAL mode, so several processes may share it). Embedding is the slowest step per item
(ENGINE-NOTES), and log templates and queries repeat.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retrieval.embedders import Embedder

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    embedder  TEXT    NOT NULL,
    text_sha1 BLOB    NOT NULL,
    dim       INTEGER NOT NULL,
    vector    BLOB    NOT NULL,
    PRIMARY KEY (embedder, text_sha1)
) WITHOUT ROWID
"""
_LOOKUP_CHUNK = 500


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()


class EmbeddingCache:
    """Wraps `embedder`; same `name`, `dim` and vectors, computed once per distinct text."""

    def __init__(self, embedder: Embedder, path: Path, *, memory_items: int = 20_000) -> None:
        self.embedder = embedder
        self.path = Path(path)
        self.memory_items = memory_items
        self.memory_hits = 0
        self.disk_hits = 0
        self.computed = 0
        self._memory: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.embedder.name

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return self.embedder.embed([])
        keys = [text_key(t) for t in texts]
        found = self._lookup(list(dict.fromkeys(keys)))

        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in found:
                missing.setdefault(key, text)
        if missing:
            computed = np.asarray(self.embedder.embed(list(missing.values())), dtype=np.float32)
            new = dict(zip(missing, computed, strict=True))
            self._store(new)
            found.update(new)
        return np.vstack([found[k] for k in keys]).astype(np.float32, copy=False)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- storage --------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            db.commit()
            self._db = db
        return self._db

    def _remember(self, key: bytes, vector: np.ndarray) -> None:
        self._memory[key] = vector
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    def _lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        name = self.embedder.name
        prefix = name.encode() + b"\0"  # memory keys carry the embedder name too
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for key in keys:
                vector = self._memory.get(prefix + key)
                if vector is not None:
                    self._memory.move_to_end(prefix + key)
                    found[key] = vector
            self.memory_hits += len(found)
            rest = [k for k in keys if k not in found]
            if not rest:
                return found
            db = self._conn()
            for start in range(0, len(rest), _LOOKUP_CHUNK):
                chunk = rest[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT text_sha1, dim, vector FROM embeddings WHERE embedder = ? AND text_sha1 IN ({marks})",
                    [name, *chunk],
                ).fetchall()
                for key, dim, blob in rows:
                    if len(blob) != 4 * dim:
                        continue  # damaged row: embed again
                    vector = np.frombuffer(blob, dtype="<f4").astype(np.float32)
                    found[bytes(key)] = vector
                    self._remember(prefix + bytes(key), vector)
                    self.disk_hits += 1
        return found

    def _store(self, vectors: dict[bytes, np.ndarray]) -> None:
        name = self.embedder.name
        prefix = name.encode() + b"\0"
        rows = [(name, key, int(v.shape[0]), v.astype("<f4").tobytes()) for key, v in vectors.items()]
        with self._lock:
            db = self._conn()
            db.executemany(
                "INSERT OR REPLACE INTO embeddings (embedder, text_sha1, dim, vector) VALUES (?, ?, ?, ?)", rows
            )
            db.commit()
            for key, vector in vectors.items():
                self._remember(prefix + key, vector)
            self.computed += len(rows)
        logger.debug("embedded new texts", extra={"embedder": name, "count": len(rows)})
