"""Checking a language model's claims against the evidence it was shown.

Each claim (a summary, a root cause's reasoning) carries the evidence ids the model cited. Ids that
are not in the evidence set, whether cited or written inline in the text, are removed and the claim
is flagged; a claim left without any valid citation is dropped (or, with `drop_uncited=False`,
kept and flagged). The flags become `Explanation.unsupported_claims`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from agents.evidence_text import unescape_id
from core.explanation import UnsupportedClaim

# Ids as DevMesh writes them (see core.rca): a known prefix, a colon, no white space.
INLINE_ID = re.compile(
    r"(?<![\w:])(?:log|template|span|edge|operation|metric|signal|runbook|rb|trace|incident):[^\s,;()\[\]{}\"'`<>]+"
)
UNKNOWN_MARK = "[unverified id]"


@dataclass(frozen=True)
class Claim:
    where: str
    text: str
    evidence_ids: Sequence[str] = ()


@dataclass(frozen=True)
class CheckedClaim:
    where: str
    text: str  # unknown ids written in the text are replaced by UNKNOWN_MARK
    valid_ids: list[str] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)
    cited_ids: list[str] = field(default_factory=list)

    @property
    def supported(self) -> bool:
        return bool(self.valid_ids)


def check_claim(claim: Claim, known_ids: Collection[str]) -> CheckedClaim:
    """Split the claim's citations into known and unknown ids; scrub unknown ids written in its text."""
    valid: list[str] = []
    unknown: list[str] = []
    cited: list[str] = []
    for raw in claim.evidence_ids:
        eid = unescape_id(str(raw))
        if not eid or eid in cited:
            continue
        cited.append(eid)
        (valid if eid in known_ids else unknown).append(eid)

    def scrub(m: re.Match[str]) -> str:
        eid = m.group(0).rstrip(".:")
        if eid in known_ids:
            return m.group(0)
        if eid not in unknown:
            unknown.append(eid)
        return UNKNOWN_MARK + m.group(0)[len(eid) :]

    text = INLINE_ID.sub(scrub, unescape_id(claim.text))
    return CheckedClaim(where=claim.where, text=text, valid_ids=valid, unknown_ids=unknown, cited_ids=cited)


def verify_claims(
    claims: Iterable[Claim], known_ids: Collection[str], *, drop_uncited: bool = True
) -> tuple[list[CheckedClaim], list[UnsupportedClaim]]:
    """(claims kept, flags). Kept claims cite only known ids; every problem found gives one flag."""
    kept: list[CheckedClaim] = []
    flags: list[UnsupportedClaim] = []
    for claim in claims:
        checked = check_claim(claim, known_ids)
        if not checked.supported:
            flags.append(_flag(claim, checked, "no_valid_citation", dropped=drop_uncited))
            if not drop_uncited:
                kept.append(checked)
            continue
        if checked.unknown_ids:
            flags.append(_flag(claim, checked, "unknown_ids", dropped=False))
        kept.append(checked)
    return kept, flags


def _flag(claim: Claim, checked: CheckedClaim, reason: str, *, dropped: bool) -> UnsupportedClaim:
    return UnsupportedClaim(
        where=claim.where,
        text=checked.text,
        cited_ids=checked.cited_ids,
        unknown_ids=checked.unknown_ids,
        reason=reason,
        dropped=dropped,
    )
