"""Names derived from other names: services from Kubernetes pod names, normalized levels."""

from __future__ import annotations

import re
from functools import lru_cache

# Kubernetes' generated name parts: no vowels (its SafeEncodeString alphabet, or decimal in old versions).
_POD_SUFFIX = re.compile(r"^[b-df-hj-np-tv-z0-9]{5}$")
_TEMPLATE_HASH = re.compile(r"^[b-df-hj-np-tv-z0-9]{6,10}$")
_LEVELS = {
    "TRACE": "TRACE",
    "DEBUG": "DEBUG",
    "FINE": "DEBUG",
    "INFO": "INFO",
    "INFORMATION": "INFO",
    "NOTICE": "INFO",
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERR": "ERROR",
    "ERROR": "ERROR",
    "SEVERE": "ERROR",
    "CRIT": "FATAL",
    "CRITICAL": "FATAL",
    "ALERT": "FATAL",
    "EMERG": "FATAL",
    "FATAL": "FATAL",
    "PANIC": "FATAL",
}
LEVEL_ORDER = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


@lru_cache(maxsize=65536)
def service_of_pod(pod: str) -> str:
    """'ts-order-service-5b67c48447-mv5hb' -> 'ts-order-service' (Deployment pods: two hash parts).

    StatefulSet-style names ('kafka-0') and names without hash parts are returned as they are, minus a
    trailing ordinal.
    """
    parts = pod.split("-")
    if len(parts) >= 3 and _POD_SUFFIX.match(parts[-1]) and _TEMPLATE_HASH.match(parts[-2]):
        return "-".join(parts[:-2])
    if len(parts) >= 2 and parts[-1].isdigit():
        return "-".join(parts[:-1])
    return pod


def normalize_level(text: str | None, default: str = "INFO") -> str:
    """Map a severity word (any case) to TRACE/DEBUG/INFO/WARN/ERROR/FATAL."""
    if not text:
        return default
    return _LEVELS.get(text.strip().upper(), default)


def level_rank(level: str) -> int:
    try:
        return LEVEL_ORDER.index(level)
    except ValueError:
        return LEVEL_ORDER.index("INFO")
