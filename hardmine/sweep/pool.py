"""The sweep's augmentation pool: one pool that every trial subsamples, from the most permissive selection
at the largest budget."""
from __future__ import annotations

import pyarrow as pa

from hardmine.config import Config
from hardmine.select import select, select_kwargs


def pool_selection(cfg: Config, scores: pa.Table, dataset: pa.Table, labels: list[str]) -> pa.Table:
    """The pool's sources: issue rows kept as sources, the swept threshold at its largest, over every training row
    (the trials leave out the variants of validation rows, the confirmation uses them all)."""
    sw = cfg.sweep
    kw = select_kwargs(cfg, labels)
    kw.update({"issue_action": "keep", "hardness_quantile": None, "p_true_max": None})
    kw[sw.threshold] = max(sw.thresholds)
    selected, _ = select(scores, dataset, **kw)
    return selected


def pool_budget(cfg: Config) -> dict:
    """The augmentation budget at the largest swept aug_ratio (augment.per_sample, when set, as it is)."""
    return cfg.augment.budget(max(cfg.sweep.aug_ratios) if cfg.augment.per_sample is None else None)
