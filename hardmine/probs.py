"""Validation of predicted-probability matrices (the one place where inputs are checked).

Every scoring function takes probabilities of shape ``(n, K)`` (or ``(n, E, K)`` for
per-epoch probabilities) and integer labels in ``[0, K)``. This module turns what the
OOF stage writes (numpy arrays, lists of lists, Arrow list columns) into checked
float32 arrays, and fails with errors that name the offending rows and say how to fix
them. Errors are ``ValueError``; soft problems come back as warning strings.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: at most this many offending rows are named in an error message
MAX_ROWS_NAMED = 10

#: rows whose sum is off by more than this (but at most ``atol``) count as renormalised
_QUIET_TOL = 1e-6

RowNamer = Callable[[np.ndarray], list]


# --------------------------------------------------------------------------- naming
def _row_namer(ids: Any, n: int, what: str) -> RowNamer:
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


def _describe_rows(bad: np.ndarray, namer: RowNamer) -> str:
    """'rows [a, b, ...] (N in total)' for a boolean mask or an index array."""
    idx = np.flatnonzero(bad) if bad.dtype == bool else np.asarray(bad)
    shown = namer(idx[:MAX_ROWS_NAMED])
    more = f", first {MAX_ROWS_NAMED} shown" if len(idx) > MAX_ROWS_NAMED else ""
    return f"rows {shown} ({len(idx)} in total{more})"


# --------------------------------------------------------------------------- arrow
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
    namer = _row_namer(ids, n, name)
    if column.null_count:
        bad = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        raise ValueError(
            f"{name}: {_describe_rows(bad, namer)} are null; every row needs its K "
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
                f"{name}: {_describe_rows(bad_rows, namer)} contain null lists at nesting level "
                f"{level}; write complete fixed-width lists"
            )
        width = int(lengths[0]) if len(lengths) else 0
        ragged = lengths != width
        if ragged.any():
            bad_rows = np.unique(owner[ragged])
            raise ValueError(
                f"{name}: ragged lists: {_describe_rows(bad_rows, namer)} have a different length "
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


def _to_numpy(probs: Any, ids: Any, name: str) -> np.ndarray:
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
                namer = _row_namer(ids, len(lengths), name)
                raise ValueError(
                    f"{name}: ragged rows: {_describe_rows(lengths != lengths[0], namer)} do not "
                    f"have {lengths[0]} entries like the first row; every row needs K probabilities"
                ) from err
        raise ValueError(f"{name}: could not read as a numeric array ({err}); pass floats") from err
    return arr


# --------------------------------------------------------------------------- checks
def validate_labels(labels: Any, n_rows: int, n_classes: int, *, ids: Any = None) -> np.ndarray:
    """Check labels are integer class indices in ``[0, n_classes)``, one per row; return int64."""
    if isinstance(labels, (pa.Array, pa.ChunkedArray)):
        if labels.null_count:
            namer = _row_namer(ids, len(labels), "labels")
            bad = np.asarray(labels.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            raise ValueError(f"labels: {_describe_rows(bad, namer)} are null; every row needs a label")
        labels = labels.to_numpy(zero_copy_only=False)
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D (one class index per row), got shape {lab.shape}")
    if len(lab) != n_rows:
        raise ValueError(
            f"labels has {len(lab)} entries but probs has {n_rows} rows: pass one label per row, "
            "in the same order"
        )
    if lab.dtype.kind not in "iu":
        hint = ""
        if lab.dtype.kind == "f" and np.all(np.isfinite(lab)) and np.all(lab == np.round(lab)):
            hint = " (they hold whole numbers: cast with labels.astype(int))"
        elif lab.dtype.kind in "OUS":
            hint = " (map class names to indices with the label vocabulary in the run manifest)"
        raise ValueError(f"labels must be integer class indices 0..K-1, got dtype {lab.dtype}{hint}")
    bad = (lab < 0) | (lab >= n_classes)
    if bad.any():
        namer = _row_namer(ids, n_rows, "labels")
        raise ValueError(
            f"labels out of range [0, {n_classes}): {_describe_rows(bad, namer)} with values "
            f"{lab[bad][:MAX_ROWS_NAMED].tolist()}; labels must index the probability columns"
        )
    return lab.astype(np.int64, copy=False)


def _check_matrix(p: np.ndarray, namer: RowNamer, atol: float, name: str) -> tuple[np.ndarray, int]:
    """Checks of a 2-D probability matrix; returns (float32 renormalised copy, rows renormalised)."""
    finite = np.isfinite(p).all(axis=1)
    if not finite.all():
        raise ValueError(
            f"{name}: {_describe_rows(~finite, namer)} contain NaN or inf; recompute them "
            "(a diverged model or an overflowing softmax) or drop these rows"
        )
    negative = (p < 0).any(axis=1)
    if negative.any():
        raise ValueError(
            f"{name}: {_describe_rows(negative, namer)} contain negative values; pass "
            "probabilities (softmax of the logits), not logits or scores"
        )
    sums = p.sum(axis=1, dtype=np.float64)
    off = np.abs(sums - 1.0)
    bad = off > atol
    if bad.any():
        raise ValueError(
            f"{name}: {_describe_rows(bad, namer)} do not sum to 1 within atol={atol} "
            f"(sums {np.round(sums[bad][:MAX_ROWS_NAMED], 6).tolist()}); apply a softmax to logits, "
            "or raise atol if the rows were rounded on purpose"
        )
    out = np.array(p, dtype=np.float32, copy=True)
    renorm = off > min(_QUIET_TOL, atol)
    n_renorm = int(renorm.sum())
    if n_renorm:
        out[renorm] = (p[renorm] / sums[renorm, None]).astype(np.float32)
    return out, n_renorm


def validate_probs(
    probs: Any,
    labels: Any = None,
    *,
    n_classes: int | None = None,
    ids: Any = None,
    atol: float = 1e-3,
    name: str = "probs",
) -> tuple[np.ndarray, list[str]]:
    """Check an ``(n, K)`` probability matrix (ndarray, list of lists or Arrow list column).

    Returns ``(float32 probs, warnings)``. Rows whose sum is off by at most ``atol`` are
    renormalised (with a warning); anything else wrong raises ValueError naming the rows
    (``ids`` when given, else indices) and the fix.
    """
    p = _to_numpy(probs, ids, name)
    if p.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_rows, n_classes), got shape {p.shape}; "
            "for per-epoch probabilities use validate_epoch_probs"
        )
    n, k = p.shape
    if n == 0:
        raise ValueError(f"{name} has zero rows: nothing to score (did the OOF stage write any rows?)")
    if n_classes is not None and k != n_classes:
        raise ValueError(
            f"{name} has {k} columns but n_classes={n_classes}: one column per class, in label-index order"
        )
    if k < 2:
        raise ValueError(f"{name} has {k} column(s): a classifier needs at least 2 classes")
    namer = _row_namer(ids, n, name)
    lab = None
    if labels is not None:
        lab = validate_labels(labels, n, k, ids=ids)
    out, n_renorm = _check_matrix(p, namer, atol, name)
    warnings: list[str] = []
    if n_renorm:
        warnings.append(
            f"{name}: renormalised {n_renorm} of {n} rows whose sums were off from 1 by at most atol={atol}"
        )
    never = np.setdiff1d(np.arange(k), np.unique(out.argmax(axis=1)))
    if len(never):
        warnings.append(
            f"{name}: classes {never.tolist()} are never predicted (never the argmax); "
            "the model may be underfit or these classes too rare"
        )
    if lab is not None:
        absent = np.flatnonzero(np.bincount(lab, minlength=k) == 0)
        if len(absent):
            warnings.append(
                f"labels: classes {absent.tolist()} never occur in the labels; their noise rates "
                "cannot be estimated"
            )
    return out, warnings


def validate_epoch_probs(
    epoch_probs: Any,
    labels: Any = None,
    *,
    n_classes: int | None = None,
    ids: Any = None,
    atol: float = 1e-3,
    name: str = "epoch_probs",
) -> tuple[np.ndarray, list[str]]:
    """Check per-epoch probabilities of shape ``(n, E, K)``; every (row, epoch) must be a distribution.

    Accepts an ndarray, nested lists or an Arrow ``list<list<float>>`` column. Errors name
    ``"<id> (epoch e)"``. Returns ``(float32 array, warnings)``.
    """
    p = _to_numpy(epoch_probs, ids, name)
    if p.ndim != 3:
        raise ValueError(f"{name} must be 3-D (n_rows, n_epochs, n_classes), got shape {p.shape}")
    n, e, k = p.shape
    if n == 0 or e == 0:
        raise ValueError(f"{name} has shape {p.shape}: needs at least one row and one epoch")
    if n_classes is not None and k != n_classes:
        raise ValueError(f"{name} has {k} classes per epoch but n_classes={n_classes}")
    if k < 2:
        raise ValueError(f"{name} has {k} class(es): a classifier needs at least 2 classes")
    row_names = _row_namer(ids, n, name)
    if labels is not None:
        validate_labels(labels, n, k, ids=ids)

    def namer(flat_idx: np.ndarray) -> list:
        flat_idx = np.asarray(flat_idx)
        rows = row_names(flat_idx // e)
        return [f"{r} (epoch {j})" for r, j in zip(rows, (flat_idx % e).tolist())]

    flat, n_renorm = _check_matrix(p.reshape(n * e, k), namer, atol, name)
    warnings = []
    if n_renorm:
        warnings.append(f"{name}: renormalised {n_renorm} of {n * e} (row, epoch) distributions")
    return flat.reshape(n, e, k), warnings
