"""Per-row loss machinery of the fold training loop (:func:`hardmine.oof.loop.train_fold`).

The ``train.*`` hard-example settings: per-row weights (``upweight``) and online hard example
mining (:func:`ohem_mask`, :func:`row_coefficients`, :func:`batch_loss`), both sparing exempt
rows (label issues, :func:`row_tensors`), and the FGM adversarial step (:class:`FGM`,
:func:`fgm_backward`).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

# ----------------------------------------------------------------------------- hard examples, adversarial


def ohem_mask(losses: torch.Tensor, keep: float, exempt: torch.Tensor | None = None) -> torch.Tensor:
    """Online hard example mining: True for the ``ceil(keep * c)`` rows with the highest loss among
    the ``c`` rows not ``exempt`` (ties: the earlier row). Exempt rows (known label issues) are never
    picked; with none left to pick from, nothing is."""
    if not 0.0 < float(keep) <= 1.0:
        raise ValueError(f"ohem keep must lie in (0, 1] (train.ohem_keep), got {keep!r}")
    losses = losses.detach().float().reshape(-1)
    cand = torch.ones_like(losses, dtype=torch.bool) if exempt is None else ~exempt.reshape(-1).to(losses.device, torch.bool)
    c = int(cand.sum())
    mask = torch.zeros_like(cand)
    if c == 0:
        return mask
    k = min(c, max(1, math.ceil(float(keep) * c - 1e-9)))
    ranked = torch.where(cand, losses, torch.full_like(losses, -math.inf))
    mask[torch.argsort(ranked, descending=True, stable=True)[:k]] = True
    return mask


def row_coefficients(losses: torch.Tensor, *, weights: torch.Tensor | None = None, ohem_keep: float | None = None,
                     exempt: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row factors ``c`` of a batch's loss ``sum(c * loss) / rows``.

    Plain: 1 (the mean); ``weights`` (upweight, normalised to mean 1 over the training set): the
    weights; ``ohem_keep``: ``c / k`` for the ``k`` rows :func:`ohem_mask` picks among the ``c``
    candidates, 0 for the rest, so the factors still sum to the batch's rows; ``exempt`` rows
    (label issues) keep 1, as in plain training: never emphasised, never dropped."""
    n = losses.numel()
    if ohem_keep is None:
        return torch.ones(n, device=losses.device) if weights is None else weights.to(losses.device, torch.float32).reshape(-1)
    mask = ohem_mask(losses, ohem_keep, exempt)
    ex = torch.zeros(n, dtype=torch.bool, device=losses.device) if exempt is None else exempt.reshape(-1).to(losses.device, torch.bool)
    c, k = int((~ex).sum()), int(mask.sum())
    coef = torch.where(mask, torch.full((n,), c / max(1, k), device=losses.device), torch.zeros(n, device=losses.device))
    return torch.where(ex, torch.ones_like(coef), coef)


def batch_loss(logits: torch.Tensor, y: torch.Tensor, *, weights: torch.Tensor | None = None, ohem_keep: float | None = None,
               exempt: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of a batch under :func:`row_coefficients` (plain: ``nn.CrossEntropyLoss()``'s mean)."""
    if weights is None and ohem_keep is None:
        return nn.functional.cross_entropy(logits, y)
    per_row = nn.functional.cross_entropy(logits, y, reduction="none")
    coef = row_coefficients(per_row, weights=weights, ohem_keep=ohem_keep, exempt=exempt)
    return (coef * per_row).sum() / max(1, per_row.numel())


class FGM:
    """Fast Gradient Method (Miyato et al., 2017) on a transformer's word-embedding matrix.

    ``attack`` moves the matrix by ``epsilon * g / ||g||`` (``g`` its gradient from the batch's
    backward pass; the direction is the same under a GradScaler's scaling), keeping an exact copy;
    ``restore`` puts that copy back bit for bit. No attack when the gradient is missing, zero or
    not finite (an fp16 overflow step, which the GradScaler skips anyway)."""

    def __init__(self, model: nn.Module, epsilon: float):
        emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        if emb is None or not hasattr(emb, "weight"):
            raise ValueError("train.adversarial: fgm needs a model with word embeddings (the finetune backbone)")
        self.weight: torch.Tensor = emb.weight
        self.epsilon = float(epsilon)
        self.backup: torch.Tensor | None = None

    def attack(self) -> bool:
        g = self.weight.grad
        if g is None:
            return False
        norm = float(torch.linalg.vector_norm(g.float()))
        if not math.isfinite(norm) or norm == 0.0:
            return False
        self.backup = self.weight.detach().clone()
        with torch.no_grad():
            self.weight.add_(g.to(self.weight.dtype), alpha=self.epsilon / norm)
        return True

    def restore(self) -> None:
        if self.backup is not None:
            with torch.no_grad():
                self.weight.copy_(self.backup)
            self.backup = None


def fgm_backward(fgm: FGM, compute_loss: Callable[[], torch.Tensor], backward: Callable[[torch.Tensor], None]) -> float | None:
    """The adversarial half of an FGM step, after the batch's normal backward pass: perturb the
    embeddings, back-propagate ``compute_loss()`` there (gradients accumulate), restore the
    embeddings. Returns the adversarial loss (None when no attack was possible)."""
    if not fgm.attack():
        return None
    try:
        adv = compute_loss()
        backward(adv)
        return float(adv.detach())
    finally:
        fgm.restore()


def row_tensors(cfg: dict, data: dict, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(weights normalised to mean 1, or None; exempt flags, or None) of the training rows."""
    from hardmine.oof.settings import normalized_weights

    mode = cfg.get("hard_weighting") or "none"
    w = data.get("train_w")
    if mode == "upweight" and w is None:
        raise ValueError("hard_weighting upweight needs per-row weights (data['train_w']): evaluate's hard_weighted arm "
                         "computes them from scores.parquet; the fold models train before scores exist")
    if w is not None:
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (n,):
            raise ValueError(f"train_w must hold one weight per training row ({n}), got shape {w.shape}")
        w = normalized_weights(w)
    ex = data.get("train_exempt")
    if ex is not None:
        ex = np.asarray(ex, dtype=bool)
        if ex.shape != (n,):
            raise ValueError(f"train_exempt must hold one flag per training row ({n}), got shape {ex.shape}")
    return w, ex
