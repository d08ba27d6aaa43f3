"""Late template merges through the pipeline (issue 10): lines stored under a template id that was
later merged keep that id, which resolves to the live template and shows its text, across restarts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.wiring import Services
from core.settings import Settings
from ingest.devmesh_json import Limits, parse_events
from retrieval.events import LogQuery

NS = 10**9
T = 1_760_000_000 * NS
LIMITS = Limits(max_events=10_000, max_message_chars=65_536, min_year=2000, max_future_skew_s=86_400)
SSH = {"service": "sshd", "pod": "", "host": "node-1"}
USERS = ["alice", "bob", "carol", "dave", "erin"]


def one_line(i: int, user: str) -> dict[str, list[Any]]:
    event = {"timestamp": T + i * NS, "message": f"Invalid user {user} from 10.0.0.{i}", "level": "WARN", **SSH}
    parsed = parse_events([event], LIMITS, now_ns=T + 86_400 * NS)
    assert parsed.errors == []
    return parsed.rows


def test_lines_one_at_a_time_merge_late_and_old_ids_still_resolve(
    settings: Settings, open_fn: Callable[[Settings], Services]
) -> None:
    svc = open_fn(settings)
    try:
        for i, user in enumerate(USERS):
            svc.pipeline.ingest_logs(one_line(i, user))
        stored = [e["template_id"] for e in svc.events.query_logs(LogQuery(order="asc", limit=100)).events]
        first = stored[0]
        assert len(set(stored[:3])) == 3  # the first three lines looked like three templates
        assert stored[3:] == [first, first]  # the fourth showed the name is a variable
        assert svc.events.resolve_templates(stored) == dict.fromkeys(stored, first)
        # every stored line still joins a template row, and all show the merged text
        texts = {t.template_id: t.text for t in svc.events.templates()}
        assert set(stored) <= set(texts)
        assert {texts[i] for i in stored} == {"Invalid user <*> from <*>"}
    finally:
        svc.close()

    svc = open_fn(settings)  # the aliases and the merged template survive a restart
    try:
        assert svc.pipeline.miner.resolve(stored[1]) == first
        svc.pipeline.ingest_logs(one_line(9, "bob"))
        last = svc.events.query_logs(LogQuery(order="desc", limit=1)).events[0]
        assert last["template_id"] == first
        assert svc.events.resolve_templates([stored[2]]) == {stored[2]: first}
    finally:
        svc.close()
