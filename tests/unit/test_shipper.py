"""The journal shipper without a server: filters, the cursor file and spool, the file source, and the loop
against an in-process fake of POST /ingest/journald that fails, loses answers, and refuses (httpx MockTransport).

The fake stores entries by their content, as the event store does (a resent entry is a duplicate), so
"delivered once each" is checked the way the real server would see it.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from api.cli.main import app
from api.shipper.filters import FilterConfig, NoiseFilter, load_config, merge
from api.shipper.ship import ShipOptions, Shipper, load_state, resume_position, spool_dir
from api.shipper.source import END, Entry, FileSource, JournalSource
from api.shipper.state import Cursor, Spool
from api.shipper.unit import render_unit
from core.errors import InvalidInput, Unauthorized

REPO = Path(__file__).resolve().parents[2]
T0 = 1_760_000_000_000_000  # microseconds


def entry(i: int, ident: str = "app", unit: str = "app.service", priority: int = 6, msg: str = "") -> dict[str, Any]:
    return {
        "__CURSOR": f"s=abc;i={i:x}",
        "__REALTIME_TIMESTAMP": str(T0 + i),
        "_HOSTNAME": "atlas",
        "_SYSTEMD_UNIT": unit,
        "SYSLOG_IDENTIFIER": ident,
        "PRIORITY": str(priority),
        "MESSAGE": msg or f"request {i} done",
    }


def journal(path: Path, entries: list[dict[str, Any]], mode: str = "w") -> None:
    with path.open(mode, encoding="utf-8") as f:
        for e in entries:
            f.write(json.dumps(e) + "\n")


# -- filters ---------------------------------------------------------------------------------------


def test_filters_leave_out_units_identifiers_priorities_and_messages() -> None:
    noise = NoiseFilter.of(
        FilterConfig(
            exclude_units=["cron*"],
            exclude_identifiers=["systemd-*"],
            exclude_messages=[r"^GET /health"],
            max_priority=6,
        )
    )
    assert noise.keep(entry(1))
    assert not noise.keep(entry(2, unit="cron.service"))
    assert not noise.keep(entry(3, ident="systemd-logind"))
    assert not noise.keep(entry(4, priority=7))
    assert noise.keep(entry(5, priority=3))
    assert not noise.keep(entry(6, msg="GET /health 200"))
    assert noise.keep(entry(7, msg="POST /GET /health"))
    as_bytes = {**entry(8), "MESSAGE": list(b"GET /health 200")}  # journald's form for non-UTF-8 text
    assert not noise.keep(as_bytes)
    assert NoiseFilter.of(FilterConfig(only_units=["nginx.service"])).keep(entry(9, unit="nginx.service"))
    assert not NoiseFilter.of(FilterConfig(only_units=["nginx.service"])).keep(entry(9))


def test_filter_files_toml_and_yaml_merge_with_the_command_line(tmp_path: Path) -> None:
    toml = tmp_path / "ship.toml"
    toml.write_text('exclude_units = ["cron.service"]\nmax_priority = 5\n')
    yml = tmp_path / "ship.yaml"
    yml.write_text("exclude_identifiers: [sshd]\nexclude_messages: ['^ping']\n")
    merged = merge(load_config(toml), FilterConfig(exclude_units=["anacron.service"], max_priority=6))
    assert merged.exclude_units == ["cron.service", "anacron.service"] and merged.max_priority == 6
    assert load_config(yml).exclude_identifiers == ["sshd"]
    bad = tmp_path / "bad.toml"
    bad.write_text('exclude_unit = ["x"]\n')  # misspelled key
    with pytest.raises(InvalidInput) as err:
        load_config(bad)
    assert err.value.field == "config.exclude_unit"
    with pytest.raises(InvalidInput) as err:
        NoiseFilter.of(FilterConfig(exclude_messages=["ok", "(unclosed"]))
    assert err.value.field == "exclude_messages[1]"


# -- cursor file and spool -------------------------------------------------------------------------


def test_cursor_round_trip_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cursor.json"
    assert Cursor.load(path) == Cursor()
    Cursor({"kind": "journal", "cursor": "s=1;i=2"}, seq=7, acked=40).save(path)
    assert Cursor.load(path) == Cursor({"kind": "journal", "cursor": "s=1;i=2"}, seq=7, acked=40)
    assert [p.name for p in tmp_path.iterdir()] == ["cursor.json"]  # no temporary file left
    path.write_text("not json")
    with pytest.raises(InvalidInput):
        Cursor.load(path)


def test_spool_replays_oldest_first_and_drops_batches_a_kill_left_after_their_ack(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=10_000)
    for seq in (3, 1, 2):
        spool.put(seq, [f'{{"n": {seq}}}'], {"kind": "file", "offset": seq})
    again = Spool(tmp_path / "s", max_bytes=10_000)  # a restart reads what is on disk
    oldest, newest = again.oldest(), again.newest()
    assert oldest is not None and newest is not None
    assert (oldest.seq, newest.seq, newest.end["offset"]) == (1, 3, 3)
    assert again.drop_acked(2) == 2 and len(again) == 1
    assert not Spool(tmp_path / "t", max_bytes=10).full()
    small = Spool(tmp_path / "t", max_bytes=10)
    small.put(1, ["x" * 20], {})
    assert small.full()


# -- the file source -------------------------------------------------------------------------------


def drain(src: FileSource, want: int, timeout: float = 10.0) -> list[Any]:
    got: list[Any] = []
    while len(got) < want:
        item = src.get(timeout)
        assert item is not None, f"only {len(got)} of {want} items came"
        got.append(item)
    return got


def test_followed_file_waits_for_a_line_end_and_resumes_at_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    journal(path, [entry(1)])
    with path.open("a") as f:
        f.write(json.dumps(entry(2))[:20])  # half a line: not read until its newline comes
    src = FileSource(path, {}, once=False, capacity=10)
    src.start()
    first = drain(src, 1)[0]
    assert isinstance(first, Entry) and first.doc == entry(1)
    assert src.get(0.5) is None
    with path.open("a") as f:
        f.write(json.dumps(entry(2))[20:] + "\n")
    second = drain(src, 1)[0]
    assert second.doc == entry(2) and second.position["offset"] == path.stat().st_size
    src.stop()
    resumed = FileSource(path, first.position, once=True, capacity=10)
    resumed.start()
    assert [getattr(x, "doc", x) for x in drain(resumed, 2)] == [entry(2), END]


def test_a_cursor_of_another_file_reads_the_new_one_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    journal(path, [entry(1), entry(2)])
    old = {"kind": "file", "inode": path.stat().st_ino + 1, "offset": 10}
    src = FileSource(path, old, once=True, capacity=10)
    src.start()
    assert [getattr(x, "doc", x) for x in drain(src, 3)] == [entry(1), entry(2), END]


# -- the loop against a fake server ----------------------------------------------------------------


class FakeApi:
    """POST /ingest/journald, storing entries by content; `script` says what each request gets."""

    def __init__(self, script: Callable[[int, list[dict[str, Any]]], int | str] = lambda n, e: 200) -> None:
        self.stored: Counter[str] = Counter()
        self.requests = 0
        self.script = script
        self.auth: list[str | None] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.auth.append(request.headers.get("authorization"))
        entries = json.loads(gzip.decompress(request.content))
        what = self.script(self.requests, entries)
        if what == "lost":  # stored, but the answer never arrives
            self.store(entries)
            raise httpx.ReadTimeout("answer lost", request=request)
        if what != 200:
            return httpx.Response(int(what), json={"error": "X", "message": "no"}, headers={"Retry-After": "0"})
        dup = self.store(entries)
        return httpx.Response(200, json={"received": len(entries), "stored": len(entries) - dup, "duplicates": dup})

    def store(self, entries: list[dict[str, Any]]) -> int:
        dup = sum(1 for e in entries if self.stored[json.dumps(e, sort_keys=True)])
        for e in entries:
            self.stored[json.dumps(e, sort_keys=True)] = 1
        return dup


def ship(tmp_path: Path, api: FakeApi, noise: NoiseFilter | None = None, **kw: Any) -> tuple[Shipper, Any]:
    opts = ShipOptions(
        server="http://devmesh.test",
        cursor_file=tmp_path / "state" / "cursor.json",
        api_key="k-1",
        once=True,
        backoff_base_s=0.001,
        backoff_cap_s=0.01,
        **{"batch_size": 10, "flush_s": 0.05, **kw},
    )
    cursor, spool = load_state(opts)
    src = FileSource(tmp_path / "j.json", resume_position(cursor, spool), once=True, capacity=100)
    shipper = Shipper(opts, src, noise or NoiseFilter(), cursor, spool, transport=httpx.MockTransport(api.handler))
    return shipper, shipper.run()


def test_outage_retries_then_every_kept_entry_arrives_once_and_the_cursor_is_at_the_end(tmp_path: Path) -> None:
    entries = [entry(i, ident="cron" if i % 5 == 0 else "app") for i in range(95)]
    journal(tmp_path / "j.json", entries)
    api = FakeApi(lambda n, e: 503 if n <= 4 else 200)  # the API is down for the first four tries
    shipper, stats = ship(tmp_path, api, NoiseFilter.of(FilterConfig(exclude_identifiers=["cron"])))
    kept = [e for e in entries if e["SYSLOG_IDENTIFIER"] != "cron"]
    assert sorted(api.stored) == sorted(json.dumps(e, sort_keys=True) for e in kept)
    assert (stats.read, stats.filtered, stats.sent, stats.retries) == (95, 19, 76, 4)
    assert stats.server.duplicates == 0 and set(api.auth) == {"Bearer k-1"}
    cursor = Cursor.load(tmp_path / "state" / "cursor.json")
    assert cursor.position["offset"] == (tmp_path / "j.json").stat().st_size and cursor.acked == 76
    assert len(shipper.spool) == 0 and not list(spool_dir(tmp_path / "state" / "cursor.json").glob("*.json"))


def test_a_lost_answer_is_resent_and_stored_once(tmp_path: Path) -> None:
    entries = [entry(i) for i in range(30)]
    journal(tmp_path / "j.json", entries)
    api = FakeApi(lambda n, e: "lost" if n == 2 else 200)
    _, stats = ship(tmp_path, api)
    assert len(api.stored) == 30 and stats.server.duplicates == 10 and stats.retries == 1


def test_a_restart_resumes_after_the_acknowledged_entries_only(tmp_path: Path) -> None:
    entries = [entry(i) for i in range(40)]
    journal(tmp_path / "j.json", entries)
    api = FakeApi(lambda n, e: 200 if n <= 2 else 503)
    stopper: list[Shipper] = []

    def stop_later() -> None:  # the API stays down: stop the shipper as SIGTERM would
        while not stopper or stopper[0].stats.retries < 3:
            threading.Event().wait(0.01)
        stopper[0].stop()

    opts = ShipOptions("http://devmesh.test", tmp_path / "state" / "cursor.json", once=True, batch_size=10)
    cursor, spool = load_state(opts)
    src = FileSource(tmp_path / "j.json", resume_position(cursor, spool), once=True, capacity=100)
    shipper = Shipper(opts, src, NoiseFilter(), cursor, spool, transport=httpx.MockTransport(api.handler))
    shipper.backoff.base = shipper.backoff.cap = 0.001
    stopper.append(shipper)
    watcher = threading.Thread(target=stop_later, daemon=True)
    watcher.start()
    shipper.run()
    watcher.join(10)
    assert len(api.stored) == 20 and Cursor.load(opts.cursor_file).acked == 20
    assert len(shipper.spool) >= 1  # read but not acknowledged: kept for the next run
    api.script = lambda n, e: 200
    _, stats = ship(tmp_path, api)
    assert len(api.stored) == 40 and stats.server.duplicates == 0
    assert Cursor.load(opts.cursor_file).acked == 40


def test_too_large_is_split_and_refused_batches_are_kept_aside(tmp_path: Path) -> None:
    journal(tmp_path / "j.json", [entry(i) for i in range(20)])
    api = FakeApi(
        lambda n, e: 413 if len(e) > 3 else (422 if any(x["MESSAGE"] == "request 19 done" for x in e) else 200)
    )
    _, stats = ship(tmp_path, api)
    assert len(api.stored) == 17 and stats.refused == 3  # halved down to the three entries 17-19, refused
    aside = list((spool_dir(tmp_path / "state" / "cursor.json") / "refused").glob("*.json"))
    assert len(aside) == 1 and "request 19 done" in aside[0].read_text()
    assert Cursor.load(tmp_path / "state" / "cursor.json").position["offset"] == (tmp_path / "j.json").stat().st_size


def test_a_key_the_server_will_not_take_stops_the_shipper_and_keeps_the_batch(tmp_path: Path) -> None:
    journal(tmp_path / "j.json", [entry(i) for i in range(5)])
    with pytest.raises(Unauthorized):
        ship(tmp_path, FakeApi(lambda n, e: 403))
    assert Cursor.load(tmp_path / "state" / "cursor.json").acked == 0
    assert len(Spool(spool_dir(tmp_path / "state" / "cursor.json"), 10**6)) == 1


# -- the unit --------------------------------------------------------------------------------------


def test_the_shipped_unit_is_the_rendered_one_and_install_writes_it(tmp_path: Path) -> None:
    assert (REPO / "deploy" / "devmesh-ship-journald.service").read_text() == render_unit()
    target = tmp_path / "devmesh-ship-journald.service"
    res = CliRunner().invoke(
        app,
        ["ship", "journald", "--install-unit", "--server", "http://10.0.0.5:8080", "--unit-path", str(target)]
        + ["--exclude-unit", "cron.service", "--max-priority", "6"],
    )
    assert res.exit_code == 0, res.output
    text = target.read_text()
    line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    assert line.endswith(
        " ship journald --server http://10.0.0.5:8080 --cursor-file /var/lib/devmesh-ship/cursor.json"
        " --exclude-unit cron.service --max-priority 6"
    )
    assert "systemctl enable --now devmesh-ship-journald.service" in res.output


def test_a_full_spool_pauses_reading_until_the_api_answers(tmp_path: Path) -> None:
    journal(tmp_path / "j.json", [entry(i) for i in range(200)])
    down = threading.Event()
    down.set()
    api = FakeApi(lambda n, e: 503 if down.is_set() else 200)
    opts = ShipOptions(
        "http://devmesh.test",
        tmp_path / "state" / "cursor.json",
        once=True,
        batch_size=10,
        spool_max_bytes=2_000,
        backoff_base_s=0.001,
        backoff_cap_s=0.01,
    )
    cursor, spool = load_state(opts)
    src = FileSource(tmp_path / "j.json", resume_position(cursor, spool), once=True, capacity=10)
    shipper = Shipper(opts, src, NoiseFilter(), cursor, spool, transport=httpx.MockTransport(api.handler))
    seen: list[int] = []

    def watch() -> None:
        while shipper.stats.retries < 20:
            threading.Event().wait(0.01)
        seen.append(shipper.stats.read)
        seen.append(spool.bytes)
        down.clear()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stats = shipper.run()
    watcher.join(10)
    assert seen[0] < 200 and seen[1] < 2_000 + 2_000  # reading paused near the bound, not the whole journal spooled
    assert len(api.stored) == 200 and stats.server.duplicates == 0


FAKE_JOURNALCTL = """\
import json, os, sys
args = sys.argv[1:]
after = args[args.index("--after-cursor") + 1] if "--after-cursor" in args else None
lines = open(os.environ["FAKE_JOURNAL"]).read().splitlines()
if after is not None:
    lines = lines[[json.loads(x)["__CURSOR"] for x in lines].index(after) + 1:]
elif "-n" in args:
    lines = lines[len(lines) - int(args[args.index("-n") + 1]):] if int(args[args.index("-n") + 1]) else []
with open(os.environ["FAKE_JOURNAL"] + ".args", "a") as f:
    f.write(json.dumps(args) + "\\n")
for x in lines:
    print(x, flush=True)
"""


def test_journalctl_is_resumed_after_the_acknowledged_cursor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    entries = [entry(i) for i in range(25)]
    journal(tmp_path / "journal.json", entries)
    script = tmp_path / "journalctl"
    script.write_text(f"#!{sys.executable}\n{FAKE_JOURNALCTL}")
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_JOURNAL", str(tmp_path / "journal.json"))
    api = FakeApi(lambda n, e: 200 if n <= 1 else 503)

    def one_run(api: FakeApi, stop_after_retries: int | None) -> Shipper:
        opts = ShipOptions("http://devmesh.test", tmp_path / "state" / "cursor.json", once=True, batch_size=10)
        cursor, spool = load_state(opts)
        start = resume_position(cursor, spool)
        src = JournalSource(start, once=True, capacity=100, from_start=True, command=[str(script)])
        shipper = Shipper(opts, src, NoiseFilter(), cursor, spool, transport=httpx.MockTransport(api.handler))
        shipper.backoff.base = shipper.backoff.cap = 0.001
        if stop_after_retries is not None:

            def stop() -> None:
                while shipper.stats.retries < stop_after_retries:
                    threading.Event().wait(0.01)
                shipper.stop()

            threading.Thread(target=stop, daemon=True).start()
        shipper.run()
        return shipper

    first = one_run(api, stop_after_retries=2)
    assert Cursor.load(tmp_path / "state" / "cursor.json").position == {"kind": "journal", "cursor": "s=abc;i=9"}
    assert len(api.stored) == 10 and len(first.spool) >= 1
    api.script = lambda n, e: 200
    one_run(api, stop_after_retries=None)
    assert sorted(api.stored) == sorted(json.dumps(e, sort_keys=True) for e in entries)
    calls = [json.loads(x) for x in (tmp_path / "journal.json.args").read_text().splitlines()]
    assert calls[0] == ["-o", "json", "--no-pager"]  # no cursor yet, --from-start: the whole journal
    last = calls[-1]
    assert last[:3] == ["-o", "json", "--no-pager"] and last[3] == "--after-cursor"  # resumed after the spool
