"""Masking of secrets and personal data before text reaches a language model.

A `Masker` replaces each secret (password=..., API keys, bearer tokens, JWTs, credentials in URLs),
email address, IP address and, optionally, host name with a placeholder such as `<EMAIL_1>`. The same
value always gets the same placeholder within one `Masker`, so the model can still tell that two
lines name the same address. `unmask` puts the original values back into the model's answer for
the kinds that are safe to show (never secrets).

Trace ids, span ids and other bare hex strings are left alone: they are what evidence ids are made of.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

EMAIL, IP, SECRET, TOKEN, HOST = "EMAIL", "IP", "SECRET", "TOKEN", "HOST"
SHOWABLE = frozenset({EMAIL, IP, HOST})
PLACEHOLDER = re.compile(r"<(EMAIL|IP|SECRET|TOKEN|HOST)_(\d+)>")

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
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_KNOWN_TOKEN = re.compile(
    r"\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|"
    r"xox[abposr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|glpat-[A-Za-z0-9_-]{20,})\b"
)
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w.])")
# Candidates only; `ipaddress` decides (times like 10:04:05 and MAC addresses are not IPv6).
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
_HOST_TLDS = (
    r"com|net|org|io|dev|app|cloud|co|us|uk|de|fr|eu|info|biz|local|localdomain|internal|lan|corp|"
    r"intranet|svc|cluster\.local|example"
)
_HOSTNAME = re.compile(rf"(?i)(?<![\w.@-])(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+(?:{_HOST_TLDS})(?![\w-])")


@dataclass(frozen=True)
class MaskOptions:
    """Which kinds of values to mask. Host names are off by default: service names look like them."""

    secrets: bool = True
    emails: bool = True
    ips: bool = True
    hostnames: bool = False


class Masker:
    """Replaces sensitive values with stable placeholders; one instance per prompt or explanation."""

    def __init__(self, options: MaskOptions | None = None) -> None:
        self.options = options or MaskOptions()
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def placeholder(self, kind: str, value: str) -> str:
        """The placeholder for `value` of `kind`, creating the next one (`<KIND_n>`) if it is new."""
        key = (kind, value)
        found = self._by_value.get(key)
        if found is None:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            found = f"<{kind}_{self._counts[kind]}>"
            self._by_value[key] = found
            self._by_placeholder[found] = value
        return found

    def mask(self, text: str) -> str:
        opt = self.options
        if opt.secrets:
            text = _URL_CRED.sub(lambda m: m.group(1) + self.placeholder(SECRET, m.group(2)) + m.group(3), text)
            text = _JWT.sub(self._sub(TOKEN), text)
            text = _KNOWN_TOKEN.sub(self._sub(TOKEN), text)
            text = _BEARER.sub(lambda m: f"{m.group(1)} {self._placeholder_unless_masked(TOKEN, m.group(2))}", text)
            text = _KV.sub(self._kv, text)
        if opt.emails:
            text = _EMAIL.sub(self._sub(EMAIL), text)
        if opt.ips:
            text = _IPV6.sub(self._ipv6, text)
            text = _IPV4.sub(self._sub(IP), text)
        if opt.hostnames:
            text = _HOSTNAME.sub(self._sub(HOST), text)
        return text

    def unmask(self, text: str, kinds: Iterable[str] = SHOWABLE) -> str:
        """Put back the original values of placeholders of `kinds` (secrets stay masked by default)."""
        allowed = set(kinds)

        def back(m: re.Match[str]) -> str:
            if m.group(1) not in allowed:
                return m.group(0)
            return self._by_placeholder.get(m.group(0), m.group(0))

        return PLACEHOLDER.sub(back, text)

    @property
    def masked_count(self) -> int:
        return len(self._by_value)

    def _sub(self, kind: str) -> Callable[[re.Match[str]], str]:
        return lambda m: self.placeholder(kind, m.group(0))

    def _placeholder_unless_masked(self, kind: str, value: str) -> str:
        return value if PLACEHOLDER.fullmatch(value) else self.placeholder(kind, value)

    def _kv(self, m: re.Match[str]) -> str:
        value = m.group("value")
        quote = value[0] if value[0] in "\"'" else ""
        inner = value[1:-1] if quote else value
        if PLACEHOLDER.match(inner):
            return m.group(0)
        scheme = m.group("scheme") or ""
        return f"{m.group('key')}{m.group('sep')}{scheme}{quote}{self.placeholder(SECRET, inner)}{quote}"

    def _ipv6(self, m: re.Match[str]) -> str:
        candidate = m.group(0)
        if candidate.count(":") < 2:
            return candidate
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            return candidate
        return self.placeholder(IP, candidate)
