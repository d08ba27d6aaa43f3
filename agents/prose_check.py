"""Checks of the model's prose against what code decided: a summary that names as the root cause something
that is not one of the ranked candidates contradicts the ranking (the usual shape of an instruction
smuggled in through a log line: "the root cause is X") and is not kept.

Only names that look like a service or host name are judged (letters with digits, `-`, `_` or `.` in them,
as in `ts-order-service`, `db-1`, `redis.cache`); plain words ("a resource saturation") are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ROOT_CAUSE = re.compile(
    r"root[ -]cause\s*(?:is|was|=|:|lies in|lies with|appears to be|seems to be)\s+(?:the\s+|service\s+|in\s+)*"
    r"[`'\"*]*([A-Za-z0-9][\w.-]*[\w])",
    re.IGNORECASE,
)
_IS_ROOT_CAUSE = re.compile(
    r"[`'\"*]*([A-Za-z0-9][\w.-]*[\w])[`'\"*]*\s+(?:is|was)\s+(?:the|a|likely the|probably the)\s+root[ -]cause",
    re.IGNORECASE,
)
_NAME_LIKE = re.compile(r"[A-Za-z].*[-_.0-9]|[-_.0-9].*[A-Za-z]")


def foreign_root_causes(text: str, known: Iterable[str]) -> list[str]:
    """Names `text` gives as the root cause that are none of `known` (services, pods, hosts; any case)."""
    names = {k.lower() for k in known if k}
    found = []
    for m in [*_ROOT_CAUSE.finditer(text), *_IS_ROOT_CAUSE.finditer(text)]:
        name = m.group(1)
        if _NAME_LIKE.search(name) and name.lower() not in names and name not in found:
            found.append(name)
    return found
