"""Evaluation of label-issue detection against known-wrong labels (precision / recall / F1)."""
from __future__ import annotations

from typing import Any

import numpy as np


def detection_metrics(is_flagged: Any, is_noisy: Any) -> dict[str, float | int]:
    """Precision / recall / F1 of flagged rows against known-wrong labels (0.0 when undefined)."""
    f = np.asarray(is_flagged)
    t = np.asarray(is_noisy)
    if f.shape != t.shape or f.ndim != 1:
        raise ValueError(f"is_flagged {f.shape} and is_noisy {t.shape} must be 1-D with one entry per row")
    for name, a in (("is_flagged", f), ("is_noisy", t)):
        if a.dtype != bool and not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got values like {np.unique(a)[:5].tolist()}")
    f, t = f.astype(bool), t.astype(bool)
    tp = int((f & t).sum())
    fp = int((f & ~t).sum())
    fn = int((~f & t).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": int(len(f) - tp - fp - fn),
        "n_flagged": tp + fp,
        "n_noisy": tp + fn,
    }
