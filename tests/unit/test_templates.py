"""Template miner: groupings, stable ids, state, cache, GA, hostile input."""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from core.errors import InvalidInput
from ingest.templates import TemplateMatch, TemplateMiner, mask_fast, normalize
from ingest.templates.scoring import evaluate_templates, grouping_accuracy

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "loghub_sample"
ID = re.compile(r"^T[0-9a-f]{12}$")

SSH_LINES = [
    "Accepted password for alice from 10.0.0.1 port 2201 ssh2",
    "Failed password for root from 10.0.0.2 port 2202 ssh2",
    "Failed password for root from 10.0.0.5 port 2205 ssh2",
    "Invalid user bob from 10.0.0.3",
    "Invalid user carol from 10.0.0.4",
    "Invalid user dave from 10.1.0.4",
    "Invalid user erin from 10.2.0.4",
    "Connection closed by 10.0.0.9 [preauth]",
    "Connection closed by 10.0.0.7 [preauth]",
    "session opened for user root",
    "session closed for user root",
]


def read_sample(name: str) -> tuple[list[str], list[str]]:
    with (SAMPLES / f"{name}_100.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["Content"] for r in rows], [r["EventTemplate"] for r in rows]


def partition(labels: list[str]) -> set[frozenset[int]]:
    groups: dict[str, set[int]] = defaultdict(set)
    for i, label in enumerate(labels):
        groups[label].add(i)
    return {frozenset(g) for g in groups.values()}


def test_hand_made_batch_groups_and_templates() -> None:
    results = TemplateMiner().add_many(SSH_LINES)
    assert [r.template for r in results] == [
        "Accepted password for alice from <*> port <*> <*>",
        "Failed password for root from <*> port <*> <*>",
        "Failed password for root from <*> port <*> <*>",
        "Invalid user <*> from <*>",
        "Invalid user <*> from <*>",
        "Invalid user <*> from <*>",
        "Invalid user <*> from <*>",
        "Connection closed by <*> [preauth]",
        "Connection closed by <*> [preauth]",
        "session opened for user root",
        "session closed for user root",
    ]
    ids = [r.template_id for r in results]
    assert partition(ids) == {
        frozenset({0}),
        frozenset({1, 2}),
        frozenset({3, 4, 5, 6}),
        frozenset({7, 8}),
        frozenset({9}),
        frozenset({10}),
    }
    assert all(ID.match(i) for i in ids)
    assert [r.is_new for r in results] == [True, True, False, True, False, False, False, True, False, True, True]
    assert not any(r.changed for r in results)


def test_single_lines_generalize_after_max_values_siblings() -> None:
    miner = TemplateMiner()  # max_values=3
    first = [miner.add(f"Invalid user {u} from 10.0.0.1") for u in ("a", "b", "c")]
    assert [m.template for m in first] == [f"Invalid user {u} from <*>" for u in ("a", "b", "c")]
    assert all(m.is_new for m in first)
    fourth = miner.add("Invalid user d from 10.0.0.2")
    assert fourth == TemplateMatch(first[0].template_id, "Invalid user <*> from <*>", False, True)
    fifth = miner.add("Invalid user e from 10.0.0.3")
    assert fifth == TemplateMatch(first[0].template_id, "Invalid user <*> from <*>", False, False)
    # the siblings made before were merged late into the oldest; their ids resolve to it
    assert miner.match("Invalid user b from 10.9.9.9") == first[0].template_id
    assert miner.resolve(first[1].template_id) == first[0].template_id
    assert miner.aliases() == {first[1].template_id: first[0].template_id, first[2].template_id: first[0].template_id}
    assert miner.templates() == [(first[0].template_id, "Invalid user <*> from <*>", 5)]


@pytest.mark.parametrize("name", ["OpenSSH", "HDFS", "Hadoop"])
def test_copied_loghub_samples_group_exactly(name: str) -> None:
    contents, truth = read_sample(name)
    ids = [m.template_id for m in TemplateMiner().add_many(contents)]
    assert partition(ids) == partition(truth)
    assert grouping_accuracy(ids, truth) == 1.0


def test_known_template_texts_on_openssh_sample() -> None:
    contents, _ = read_sample("OpenSSH")
    miner = TemplateMiner()
    miner.add_many(contents)
    texts = {text for _, text, _ in miner.templates()}
    assert "Invalid user <*> from <*>" in texts
    assert "pam_unix(sshd:auth): check pass; user unknown" in texts
    assert sum(count for _, _, count in miner.templates()) == 100


def test_ids_stable_across_state_and_deterministic() -> None:
    contents, _ = read_sample("OpenSSH")
    first, second = contents[:60], contents[60:]
    original = TemplateMiner()
    before = original.add_many(first)
    state = json.loads(json.dumps(original.state()))
    restored = TemplateMiner.from_state(state)
    assert restored.templates() == original.templates()
    assert [restored.match(line) for line in first] == [m.template_id for m in before]
    assert restored.add_many(second) == original.add_many(second)
    assert restored.state() == original.state()
    # a fresh miner fed the same stream the same way assigns the same ids
    fresh = TemplateMiner()
    fresh.add_many(first)
    fresh.add_many(second)
    assert fresh.templates() == original.templates()


def test_cache_path_serves_lines_differing_only_in_numbers() -> None:
    miner = TemplateMiner()
    a = miner.add("Connection closed by 10.0.0.9 port 22 [preauth]")
    b = miner.add("Connection closed by 192.168.1.1 port 60022 [preauth]")
    assert a.is_new and not b.is_new and not b.changed
    assert a.template_id == b.template_id
    assert miner.revision == 1  # the second line was a cache hit: nothing new to save
    assert miner.state()["cache"] == {"Connection closed by <*> port <*> [preauth]": a.template_id}
    assert miner.templates() == [(a.template_id, "Connection closed by <*> port <*> [preauth]", 2)]
    # match() does not learn
    assert miner.match("Connection closed by 1.2.3.4 port 1 [preauth]") == a.template_id
    assert miner.match("Something entirely different") is None
    assert miner.templates()[0][2] == 2
    assert len(miner.state()["cache"]) == 1


def test_masking_kinds_of_values() -> None:
    assert mask_fast("blk_-1608999687919862906 at 10.250.19.102:54106 v2.6.5") == "blk_-<*> at <*>:<*> <*>"
    assert normalize(mask_fast("at 10.250.19.102:54106 on Fri Jun 17 07:07:00 2005")) == ["at", "<*>", "on", "<*>"]
    assert normalize("chdir(/usr/lib/x) see http://a.b/c mac FF:<*>:9F:<*>:AA:BB") == [
        "chdir(<*>)",
        "see",
        "<*>",
        "mac",
        "<*>",
    ]


def test_grouping_accuracy_known_cases() -> None:
    assert grouping_accuracy([1, 1, 2, 2, 3], ["a", "a", "b", "b", "b"]) == pytest.approx(0.4)
    assert grouping_accuracy([1, 1, 1], ["a", "a", "b"]) == 0.0
    assert grouping_accuracy(["x", "y", "x"], ["a", "b", "a"]) == 1.0
    with pytest.raises(ValueError):
        grouping_accuracy([1], [])


def test_evaluate_templates_on_a_loghub_layout(tmp_path: Path) -> None:
    for name in ("OpenSSH", "HDFS"):
        contents, truth = read_sample(name)
        folder = tmp_path / name
        folder.mkdir()
        with (folder / f"{name}_2k.log_structured_corrected.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["LineId", "Content", "EventId", "EventTemplate"])
            for i, (c, t) in enumerate(zip(contents, truth, strict=True)):
                writer.writerow([i + 1, c, "E", t])
    report = evaluate_templates(tmp_path)
    assert set(report["systems"]) == {"HDFS", "OpenSSH"}
    assert report["average_ga"] == 1.0
    ssh = report["systems"]["OpenSSH"]
    assert (ssh["ga"], ssh["lines"], ssh["templates_true"]) == (1.0, 100, len(set(read_sample("OpenSSH")[1])))
    assert ssh["templates_found"] == ssh["templates_true"]
    assert report["parameters"]["max_values"] == 3
    assert evaluate_templates(tmp_path, systems=["HDFS"])["systems"].keys() == {"HDFS"}


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   \t  ",
        "x" * 1_000_000,
        ("word 123 " * 200_000),
        "bad \ud800 surrogate \udfff here 42",
        bytes(range(256)).decode("latin-1"),
        "\x00\x01\x02 nul and control \x7f",
        "<*> <*> already masked <*>",
    ],
)
def test_hostile_lines_do_not_crash(line: str) -> None:
    miner = TemplateMiner()
    first = miner.add(line)
    again = miner.add(line)
    assert first.is_new and again.template_id == first.template_id
    assert ID.match(first.template_id)
    first.template.encode("utf-8")  # always valid UTF-8
    assert len(first.template) <= 3 * 1024  # cut to max_chars, each char masked to at most 3
    json.dumps(miner.state())
    assert TemplateMiner.from_state(json.loads(json.dumps(miner.state()))).match(line) == first.template_id


def test_mixed_hostile_batch_keeps_order() -> None:
    lines = ["", "a 1", "\ud800", "a 2", "x" * 5000, "a 3"]
    results = TemplateMiner().add_many(lines)
    assert len(results) == len(lines)
    assert results[1].template_id == results[3].template_id == results[5].template_id


def test_bad_input_and_parameters_raise_invalid_input() -> None:
    miner = TemplateMiner()
    with pytest.raises(InvalidInput):
        miner.add(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        miner.add_many(["ok", None])  # type: ignore[list-item]
    with pytest.raises(InvalidInput):
        TemplateMiner(max_values=0)
    with pytest.raises(InvalidInput):
        TemplateMiner(no_such_param=1)
    with pytest.raises(InvalidInput):
        TemplateMiner.from_state({"version": 1, "params": {}, "clusters": [["T1", None, 1]], "cache": {}})
    with pytest.raises(InvalidInput):
        TemplateMiner.from_state({"version": 99})
