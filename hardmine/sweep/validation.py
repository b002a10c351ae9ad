"""The validation split the sweep chooses on: carved from the training rows, stratified per class."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pyarrow as pa

from hardmine.data import DataError

#: validation rows every class needs (the choice compares cells on them).
MIN_VALIDATION_PER_CLASS = 2


def validation_split(dataset: pa.Table, size: float, seed: int, label_names: Sequence[str] | None = None) -> tuple[pa.Table, pa.Table]:
    """(training rows the trials draw from, validation rows), carved from the training split.

    Stratified: ``round(size * count)`` rows of every class (half up), drawn with ``seed``; both
    parts keep the table's row order. Raises :class:`hardmine.data.DataError` naming every class
    that would get fewer than :data:`MIN_VALIDATION_PER_CLASS` validation rows or no training row
    left, and the ``sweep.validation_size`` that would do.
    """
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0.0 < size < 1.0:
        raise ValueError(f"sweep.validation_size must be a share in (0, 1), e.g. 0.2, got {size!r}")
    if "label" not in dataset.column_names or "id" not in dataset.column_names:
        raise ValueError(f"dataset lacks id/label columns (has {dataset.column_names}); pass dataset.parquet")
    y = dataset.column("label").to_numpy().astype(np.int64)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5A11D])
    is_val = np.zeros(len(y), dtype=bool)
    problems: list[str] = []
    floor_size, tiny, too_large = 0.0, False, False

    def name(c: int) -> str:
        return str(label_names[c]) if label_names is not None and 0 <= c < len(label_names) else str(c)

    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = int(math.floor(size * len(idx) + 0.5))
        if k < MIN_VALIDATION_PER_CLASS or k >= len(idx):
            what = f"{k} validation row{'s' if k != 1 else ''}" if k < len(idx) else "no training row left"
            problems.append(f"{name(int(c))!r} ({len(idx)} training rows -> {what})")
            too_large |= k >= len(idx) and len(idx) > MIN_VALIDATION_PER_CLASS
            if len(idx) > MIN_VALIDATION_PER_CLASS:
                floor_size = max(floor_size, (MIN_VALIDATION_PER_CLASS - 0.5) / len(idx))
            else:
                tiny = True
            continue
        is_val[rng.permutation(idx)[:k]] = True
    if problems:
        if tiny:
            fix = (f"classes with {MIN_VALIDATION_PER_CLASS} or fewer training rows cannot be split: merge or remove them, "
                   "or add rows")
        elif too_large:
            fix = "lower sweep.validation_size (e.g. 0.2)"
        else:
            fix = f"set sweep.validation_size to at least {math.ceil(floor_size * 1000) / 1000:g}"
        raise DataError(
            f"sweep.validation_size={size:g} {'is too large' if too_large and not tiny else 'is too small'} for the classes: "
            f"{', '.join(problems)}. The sweep chooses its "
            f"best cell on this validation split (carved from the training rows; the test split is only read to confirm "
            f"the choice) and needs at least {MIN_VALIDATION_PER_CLASS} validation rows of every class and one training "
            f"row left: {fix}"
        )
    return dataset.filter(pa.array(~is_val)), dataset.filter(pa.array(is_val))
