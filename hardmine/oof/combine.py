"""Combining ensemble members' out-of-fold probabilities, and temperature calibration (pure numpy).

- :func:`fit_weights`: simplex weights minimising the out-of-fold log-loss of the weighted
  average (or equal weights).
- :func:`fit_temperature` / :func:`cross_fit_temperature`: temperature scaling; the
  cross-fitted version calibrates each fold's rows with a temperature fitted on the other
  folds only, so no row is calibrated by a temperature that saw its label.
- :func:`member_metrics`: accuracy, log-loss and expected calibration error.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_EPS = 1e-12


def log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    p = np.asarray(probs, dtype=np.float64)
    return float(-np.log(np.clip(p[np.arange(len(y)), np.asarray(y, dtype=np.int64)], _EPS, 1.0)).mean())


def member_metrics(probs: np.ndarray, y: np.ndarray, ece_bins: int = 15) -> dict[str, float]:
    """Accuracy, log-loss and ECE (``ece_bins`` equal-width confidence bins) of (n, K) probabilities."""
    from hardmine.stats import metrics

    m = metrics(np.asarray(y, dtype=np.int64), probs, int(np.asarray(probs).shape[1]), ece_bins)
    return {"accuracy": m["accuracy"], "log_loss": log_loss(probs, y), "ece": m["ece"]}


def combine(members: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weighted average of members' probabilities (same shape), rows renormalised."""
    w = np.asarray(weights, dtype=np.float64)
    out = np.zeros(np.asarray(members[0]).shape, dtype=np.float64)
    for m, wi in zip(members, w):
        out += wi * np.asarray(m, dtype=np.float64)
    out /= np.maximum(out.sum(axis=-1, keepdims=True), _EPS)
    return out.astype(np.float32)


def fit_weights(members: list[np.ndarray], y: np.ndarray, method: str = "logloss") -> np.ndarray:
    """Weights on the simplex: ``equal``, or those minimising the log-loss of the average (``logloss``)."""
    m = len(members)
    if m == 0:
        raise ValueError("no ensemble members to combine")
    if method == "equal" or m == 1:
        return np.full(m, 1.0 / m)
    if method != "logloss":
        raise ValueError(f"unknown combination {method!r}: use 'logloss' or 'equal'")
    from scipy.optimize import minimize

    y = np.asarray(y, dtype=np.int64)
    rows = np.arange(len(y))
    p_true = np.stack([np.asarray(p, dtype=np.float64)[rows, y] for p in members], axis=1)  # (n, m)

    def loss(z):
        w = np.exp(z - z.max())
        w /= w.sum()
        mix = np.clip(p_true @ w, _EPS, None)
        # gradient through the softmax parametrisation
        g_w = -(p_true / mix[:, None]).mean(axis=0)
        return float(-np.log(mix).mean()), w * (g_w - (w * g_w).sum())

    res = minimize(loss, np.zeros(m), jac=True, method="L-BFGS-B")
    w = np.exp(res.x - res.x.max())
    return w / w.sum()


def apply_temperature(probs: np.ndarray, t: float) -> np.ndarray:
    """Probabilities with logits ``log p`` divided by ``t`` (``t`` > 1 softens, < 1 sharpens)."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0)) / float(t)
    logp -= logp.max(axis=-1, keepdims=True)
    e = np.exp(logp)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of ``y`` (bounded search in [0.05, 20])."""
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0))
    y = np.asarray(y, dtype=np.int64)
    rows = np.arange(len(y))

    def nll(log_t):
        z = logp / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[rows, y] - np.log(np.exp(z).sum(axis=1))).mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def cross_fit_temperature(probs: np.ndarray, y: np.ndarray, fold: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Calibrate each fold's rows with a temperature fitted on the other folds' rows.

    Returns the calibrated probabilities and ``{"per_fold": [t_k], "all": t}`` where ``all`` (fitted
    on every row) is the temperature for predictions on new data."""
    out = np.empty_like(np.asarray(probs, dtype=np.float32))
    per_fold = []
    for k in np.unique(fold):
        rows = fold == k
        t = fit_temperature(probs[~rows], y[~rows])
        per_fold.append(t)
        out[rows] = apply_temperature(probs[rows], t)
    return out, {"per_fold": per_fold, "all": fit_temperature(probs, y)}
