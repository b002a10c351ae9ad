"""Input checks shared by the stages and the library functions: one place for "first N for a
message", required columns, unique ids and fractions. Each raises ``ValueError`` (or the error
type it is given) with a message that names what is wrong, where, and the fix.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def first(values: Iterable[Any], k: int = 5) -> str:
    """The first ``k`` values for a message, as reprs, with how many more there are."""
    values = list(values)
    more = f" (and {len(values) - k} more)" if len(values) > k else ""
    return ", ".join(repr(v) for v in values[:k]) + more


def require_columns(table: Any, cols: Sequence[str], what: str, fix: str, *, no_nulls: bool = False) -> None:
    """``table`` is a pyarrow Table with the columns ``cols`` (without nulls when ``no_nulls``)."""
    if not isinstance(table, pa.Table):
        raise ValueError(f"{what} must be a pyarrow Table, got {type(table).__name__}; {fix}")
    missing = [c for c in cols if c not in table.column_names]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing} (has {table.column_names}); {fix}")
    if no_nulls:
        for c in cols:
            if table.column(c).null_count:
                rows = np.flatnonzero(pc.is_null(table.column(c)).to_numpy(zero_copy_only=False))
                raise ValueError(f"{what} column {c!r} is null in rows {first(rows.tolist())}; fill or drop those rows")


def duplicate_ids(ids: Sequence[str]) -> list[str]:
    """``"'id' (rows i and j)"`` for each non-empty id seen before (j: the repeat, i: its first row)."""
    seen: dict[str, int] = {}
    dups = []
    for i, v in enumerate(ids):
        if v and v in seen:
            dups.append(f"{v!r} (rows {seen[v]} and {i})")
        seen.setdefault(v, i)
    return dups


def require_unique_ids(ids: Sequence[str], what: str, *, error: type[Exception] = ValueError) -> None:
    """Every id of ``what`` appears once."""
    dup = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dup:
        raise error(f"{what} has duplicate ids: {first(dup)}; ids must be unique")


def check_fraction(name: str, value: Any, *, low_open: bool = False) -> None:
    """``value`` is a number in [0, 1] (in (0, 1] when ``low_open``)."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (0.0 < v <= 1.0 if low_open else 0.0 <= v <= 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")


def column(table: pa.Table, name: str, what: str, fix: str) -> pa.ChunkedArray:
    """Column ``name`` of ``table``, which must exist and hold no nulls."""
    if name not in table.column_names:
        raise ValueError(f"{what} has no column {name!r} (columns: {table.column_names}); {fix}")
    col = table.column(name)
    if col.null_count:
        rows = np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))
        raise ValueError(f"{what} column {name!r} has nulls in rows {first(rows.tolist())}; fill or drop them")
    return col


def int_column(table: pa.Table, name: str, what: str, fix: str) -> np.ndarray:
    """An integer column (no nulls) as int64."""
    col = column(table, name, what, fix)
    if not (pa.types.is_integer(col.type)):
        raise ValueError(f"{what} column {name!r} must hold integers, got {col.type}; cast it to int32")
    return col.to_numpy().astype(np.int64)


def float_column(table: pa.Table, name: str, what: str, fix: str) -> np.ndarray:
    """A numeric column (no nulls, no NaN/inf) as float64."""
    col = column(table, name, what, fix)
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        raise ValueError(f"{what} column {name!r} must hold numbers, got {col.type}")
    arr = col.to_numpy().astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{what} column {name!r} is NaN/inf in rows {first(bad.tolist())}; recompute the scores")
    return arr


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` is an integer (not a bool) of at least ``minimum``; returned as a Python int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def check_choice(name: str, value: Any, valid: tuple[str, ...]) -> None:
    """``value`` is one of the strings ``valid``."""
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(repr(v) for v in valid)}; got {value!r}")
