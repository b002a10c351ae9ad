"""Per-row scores of the given label from out-of-fold probabilities, and the helpers the other
scoring modules share: :func:`check_inputs` (validation with :mod:`hardmine.probs`),
:func:`max_other_class` and the row chunk :data:`CHUNK`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import entr

from hardmine.probs import validate_labels, validate_probs

#: rows per chunk in the vectorised helpers (bounds temporaries to chunk x K)
CHUNK = 65_536


def check_inputs(probs: Any, labels: Any, ids: Any = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validated ``(float32 probs, int64 labels, warnings)`` (:func:`hardmine.probs.validate_probs`)."""
    p, warns = validate_probs(probs, labels, ids=ids)
    lab = validate_labels(labels, p.shape[0], p.shape[1], ids=ids)
    return p, lab, warns


def max_other_class(p: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (index, value) of the largest probability among classes other than the label."""
    n = len(lab)
    idx = np.empty(n, dtype=np.int64)
    val = np.empty(n, dtype=np.float32)
    for s in range(0, n, CHUNK):
        blk = np.array(p[s : s + CHUNK], dtype=np.float32, copy=True)
        rows = np.arange(len(blk))
        blk[rows, lab[s : s + CHUNK]] = -np.inf
        j = blk.argmax(axis=1)
        idx[s : s + CHUNK] = j
        val[s : s + CHUNK] = blk[rows, j]
    return idx, val


def sample_scores(probs: Any, labels: Any) -> dict[str, np.ndarray]:
    """Per-row ``pred``, ``p_true``, ``hardness`` (1 - p_true), ``margin``, ``entropy``, ``self_confidence``.

    ``margin`` is p_true minus the largest other-class probability (> 0 iff the label is
    the strict argmax); ``entropy`` uses the natural log.
    """
    p, lab, _ = check_inputs(probs, labels)
    return sample_scores_unchecked(p, lab)


def sample_scores_unchecked(p: np.ndarray, lab: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`sample_scores` on valid inputs (float32 ``(n, K)`` probs, int labels; not checked)."""
    n = len(lab)
    p_true = p[np.arange(n), lab].astype(np.float32)
    _, max_other = max_other_class(p, lab)
    entropy = np.empty(n, dtype=np.float32)
    for s in range(0, n, CHUNK):
        entropy[s : s + CHUNK] = entr(p[s : s + CHUNK]).sum(axis=1, dtype=np.float64)
    return {
        "pred": p.argmax(axis=1).astype(np.int32),
        "p_true": p_true,
        "hardness": (np.float32(1.0) - p_true).astype(np.float32),
        "margin": (p_true - max_other).astype(np.float32),
        "entropy": entropy,
        "self_confidence": p_true.copy(),
    }
