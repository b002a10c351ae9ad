"""The random-source control of the augmentation: as many sources as the targeted run, drawn at random."""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def random_control(selected: pa.Table, n: int, seed: int) -> pa.Table:
    """``selected`` (id, label, ...) with ``min(n, rows)`` random rows marked ``action`` augment, ``rule`` random_control
    (the others: none), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    chosen = np.zeros(selected.num_rows, dtype=bool)
    chosen[rng.choice(selected.num_rows, size=min(n, selected.num_rows), replace=False)] = True
    return pa.table({
        "id": selected.column("id"), "label": selected.column("label"),
        "action": pa.array(np.where(chosen, "augment", "none")), "rule": pa.array(np.where(chosen, "random_control", "none")),
    })
