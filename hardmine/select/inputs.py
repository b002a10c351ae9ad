"""What selection reads from the scores table (see :data:`hardmine.schema.SCORES_CORE`) and the dataset:
ids, texts, the model's top probability, training dynamics and the score stage's review signals."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.checks import column, first, float_column

#: the fix named when the scores table lacks a column or holds a bad value
FIX = "pass the table written by the score stage (hardmine.scoring)"
#: columns of the scores table that may carry the model's top probability (first found wins).
MAX_PROB_COLUMNS = ("max_prob", "pred_prob", "pred_confidence", "probs")
#: scores columns that send a row to review with its own reason (rule ``<reason>->review``), in order
SIGNAL_REASONS = {"conflicting_duplicate": "is_conflicting_duplicate", "outlier": "is_outlier"}


def score_ids(scores: pa.Table) -> np.ndarray:
    """The ``id`` column as a numpy array of str; raises on nulls or duplicates."""
    ids = column(scores, "id", "scores", "pass the table written by the score stage")
    ids = np.asarray(ids.cast(pa.string()).to_pylist(), dtype=object)
    uniq, counts = np.unique(ids.astype(str), return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"scores has duplicate ids: {first(uniq[counts > 1].tolist())}; ids must be unique")
    return ids


def text_for_ids(ids: np.ndarray, texts: pa.Table) -> np.ndarray:
    """The ``text`` of every id (object array aligned with ``ids``); raises on missing ids."""
    if not isinstance(texts, pa.Table):
        raise ValueError(f"texts must be a pyarrow Table with columns id, text (got {type(texts).__name__})")
    t_ids = column(texts, "id", "texts", "pass the dataset table (id, text, label, label_name)")
    t_txt = column(texts, "text", "texts", "pass the dataset table (id, text, label, label_name)")
    t_ids = t_ids.cast(pa.string()).to_pylist()
    lookup = dict(zip(t_ids, t_txt.to_pylist()))
    if len(lookup) != len(t_ids):
        dup = [k for k, c in Counter(t_ids).items() if c > 1]
        raise ValueError(f"texts has duplicate ids: {first(dup)}; ids must be unique")
    missing = [i for i in ids if i not in lookup]
    if missing:
        raise ValueError(
            f"{len(missing)} scored ids have no text: {first(missing)}; pass the dataset the scores came from"
        )
    return np.asarray([lookup[i] for i in ids], dtype=object)


def max_prob(scores: pa.Table) -> np.ndarray:
    """The model's top probability per row.

    From a ``max_prob``/``pred_prob``/``pred_confidence`` column or a ``probs`` list column when
    present, else from hardmine.scoring's ``p_true`` and ``margin`` (p_true minus the largest
    other-class probability): ``max_prob = p_true + max(0, -margin)``.
    """
    for name in MAX_PROB_COLUMNS:
        if name not in scores.column_names:
            continue
        col = column(scores, name, "scores", "")
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
            lens = pc.list_value_length(col).to_numpy(zero_copy_only=False)
            if len(lens) and (lens.min() < 1 or lens.min() != lens.max()):
                raise ValueError("scores column 'probs' must hold K probabilities per row (same K everywhere)")
            flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float64)
            return flat.reshape(len(lens), -1).max(axis=1) if len(lens) else np.zeros(0)
        return float_column(scores, name, "scores", "")
    if {"p_true", "margin"} <= set(scores.column_names):
        p_true = float_column(scores, "p_true", "scores", "")
        margin = float_column(scores, "margin", "scores", "")
        return p_true + np.maximum(0.0, -margin)
    raise ValueError(
        "max_confidence needs the model's top probability: scores must have p_true and margin "
        f"(as hardmine.scoring writes them) or one of the columns {MAX_PROB_COLUMNS}; "
        "or leave max_confidence=None"
    )


def dynamics(scores: pa.Table) -> tuple[np.ndarray, np.ndarray] | None:
    """``(dyn_confidence, dyn_variability)`` of the scores table as float64, or None when the
    scores carry no training dynamics (columns absent, or null in every row: no ``epoch_probs``)."""
    names = ("dyn_confidence", "dyn_variability")
    if not set(names) <= set(scores.column_names):
        return None
    if all(scores.column(c).null_count == scores.num_rows for c in names) and scores.num_rows:
        return None
    fix = "recompute the scores (hardmine.scoring.score_table with epoch_probs)"
    return tuple(float_column(scores, c, "scores", fix) for c in names)  # type: ignore[return-value]


def signal_flags(scores: pa.Table) -> dict[str, np.ndarray]:
    """reason -> bool mask of the :data:`SIGNAL_REASONS` columns present (null = not flagged)."""
    out = {}
    for reason, col in SIGNAL_REASONS.items():
        if col in scores.column_names:
            c = scores.column(col)
            if not pa.types.is_boolean(c.type) and not pa.types.is_null(c.type):
                raise ValueError(f"scores column {col!r} must be bool, got {c.type}: pass the table written by the score stage")
            out[reason] = pc.fill_null(c.cast(pa.bool_()), False).to_numpy(zero_copy_only=False).astype(bool)
    return out
