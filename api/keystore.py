"""API keys: scopes, and the key store in `<DEVMESH_HOME>/keys.json` (hashes only; the key is shown once).

A key is `dmk_` + 32 random bytes (URL-safe base64). Only its SHA-256 is kept (a salt and a slow hash add
nothing for 256 random bits); lookups compare hashes with `hmac.compare_digest`. The file is rewritten
atomically (temporary file, fsync, rename; mode 0600) under a lock, so two `devmesh keys` commands do not
lose each other's changes, and a running server sees a change on its next request (it re-reads the file
when its size or modification time changes).

Once the file holds a key (revoked ones count), the API wants a key on every request: revoking the last
key locks the API instead of opening it. Delete the file to go back to loopback-only mode without keys.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from core.errors import InvalidInput, NotFound
from core.timeutil import iso, now_ns

KEY_PREFIX = "dmk_"


class Scope(StrEnum):
    """What a key may do. `admin` implies every other scope."""

    INGEST = "ingest"
    """Send telemetry: POST /ingest/logs, the OTLP receivers."""
    READ = "read"
    """Read what is stored: logs, search, info, incidents, topology."""
    EXPLAIN = "explain"
    """Ask for explanations and act on incidents: POST /explain, feedback, resolve, alerts."""
    ADMIN = "admin"
    """Everything, and detection runs."""


def parse_scopes(names: Iterable[str]) -> frozenset[Scope]:
    """Scope names as given (repeatable, or comma-separated), checked."""
    out: set[Scope] = set()
    for name in names:
        for part in name.split(","):
            try:
                out.add(Scope(part.strip().lower()))
            except ValueError:
                known = ", ".join(s.value for s in Scope)
                raise InvalidInput(f"unknown scope {part.strip()!r}: use {known}", field="scope") from None
    if not out:
        raise InvalidInput("give at least one scope (--scope ingest|read|explain|admin)", field="scope")
    return frozenset(out)


def allows(scopes: Iterable[str], needed: Scope) -> bool:
    held = set(scopes)
    return Scope.ADMIN in held or needed in held


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One key as stored: never the key itself, only its hash."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created: str
    revoked: str | None = None
    sha256: str = field(default="", repr=False)

    def public(self) -> dict[str, Any]:
        """What `devmesh keys list` shows: everything but the hash."""
        d = asdict(self)
        d.pop("sha256")
        d["scopes"] = list(self.scopes)
        return d


class KeyStore:
    """The keys of one DevMesh home. Safe to share between threads; re-reads the file when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: list[ApiKey] = []

    # -- reading -----------------------------------------------------------------------------------

    def all_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first (re-read if the file changed)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._keys = self._read()
                self._stamp = stamp
            return list(self._keys)

    def configured(self) -> bool:
        """Whether the API wants keys: the file holds at least one (revoked keys count)."""
        return bool(self.all_keys())

    def lookup(self, raw: str) -> ApiKey | None:
        """The active key whose hash matches `raw`, or None (unknown or revoked)."""
        if not raw.startswith(KEY_PREFIX):
            return None
        digest = hash_key(raw)
        found = None
        for key in self.all_keys():
            if hmac.compare_digest(key.sha256, digest):
                found = key
        return found if found is not None and found.revoked is None else None

    def _read(self) -> list[ApiKey]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            return [ApiKey(**{**k, "scopes": tuple(k["scopes"])}) for k in doc["keys"]]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{self.path} is not a DevMesh key file ({exc}); restore or delete it") from exc

    # -- changing ----------------------------------------------------------------------------------

    def create(self, scopes: Iterable[str], name: str = "") -> tuple[str, ApiKey]:
        """A new key: (the key, to show once; what is stored)."""
        checked = sorted(s.value for s in parse_scopes(scopes))
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id="key_" + secrets.token_hex(6),
            name=name.strip()[:200],
            scopes=tuple(checked),
            created=iso(now_ns()),
            sha256=hash_key(raw),
        )
        with self._changing() as keys:
            keys.append(key)
        return raw, key

    def revoke(self, key_id: str) -> ApiKey:
        """Mark a key revoked (kept, so the audit log's ids stay readable). Unknown id: NotFound."""
        with self._changing() as keys:
            for i, key in enumerate(keys):
                if key.id == key_id:
                    if key.revoked is None:
                        keys[i] = ApiKey(**{**asdict(key), "revoked": iso(now_ns())})
                    return keys[i]
        raise NotFound(f"no key with id {key_id!r}; `devmesh keys list` shows them", field="id")

    @contextlib.contextmanager
    def _changing(self) -> Iterator[list[ApiKey]]:
        """Read, change and atomically rewrite the file under an exclusive lock (other processes too)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            keys = self._read()
            yield keys
            self._write(keys)
        with self._lock:
            self._stamp = None

    def _write(self, keys: list[ApiKey]) -> None:
        doc = {"version": 1, "keys": [{**asdict(k), "scopes": list(k.scopes)} for k in keys]}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)
                json.dump(doc, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
