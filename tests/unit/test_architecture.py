"""The shape of the code, kept by tests: one-way package dependencies, no cycle dodged by an import inside a
function, no module over the size a reader takes in at once."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "graph", "retrieval", "ingest", "detect", "agents", "api", "bench", "prompts", "samples")
MAX_LINES = 400
# Imports of our own packages inside a function, each with its reason: optional parts that load a heavy
# third-party library only when they are used (start-up time of every CLI command). Never a cycle.
LAZY_ON_PURPOSE = {
    ("retrieval/vector_factory.py", "retrieval.qdrant_server"): "qdrant-client loads only with DEVMESH_QDRANT_URL",
    ("api/cli/serve_cmds.py", "api.mcp_server"): "the MCP SDK loads only for `devmesh mcp`",
}
# Folders whose modules import what a command needs in that command's body: every `devmesh` command imports
# all of api/cli, and each should load only its own engines, agents and libraries (test_cli_imports.py).
LAZY_FOLDERS = ("api/cli/",)


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_packages_depend_one_way() -> None:
    """The import-linter contract in pyproject.toml (layers core <- graph <- retrieval <- ingest <- detect
    <- agents <- api, bench beside api)."""
    tool = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(tool), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_no_import_of_our_own_packages_inside_a_function() -> None:
    """An import inside a function hides a dependency (and often dodges a cycle): ours go at the top."""
    found = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                rel = str(path.relative_to(ROOT))
                found += [
                    f"{rel}:{node.lineno} {n}"
                    for n in names
                    if n.split(".")[0] in PACKAGES
                    and (rel, n) not in LAZY_ON_PURPOSE
                    and not rel.startswith(LAZY_FOLDERS)
                ]
    assert found == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it along its seams"
