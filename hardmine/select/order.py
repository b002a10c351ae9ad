"""Ordering rows for selection: hardest first, ties broken by a seeded hash of the id, so every
choice is deterministic and independent of the table's row order."""
from __future__ import annotations

import hashlib
import math
from collections import Counter
from typing import Sequence

import numpy as np

from hardmine.checks import check_fraction


def tiebreak_keys(ids: Sequence, seed: int = 0) -> np.ndarray:
    """Seeded, deterministic per-id hash (uint64) used to break hardness ties."""
    key = str(int(seed)).encode()
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8, key=key).digest(), "big")
            for i in ids
        ),
        dtype=np.uint64,
        count=len(ids),
    )


def hardest_order(hardness: np.ndarray, ids: Sequence, seed: int = 0) -> np.ndarray:
    """Indices sorted hardest first; ties broken by a seeded hash of the id, then the id."""
    hardness = np.asarray(hardness, dtype=np.float64)
    ids_u = np.asarray([str(i) for i in ids], dtype=str) if len(ids) else np.zeros(0, dtype="U1")
    return np.lexsort((ids_u, tiebreak_keys(ids, seed), -hardness))


def top_quantile_mask(hardness: np.ndarray, quantile: float, ids: Sequence | None = None, seed: int = 0) -> np.ndarray:
    """Boolean mask of the ``ceil(quantile * n)`` hardest rows (deterministic tie-break by id)."""
    check_fraction("hardness_quantile", quantile, low_open=True)
    hardness = np.asarray(hardness, dtype=np.float64)
    n = hardness.shape[0]
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    if ids is None:
        ids = [f"{i:012d}" for i in range(n)]
    k = min(n, math.ceil(quantile * n - 1e-9))
    mask[hardest_order(hardness, ids, seed)[:k]] = True
    return mask


def class_rank(order: np.ndarray, mask: np.ndarray, label: np.ndarray) -> np.ndarray:
    """1-based rank of each ``mask`` row within its class, in ``order`` (0 outside ``mask``)."""
    rank = np.zeros(len(label), dtype=np.int64)
    seen: Counter = Counter()
    for i in order[mask[order]]:
        seen[label[i]] += 1
        rank[i] = seen[label[i]]
    return rank
