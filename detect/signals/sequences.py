"""Path signals: what a service does next, per request, compared with its history.

A request is one visit of a trace to a service (its entry span and the spans below it in the same
service). Its *events* are tokens in time order: ``START:<operation>``, then log statements or
internal operations and calls, then ``END``. For every token A of a service we count what follows
it (A -> B), in the incident window and in each history slice, and test each share P(B | A) with
`slice_test`. Conditioning on A is what makes this robust to traffic: a busier hour sends more
requests down every path, but the share that turns from A to B stays put unless the code now
behaves differently. A return value that is suddenly wrong (a new error after A), an exception
that cuts a loop short (A no longer followed by A), a statement that no longer runs: each moves
one share at the point where the service's behaviour changed.

A loop whose steps run in parallel interleaves its tokens, so a loop cut short is also judged by
counts within the request (`loop_signals`: B per A, whatever the order).

Tokens that are errors naming another service (``... no instances available for svc-b``) make the
whole change at A evidence about that dependency: the signals carry `dependency`, and the ranking
decides how much of it to pass on.

`sequence_signals` runs both; the transitions are in `detect.signals.transitions`, the loops in
`detect.signals.loops`, the event table and its tokens in `detect.signals.tokens`.
"""

from __future__ import annotations

import pyarrow as pa

from core.rca import Signal
from detect.signals.common import SignalOptions
from detect.signals.loops import loop_signals
from detect.signals.tokens import SequenceKinds
from detect.signals.transitions import transition_signals


def sequence_signals(
    events: pa.Table, kinds: SequenceKinds, opt: SignalOptions
) -> tuple[list[Signal], list[dict[str, int]]]:
    """Signals from `events` (EVENT_SCHEMA; slice 0 is the window, others history): transitions and
    loops cut short, and for each signal the window traces behind it, with the time the change
    showed in each."""
    found, behind = transition_signals(events, kinds, opt)
    loops, loop_behind = loop_signals(events, kinds, opt)
    return found + loops, behind + loop_behind
