"""What ingestion, `devmesh prune` and `devmesh info` ask of the event store, on every backend (DuckDB,
ClickHouse through chDB, and through clickhouse-connect over HTTP against tests/fakes/clickhouse_http.py):
the owed-writes ledger, pruning with rollups and owed rows kept, the footprint, and "acknowledged means
stored once" when a batch is cut short after its lines. ClickHouse alone: the server drops an insert block
sent twice (dedup token), a prune cut short and run again does not count twice, and a file snapshot is
refused naming ClickHouse's BACKUP statement."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from core.errors import EngineUnavailable, InvalidInput
from ingest.devmesh_json import Limits, parse_events
from ingest.pipeline import Pipeline
from retrieval.events import EventStore, normalize
from tests.fakes.clickhouse_http import url_for_path

NS = 1_000_000_000
T = 1_700_000_040 * NS  # a whole minute: rollup buckets start here
LIMITS = Limits(max_events=10_000, max_message_chars=65_536, min_year=2000, max_future_skew_s=86_400)


def open_store(backend: str, path: Path) -> Any:
    if backend == "duckdb":
        return EventStore(path)
    pytest.importorskip("chdb", reason="chdb is not installed (pip install 'devmesh[clickhouse]')")
    from retrieval.events.clickhouse import ClickHouseEventStore, connect

    if backend == "clickhouse-http":  # clickhouse-connect against the HTTP stand-in (tests/fakes/clickhouse_http.py)
        return ClickHouseEventStore(connect(url_for_path(path)))
    return ClickHouseEventStore(connect(f"chdb://{path.with_suffix('.chdb')}"))


@pytest.fixture(params=["duckdb", "chdb", "clickhouse-http"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "clickhouse-http":
        request.getfixturevalue("clickhouse_http")
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[Any]:
    st = open_store(backend, tmp_path / "events.duckdb")
    yield st
    st.close()


def lines(n: int, start_ns: int = T, *, step_s: float = 1.0) -> pa.Table:
    """`n` lines one `step_s` apart from `start_ns`, templates A and B in turn."""
    return pa.table(
        {
            "ts_ns": [start_ns + int(i * step_s * NS) for i in range(n)],
            "service": ["checkout"] * n,
            "host": ["node-1"] * n,
            "pod": ["checkout-1"] * n,
            "level": ["ERROR" if i % 2 else "INFO" for i in range(n)],
            "message": [f"line {i}" for i in range(n)],
            "trace_id": [""] * n,
            "template_id": ["B" if i % 2 else "A" for i in range(n)],
        }
    )


def count(st: Any, sql: str) -> int:
    return int(st.sql(sql)[1][0][0])


# -- the owed ledger --------------------------------------------------------------------------------


def test_owed_ledger_adds_fails_lists_and_settles(store: Any) -> None:
    a = store.owed.add("graph", "logs", T, T + 5 * NS)
    b = store.owed.add("graph", "spans", T + 1, T + 2, error="graph down")
    c = store.owed.add("vectors", "logs", T, T)
    assert len({a, b, c}) == 3
    store.owed.failed([a], "timeout")
    store.owed.failed([a], "still down")
    pending = store.owed.pending("graph")
    assert [(e.id, e.kind, e.lo_ns, e.hi_ns, e.attempts, e.error) for e in pending] == [
        (a, "logs", T, T + 5 * NS, 2, "still down"),
        (b, "spans", T + 1, T + 2, 0, "graph down"),
    ]
    assert [e.id for e in store.owed.pending("graph", exclude=[a])] == [b]
    assert [e.id for e in store.owed.pending("graph", limit=1)] == [a]
    assert store.owed.counts() == {"graph": 2, "vectors": 1}
    assert store.owed.counts(exclude=[b, c]) == {"graph": 1}
    store.owed.settle([a, c])
    assert [e.id for e in store.owed.pending("graph")] == [b]
    assert store.owed.counts() == {"graph": 1}
    store.owed.settle([])  # nothing to do
    store.owed.failed([], "x")


# -- pruning, rollups, footprint ----------------------------------------------------------------------


def test_prune_rolls_up_deletes_and_keeps_what_the_graph_is_owed(store: Any) -> None:
    assert store.append_logs(lines(600)).inserted == 600  # 10 minutes, one line a second
    fp = store.footprint()
    assert fp["rows"] == {"logs": 600, "spans": 0, "metrics": 0}
    assert fp["used_bytes"] >= fp["tables"]["logs"] >= 0 and fp["free_bytes"] >= 0  # DuckDB: 0 until a checkpoint

    dry = store.prune_before("logs", T + 300 * NS, dry_run=True, reason="age")
    assert (dry.deleted, dry.reason, dry.cutoff_ns, dry.rows_before) == (300, "age", T + 300 * NS, 600)
    assert count(store, "SELECT count(*) FROM logs") == 600

    done = store.prune_before("logs", T + 300 * NS, reason="age")
    assert (done.deleted, done.cutoff_ns, done.rows_before) == (300, T + 300 * NS, 600)
    assert count(store, "SELECT count(*) FROM logs") == 300
    assert count(store, "SELECT min(ts_ns) FROM logs") == T + 300 * NS
    assert count(store, "SELECT sum(count) FROM log_rollup") == 300  # what went is still counted
    assert count(store, "SELECT sum(count) FROM log_rollup WHERE template_id = 'B' AND level = 'ERROR'") == 150
    assert store.retention_horizon() == {"logs": T + 300 * NS}
    counts = {(c.template_id, c.count) for c in store.template_counts(T, T + 600 * NS)}
    assert counts == {("A", 300), ("B", 300)}  # pruned lines count from their rollup
    assert [(b.bucket_ns, b.count) for b in store.error_counts(T, T + 120 * NS, bucket_s=60)] == [
        (T, 30),
        (T + 60 * NS, 30),
    ]
    assert store.footprint()["rows"]["logs"] == 300

    entry = store.owed.add("graph", "logs", T + 420 * NS, T + 430 * NS)  # the graph still lacks these
    kept = store.prune_before("logs", T + 540 * NS)
    assert (kept.cutoff_ns, kept.deleted) == (T + 420 * NS, 120)
    store.owed.settle([entry])
    assert store.prune_before("logs", T + 540 * NS).deleted == 120
    assert store.retention_horizon() == {"logs": T + 540 * NS}
    assert count(store, "SELECT sum(count) FROM log_rollup") == 540
    assert store.age_cutoff("logs", 60 * NS, now_ns=T + 10**6 * NS) == T + 599 * NS - 60 * NS
    assert store.size_cutoff("logs", 0.5) == T + 570 * NS


# -- acknowledged means stored once -----------------------------------------------------------------


def parsed(n: int) -> dict[str, list[Any]]:
    events = [
        {"timestamp": T + i * NS, "message": f"payment {i} declined by bank {i % 3}", "level": "ERROR",
         "service": "payments", "pod": "payments-1", "host": "node-2"}
        for i in range(n)
    ]  # fmt: skip
    out = parse_events(events, LIMITS, now_ns=T + 86_400 * NS)
    assert out.errors == []
    return out.rows


def test_a_batch_cut_short_after_its_lines_is_whole_when_sent_again(
    store: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after the lines are written and before the rest of the batch (examples,
    templates, miner state): the client had no acknowledgement, so it sends the batch again."""

    def dies(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt  # not a DevMeshError: nothing in the pipeline catches it

    monkeypatch.setattr(store, "remember_examples", dies)
    with pytest.raises(KeyboardInterrupt):
        Pipeline(store, None, None, None).ingest_logs(parsed(30), embed=False)
    monkeypatch.undo()
    stored_by_the_cut = count(store, "SELECT count(*) FROM logs")
    assert stored_by_the_cut == (0 if backend == "duckdb" else 30)  # DuckDB rolled back; ClickHouse cannot

    again = Pipeline(store, None, None, None).ingest_logs(parsed(30), embed=False)  # a new process
    assert (again.stored + again.duplicates, again.stored) == (30, 30 - stored_by_the_cut)
    assert count(store, "SELECT count(*) FROM logs") == 30
    templates = store.templates()
    assert sum(t.count for t in templates) == 30 and templates  # every line counted once, by its template
    assert {t.template_id for t in templates} == {r[0] for r in store.sql("SELECT DISTINCT template_id FROM logs")[1]}
    assert sum(len(v) for v in store.cached_examples([t.template_id for t in templates]).values()) > 0

    repeat = Pipeline(store, None, None, None).ingest_logs(parsed(30), embed=False)
    assert (repeat.stored, repeat.duplicates) == (0, 30)
    assert sum(t.count for t in store.templates()) == 30  # a plain repeat changes no count


# -- keyword search (the fallback of GET /search/logs) -------------------------------------------------


def test_keyword_templates_rank_the_same_on_both(store: Any) -> None:
    from retrieval.events import LogQuery

    rows = lines(6)  # A: lines 0, 2, 4 (INFO); B: lines 1, 3, 5 (ERROR)
    messages = ["Disk FULL on node", "payment timeout", "disk ok", "Payment Timeout again", "x", "Zürich DISK"]
    store.append_logs(rows.set_column(5, "message", pa.array(messages)))
    store.upsert_templates(
        [{"template_id": t, "text": x, "count": 0, "level": lv} for t, x, lv in [("A", "disk <*>", "INFO")]]
    )
    q = LogQuery(start_ns=T, end_ns=T + 60 * NS)
    found = store.keyword_templates(["disk", "timeout", "zürich"], q, limit=10)
    assert [(m.template_id, m.text, m.level, m.matched, m.count, m.last_ns) for m in found] == [
        ("B", "", "", 3, 3, T + 5 * NS),  # 'timeout' and 'Zürich DISK' in its lines (no stored template)
        ("A", "disk <*>", "INFO", 1, 3, T + 4 * NS),
    ]
    only_a = store.keyword_templates(["timeout"], q.model_copy(update={"level": "INFO"}), limit=10)
    assert only_a == []  # B's lines are ERROR: the filter keeps A, which has no 'timeout'
    assert [m.template_id for m in store.keyword_templates(["disk"], q, limit=1)] == ["B"]
    assert store.keyword_templates([], q, limit=10) == []


# -- ClickHouse alone ---------------------------------------------------------------------------------


@pytest.fixture(params=["chdb", "clickhouse-http"])
def ch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "clickhouse-http":
        request.getfixturevalue("clickhouse_http")
    st = open_store(request.param, tmp_path / "events.duckdb")
    yield st
    st.close()


def test_the_server_drops_an_insert_block_sent_twice(ch: Any) -> None:
    """Two processes that both found none of a batch stored send the same block: one is kept."""
    from retrieval.events.clickhouse.store import dedup_token

    batch = normalize("logs", lines(50))
    for _ in range(2):  # straight to the table, past the store's own check of stored ids
        ch._insert("logs", batch, dedup_token=dedup_token(batch))
    assert count(ch, "SELECT count() FROM logs") == 50
    other = normalize("logs", lines(50, T + 3600 * NS))
    ch._insert("logs", other, dedup_token=dedup_token(other))  # other rows, another token
    assert count(ch, "SELECT count() FROM logs") == 100
    with pytest.raises(InvalidInput):
        ch._insert("logs", batch, dedup_token="x' SETTINGS readonly = 0")


def test_a_prune_cut_short_between_rollup_and_delete_does_not_count_twice(ch: Any) -> None:
    from retrieval.events.clickhouse.retention import _ROLLUP_SQL

    ch.append_logs(lines(600))
    ch._command(_ROLLUP_SQL["logs"], {"w": 60 * NS, "upto": T + 300 * NS})  # the rollup, then the process died
    assert ch.prune_before("logs", T + 330 * NS).cutoff_ns == T + 300 * NS  # down to a whole minute
    assert count(ch, "SELECT sum(count) FROM log_rollup FINAL") == 300
    assert count(ch, "SELECT count() FROM logs") == 300


def test_a_file_snapshot_is_refused_naming_clickhouse_backup(ch: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as refused:
        ch.snapshot_to(tmp_path / "events.duckdb")
    assert refused.value.field == "events_url"
    assert "BACKUP DATABASE" in refused.value.message and str(ch.where) in refused.value.message
    assert not (tmp_path / "events.duckdb").exists()
    ch.check_sole_writer()  # many writers share a server: nothing to refuse


def test_a_chdb_folder_held_by_another_process_is_refused_naming_it(tmp_path: Path) -> None:
    """As `devmesh serve` holds its chDB folder: a second process gets EngineUnavailable (the CLI then goes
    through the server), not a crash."""
    from retrieval.events.clickhouse import connect

    folder = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, stdin=subprocess.PIPE, cwd=Path.cwd()
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ready"
        with pytest.raises(EngineUnavailable) as refused:
            connect(f"chdb://{folder}")
        assert str(folder) in refused.value.message and "devmesh serve" in refused.value.message
    finally:
        holder.kill()
        holder.wait(timeout=30)


HOLD = """
import sys
from pathlib import Path
from retrieval.events.clickhouse import connect
conn = connect("chdb://" + sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""
