"""The event table the path signals read (`EVENT_SCHEMA`: one row per step of a request, in time
order) and its tokens: ``START:<operation>``, steps, ``END``, errors marked with `ERR_MARK`.
`SequenceKinds` says which signal kinds a modality's paths produce.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from core.rca import Modality, SignalKind

START = "START"
END = "END"
ERR_MARK = " !ERR"

EVENT_SCHEMA = pa.schema(
    [
        ("service", pa.string()),
        ("pod", pa.string()),
        ("req", pa.string()),
        ("trace", pa.string()),
        ("ts", pa.int64()),
        ("token", pa.string()),
        ("err", pa.bool_()),
        ("dep", pa.string()),
        ("ref", pa.string()),
        ("slice", pa.int64()),
    ]
)


@dataclass(frozen=True)
class SequenceKinds:
    modality: Modality
    shift: SignalKind
    error: SignalKind
    noun: str
    """What a token is, for descriptions: 'log statement' or 'step'."""
    call_prefix: str = ""
    """Tokens that are calls to another service start with this; a change right after one is
    about that service's response."""


LOG_KINDS = SequenceKinds(Modality.LOGS, SignalKind.LOG_TEMPLATE_SHIFT, SignalKind.LOG_ERROR_TEMPLATE, "log")
SPAN_KINDS = SequenceKinds(Modality.TRACES, SignalKind.SPAN_STRUCTURE, SignalKind.SPAN_ERROR, "step", "-> ")


def is_error_token(token: str) -> bool:
    return ERR_MARK in token


def np_column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def shorten(token: str) -> str:
    return token if len(token) <= 90 else token[:87] + "..."
