"""Checks of labels and probability matrices: errors name the rows and the fix.

Errors are ``ValueError``; soft problems (renormalised rows, classes never predicted or never
labelled) come back as warning strings.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from hardmine.probs.convert import probs_to_numpy
from hardmine.probs.rows import MAX_ROWS_NAMED, RowNamer, describe_rows, row_namer

#: rows whose sum is off by more than this (but at most ``atol``) count as renormalised
_QUIET_TOL = 1e-6


def check_label_array(lab: np.ndarray, n_rows: int, *, rows: str = "probs has {n} rows", indices: str = "0..K-1") -> np.ndarray:
    """The shape and type checks every label vector gets: 1-D, one per row (``rows`` says
    where the row count comes from), integer dtype (with a hint for floats and names)."""
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D (one class index per row), got shape {lab.shape}")
    if len(lab) != n_rows:
        raise ValueError(
            f"labels has {len(lab)} entries but {rows.format(n=n_rows)}: pass one label per row, "
            "in the same order"
        )
    if lab.dtype.kind not in "iu":
        hint = ""
        if lab.dtype.kind == "f" and np.all(np.isfinite(lab)) and np.all(lab == np.round(lab)):
            hint = " (they hold whole numbers: cast with labels.astype(int))"
        elif lab.dtype.kind in "OUS":
            hint = " (map class names to indices with the label vocabulary in the run manifest)"
        raise ValueError(f"labels must be integer class indices {indices}, got dtype {lab.dtype}{hint}")
    return lab


def validate_labels(labels: Any, n_rows: int, n_classes: int, *, ids: Any = None) -> np.ndarray:
    """Check labels are integer class indices in ``[0, n_classes)``, one per row; return int64."""
    if isinstance(labels, (pa.Array, pa.ChunkedArray)):
        if labels.null_count:
            namer = row_namer(ids, len(labels), "labels")
            bad = np.asarray(labels.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            raise ValueError(f"labels: {describe_rows(bad, namer)} are null; every row needs a label")
        labels = labels.to_numpy(zero_copy_only=False)
    lab = check_label_array(np.asarray(labels), n_rows)
    bad = (lab < 0) | (lab >= n_classes)
    if bad.any():
        namer = row_namer(ids, n_rows, "labels")
        raise ValueError(
            f"labels out of range [0, {n_classes}): {describe_rows(bad, namer)} with values "
            f"{lab[bad][:MAX_ROWS_NAMED].tolist()}; labels must index the probability columns"
        )
    return lab.astype(np.int64, copy=False)


def _check_matrix(p: np.ndarray, namer: RowNamer, atol: float, name: str) -> tuple[np.ndarray, int]:
    """Checks of a 2-D probability matrix; returns (float32 renormalised copy, rows renormalised)."""
    finite = np.isfinite(p).all(axis=1)
    if not finite.all():
        raise ValueError(
            f"{name}: {describe_rows(~finite, namer)} contain NaN or inf; recompute them "
            "(a diverged model or an overflowing softmax) or drop these rows"
        )
    negative = (p < 0).any(axis=1)
    if negative.any():
        raise ValueError(
            f"{name}: {describe_rows(negative, namer)} contain negative values; pass "
            "probabilities (softmax of the logits), not logits or scores"
        )
    sums = p.sum(axis=1, dtype=np.float64)
    off = np.abs(sums - 1.0)
    bad = off > atol
    if bad.any():
        raise ValueError(
            f"{name}: {describe_rows(bad, namer)} do not sum to 1 within atol={atol} "
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
    p = probs_to_numpy(probs, ids, name)
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
    namer = row_namer(ids, n, name)
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
    p = probs_to_numpy(epoch_probs, ids, name)
    if p.ndim != 3:
        raise ValueError(f"{name} must be 3-D (n_rows, n_epochs, n_classes), got shape {p.shape}")
    n, e, k = p.shape
    if n == 0 or e == 0:
        raise ValueError(f"{name} has shape {p.shape}: needs at least one row and one epoch")
    if n_classes is not None and k != n_classes:
        raise ValueError(f"{name} has {k} classes per epoch but n_classes={n_classes}")
    if k < 2:
        raise ValueError(f"{name} has {k} class(es): a classifier needs at least 2 classes")
    row_names = row_namer(ids, n, name)
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
