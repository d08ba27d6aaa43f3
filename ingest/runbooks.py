"""Markdown runbooks: one file a runbook, split into sections by heading.

Follows the prometheus-operator layout (content/runbooks/<group>/<AlertName>.md, YAML front matter,
## Meaning / Impact / Diagnosis / Mitigation) but reads any Markdown folder.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from core.errors import DatasetError

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
# CamelCase, two words at least: KubePodCrashLooping, CPUThrottlingHigh, KubeAPIDown (not "Overview")
_ALERT_NAME = re.compile(r"^(?=(?:[^A-Z]*[A-Z]){2})(?=[^a-z]*[a-z])[A-Z][A-Za-z0-9]+$")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_MAX_FILE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class RunbookSection:
    id: str
    heading: str
    kind: str  # meaning | impact | diagnosis | mitigation | other
    text: str


@dataclass
class Runbook:
    id: str
    title: str
    path: str
    url: str
    alerts: list[str] = field(default_factory=list)
    sections: list[RunbookSection] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(f"{s.heading}\n{s.text}" for s in self.sections)


def section_kind(heading: str) -> str:
    h = heading.lower()
    for kind, words in (
        ("meaning", ("meaning", "description", "summary", "overview")),
        ("impact", ("impact",)),
        ("diagnosis", ("diagnos", "investigat", "troubleshoot", "check")),
        ("mitigation", ("mitigat", "remed", "resolution", "fix", "recover")),
    ):
        if any(w in h for w in words):
            return kind
    return "other"


def parse_runbook(text: str, rel_path: str, *, base_url: str = "") -> Runbook:
    """One Markdown document -> Runbook with sections."""
    front: dict[str, object] = {}
    m = _FRONT.match(text)
    if m:
        try:
            loaded = yaml.safe_load(m.group(1))
            front = loaded if isinstance(loaded, dict) else {}
        except (yaml.YAMLError, ValueError, RecursionError):  # a 5,000-digit number, year 0, nested too deeply
            front = {}
        text = text[m.end() :]
    stem = Path(rel_path).stem
    rb_id = "rb:" + rel_path.removesuffix(".md")
    title = str(front.get("title") or "")
    sections: list[RunbookSection] = []
    heading, kind, h1 = "", "other", ""
    buf: list[str] = []
    parents: list[tuple[int, str]] = []  # (level, kind) of the enclosing headings
    fence = ""

    def flush() -> None:
        body = "\n".join(buf).strip()
        if body:
            sid = f"{rb_id}#{len(sections)}"
            sections.append(RunbookSection(id=sid, heading=heading or title or stem, kind=kind, text=body))

    for line in text.splitlines():
        fm = _FENCE.match(line)
        if fm and (not fence or fm.group(1).startswith(fence)):
            fence = "" if fence else fm.group(1)[0] * 3  # a heading-like line inside a code block is code
            buf.append(line)
            continue
        hm = None if fence else _HEADING.match(line)
        if hm:
            level, name = len(hm.group(1)), hm.group(2).strip()
            if level == 1 and not sections and not "".join(buf).strip() and not h1:
                title, heading, h1 = title or name, name, name
                continue
            flush()
            while parents and parents[-1][0] >= level:
                parents.pop()
            own = section_kind(name)
            # "### Option A" under "## Mitigation" is mitigation too
            kind = own if own != "other" or not parents else parents[-1][1]
            parents.append((level, kind))
            heading, buf = name, []
        else:
            buf.append(line)
    flush()
    alerts = [stem] if _ALERT_NAME.match(stem) else []
    if _ALERT_NAME.match(h1) and h1 not in alerts:
        alerts.append(h1)
    url = str(front.get("url") or (base_url.rstrip("/") + "/" + rel_path.removesuffix(".md") if base_url else ""))
    return Runbook(id=rb_id, title=title or stem, path=rel_path, url=url, alerts=alerts, sections=sections)


def read_runbooks(root: Path, *, base_url: str = "") -> tuple[list[Runbook], list[str]]:
    """All Markdown runbooks under ROOT (index pages skipped). Returns (runbooks, warnings)."""
    root = root.expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder of Markdown runbooks", field="DIR")
    books: list[Runbook] = []
    warnings: list[str] = []
    for path in sorted(root.rglob("*.md")):
        if path.name.startswith("_") or path.name.lower() in ("readme.md", "license.md", "changelog.md"):
            continue
        if path.stat().st_size > _MAX_FILE_BYTES:
            warnings.append(f"{path}: larger than {_MAX_FILE_BYTES} bytes, skipped")
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        rb = parse_runbook(text, str(path.relative_to(root)), base_url=base_url)
        if not rb.sections:
            warnings.append(f"{path}: no text, skipped")
            continue
        books.append(rb)
    if not books:
        raise DatasetError(f"{root} holds no Markdown runbooks", field="DIR")
    return books, warnings


def services_mentioned(runbook: Runbook, services: Iterable[str]) -> list[str]:
    """Known service names that the runbook names as whole words."""
    text = runbook.text.lower() + " " + runbook.title.lower()
    found = []
    for s in services:
        if s and re.search(r"(?<![\w-])" + re.escape(s.lower()) + r"(?![\w-])", text):
            found.append(s)
    return found


def content_hash(runbook: Runbook) -> str:
    return hashlib.sha1(runbook.text.encode()).hexdigest()[:16]
