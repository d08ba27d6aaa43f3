"""The systemd units under deploy/: each parses as a unit file, its ExecStart is a devmesh command line the
CLI accepts (every subcommand and option known, values valid), and, where `systemd-analyze` is installed,
`systemd-analyze verify` finds nothing to say about it (unknown keys and bad values are only warnings
there, so its output must be empty, not just its exit code zero)."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from api.cli.main import app

REPO = Path(__file__).resolve().parents[2]
UNITS = sorted((REPO / "deploy").glob("*.service"))
DEVMESH = Path(sys.executable).parent / "devmesh"


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",), comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def parse_cli(args: list[str]) -> list[str]:
    """The command path `args` resolve to in the devmesh CLI, parsed as click would, nothing run.

    A UsageError (typer's click) when a subcommand, an option or a value is not accepted."""
    cmd: Any = typer.main.get_command(app)
    ctx = cmd.make_context("devmesh", list(args), resilient_parsing=False)
    path = ["devmesh"]
    while hasattr(cmd, "resolve_command"):  # a group (typer vendors click: no isinstance on click's classes)
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            break
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        cmd, ctx = sub, sub.make_context(name, rest, parent=ctx, resilient_parsing=False)
        path.append(name)
    return path


def test_there_are_units_to_check() -> None:
    assert [u.name for u in UNITS] == ["devmesh-ship-journald.service"]


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_unit_sections_and_exec_start_parse_with_the_cli(path: Path) -> None:
    u = unit(path)
    assert {"Unit", "Service", "Install"} <= set(u.sections())
    assert u["Install"]["WantedBy"] == "multi-user.target"
    argv = shlex.split(u["Service"]["ExecStart"])
    assert Path(argv[0]).name == "devmesh"
    assert parse_cli(argv[1:]) == ["devmesh", "ship", "journald"]
    for wrong in (  # the check can fail: a misspelled option, subcommand or a bad value is caught
        [*argv[1:], "--cursor-fil", "x"],
        ["ship", "journal"],
        [*argv[1:], "--max-priority", "loud"],
    ):
        with pytest.raises(Exception) as err:
            parse_cli(wrong)
        assert "UsageError" in {c.__name__ for c in type(err.value).__mro__}, (wrong, err.value)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verify_has_nothing_to_say(path: Path, tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: point it at this checkout's devmesh
    text = path.read_text().replace("ExecStart=/usr/local/bin/devmesh ", f"ExecStart={DEVMESH} ")
    assert str(DEVMESH) in text
    copy = tmp_path / path.name
    copy.write_text(text)
    run = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    broken = tmp_path / "broken" / path.name  # and it would say something about a unit gone wrong
    broken.parent.mkdir()
    broken.write_text(text.replace("Restart=always", "Restart=sometimes"))
    run = subprocess.run(
        ["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "restart specifier" in run.stderr and ":12:" in run.stderr
