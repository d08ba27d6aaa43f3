"""API keys (the store in keys.json: hashed, atomic, re-read on change), scopes, the audit log, the Host rules."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from api.audit import AuditLog
from api.http.access import LOCAL, authenticate, is_loopback
from api.http.guard import _bare, allowed_hosts
from api.keystore import KeyStore, Scope, allows, hash_key, parse_scopes
from core.errors import InvalidInput, NotFound, Unauthorized
from core.settings import Settings
from core.timeutil import NS, iso_to_ns


def test_a_key_is_shown_once_and_stored_only_as_its_hash(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    raw, key = store.create(["ingest", "read"], "shipper")

    assert raw.startswith("dmk_") and len(raw) >= 4 + 43
    text = (tmp_path / "keys.json").read_text()
    assert raw not in text and raw[4:] not in text
    assert hash_key(raw) in text
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert key.scopes == ("ingest", "read") and key.name == "shipper" and key.revoked is None
    assert "sha256" not in key.public() and raw not in json.dumps(key.public())
    assert store.lookup(raw) == key


def test_unknown_and_revoked_keys_are_not_found_and_revoked_keys_keep_the_api_locked(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    assert not store.configured()
    raw, key = store.create(["admin"])
    other_raw, _ = store.create(["read"])

    assert store.lookup(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
    assert store.lookup("not-a-key") is None
    revoked = store.revoke(key.id)
    assert revoked.revoked is not None
    assert store.lookup(raw) is None
    assert store.lookup(other_raw) is not None
    assert store.configured()  # a revoked last key locks the API, it does not open it
    with pytest.raises(NotFound):
        store.revoke("key_nope")


def test_a_second_store_on_the_same_file_sees_creates_and_revokes(tmp_path: Path) -> None:
    """A running server's store notices what `devmesh keys` (another process) changed."""
    server, cli = KeyStore(tmp_path / "keys.json"), KeyStore(tmp_path / "keys.json")
    assert server.lookup("dmk_x") is None and not server.configured()
    raw, key = cli.create(["read"])
    assert server.lookup(raw) == key
    cli.revoke(key.id)
    assert server.lookup(raw) is None
    assert [k.id for k in server.all_keys()] == [key.id]


def test_scopes_are_checked_and_admin_implies_every_scope() -> None:
    assert parse_scopes(["read", "ingest,explain"]) == {Scope.READ, Scope.INGEST, Scope.EXPLAIN}
    with pytest.raises(InvalidInput) as exc:
        parse_scopes(["write"])
    assert exc.value.field == "scope"
    with pytest.raises(InvalidInput):
        parse_scopes([])
    assert all(allows(["admin"], s) for s in Scope)
    assert allows(["read"], Scope.READ) and not allows(["read"], Scope.EXPLAIN)


def test_authenticate_local_mode_and_keys(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    loopback = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert authenticate(store, loopback, {}) == LOCAL
    wide = loopback.model_copy(update={"api_host": "0.0.0.0"})
    with pytest.raises(Unauthorized):  # no keys and listening beyond loopback: nobody is 'local'
        authenticate(store, wide, {})

    raw, key = store.create(["explain"], "am")
    with pytest.raises(Unauthorized):
        authenticate(store, loopback, {})
    with pytest.raises(Unauthorized):
        authenticate(store, loopback, {"authorization": "Basic " + raw})
    principal = authenticate(store, loopback, {"authorization": "Bearer " + raw})
    assert (principal.key_id, principal.name, principal.scopes) == (key.id, "am", frozenset({"explain"}))


def test_audit_log_appends_lines_and_reads_the_newest_since(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    t0 = 1_760_000_000 * NS
    for i in range(5):
        log.append(
            key_id=f"k{i}",
            name="n",
            method="POST",
            path=f"/ingest/logs?x={i}",
            status=200,
            client="127.0.0.1",
            time_ns=t0 + i * NS,
        )
    (tmp_path / "audit.jsonl").open("a").write("not json\n")
    rows = log.read(limit=2)
    assert [r["key_id"] for r in rows] == ["k3", "k4"]
    assert rows[0] == {
        "time": "2025-10-09T08:53:23Z",
        "key_id": "k3",
        "name": "n",
        "method": "POST",
        "path": "/ingest/logs",
        "status": 200,
        "client": "127.0.0.1",
    }
    assert [r["key_id"] for r in log.read(since_ns=iso_to_ns("2025-10-09T08:53:22Z"))] == ["k2", "k3", "k4"]
    assert AuditLog(tmp_path / "none.jsonl").read() == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_allowed_hosts_are_loopback_the_bind_host_and_the_configured_ones(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, api_host="10.0.0.5", allowed_hosts="devmesh.internal, Other.Example", _env_file=None)  # type: ignore[call-arg]
    assert allowed_hosts(s) == {"localhost", "127.0.0.1", "::1", "10.0.0.5", "devmesh.internal", "other.example"}
    assert allowed_hosts(s.model_copy(update={"allowed_hosts": ["*"]})) is None
    assert [_bare(h) for h in ("[::1]:8080", "Example.COM:80", "localhost.", "127.0.0.1")] == [
        "::1",
        "example.com",
        "localhost",
        "127.0.0.1",
    ]
