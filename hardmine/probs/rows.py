"""Naming offending rows in error messages: by their ids when given, else by index."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyarrow as pa

#: at most this many offending rows are named in an error message
MAX_ROWS_NAMED = 10

RowNamer = Callable[[np.ndarray], list]


def row_namer(ids: Any, n: int, what: str) -> RowNamer:
    """A function mapping row indices to printable names: the ids when given, else indices."""
    if ids is None:
        return lambda idx: [int(i) for i in idx]
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if len(ids) != n:
        raise ValueError(f"ids has {len(ids)} entries but {what} has {n} rows: pass one id per row")
    if isinstance(ids, pa.Array):
        return lambda idx: ids.take(pa.array(np.asarray(idx, dtype=np.int64))).to_pylist()
    if isinstance(ids, np.ndarray):
        return lambda idx: ids[np.asarray(idx, dtype=np.int64)].tolist()
    return lambda idx: [ids[int(i)] for i in idx]


def describe_rows(bad: np.ndarray, namer: RowNamer) -> str:
    """'rows [a, b, ...] (N in total)' for a boolean mask or an index array."""
    idx = np.flatnonzero(bad) if bad.dtype == bool else np.asarray(bad)
    shown = namer(idx[:MAX_ROWS_NAMED])
    more = f", first {MAX_ROWS_NAMED} shown" if len(idx) > MAX_ROWS_NAMED else ""
    return f"rows {shown} ({len(idx)} in total{more})"
