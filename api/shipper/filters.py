"""The shipper's noise filters: which journal entries are not worth sending.

An entry is left out when its unit (`_SYSTEMD_UNIT`) matches an excluded pattern (or, with `only_units`,
none of those), its `SYSLOG_IDENTIFIER` matches an excluded pattern, its `PRIORITY` is less severe than
`max_priority` (0 emerg ... 7 debug), or its MESSAGE matches an excluded regular expression. Unit and
identifier patterns are shell globs (`cron*`, `systemd-*`). Filters come from command-line options and/or
a small TOML or YAML file holding the same keys (lists are joined, a command-line `max_priority` wins).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import InvalidInput


class FilterConfig(BaseModel):
    """The filter keys of a config file (and of the command-line options)."""

    model_config = ConfigDict(extra="forbid")

    exclude_units: list[str] = Field(default_factory=list, description="Unit globs to leave out.")
    only_units: list[str] = Field(default_factory=list, description="When given, ship only these unit globs.")
    exclude_identifiers: list[str] = Field(default_factory=list, description="SYSLOG_IDENTIFIER globs to leave out.")
    exclude_messages: list[str] = Field(
        default_factory=list, description="Regexes; a MESSAGE matching one is left out."
    )
    max_priority: int | None = Field(default=None, ge=0, le=7, description="Leave out entries less severe than this.")


@dataclass(frozen=True)
class NoiseFilter:
    """A compiled `FilterConfig`: `keep(entry)` says whether an entry is shipped."""

    exclude_units: tuple[str, ...] = ()
    only_units: tuple[str, ...] = ()
    exclude_identifiers: tuple[str, ...] = ()
    exclude_messages: tuple[re.Pattern[str], ...] = field(default=())
    max_priority: int | None = None

    @classmethod
    def of(cls, cfg: FilterConfig) -> NoiseFilter:
        patterns = []
        for i, text in enumerate(cfg.exclude_messages):
            try:
                patterns.append(re.compile(text))
            except re.error as exc:
                raise InvalidInput(
                    f"not a regular expression: {text!r} ({exc})", field=f"exclude_messages[{i}]"
                ) from None
        return cls(
            tuple(cfg.exclude_units),
            tuple(cfg.only_units),
            tuple(cfg.exclude_identifiers),
            tuple(patterns),
            cfg.max_priority,
        )

    def keep(self, entry: dict[str, Any]) -> bool:
        unit = _text(entry.get("_SYSTEMD_UNIT"))
        if self.only_units and not _matches(unit, self.only_units):
            return False
        if _matches(unit, self.exclude_units) or _matches(
            _text(entry.get("SYSLOG_IDENTIFIER")), self.exclude_identifiers
        ):
            return False
        if self.max_priority is not None:
            try:
                if int(str(entry.get("PRIORITY", ""))) > self.max_priority:
                    return False
            except ValueError:
                pass  # no priority: kept
        if self.exclude_messages:
            message = entry.get("MESSAGE")
            if isinstance(message, list):
                message = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256).decode("utf-8", "replace")
            if isinstance(message, str) and any(p.search(message) for p in self.exclude_messages):
                return False
        return True


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _matches(value: str, globs: tuple[str, ...]) -> bool:
    return bool(value) and any(fnmatch.fnmatchcase(value, g) for g in globs)


def load_config(path: Path) -> FilterConfig:
    """A filter config file: TOML (`.toml`) or YAML (anything else), the keys of `FilterConfig` at the top."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field="config") from None
    try:
        doc = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(
            f"{path} is not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {exc}", field="config"
        ) from None
    try:
        return FilterConfig.model_validate(doc or {})
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(p) for p in e["loc"]) or "config"
        raise InvalidInput(f"{path}: {where}: {e['msg']}", field=f"config.{where}") from None


def merge(file_cfg: FilterConfig | None, cli: FilterConfig) -> FilterConfig:
    """The config file's filters and the command line's together (the command line's max_priority wins)."""
    if file_cfg is None:
        return cli
    return FilterConfig(
        exclude_units=file_cfg.exclude_units + cli.exclude_units,
        only_units=file_cfg.only_units + cli.only_units,
        exclude_identifiers=file_cfg.exclude_identifiers + cli.exclude_identifiers,
        exclude_messages=file_cfg.exclude_messages + cli.exclude_messages,
        max_priority=cli.max_priority if cli.max_priority is not None else file_cfg.max_priority,
    )
