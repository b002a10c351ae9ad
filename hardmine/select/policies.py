"""The selection policies (:data:`hardmine.vocab.POLICIES`): which rows are hard.

``hardness``: the top ``hardness_quantile`` of rows by ``1 - p_true`` and/or ``p_true <= p_true_max``.
``ambiguous``: the data map's ambiguous region, the top ``ambiguous_quantile`` of rows by
``dyn_variability`` (the std of ``p_true`` over the OOF epochs; rows that never moved excluded).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from hardmine.checks import float_column
from hardmine.select.inputs import FIX
from hardmine.select.order import top_quantile_mask


@dataclass(frozen=True)
class HardSet:
    """A policy's hard set over all rows (label issues included)."""

    #: rows in the hard set
    hard: np.ndarray
    #: rows any later choice (the class budget) may take: the policy's hard limits (p_true_max, variability > 0)
    allowed: np.ndarray
    #: larger = chosen first (hardness, or variability under ``ambiguous``)
    order_by: np.ndarray
    #: the rule in words, e.g. ``hardness_quantile=0.2&p_true<=0.5``
    rule: str
    #: lowest hardness in the quantile (policy ``hardness`` with a quantile), else None
    hardness_threshold: float | None
    #: lowest variability in the hard set (policy ``ambiguous``), else None
    variability_threshold: float | None


def refuse_without_dynamics(dyn: tuple[np.ndarray, np.ndarray] | None) -> None:
    """The ambiguous policy needs variability across >= 2 epochs; say why there is none."""
    if dyn is None:
        raise ValueError(
            "select policy 'ambiguous' needs training dynamics, but the scores have no dyn_variability "
            "(the OOF stage recorded no per-epoch probabilities, e.g. an external backbone): "
            "use select.policy: hardness"
        )
    if dyn[1].size and not (dyn[1] > 0).any():
        raise ValueError(
            "select policy 'ambiguous' needs p_true to vary across OOF epochs, but dyn_variability is 0 "
            "in every row (one epoch: oof.epochs=1, or snapshots that never moved); set oof.epochs >= 2 (for the tfidf and logreg heads the "
            "epochs are snapshots along the solver's path) or use select.policy: hardness"
        )


def hardness_policy(
    scores: pa.Table, hardness: np.ndarray, ids: np.ndarray, hardness_quantile: float | None,
    p_true_max: float | None, seed: int,
) -> HardSet:
    """The top ``hardness_quantile`` of all rows by hardness and/or ``p_true <= p_true_max``."""
    n = hardness.shape[0]
    hard = np.ones(n, dtype=bool)
    allowed = np.ones(n, dtype=bool)
    parts = []
    threshold = None
    if hardness_quantile is not None:
        q_mask = top_quantile_mask(hardness, hardness_quantile, ids, seed)
        hard &= q_mask
        parts.append(f"hardness_quantile={hardness_quantile:g}")
        threshold = float(hardness[q_mask].min()) if q_mask.any() else None
    if p_true_max is not None:
        p_true = float_column(scores, "p_true", "scores", FIX)
        hard &= p_true <= p_true_max
        allowed &= p_true <= p_true_max
        parts.append(f"p_true<={p_true_max:g}")
    return HardSet(hard, allowed, hardness, "&".join(parts), threshold, None)


def ambiguous_policy(variability: np.ndarray, ids: np.ndarray, quantile: float, seed: int) -> HardSet:
    """The top ``quantile`` of all rows by variability, rows of variability 0 excluded."""
    moved = variability > 0
    hard = top_quantile_mask(variability, quantile, ids, seed) & moved
    threshold = float(variability[hard].min()) if hard.any() else None
    return HardSet(hard, moved, variability, f"ambiguous_quantile={quantile:g}", None, threshold)
