"""`devmesh ship journald` as it runs on a host, against a live `devmesh serve` on loopback: a recorded journal
(tests/data/cases/journald-crash-loop, see its README) shipped while the API is SIGKILLed and restarted
mid-stream and the shipper is SIGKILLed with batches spooled and restarted. Afterwards the stored lines
are the journal's lines after the filter, each once (`bench.ship_faults` is the script; every wait bounded).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ship_faults import read_journal, run
from core.settings import Settings
from tests.cli import env_of

JOURNAL = Path(__file__).resolve().parents[1] / "data" / "cases" / "journald-crash-loop" / "telemetry"


@pytest.mark.slow
def test_api_killed_and_shipper_killed_mid_batch_lose_nothing_and_store_nothing_twice(
    settings: Settings, tmp_path: Path
) -> None:
    lines = read_journal(JOURNAL / "journal.journal.jsonl.gz", 1500)
    result = run(lines, tmp_path, env_of(settings), exclude_identifier="nginx", batch_size=50)
    kept = sum(1 for x in lines if '"SYSLOG_IDENTIFIER": "nginx"' not in x)
    assert result["after_filters"] == kept < len(lines)
    assert (result["stored"], result["missing"], result["extra"]) == (kept, 0, 0), result
    assert result["spooled_at_shipper_kill"] > 0 and 0 < result["acked_at_shipper_kill"] < kept  # killed mid-stream
    assert result["cursor_acked"] == kept
