"""Data-map regions (Swayamdipta et al., 2020, "Dataset Cartography"): easy / ambiguous / hard rows
from the mean and std of ``p_true`` over the OOF epochs (``dyn_confidence`` / ``dyn_variability``)."""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from hardmine.checks import check_fraction, first
from hardmine.select.order import top_quantile_mask
from hardmine.checks import check_int
from hardmine.vocab import REGIONS

#: share of rows in the ambiguous region (highest ``dyn_variability``) and in the hard-to-learn
#: candidates (lowest ``dyn_confidence``): the paper's terciles ("top 33%")
DATA_MAP_QUANTILE = 1.0 / 3.0


def data_map_regions(
    confidence, variability, ids: Sequence | None = None, *, quantile: float = DATA_MAP_QUANTILE, seed: int = 0
) -> np.ndarray:
    """The data-map region of every row (object array of ``"easy"`` / ``"ambiguous"`` / ``"hard"``).

    ``confidence`` is the mean p_true over epochs and ``variability`` its std (the
    ``dyn_confidence`` / ``dyn_variability`` scores). As in Swayamdipta et al. (2020), regions are
    quantiles over all rows: *ambiguous* = the ``ceil(quantile * n)`` rows of highest variability
    (rows with variability 0 never: they did not move), *hard* (hard-to-learn) = of the other rows,
    those among the ``ceil(quantile * n)`` of lowest confidence, *easy* (easy-to-learn) = the rest.
    Ties are broken by a ``seed``-ed hash of the id, as everywhere in selection.
    """
    check_fraction("quantile", quantile, low_open=True)
    check_int("seed", seed, 0)
    conf = np.asarray(confidence, dtype=np.float64)
    var = np.asarray(variability, dtype=np.float64)
    if conf.ndim != 1 or var.shape != conf.shape:
        raise ValueError(f"confidence {conf.shape} and variability {var.shape} must be 1-D, one value per row")
    for name, a in (("confidence", conf), ("variability", var)):
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise ValueError(f"{name} is NaN/inf in rows {first(bad.tolist())}")
    if (var < 0).any():
        raise ValueError(f"variability must be >= 0 (a std); rows {first(np.flatnonzero(var < 0).tolist())} are negative")
    if ids is None:
        ids = [f"{i:012d}" for i in range(conf.shape[0])]
    elif len(ids) != conf.shape[0]:
        raise ValueError(f"ids has {len(ids)} entries for {conf.shape[0]} rows")
    ids = [str(i) for i in ids]
    ambiguous = top_quantile_mask(var, quantile, ids, seed) & (var > 0)
    hard = top_quantile_mask(-conf, quantile, ids, seed) & ~ambiguous
    return np.where(ambiguous, "ambiguous", np.where(hard, "hard", "easy")).astype(object)


def data_map_summary(region: np.ndarray, confidence: np.ndarray, variability: np.ndarray, label: np.ndarray) -> dict:
    """The select summary's ``data_map``: the region boundaries and the region counts, overall and per class."""
    amb, hard = region == "ambiguous", region == "hard"
    per_class = {}
    for c in np.unique(label):
        r = Counter(region[label == c].tolist())
        per_class[str(int(c))] = {k: int(r.get(k, 0)) for k in REGIONS}
    r = Counter(region.tolist())
    return {
        "quantile": DATA_MAP_QUANTILE,
        "rule": "ambiguous: top third of rows by dyn_variability (> 0); hard: of the rest, among the bottom "
                "third by dyn_confidence; easy: the rest",
        "ambiguous_min_variability": float(variability[amb].min()) if amb.any() else None,
        "hard_max_confidence": float(confidence[hard].max()) if hard.any() else None,
        "max_variability": float(variability.max()) if variability.size else None,
        "regions": {k: int(r.get(k, 0)) for k in REGIONS},
        "per_class": per_class,
    }
