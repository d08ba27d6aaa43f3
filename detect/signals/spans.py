"""Spans folded into *requests*: an entry span of a service (its parent is missing or in another
service) and the spans below it in the same service. For each span we keep its request's entry span,
its self time (its duration minus its children's; a client span's time belongs to the call), whether
it is a client span or an error, and the (caller, callee) service pairs seen. `span_slices` gives
each span the history slice of its request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.telemetry import row_schema
from detect.signals.common import ERROR_WORDS, TableLike, as_table
from detect.signals.slices import EXCLUDED_SLICE, slice_of

# The span columns the signals read, from the row contract.
SPAN_SCHEMA = row_schema(
    "spans",
    (
        "trace_id",
        "span_id",
        "parent_id",
        "service",
        "pod",
        "operation",
        "start_ns",
        "end_ns",
        "duration_us",
        "status",
        "kind",
        "attributes",
    ),
)
_HTTP_5XX = r'"(?:http\.)?(?:response\.)?status_code"\s*:\s*"?5\d\d'
_ERROR_OP = re.compile(ERROR_WORDS.pattern)
KEY_SEP = "\x1f"


@dataclass
class SpanFold:
    """Spans folded into requests (see module doc). Arrays are aligned with `spans` rows."""

    spans: pa.Table = field(default_factory=SPAN_SCHEMA.empty_table)
    parent: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    root: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Row of each span's request entry span."""
    self_us: np.ndarray = field(default_factory=lambda: np.zeros(0))
    client: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    error: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    edges: set[tuple[str, str]] = field(default_factory=set)
    """(caller, callee) service pairs seen."""

    @property
    def empty(self) -> bool:
        return self.spans.num_rows == 0

    _cache: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self.spans.column(name).to_numpy(zero_copy_only=False)
        return self._cache[name]

    def span_key(self) -> pa.Array:
        """`span_key` of each row (rows of an empty span id never match a line or a child: they are not looked up
        by an empty id)."""
        if "span_key" not in self._cache:
            self._cache["span_key"] = span_key(self.spans.column("trace_id"), self.spans.column("span_id"))
        return self._cache["span_key"]

    def request_key(self) -> pa.Array:
        """'<trace_id>/<entry span_id>' of each span's request."""
        if "request_key" not in self._cache:
            trace = self.spans.column("trace_id").combine_chunks()
            span = self.spans.column("span_id").combine_chunks()
            self._cache["request_key"] = pc.binary_join_element_wise(trace, span.take(pa.array(self.root)), "/")
        return self._cache["request_key"]

    @property
    def is_root(self) -> np.ndarray:
        return self.root == np.arange(len(self.root))

    def own_time(self) -> np.ndarray:
        """Per row, the time of the request it is the entry of spent in the service's own code (the self
        times of its spans, client spans excluded: a call's time belongs to the call); 0 for other rows."""
        if "own_time" not in self._cache:
            own = np.where(self.client, 0.0, self.self_us)
            self._cache["own_time"] = np.where(
                self.is_root, np.bincount(self.root, weights=own, minlength=len(self.root)), 0.0
            )
        return self._cache["own_time"]

    def request_error(self) -> np.ndarray:
        """Per row, whether the request it is the entry of has an error span (False for other rows)."""
        errs = np.bincount(self.root, weights=self.error.astype(float), minlength=len(self.root))
        return self.is_root & (errs > 0)

    def requests(self) -> pa.Table:
        """One row per request: service, operation, pod, trace, span, start, local and total time, errors."""
        roots = np.nonzero(self.is_root)[0]
        n = len(self.root)
        local = self.own_time()
        errs = np.bincount(self.root, weights=self.error.astype(float), minlength=n)
        idx = pa.array(roots, pa.int64())
        start = self.column("start_ns")[roots]
        end = self.column("end_ns")[roots]
        return pa.table(
            {
                "service": self.spans.column("service").take(idx),
                "operation": self.spans.column("operation").take(idx),
                "pod": self.spans.column("pod").take(idx),
                "trace_id": self.spans.column("trace_id").take(idx),
                "span_id": self.spans.column("span_id").take(idx),
                "start_ns": pa.array(start, pa.int64()),
                "local_us": pa.array(local[roots]),
                "total_us": pa.array((end - start) / 1000.0),
                "errors": pa.array(errs[roots]),
                "row": idx,
            }
        )


def fold_spans(data: TableLike) -> SpanFold:
    """Fold spans into requests (see module doc). Spans whose parent is not in the data start a request."""
    t = as_table(data, SPAN_SCHEMA)
    n = t.num_rows
    if n == 0:
        return SpanFold(spans=t)
    start = t.column("start_ns").to_numpy(zero_copy_only=False).astype(np.int64)
    end = t.column("end_ns").to_numpy(zero_copy_only=False).astype(np.int64)
    dur = t.column("duration_us").to_numpy(zero_copy_only=False)
    fix = (end <= start) & np.isfinite(dur) & (dur > 0)
    end = np.where(fix, start + (np.nan_to_num(dur) * 1000).astype(np.int64), np.maximum(end, start))
    t = t.set_column(t.schema.get_field_index("end_ns"), "end_ns", pa.array(end, pa.int64()))
    own_key = span_key(t.column("trace_id"), t.column("span_id"))
    parent = _parent_rows(t, own_key)
    svc_codes = t.column("service").dictionary_encode().combine_chunks().indices.to_numpy()
    has_parent = parent >= 0
    psafe = np.where(has_parent, parent, 0)
    same = has_parent & (svc_codes[psafe] == svc_codes)
    remote = has_parent & ~same
    # self time: duration minus the union of the children's intervals (clipped to the parent)
    kids = np.nonzero(has_parent)[0]
    covered = np.zeros(n)
    if len(kids):
        p = parent[kids]
        cs = np.clip(start[kids], start[p], end[p]) - start[p]
        ce = np.clip(end[kids], start[p], end[p]) - start[p]
        span_max = int(max(1, (end - start).max())) + 1
        off = p.astype(np.int64) * span_max
        order = np.lexsort((cs, p))
        s_sorted = cs[order] + off[order]
        e_sorted = ce[order] + off[order]
        prev_max = np.maximum.accumulate(np.concatenate([[np.iinfo(np.int64).min], e_sorted[:-1]]))
        contrib = np.maximum(0, e_sorted - np.maximum(s_sorted, prev_max))
        covered = np.bincount(p[order], weights=contrib.astype(float), minlength=n)
    self_us = np.maximum(0.0, (end - start) - covered) / 1000.0
    n_kids = np.bincount(parent[kids], minlength=n) if len(kids) else np.zeros(n, np.int64)
    n_remote = np.bincount(parent[remote], minlength=n) if remote.any() else np.zeros(n, np.int64)
    kinds = pc.utf8_upper(t.column("kind")).to_numpy(zero_copy_only=False)
    client = (kinds == "CLIENT") | ((n_kids > 0) & (n_remote == n_kids))
    root = np.where(same, parent, np.arange(n))
    for _ in range(64):  # pointer jumping up the same-service chain
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    status = pc.utf8_upper(t.column("status"))
    error = pc.equal(status, "ERROR").to_numpy(zero_copy_only=False)
    error |= pc.match_substring_regex(t.column("attributes"), _HTTP_5XX).to_numpy(zero_copy_only=False)
    error |= pc.match_substring_regex(t.column("operation"), _ERROR_OP.pattern).to_numpy(zero_copy_only=False)
    services = t.column("service").to_numpy(zero_copy_only=False)
    edges = {(a, b) for a, b in zip(services[parent[remote]], services[remote], strict=True) if a and b}
    fold = SpanFold(spans=t, parent=parent, root=root, self_us=self_us, client=client, error=error, edges=edges)
    fold._cache["span_key"] = own_key
    return fold


def span_key(trace_id: pa.ChunkedArray | pa.Array, span_id: pa.ChunkedArray | pa.Array) -> pa.Array:
    """'<trace_id>\x1f<span_id>' of each row: one text to look spans up by (ids hold no control characters)."""
    return pc.binary_join_element_wise(trace_id, span_id, KEY_SEP).combine_chunks()  # type: ignore[no-any-return]


def lookup(keys: pa.Array, wanted: pa.Array | pa.ChunkedArray, among: pa.Array) -> np.ndarray:
    """Index in `among` of each of `keys` (its first occurrence), -1 where not found or not `wanted`."""
    found = pc.index_in(pc.if_else(wanted, keys, None), value_set=among, skip_nulls=True)
    return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _parent_rows(t: pa.Table, own: pa.Array) -> np.ndarray:
    """Row of each span's parent (-1: none, or not in the data); `own` is each row's `span_key`."""
    parent_key = span_key(t.column("trace_id"), t.column("parent_id"))
    parent = lookup(parent_key, pc.not_equal(t.column("parent_id"), ""), own)
    parent[parent == np.arange(t.num_rows)] = -1
    return parent


def span_slices(fold: SpanFold, in_window: np.ndarray, start_ns: int, width_ns: int) -> np.ndarray:
    """Slice of each span's request: 0 when its entry span is a window row, else the history slice of
    the entry span's start (EXCLUDED when history falls inside the window)."""
    if fold.empty:
        return np.zeros(0, np.int64)
    hist = slice_of(fold.column("start_ns"), start_ns, width_ns)
    hist = np.where(hist == 0, EXCLUDED_SLICE, hist)
    own = np.where(in_window, np.int64(0), hist)
    return own[fold.root]
