"""Shared pieces of the signal detectors: the input tables (`TableLike`, `as_table`), the options
(`SignalOptions`), and what makes a log line an error.

The statistics are in `detect.signals.stats`, the history slices and their test in
`detect.signals.slices`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import InvalidInput

TableLike: TypeAlias = pa.Table | Sequence[Mapping[str, Any]] | None

ERROR_WORDS = re.compile(
    r"(?i)(\berror\b|\bexceptions?\b|exception\b|\berr\b|\bfail(?:ed|s|ure|ing)?\b|\bfatal\b|\bpanic\b"
    r"|\btraceback\b|\brefused\b|\btimed? ?out\b|\btimeout\b|\bunavailable\b|\bdenied\b|\bcritical\b"
    r"|\bstatus(?:\s*code)?[=: ]+[45]\d\d\b|\bHTTP/\d(?:\.\d)? [5]\d\d\b)"
)
ERROR_LEVELS = frozenset({"ERROR", "FATAL", "CRITICAL", "ALERT", "EMERG", "SEVERE"})


@dataclass(frozen=True)
class SignalOptions:
    """Generic knobs of the detectors. Defaults are textbook values, not fitted to any data set."""

    min_z: float = 3.0
    """A change counts as a signal when its z-like score reaches this (p ~ 0.001 one-sided), after the
    adjustment for the number of tests run on the same service (`family_z`)."""
    min_fold: float = 2.0
    """Count signals also need this fold change per request ('new or much more frequent')."""
    min_latency_ratio: float = 1.5
    """Duration signals also need the window median (or p90) this many times the baseline one."""
    min_latency_delta_us: float = 1000.0
    """... and at least this much absolute growth, so sub-millisecond jitter never counts."""
    min_samples: int = 3
    """Fewest requests on each side for a test; the tests themselves account for small counts."""
    max_evidence: int = 8
    """Most example ids kept per signal."""
    metric_min_baseline_points: int = 3
    metric_rel_floor: float = 0.05
    """Metric scale is at least this fraction of the baseline median (flat series)."""
    min_slice_s: int = 60
    """History slices are as long as the incident window, but never shorter than this."""
    min_slice_requests: int = 3
    """A history slice takes part in a test only with at least this many requests (or lines) at stake."""
    statement_words: int = 8
    """A log statement is named by the first words of its lines (numbers and ids masked): templates that
    differ only in data written later in the line count as one statement."""
    latency_quantile: float = 0.9
    """A request is slow when its time exceeds this quantile of the same operation's history."""
    latency_recent_slices: int = 0
    """When > 0, timings are judged against the history slices at the nearest this many distances
    only (timings drift with data and load; paths do not); 0 uses all history."""
    max_signals_per_service: int = 6


def columns(data: TableLike, names: Iterable[str]) -> dict[str, list[Any]]:
    """Columns of a pyarrow Table or a list of dicts, as Python lists; absent columns are empty strings."""
    names = list(names)
    if data is None:
        return {n: [] for n in names}
    if isinstance(data, pa.Table):
        n_rows = data.num_rows
        out: dict[str, list[Any]] = {}
        for n in names:
            out[n] = data.column(n).to_pylist() if n in data.column_names else [""] * n_rows
        return out
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        rows = list(data)
        for i, r in enumerate(rows[:1]):
            if not isinstance(r, Mapping):
                raise InvalidInput(f"row {i} is a {type(r).__name__}, expected a mapping of columns")
        return {n: [r.get(n, "") for r in rows] for n in names}
    raise InvalidInput(f"telemetry must be a pyarrow Table or a list of dicts, not {type(data).__name__}")


def factorize(values: np.ndarray | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """A code per item (in order of first appearance) and the text of each code (`str` of the item): a hash
    pass, where `np.unique` on text sorts it."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if values.null_count == 0 and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            enc = values.dictionary_encode()
            return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()
        values = values.to_numpy(zero_copy_only=False)
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(str(x), len(index)) for x in values.tolist()), np.int64, len(values))
    return codes, list(index)


def check_table(data: object, name: str) -> None:
    """InvalidInput unless `data` is None, a pyarrow Table or a list of mappings."""
    if data is None or isinstance(data, pa.Table):
        return
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        for i, row in enumerate(data):
            if not isinstance(row, Mapping):
                raise InvalidInput(
                    f"{name}: row {i} is a {type(row).__name__}, expected a mapping of columns", field=name
                )
        return
    raise InvalidInput(f"{name} must be a pyarrow Table or a list of dicts, not {type(data).__name__}", field=name)


def n_rows(data: TableLike) -> int:
    if data is None:
        return 0
    if isinstance(data, pa.Table):
        return data.num_rows
    return len(data)


def text(v: Any) -> str:
    return "" if v is None else str(v)


def is_error_line(level: str, message: str) -> bool:
    """An error-like log line: by level when there is one, else (or also) by its words."""
    lv = level.upper()
    if lv in ERROR_LEVELS:
        return True
    return bool(ERROR_WORDS.search(message[:2000]))


def as_table(data: TableLike, schema: pa.Schema) -> pa.Table:
    """`data` as an Arrow table with exactly the columns of `schema` (absent ones '' or 0; nulls too)."""
    if data is None:
        return schema.empty_table()
    if not isinstance(data, pa.Table):
        check_table(data, "telemetry")
        rows = list(data)  # type: ignore[arg-type]
        cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
        data = pa.table({f.name: _column(cols[f.name], f.type) for f in schema})
        return data
    out = {}
    for f in schema:
        if f.name in data.column_names:
            col = data.column(f.name)
            if col.type != f.type:
                col = _cast(col, f.type)
            if col.null_count:
                col = pc.fill_null(col, _default(f.type))
            out[f.name] = col
        else:
            out[f.name] = pa.array([_default(f.type)] * data.num_rows, f.type)
    return pa.table(out)


def _default(t: pa.DataType) -> Any:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return ""
    if pa.types.is_floating(t):
        return float("nan")
    return 0


def _column(values: list[Any], t: pa.DataType) -> pa.Array:
    if pa.types.is_string(t):
        return pa.array(["" if v is None else str(v) for v in values], t)
    if pa.types.is_floating(t):
        return pa.array([float(v) if isinstance(v, int | float) else float("nan") for v in values], t)
    return pa.array([int(v) if isinstance(v, int | float) else 0 for v in values], t)


def _cast(col: Any, t: pa.DataType) -> Any:
    try:
        return col.cast(t)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _column(col.to_pylist(), t)
