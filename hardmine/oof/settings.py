"""The training settings shared by every run of the OOF models' recipe (no Ray, no torch)."""
from __future__ import annotations

from typing import Any

from hardmine.config import Config


def train_settings(cfg: Config, num_labels: int, *, threads: int, epochs: int | None = None,
                   backbone: str | None = None, max_length: int | None = None) -> dict[str, Any]:
    """The ``train_fold`` settings of one OOF member (same backbone, head, optimiser).

    One list for every caller: the OOF folds, the evaluate retrains, the sweep trials and the
    benchmark's sequential loop train with exactly these settings. ``backbone`` defaults to
    ``cfg.retrain_backbone`` (``evaluate.backbone``, else the first trainable member); ``max_length`` is the resolved length
    (``oof.max_length: auto`` is resolved once by the OOF stage and recorded in its summary)."""
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
    }


def oof_max_length(store) -> int | None:
    """The token length the OOF stage resolved (``oof.max_length: auto``), from its summary; None before it ran."""
    summary = store.manifest().get("stages", {}).get("oof", {}).get("summary", {}) or {}
    return summary.get("max_length")
