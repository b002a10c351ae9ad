"""The training settings shared by every run of the OOF models' recipe (no Ray, no torch)."""
from __future__ import annotations

from typing import Any

from hardmine.config import Config


def train_settings(cfg: Config, num_labels: int, *, threads: int, epochs: int | None = None) -> dict[str, Any]:
    """The ``train_fold`` settings of the OOF models (same backbone, head, optimiser).

    One list for every caller: the OOF folds, the evaluate retrains, the sweep trials and the
    benchmark's sequential loop train with exactly these settings."""
    from hardmine.embed import resolve_model_path

    o = cfg.oof
    return {
        "fold": 0,
        "seed": cfg.seed,
        "backbone": o.backbone,
        "num_labels": num_labels,
        "model_path": resolve_model_path(o.model) if o.backbone == "finetune" else None,
        "encoder": o.model if o.backbone == "frozen" else None,
        "head": o.head,
        "head_hidden": o.head_hidden,
        "max_length": o.max_length,
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
