"""Canonical form of untrusted text fields: valid UTF-8, no NULs, bounded length."""

from __future__ import annotations

import json
from typing import Any

TRUNCATED_MARK = " …[truncated]"


def clean_text(value: str, max_chars: int | None = None) -> tuple[str, bool]:
    """Text safe to store: lone surrogates replaced, NULs removed, cut at max_chars. Returns (text, cut)."""
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in value:
        value = value.replace("\x00", "")
    if max_chars is not None and len(value) > max_chars:
        return value[:max_chars] + TRUNCATED_MARK, True
    return value, False


def short(value: str, limit: int = 256) -> str:
    """For ids and names: cleaned (no NULs, no lone surrogates) and cut hard at `limit` characters."""
    if len(value) <= limit and value.isascii() and "\x00" not in value:
        return value
    return clean_text(value)[0][:limit]


def dump_meta(meta: dict[str, Any] | None) -> str:
    """Attributes as compact JSON text ('' when empty)."""
    if not meta:
        return ""
    return json.dumps(meta, separators=(",", ":"), ensure_ascii=False, default=str)
