"""Masking of secrets and personal data before text reaches a language model.

A `Masker` replaces each secret (password=..., API keys, bearer tokens, JWTs, credentials in URLs),
email address, IP address and, optionally, host name with a placeholder such as `<EMAIL_1>`. The same
value always gets the same placeholder within one `Masker`, so the model can still tell that two
lines name the same address. `unmask` puts the original values back into the model's answer for
the kinds that are safe to show (never secrets). The secret patterns and the numbering live in
`core.redaction`, shared with the case-bundle export.

Trace ids, span ids and other bare hex strings are left alone: they are what evidence ids are made of.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.redaction import PLACEHOLDER, Placeholders, mask_secrets

EMAIL, IP, HOST = "EMAIL", "IP", "HOST"
SHOWABLE = frozenset({EMAIL, IP, HOST})

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
        self._names = Placeholders()

    def placeholder(self, kind: str, value: str) -> str:
        """The placeholder for `value` of `kind`, creating the next one (`<KIND_n>`) if it is new."""
        return self._names.name(kind, value)

    def mask(self, text: str) -> str:
        opt = self.options
        if opt.secrets:
            text = mask_secrets(text, self.placeholder)
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
            return self._names.value_of(m.group(0)) or m.group(0)

        return PLACEHOLDER.sub(back, text)

    @property
    def masked_count(self) -> int:
        return len(self._names)

    def _sub(self, kind: str) -> Callable[[re.Match[str]], str]:
        return lambda m: self.placeholder(kind, m.group(0))

    def _ipv6(self, m: re.Match[str]) -> str:
        candidate = m.group(0)
        if candidate.count(":") < 2:
            return candidate
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            return candidate
        return self.placeholder(IP, candidate)
