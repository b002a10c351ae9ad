"""The two backbones behind one training loop.

- ``finetune``: any ``AutoModelForSequenceClassification`` (hub name or local path), trained end to end.
- ``frozen``: a linear or MLP head over sentence embeddings computed once.
"""
from __future__ import annotations

import torch
from torch import nn


class Head(nn.Module):
    """Linear or one-hidden-layer MLP classifier over fixed embeddings."""

    def __init__(self, dim: int, num_labels: int, kind: str = "linear", hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        if kind == "linear":
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_labels))
        elif kind == "mlp":
            self.net = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_labels)
            )
        else:
            raise ValueError(f"unknown head {kind!r}: use 'linear' or 'mlp'")
        self.meta = {"dim": dim, "num_labels": num_labels, "kind": kind, "hidden": hidden}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def load_finetune(model_path: str, num_labels: int):
    """(tokenizer, model) for sequence classification with ``num_labels`` outputs."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=num_labels, ignore_mismatched_sizes=True
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


#: compute capability from which bf16 runs natively (Ampere: A100 8.0, A10G/RTX 30xx 8.6; Hopper 9.0)
BF16_MIN_CAPABILITY = (8, 0)


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The training autocast dtype: None (float32) on CPU or with ``mode="no"``.

    ``auto`` picks bf16 only on GPUs of compute capability >= 8.0 (Ampere and later), where it is
    native; older cards (V100 7.0, T4 7.5) get fp16 with a GradScaler - there bf16 is emulated
    and slow, although ``torch.cuda.is_bf16_supported()`` may say yes. ``bf16`` / ``fp16`` are
    taken as asked."""
    device = torch.device(device)
    if device.type != "cuda" or mode == "no":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    major, minor = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if (major, minor) >= BF16_MIN_CAPABILITY else torch.float16


def heldout_probs(logits: torch.Tensor) -> torch.Tensor:
    """Probabilities that feed cleanlab: softmax of float32 logits (see ``_Backbone.predict``)."""
    return torch.softmax(logits.float(), dim=-1)
