"""The training settings shared by every run of the OOF models' recipe (no Ray, no torch).

Also the pure part of hard-example emphasis (``train.hard_weighting``): the per-row weights
from the score stage's hardness (:func:`hardness_weights`), their normalisation, and the
repeat counts of ``oversample`` (:func:`oversample_counts`). The torch part (OHEM masks, FGM)
is in :mod:`hardmine.oof.loop`.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from hardmine.config import Config

#: the ``train_fold`` keys that carry ``Config.train`` (see :func:`fold_training`)
TRAIN_KEYS = ("hard_weighting", "hard_weight_cap", "ohem_keep", "adversarial", "fgm_epsilon")


def is_linear_backbone(backbone: str, head: str | None) -> bool:
    """Fitted by scikit-learn to convergence (no batches, no embeddings): tfidf, and frozen with the logreg head."""
    return backbone == "tfidf" or (backbone == "frozen" and head == "logreg")


def fold_training(cfg: Config, backbone: str) -> dict[str, Any]:
    """The ``train.*`` settings a model of ``backbone`` trains with outside evaluate's arms: the fold
    models and the sweep trials.

    Only what needs no scores applies there: ``ohem`` (torch-trained models; the config refuses it
    with a linear model) and ``fgm`` (finetune only: the other backbones have no word embeddings and
    train as usual). ``upweight`` / ``oversample`` need the score stage's hardness, which comes after
    the fold models: they are ``none`` here (evaluate's ``hard_weighted`` arm uses them). Unused
    knobs are left out, so changing them changes no fingerprint of these models."""
    t = cfg.train
    out: dict[str, Any] = {"hard_weighting": "none", "adversarial": "none"}
    if t.hard_weighting == "ohem" and not is_linear_backbone(backbone, cfg.oof.head):
        out.update(hard_weighting="ohem", ohem_keep=t.ohem_keep)
    if t.adversarial == "fgm" and backbone == "finetune":
        out.update(adversarial="fgm", fgm_epsilon=t.fgm_epsilon)
    return out


def fold_training_key(cfg: Config, backbone: str) -> str:
    """:func:`fold_training` as a stable string for fingerprints ("" when nothing applies, so runs
    without ``train.*`` keep their fingerprints)."""
    ft = fold_training(cfg, backbone)
    return "" if ft == {"hard_weighting": "none", "adversarial": "none"} else json.dumps(ft, sort_keys=True)


def oof_training_key(cfg: Config) -> str:
    """:func:`fold_training_key` of every trainable OOF member, for the oof stage's fingerprint."""
    keys = {b: fold_training_key(cfg, b) for b in cfg.oof.trainable}
    return json.dumps({b: k for b, k in keys.items() if k}, sort_keys=True) if any(keys.values()) else ""


def hardness_weights(hardness, is_issue=None, cap: float = 3.0) -> np.ndarray:
    """Per-row loss weights ``1 + (cap - 1) * hardness`` (hardness clipped to [0, 1]); label issues get 1.

    ``hardness`` is the score stage's ``1 - p_true``; ``is_issue`` its ``is_label_issue`` (None: no
    issues known). A mislabeled row is hard because its label is wrong: weighting it up would teach
    the wrong label harder, so it keeps the weight of an easy row. Not normalised (see
    :func:`normalized_weights`)."""
    h = np.asarray(hardness, dtype=np.float64)
    if h.ndim != 1:
        raise ValueError(f"hardness must be one value per row, got shape {h.shape}")
    if not np.isfinite(h).all():
        bad = np.flatnonzero(~np.isfinite(h))[:5].tolist()
        raise ValueError(f"hardness is NaN/inf in rows {bad}: pass scores.parquet's hardness column")
    if isinstance(cap, bool) or not np.isfinite(cap) or cap < 1:
        raise ValueError(f"the weight cap must be a number >= 1 (train.hard_weight_cap), got {cap!r}")
    w = 1.0 + (float(cap) - 1.0) * np.clip(h, 0.0, 1.0)
    if is_issue is not None:
        issue = np.asarray(is_issue, dtype=bool)
        if issue.shape != h.shape:
            raise ValueError(f"is_issue must be one flag per row ({h.size}), got shape {issue.shape}")
        w = np.where(issue, 1.0, w)
    return w


def normalized_weights(w) -> np.ndarray:
    """Weights scaled to mean 1: the loss keeps its scale (gradient clipping, learning rate, the
    regularisation strength of scikit-learn's C), only the rows' relative weights change."""
    w = np.asarray(w, dtype=np.float64)
    if w.size == 0:
        return w.astype(np.float32)
    if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError("sample weights must be finite, >= 0, and not all 0")
    return (w / w.mean()).astype(np.float32)


def oversample_counts(weights, seed: int = 0) -> np.ndarray:
    """How many times each row appears under ``oversample``: ``floor(w)`` plus one more with
    probability ``w - floor(w)`` (seeded), so a row appears ``w`` times in expectation and a weight
    of 1 (easy rows, label issues) means exactly once."""
    w = np.asarray(weights, dtype=np.float64)
    if (w < 1).any() or not np.isfinite(w).all():
        raise ValueError("oversample weights must be finite and >= 1 (every row appears at least once)")
    base = np.floor(w)
    extra = np.random.default_rng([int(seed) & 0xFFFFFFFF, 3]).random(w.size) < (w - base)
    return (base + extra).astype(np.int64)


def train_settings(cfg: Config, num_labels: int, *, threads: int, epochs: int | None = None,
                   backbone: str | None = None, max_length: int | None = None) -> dict[str, Any]:
    """The ``train_fold`` settings of one OOF member (same backbone, head, optimiser).

    One list for every caller: the OOF folds, the evaluate retrains, the sweep trials and the
    benchmark's sequential loop train with exactly these settings. ``backbone`` defaults to
    ``cfg.retrain_backbone`` (``evaluate.backbone``, else the first trainable member); ``max_length`` is the resolved length
    (``oof.max_length: auto`` is resolved once by the OOF stage and recorded in its summary).

    The ``train.*`` keys (:data:`TRAIN_KEYS`) hold the fold models' share of ``Config.train``
    (:func:`fold_training`: ohem, fgm); evaluate's arms override them per arm
    (:func:`hardmine.evaluate.arm_train_settings`)."""
    from hardmine.embed import resolve_model_path
    from hardmine.oof.linear import tfidf_settings

    o = cfg.oof
    backbone = backbone or cfg.retrain_backbone
    if max_length is None:
        max_length = o.max_length if isinstance(o.max_length, int) else 128
    return {
        "fold": 0,
        "seed": cfg.seed,
        "backbone": backbone,
        "num_labels": num_labels,
        "model_path": resolve_model_path(o.model) if backbone == "finetune" else None,
        "encoder": o.model if backbone == "frozen" else None,
        "head": o.head,
        "head_hidden": o.head_hidden,
        "head_C": o.head_C,
        "head_max_iter": o.head_max_iter,
        "tfidf": tfidf_settings(cfg),
        "max_length": int(max_length),
        "batch_size": o.batch_size,
        "head_batch_size": o.head_batch_size,
        "lr": o.lr,
        "head_lr": o.head_lr,
        "epochs": epochs or o.epochs,
        "warmup_ratio": o.warmup_ratio,
        "weight_decay": o.weight_decay,
        "mixed_precision": o.mixed_precision,
        "threads": max(1, int(threads)),
        "elastic_threads": o.elastic_threads,
        "fault": None,
        "fault_marker": None,
        # train.*: the fold models' and sweep trials' share (evaluate's arms override it per arm)
        "hard_weighting": "none",
        "hard_weight_cap": cfg.train.hard_weight_cap,
        "ohem_keep": cfg.train.ohem_keep,
        "adversarial": "none",
        "fgm_epsilon": cfg.train.fgm_epsilon,
        **fold_training(cfg, backbone),
    }


def oof_max_length(store) -> int | None:
    """The token length the OOF stage resolved (``oof.max_length: auto``), from its summary; None before it ran."""
    summary = store.manifest().get("stages", {}).get("oof", {}).get("summary", {}) or {}
    return summary.get("max_length")
