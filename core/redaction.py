"""Secrets in text: the patterns that find them, and their replacement by numbered placeholders.

`mask_secrets(text, name)` replaces each secret (password=..., API keys and other key=value secrets,
bearer and basic credentials, JWTs, well-known token formats, the password of a URL) with what
`name(kind, value)` returns; `Placeholders.name` is the usual `name`: `<SECRET_1>`, `<TOKEN_2>`, the
same value always the same placeholder. Pure text, no I/O: the agents' `Masker` (before text reaches a
language model) and the case-bundle export (before telemetry leaves the store) both use it.

Trace ids, span ids and other bare hex strings are left alone: they are what evidence ids are made of.

For what DevMesh itself prints (`devmesh info`, GET /info, error messages, logs), `redact_url(url)`
hides the credentials of one configured URL (`redis://user:***@host:6379`) and `redact_urls(text)` those
of every URL in a text; `DevMeshError` runs every message through `redact_urls`, and `RedactUrls` is the
logging filter the CLI puts on its log handlers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

SECRET, TOKEN = "SECRET", "TOKEN"
PLACEHOLDER = re.compile(r"<(EMAIL|IP|SECRET|TOKEN|HOST)_(\d+)>")
"""Every placeholder kind DevMesh writes (the agents' masker adds EMAIL, IP and HOST)."""

Namer = Callable[[str, str], str]
"""(kind, value) -> the text that replaces the value."""

_SECRET_KEYS = (
    r"password|passwd|pwd|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token|"
    r"api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|auth|authorization|"
    r"credentials?|session[_-]?id|cookie"
)
# key=value, key: value, "key": "value"; the value may be quoted and may start with Bearer/Basic.
_KV = re.compile(
    rf"""(?ix)
    (?P<key>(?<![\w-])["']?(?:{_SECRET_KEYS})["']?)
    (?P<sep>\s*[=:]\s*)
    (?P<scheme>(?:bearer|basic|token)\s+)?
    (?!(?:bearer|basic|token)\s)
    (?P<value>"[^"\s]{{1,512}}"|'[^'\s]{{1,512}}'|[^\s,;&"'<>)\]}}]{{1,512}})
    """
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+([A-Za-z0-9\-._~+/]{8,}=*)")
_URL_CRED = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]{1,128}:)([^\s@/]{1,256})(@)")
# scheme://userinfo@ up to the last '@' of the authority (an unescaped '@' in a password is still hidden)
_URL_USERINFO = re.compile(
    r"(?i)\b([a-z][a-z0-9+.\-]{0,31}://)([^\s/?#@]*(?:@[^\s/?#@]*)*)@(?=[^\s@/?#]*(?:[/?#\s]|$))"
)
_URL_SECRET_PARAM = re.compile(rf"(?i)([?&;](?:{_SECRET_KEYS})=)[^&#\s]+")
REDACTED = "***"
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_KNOWN_TOKEN = re.compile(
    r"\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|"
    r"xox[abposr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|glpat-[A-Za-z0-9_-]{20,})\b"
)


class Placeholders:
    """Numbers values per kind: the first secret seen is `<SECRET_1>`, the next new one `<SECRET_2>`.

    `max_values` bounds what is remembered (for long exports): past it, a new value still gets a new
    number, but a repeat of it is no longer recognized.
    """

    def __init__(self, max_values: int | None = None) -> None:
        self.max_values = max_values
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def name(self, kind: str, value: str) -> str:
        """The placeholder for `value` of `kind`, creating the next one (`<KIND_n>`) if it is new."""
        key = (kind, value)
        found = self._by_value.get(key)
        if found is None:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            found = f"<{kind}_{self._counts[kind]}>"
            if self.max_values is None or len(self._by_value) < self.max_values:
                self._by_value[key] = found
                self._by_placeholder[found] = value
        return found

    def value_of(self, placeholder: str) -> str | None:
        """The value a placeholder stands for, or None when it is not one of these."""
        return self._by_placeholder.get(placeholder)

    def __len__(self) -> int:
        return len(self._by_value)


def mask_secrets(text: str, name: Namer) -> str:
    """`text` with every secret replaced by `name(SECRET or TOKEN, value)`; placeholders already in the
    text are left as they are, so masking twice changes nothing."""
    text = _URL_CRED.sub(lambda m: m.group(1) + name(SECRET, m.group(2)) + m.group(3), text)
    text = _JWT.sub(lambda m: name(TOKEN, m.group(0)), text)
    text = _KNOWN_TOKEN.sub(lambda m: name(TOKEN, m.group(0)), text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {_unless_masked(name, TOKEN, m.group(2))}", text)
    return _KV.sub(lambda m: _kv(m, name), text)


def _unless_masked(name: Namer, kind: str, value: str) -> str:
    return value if PLACEHOLDER.fullmatch(value) else name(kind, value)


def _kv(m: re.Match[str], name: Namer) -> str:
    value = m.group("value")
    quote = value[0] if value[0] in "\"'" else ""
    inner = value[1:-1] if quote else value
    if PLACEHOLDER.match(inner):
        return m.group(0)
    scheme = m.group("scheme") or ""
    return f"{m.group('key')}{m.group('sep')}{scheme}{quote}{name(SECRET, inner)}{quote}"


def redact_urls(text: str) -> str:
    """`text` with the credentials of every URL in it hidden: the password of `scheme://user:password@`
    (the whole userinfo when it has no password: it is then a token), and secret query parameters
    (`?api_key=...`, `&token=...`)."""
    if "://" not in text and "=" not in text:
        return text
    text = _URL_USERINFO.sub(lambda m: m.group(1) + _userinfo(m.group(2)) + "@", text)
    return _URL_SECRET_PARAM.sub(lambda m: m.group(1) + REDACTED, text)


def redact_url(url: str | None) -> str | None:
    """A configured URL fit to print: `redis://user:***@host:6379` (None stays None)."""
    return None if url is None else redact_urls(url)


def _userinfo(info: str) -> str:
    user, colon, _ = info.partition(":")
    return f"{user}:{REDACTED}" if colon else REDACTED


_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RedactUrls(logging.Filter):
    """A log-handler filter: `redact_urls` on the message and on every text field given as `extra`."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = redact_urls(text)
        if clean != text:
            record.msg, record.args = clean, None
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and isinstance(value, str):
                setattr(record, key, redact_urls(value))
        return True
