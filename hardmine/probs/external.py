"""Out-of-fold probabilities computed elsewhere ("bring your own probabilities").

:func:`load_external_probs` reads Parquet, CSV/TSV or ``.npy``, aligns the rows with the
dataset's ids and the columns with the label names, and checks them with
:func:`hardmine.probs.validate.validate_probs`. Problems raise
:class:`hardmine.data.DataError` (a ValueError) naming the file, ids, columns and fix.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from hardmine.probs.rows import MAX_ROWS_NAMED
from hardmine.probs.validate import validate_probs

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
