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
                namer = row_namer(ids, len(lengths), name)
                raise ValueError(
                    f"{name}: ragged rows: {describe_rows(lengths != lengths[0], namer)} do not "
                    f"have {lengths[0]} entries like the first row; every row needs K probabilities"
                ) from err
        raise ValueError(f"{name}: could not read as a numeric array ({err}); pass floats") from err
    return arr


# --------------------------------------------------------------------------- checks
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


# --------------------------------------------------------------------------- external files
_EXTERNAL_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".npy": "npy"}


def _external_error(msg: str) -> Exception:
    from hardmine.data import DataError  # a ValueError; imported late (data pulls in pandas)

    return DataError(msg)


def _names(values: list) -> str:
    shown = values[:MAX_ROWS_NAMED]
    more = f" ({len(values)} in total, first {MAX_ROWS_NAMED} shown)" if len(values) > MAX_ROWS_NAMED else ""
    return f"{shown}{more}"


def _ids_as_str(ids: Any) -> list[str]:
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if isinstance(ids, pa.Array):
        ids = ids.to_pylist()
    return [str(i) for i in ids]


def load_external_probs(
    path: Any,
    ids: Any,
    label_names: Sequence[str],
    *,
    fmt: str = "auto",
    atol: float = 1e-3,
) -> np.ndarray:
    """Read out-of-fold probabilities computed elsewhere ("bring your own probabilities").

    Formats (``fmt="auto"`` picks by extension):

    - ``parquet`` (``.parquet``/``.pq``), ``csv`` (``.csv``), ``tsv`` (``.tsv``): an ``id``
      column plus one numeric column per class, named exactly as ``label_names`` (any
      column order; rows in any order). Ids are matched as strings.
    - ``npy``: a float array of shape ``(len(ids), K)`` aligned with the data (row i is
      ``ids[i]``, column j is ``label_names[j]``).

    Returns a float32 array of shape ``(len(ids), K)``: rows in ``ids`` order, columns in
    ``label_names`` order. Rows must be probability distributions: NaN/inf, negative
    values or rows not summing to 1 within ``atol`` are errors; rows off by at most
    ``atol`` are renormalised with a ``UserWarning``. Every id of the data must have
    exactly one row, and the file may hold no other ids. Problems raise
    :class:`hardmine.data.DataError` (a ValueError) naming the file, ids, columns and fix.
    """
    import warnings
    from pathlib import Path

    p = Path(path)
    where = str(path)
    labels = [str(x) for x in label_names]
    k = len(labels)
    if k < 2:
        raise _external_error(f"label_names has {k} class(es): a classifier needs at least 2")
    if len(set(labels)) != k:
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise _external_error(f"label_names repeats {dup}: every class needs one unique name")
    want = _ids_as_str(ids)
    n = len(want)
    if n == 0:
        raise _external_error(f"{where}: no data ids were given to align the probabilities with")
    if len(set(want)) != n:
        raise _external_error(
            f"the data ids passed to load_external_probs repeat (e.g. "
            f"{_names(sorted(_duplicates(want)))}); pass the canonical dataset's unique ids"
        )
    if fmt == "auto":
        fmt = _EXTERNAL_FORMATS.get(p.suffix.lower())
        if fmt is None:
            raise _external_error(
                f"{where}: cannot tell the probabilities' format from the extension {p.suffix or '(none)'!r}: "
                f"use one of {sorted(_EXTERNAL_FORMATS)} or pass fmt='parquet'|'csv'|'tsv'|'npy'"
            )
    if fmt not in ("parquet", "csv", "tsv", "npy"):
        raise _external_error(f"fmt={fmt!r} is not a probabilities format: use auto, parquet, csv, tsv or npy")
    if not p.is_file():
        raise _external_error(f"probabilities file {where!r} does not exist: check the path")

    if fmt == "npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise _external_error(
                f"{where}: not a readable .npy array ({e}); save a float array with numpy.save"
            ) from None
        if arr.dtype.kind not in "fiu":
            raise _external_error(f"{where}: array dtype {arr.dtype} is not numeric; save float probabilities")
        if arr.shape != (n, k):
            raise _external_error(
                f"{where}: array shape {arr.shape} but the data has {n} rows and {k} classes {labels}: "
                f"save an ({n}, {k}) array, row i for the data's i-th row, columns in label order"
            )
        probs = np.asarray(arr, dtype=np.float64)
    else:
        table = _read_external_table(p, fmt, where)
        probs = _align_table(table, want, labels, where)

    # per-column checks first, so the message can name the class column
    for kind, bad_cells, fix in (
        ("NaN or inf", ~np.isfinite(probs), "recompute them (a diverged model or an overflowing softmax)"),
        ("negative values", probs < 0, "write probabilities (softmax of the logits), not logits or scores"),
    ):
        if bad_cells.any():
            cols = [labels[j] for j in np.flatnonzero(bad_cells.any(axis=0))]
            rows = np.flatnonzero(bad_cells.any(axis=1))
            raise _external_error(
                f"{where}: ids {_names([want[i] for i in rows])} hold {kind} in class column(s) {cols}: {fix}"
            )
    try:
        out, warns = validate_probs(probs, n_classes=k, ids=want, atol=atol, name=where)
    except ValueError as e:
        raise _external_error(str(e).replace(f"{where}: rows ", f"{where}: ids ", 1)) from None
    for w in warns:
        if "renormalised" in w:
            warnings.warn(w, UserWarning, stacklevel=2)
    return out


def _duplicates(values: list) -> set:
    seen: set = set()
    dup: set = set()
    for v in values:
        (dup if v in seen else seen).add(v)
    return dup


def _read_external_table(p, fmt: str, where: str) -> pa.Table:
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(p)
        import pyarrow.csv as pcsv

        return pcsv.read_csv(
            p,
            parse_options=pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
            convert_options=pcsv.ConvertOptions(column_types={"id": pa.string()}),
        )
    except (pa.ArrowInvalid, OSError) as e:
        raise _external_error(f"{where}: cannot read it as {fmt} ({e}); write a valid {fmt} file") from None


def _align_table(table: pa.Table, want: list[str], labels: list[str], where: str) -> np.ndarray:
    """Rows reordered to ``want`` and class columns to ``labels``, as float64 ``(n, K)``."""
    cols = list(table.column_names)
    dup_cols = sorted(_duplicates(cols))
    if dup_cols:
        raise _external_error(f"{where}: columns {dup_cols} appear more than once: keep one of each")
    if "id" not in cols:
        raise _external_error(
            f"{where}: no 'id' column (columns are {cols}): add the dataset id of every row as column 'id'"
        )
    class_cols = [c for c in cols if c != "id"]
    missing = [c for c in labels if c not in class_cols]
    extra = [c for c in class_cols if c not in labels]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing class column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        raise _external_error(
            f"{where}: {' and '.join(parts)}; the file needs exactly the columns 'id' and one per class "
            f"named as the labels {labels} (names compared exactly): rename or drop columns to match"
        )
    id_col = table.column("id")
    file_ids_raw = id_col.to_pylist()
    null_rows = [i for i, v in enumerate(file_ids_raw) if v is None or v == ""]
    if null_rows:
        raise _external_error(
            f"{where}: column 'id' is empty on data row(s) {_names([i + 1 for i in null_rows])} "
            "(counted from 1, header not counted): every row needs its dataset id"
        )
    file_ids = [str(v) for v in file_ids_raw]
    dups = _duplicates(file_ids)
    if dups:
        shown = [v for v in dict.fromkeys(file_ids) if v in dups]
        raise _external_error(
            f"{where}: ids {_names(shown)} appear on more than one row: keep one row of probabilities per id"
        )
    pos = {v: i for i, v in enumerate(file_ids)}
    missing_ids = [v for v in want if v not in pos]
    if missing_ids:
        raise _external_error(
            f"{where}: no probabilities for ids {_names(missing_ids)} of the data: the file needs one row "
            "for every row of the dataset (compute out-of-fold probabilities for all of them)"
        )
    if len(file_ids) != len(want):
        wanted = set(want)
        extra_ids = [v for v in file_ids if v not in wanted]
        raise _external_error(
            f"{where}: ids {_names(extra_ids)} are not in the data: drop these rows, or check the file "
            "belongs to this dataset"
        )
    take = np.fromiter((pos[v] for v in want), dtype=np.int64, count=len(want))
    out = np.empty((len(want), len(labels)), dtype=np.float64)
    for j, name in enumerate(labels):
        col = table.column(name)
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
            bad = [file_ids[i] for i, v in enumerate(col.to_pylist()) if not _is_number(v)]
            at = f" for ids {_names(bad)}" if bad else ""
            raise _external_error(
                f"{where}: class column {name!r} holds {col.type} values, not numbers{at}: write plain "
                "probabilities (e.g. 0.25) in every class column"
            )
        if col.null_count:
            nulls = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            raise _external_error(
                f"{where}: class column {name!r} has no value (empty, null or NaN) for ids {_names([file_ids[i] for i in np.flatnonzero(nulls)])}: "
                "every row needs a finite probability for every class: recompute these rows"
            )
        out[:, j] = col.to_numpy().astype(np.float64)[take]
    return out


def _is_number(v: Any) -> bool:
    if v is None or isinstance(v, bool):
        return False
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
