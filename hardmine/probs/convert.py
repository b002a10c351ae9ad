"""Probabilities as numpy arrays: from Arrow list columns, lists of lists or ndarrays.

What the OOF stage writes (fixed-width Arrow list columns) becomes a numpy array without a
Python loop; ragged or null rows raise ``ValueError`` naming their ids (or indices).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.probs.rows import describe_rows, row_namer


def probs_from_arrow(column: Any, *, ids: Any = None, name: str = "probs") -> np.ndarray:
    """Convert a fixed-width Arrow list column to a numpy array without a Python loop.

    ``list<float>`` gives ``(n, K)``; ``list<list<float>>`` (e.g. ``epoch_probs``) gives
    ``(n, E, K)``. Ragged or null rows raise ValueError naming their ids (or indices).
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    if not isinstance(column, pa.Array) or not _is_list_type(column.type):
        raise ValueError(
            f"{name}: expected an Arrow list column (list<float32> as in oof.parquet), "
            f"got {getattr(column, 'type', type(column).__name__)}"
        )
    n = len(column)
    namer = row_namer(ids, n, name)
    if column.null_count:
        bad = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        raise ValueError(
            f"{name}: {describe_rows(bad, namer)} are null; every row needs its K "
            "probabilities: re-run the OOF stage for these rows or drop them"
        )
    shape = [n]
    owner = np.arange(n)  # for each element at the current level, the outer row it belongs to
    values: pa.Array = column
    level = 0
    while _is_list_type(values.type):
        lengths = np.asarray(pc.list_value_length(values).to_numpy(zero_copy_only=False))
        if values.null_count:
            bad_rows = np.unique(owner[np.asarray(values.is_null().to_numpy(zero_copy_only=False))])
            raise ValueError(
                f"{name}: {describe_rows(bad_rows, namer)} contain null lists at nesting level "
                f"{level}; write complete fixed-width lists"
            )
        width = int(lengths[0]) if len(lengths) else 0
        ragged = lengths != width
        if ragged.any():
            bad_rows = np.unique(owner[ragged])
            raise ValueError(
                f"{name}: ragged lists: {describe_rows(bad_rows, namer)} have a different length "
                f"than the first row ({width}) at nesting level {level}; every row must hold the "
                "same number of classes (and epochs): fix the writer or drop these rows"
            )
        shape.append(width)
        owner = np.repeat(owner, width)
        values = values.flatten()
        level += 1
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise ValueError(f"{name}: list values must be numbers, got {values.type}")
    flat = values.to_numpy(zero_copy_only=False)  # float nulls become NaN (caught by validation)
    if pa.types.is_integer(values.type):
        flat = flat.astype(np.float32)
    return flat.reshape(shape)


def _is_list_type(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def probs_to_numpy(probs: Any, ids: Any, name: str) -> np.ndarray:
    """ndarray, list of lists or Arrow list column -> float ndarray (no copy for float ndarrays)."""
    if isinstance(probs, (pa.Array, pa.ChunkedArray)):
        return probs_from_arrow(probs, ids=ids, name=name)
    if isinstance(probs, np.ndarray) and probs.dtype.kind == "f":
        return probs
    try:
        arr = np.asarray(probs, dtype=np.float64)
    except (ValueError, TypeError) as err:
        if isinstance(probs, Sequence) and not isinstance(probs, (str, bytes)):
            lengths = np.array([len(r) if hasattr(r, "__len__") else -1 for r in probs])
            if len(lengths) and (lengths != lengths[0]).any():
                namer = row_namer(ids, len(lengths), name)
                raise ValueError(
                    f"{name}: ragged rows: {describe_rows(lengths != lengths[0], namer)} do not "
                    f"have {lengths[0]} entries like the first row; every row needs K probabilities"
                ) from err
        raise ValueError(f"{name}: could not read as a numeric array ({err}); pass floats") from err
    return arr
