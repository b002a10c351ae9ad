"""Training dynamics: per-row statistics of the given label's probability over the OOF epochs."""
from __future__ import annotations

from typing import Any

import numpy as np

from hardmine.probs import validate_epoch_probs, validate_labels
from hardmine.scoring.samples import CHUNK


def training_dynamics(epoch_probs: Any, labels: Any) -> dict[str, np.ndarray]:
    """Training-dynamics statistics from per-epoch probabilities of shape ``(n, E, K)``.

    ``dyn_confidence`` mean p_true over epochs, ``dyn_variability`` its std (ddof 0),
    ``dyn_correctness`` fraction of epochs with argmax == label, ``dyn_forgetting`` number of
    correct -> incorrect transitions between consecutive epochs, ``dyn_aum`` mean margin
    (p_true - largest other probability; AUM-style). Works for E == 1.
    """
    ep, _ = validate_epoch_probs(epoch_probs, labels)
    lab = validate_labels(labels, ep.shape[0], ep.shape[2])
    return training_dynamics_unchecked(ep, lab)


def training_dynamics_unchecked(ep: np.ndarray, lab: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`training_dynamics` on valid inputs (float32 ``(n, E, K)``, int labels; not checked)."""
    n, e, _ = ep.shape
    out = {
        "dyn_confidence": np.empty(n, np.float32),
        "dyn_variability": np.empty(n, np.float32),
        "dyn_correctness": np.empty(n, np.float32),
        "dyn_forgetting": np.empty(n, np.int32),
        "dyn_aum": np.empty(n, np.float32),
    }
    chunk = max(1, CHUNK // e)
    for s in range(0, n, chunk):
        blk = np.array(ep[s : s + chunk], dtype=np.float32, copy=True)
        lb = lab[s : s + chunk]
        pt = np.take_along_axis(blk, lb[:, None, None], axis=2)[:, :, 0]  # (b, E)
        correct = blk.argmax(axis=2) == lb[:, None]
        np.put_along_axis(blk, lb[:, None, None], -np.inf, axis=2)
        margin = pt - blk.max(axis=2)
        sl = slice(s, s + chunk)
        out["dyn_confidence"][sl] = pt.mean(axis=1)
        out["dyn_variability"][sl] = pt.std(axis=1)
        out["dyn_correctness"][sl] = correct.mean(axis=1)
        out["dyn_forgetting"][sl] = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1)
        out["dyn_aum"][sl] = margin.mean(axis=1)
    return out
