"""Column readers of the report: artifact columns as numpy arrays (nulls filled), id lookups, class names."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def str_col(table: pa.Table, name: str, fill: str) -> np.ndarray:
    """The column as an object array of str, nulls replaced by ``fill``."""
    col = table.column(name)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_null(col.type)):
        col = col.cast(pa.string())
    return np.asarray(pc.fill_null(col.cast(pa.string()), fill).to_pylist(), dtype=object)


def bool_col(table: pa.Table, name: str) -> np.ndarray:
    """The column as a bool array, nulls (or a column of nulls) False."""
    col = table.column(name)
    if pa.types.is_null(col.type):
        return np.zeros(table.num_rows, dtype=bool)
    return pc.fill_null(col.cast(pa.bool_()), False).to_numpy(zero_copy_only=False).astype(bool)


def float_col(table: pa.Table, name: str) -> np.ndarray | None:
    """float64 values (NaN where null), or None when the column is absent or null in every row (not computed)."""
    if name not in table.column_names or table.column(name).null_count == table.num_rows:
        return None
    return pc.fill_null(table.column(name).cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)


def top_rows(values: np.ndarray, n: int, *, highest: bool = True) -> np.ndarray:
    """Indices of the ``n`` highest (lowest) finite values, ties in row order."""
    idx = np.flatnonzero(np.isfinite(values))
    order = np.argsort(-values[idx] if highest else values[idx], kind="stable")
    return idx[order][:n]


def class_names(label_names: Sequence[str], idx: np.ndarray) -> list[str]:
    """The name of each class index (``#i`` when outside the label vocabulary)."""
    k = len(label_names)
    return [str(label_names[i]) if 0 <= i < k else f"#{i}" for i in idx.tolist()]


def lookup(keys: pa.Array | pa.ChunkedArray, table: pa.Table, key: str, value: str) -> tuple[list, np.ndarray]:
    """(``table[value]`` for each of ``keys`` matched on ``table[key]``, whether each key was found).

    The value of a key not found is meaningless (mask it).
    """
    pos = pc.index_in(keys.cast(pa.string()), value_set=table.column(key).combine_chunks().cast(pa.string()))
    found = pc.is_valid(pos).to_numpy(zero_copy_only=False)
    if not table.num_rows:
        return [None] * len(keys), found
    return table.column(value).take(pc.fill_null(pos, 0)).to_pylist(), found
