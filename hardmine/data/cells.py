"""Raw cells as strings, so that validation treats every format alike; cells that are not one value.

Missing values become ``''``; lists, dicts and undecodable bytes are kept as they are, for
:func:`hardmine.data.canonical.to_canonical` and :func:`hardmine.data.truth.read_truth` to refuse
in the columns they use.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hardmine.data.errors import listed

#: cell values that are not one scalar (JSONL/Parquet lists and dicts)
NON_SCALAR = (list, tuple, dict, set, np.ndarray)


def cell(v):
    """One cell as a string: missing -> '', integral floats as ints (``1.0`` -> ``'1'``), lists and
    dicts (and undecodable bytes) kept as they are, to be refused where they are used."""
    if v is None or isinstance(v, str):
        return "" if v is None else v
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if f != f:
            return ""
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, NON_SCALAR):
        return v
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return v
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    return str(v)


def stringify(df: pd.DataFrame) -> pd.DataFrame:
    """Cells to strings, missing values to '' (so validation treats all formats alike)."""
    return pd.DataFrame({str(c): pd.Series([cell(v) for v in df[c].tolist()], dtype=object) for c in df.columns})


_NOT_ONE_VALUE = NON_SCALAR + (bytes,)


def non_scalar(values: list) -> list[int]:
    return [i for i, v in enumerate(values) if not isinstance(v, str) and isinstance(v, _NOT_ONE_VALUE)]


def scalar_cells(values: list) -> tuple[list, list[int]]:
    """Cells as strings (:func:`cell`), and the rows holding lists, dicts or bytes (kept as they are)."""
    out, bad = [], []
    for i, v in enumerate(values):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, _NOT_ONE_VALUE):
            out.append(v)
            bad.append(i)
        else:
            out.append(cell(v))
    return out, bad


def non_scalar_error(source: str, kind: str, column: str, rows: list[int], values: list, ids: list | None) -> str:
    example = values[rows[0]]
    example = repr(example if len(repr(example)) <= 60 else repr(example)[:57] + "...")
    what = {
        "label": "a label must be one scalar value per row (a class name or number); multi-label data is not supported. "
                 "Fix: give each row a single label (e.g. its main label, or one row per label)",
        "text": "the text must be one string per row. Fix: join the pieces into one string (e.g. ' '.join(tokens)), "
                "or point data.text_column at the column that holds the text",
        "id": "an id must be one string or number per row. Fix: point data.id_column at a scalar column, or set data.id_column: null",
    }[kind]
    return (f"{source}: the {kind} column {column!r} holds lists, objects or binary values, not one value, at rows "
            f"{listed(rows, [ids[i] for i in rows] if ids else None)} (e.g. {example}): {what}")
