"""Stratified, seeded K-fold assignment."""
from __future__ import annotations

import numpy as np


def make_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id (0..k-1) per row; stratified by label, shuffled with ``seed``."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    fold = np.full(len(labels), -1, dtype=np.int32)
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, val_idx) in enumerate(skf.split(np.zeros(len(labels)), labels)):
        fold[val_idx] = f
    return fold
