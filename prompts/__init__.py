"""Prompt templates (Jinja2 files, one per agent task) and their loader.

Templates get only pre-escaped data blocks (`agents.evidence_text`) for anything that came from
telemetry or users. Rendering uses `StrictUndefined`: a missing variable is an error, not "".
Files whose names start with `_` are partials for `{% include %}`.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2

from core.errors import NotFound

PROMPTS_DIR = Path(__file__).resolve().parent
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def prompt_names() -> list[str]:
    """Names of the prompts `render_prompt` accepts (partials left out)."""
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.j2") if not p.name.startswith("_"))


def environment() -> jinja2.Environment:
    """A fresh Jinja2 environment over `prompts/`: strict undefined, no HTML escaping."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPTS_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render_prompt(name: str, **variables: object) -> str:
    """Render `prompts/<name>.j2`; raises jinja2.UndefinedError if a variable it uses is missing."""
    if not _NAME.match(name) or not (PROMPTS_DIR / f"{name}.j2").is_file():
        raise NotFound(f"no prompt named {name!r}; known prompts: {', '.join(prompt_names())}")
    return environment().get_template(f"{name}.j2").render(**variables).strip()
