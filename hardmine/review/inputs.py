"""Checks on what callers hand the review functions: tables and the label vocabulary."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from hardmine.checks import first

#: what to pass where a review function needs the run's dataset.
DATASET_FIX = "pass the run's dataset (dataset.parquet, or a dataset version review/versions/vN.parquet)"


def as_table(data: Any, what: str) -> pa.Table:
    """``data`` (a pyarrow Table, pandas DataFrame or dict of columns) as a pyarrow Table."""
    if isinstance(data, pa.Table):
        return data
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False)
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    if isinstance(data, dict):
        return pa.table(data)
    raise ValueError(f"{what} must be a pyarrow Table (or pandas DataFrame), got {type(data).__name__}")


def check_label_names(label_names: Sequence[str]) -> list[str]:
    """The label vocabulary in index order: non-empty strings, each once."""
    names = list(label_names)
    if not names:
        raise ValueError("label_names is empty: pass the label vocabulary in index order (manifest['labels'])")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError(f"label_names must be non-empty strings; bad entries: {bad!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"label_names has duplicates {dup}: each label name must appear once")
    return names


def label_names_of(labels: np.ndarray, label_names: list[str], what: str, ids: Sequence[str]) -> list[str]:
    """The names of label indices ``labels`` (of the rows ``ids`` of ``what``), refusing indices outside the vocabulary."""
    labels = np.asarray(labels)
    bad = np.flatnonzero((labels < 0) | (labels >= len(label_names)))
    if bad.size:
        raise ValueError(
            f"{what} has label indices outside 0..{len(label_names) - 1} for ids "
            f"{first([ids[i] for i in bad])}: label_names has {len(label_names)} entries; "
            "pass the run's label vocabulary"
        )
    return [label_names[int(k)] for k in labels]
