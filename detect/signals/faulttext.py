"""The fault kind a service's own lines name: disk full, killed for memory, connection limits, certificates,
name resolution, clock, crash loops, read from generic phrasings that widely used software prints (the
kernel, systemd, PostgreSQL, nginx, OpenSSL, the C library's resolver, Go and Python clients).

The table is ordered by how deep a cause the phrase names: a resource running out (disk, memory,
connection slots) explains a crash loop, not the other way round, so the first phrase found wins, whatever
the counts. `with_text_kinds` puts the kind read from a candidate's own lines on the ranking's candidates
(it wins over the kind guessed from the families of its signals).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.rca import Candidate, FaultKind, Modality, Signal, SignalKind
from detect.signals.stats import count_change


@dataclass(frozen=True)
class Phrase:
    detail: str
    """What a person would call it ('disk full')."""
    kind: FaultKind
    pattern: re.Pattern[str]


def _p(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


PHRASES: tuple[Phrase, ...] = (
    Phrase(
        "disk full",
        FaultKind.RESOURCE_SATURATION,
        _p(
            r"no space left on device|could not extend file|\bENOSPC\b|disk quota exceeded|"
            r"(?:disk|filesystem) (?:is )?full"
        ),
    ),
    Phrase(
        "out of memory",
        FaultKind.RESOURCE_SATURATION,
        _p(
            r"out of memory: kill|\boom-kill|\bOOMKilled\b|killed by the oom killer|invoked oom-killer|"
            r"cannot allocate memory|OutOfMemoryError|memory cgroup out of memory"
        ),
    ),
    Phrase(
        "connection limit",
        FaultKind.RESOURCE_SATURATION,
        _p(
            r"too many (?:connections|clients)|remaining connection slots are reserved|too many open files|"
            r"worker_connections are not enough|\bEMFILE\b|max_connections|maximum number of clients reached"
        ),
    ),
    Phrase(
        "certificate",
        FaultKind.DEPENDENCY_FAILURE,
        _p(
            r"certificate (?:has )?expired|certificate_expired|\bx509: |SSL routines|"
            r"certificate verify (?:failed|error)|"
            r"SSLHandshakeException|tls: bad certificate|self[- ]signed certificate"
        ),
    ),
    Phrase(
        "name resolution",
        FaultKind.DEPENDENCY_FAILURE,
        _p(
            r"temporary failure in name resolution|\bNXDOMAIN\b|could not translate host name|"
            r"name or service not known|no such host|\bSERVFAIL\b|getaddrinfo\w* failed|UnknownHostException"
        ),
    ),
    Phrase(
        "clock",
        FaultKind.DEPENDENCY_FAILURE,
        _p(r"clock skew|time jumped|clock (?:is )?(?:not |un)synchroni[sz]ed|clock drift|time went backwards"),
    ),
    Phrase(
        "crash loop",
        FaultKind.CODE_ERROR,
        _p(
            r"start request repeated too quickly|scheduled restart job, restart counter is at|"
            r"main process exited, code=|"
            r"CrashLoopBackOff|back-off restarting failed container"
        ),
    ),
)


PHRASE_RE = "|".join(p.pattern.pattern for p in PHRASES)
"""Any of the phrases, as one pattern (for a first pass over many lines; RE2 syntax too)."""


def phrase_of(message: str) -> Phrase | None:
    """The deepest-cause phrase a line holds, or None."""
    head = message[:2000]
    return next((p for p in PHRASES if p.pattern.search(head)), None)


def text_kind(messages: Iterable[str]) -> Phrase | None:
    """The deepest-cause phrase any of the lines holds (table order, not counts), or None."""
    best: int | None = None
    for m in messages:
        p = phrase_of(m or "")
        if p is not None:
            i = PHRASES.index(p)
            best = i if best is None else min(best, i)
            if best == 0:
                break
    return None if best is None else PHRASES[best]


def phrase_signals(
    services: list[str],
    phrases: list[Phrase],
    refs: list[str],
    in_window: list[bool],
    width_ns: int,
    history_ns: int,
    min_z: float,
) -> list[Signal]:
    """A LOG_FAULT_PHRASE signal per (service, phrase) whose lines are more frequent in the window than in
    history (`count_change`, exposure: the window's width against the history's): one a service never
    printed before counts at any strength (its score stays what the counts give), others from `min_z`."""
    counts: dict[tuple[str, Phrase], list[int]] = defaultdict(lambda: [0, 0])
    cited: dict[tuple[str, Phrase], list[str]] = defaultdict(list)
    for s, p, r, w in zip(services, phrases, refs, in_window, strict=True):
        counts[(s, p)][0 if w else 1] += 1
        if w and len(cited[(s, p)]) < 8:
            cited[(s, p)].append(r)
    out: list[Signal] = []
    for (svc, p), (k_win, k_base) in counts.items():
        if not k_win or not svc:
            continue
        z, fold, direction = count_change(k_win, width_ns, k_base, max(history_ns, width_ns))
        if direction != "up" or (k_base and z < min_z):
            continue
        out.append(
            Signal(
                service=svc,
                modality=Modality.LOGS,
                kind=SignalKind.LOG_FAULT_PHRASE,
                key=p.detail,
                family="error",
                score=z,
                baseline=float(k_base),
                observed=float(k_win),
                fold=fold,
                effect=1.0 if not k_base else round(min(1.0, 1.0 - 1.0 / max(fold, 1.0)), 6),
                group=f"logs:{svc}:fault:{p.detail}",
                description=f"{svc}: {k_win} line(s) name {p.detail} in the window ({k_base} in history)",
                evidence_ids=cited[(svc, p)],
            )
        )
    return out


def fault_lines(
    t: pa.Table,
    in_window: np.ndarray,
    deps: list[str] | None = None,
    *,
    width_ns: int = 0,
    min_z: float = 3.0,
    history_ns: int | None = None,
) -> tuple[dict[str, Phrase], list[Signal]]:
    """Per service, the fault phrase its own window lines and the window lines that name it as their callee
    (`deps`, per row) name, the deepest cause first (`text_kind`); with `width_ns` (the window's), a
    LOG_FAULT_PHRASE signal per service and phrase of its own lines that the window has more of than
    history."""
    if t.num_rows == 0:
        return {}, []
    hit = pc.fill_null(pc.match_substring_regex(t.column("message"), PHRASE_RE, ignore_case=True), False)
    rows = np.nonzero(hit.to_numpy(zero_copy_only=False))[0]
    idx = pa.array(rows, pa.int64())
    by_node: dict[str, list[str]] = defaultdict(list)
    services = t.column("service").take(idx).to_pylist()
    msgs = t.column("message").take(idx).to_pylist()
    eids = t.column("event_id").take(idx).to_pylist()
    ts = t.column("ts_ns").take(idx).to_pylist()
    found: list[tuple[str, Phrase, str, bool]] = []
    for i, s, m, e, at in zip(rows.tolist(), services, msgs, eids, ts, strict=True):
        p = phrase_of(m or "")
        if p is None:
            continue
        found.append((s, p, f"log:{e}" if e else f"log:{at}:", bool(in_window[i])))
        if in_window[i]:
            by_node[s].append(m or "")
            if deps is not None and deps[i]:  # a line naming a callee tells of the callee too
                by_node[deps[i]].append(m or "")
    kinds = {node: p for node, msgs_ in by_node.items() if (p := text_kind(msgs_)) is not None}
    if not width_ns or not found:
        return kinds, []
    if history_ns is None:  # the history's span, from the lines given (pass it when they are only some)
        all_ts = t.column("ts_ns").to_numpy(zero_copy_only=False)[~in_window]
        history_ns = int(all_ts.max() - all_ts.min()) if len(all_ts) else 0
    cols = list(zip(*found, strict=True))
    signals = phrase_signals(list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]), width_ns, history_ns, min_z)
    return kinds, signals


def with_text_kinds(
    candidates: list[Candidate], kinds: Mapping[str, Phrase], hosts: Mapping[str, str]
) -> list[Candidate]:
    """Candidates with the fault kind their own lines name (`kinds`, by candidate name) and the host they
    were written on (`hosts`); the rest unchanged."""
    out: list[Candidate] = []
    for c in candidates:
        update: dict[str, object] = {}
        if c.service in kinds:
            update["fault_kind"] = kinds[c.service].kind
            update["fault_detail"] = kinds[c.service].detail
        if hosts.get(c.service):
            update["host"] = hosts[c.service]
        out.append(c.model_copy(update=update) if update else c)
    return out


__all__ = [
    "PHRASES",
    "PHRASE_RE",
    "Phrase",
    "fault_lines",
    "phrase_of",
    "phrase_signals",
    "text_kind",
    "with_text_kinds",
]
