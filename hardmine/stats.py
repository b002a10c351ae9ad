"""Held-out statistics: point metrics of predicted probabilities, a paired bootstrap over held-out rows,
combined over seeds, and an exact McNemar test.

Pure numpy (no Ray, no pyarrow), in the shape of :mod:`hardmine.scoring`: public functions
validate and hand clean arrays to ``_private`` twins that compute.

Why rows, not seeds: a converged model (logistic regression on frozen embeddings, tf-idf) gives
the same predictions for every seed, so an interval over seeds has zero width and says nothing
about the held-out split's own sampling noise (one row of 600 is 0.17 points). The bootstrap
resamples held-out rows with replacement; **every arm is scored on the same resampled rows**
(paired), and within a resample an arm's metric is the mean over its seeds (seed noise stays
in). The percentiles of the resampled values, or of the resampled differences between two
arms, give the interval. A difference is called real only when its interval excludes zero.

Metrics computed per resample, vectorised (resample counts ``W`` (B, n) times per-row indicator
matrices): accuracy, macro-F1 (classes absent from both truth and predictions of a resample are
left out, as :func:`metrics` and sklearn do) and expected calibration error
from the predicted label's probability. 1000 resamples x 3000 rows x 5 arms x 3 seeds take
about a second on two cores.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from hardmine.checks import first
from hardmine.vocab import METRICS

#: resamples scored at once (bounds memory to ``_BLOCK x rows`` floats)
_BLOCK = 250
#: words for a difference whose interval lies above zero, below zero, or includes it
VERDICTS = ("higher", "lower", "not distinguishable")
#: how :func:`mcnemar` pools seeds into one correctness per row
MCNEMAR_POOLING = (
    "per row, correct when correct in more than half of the arm's seeds (an even split is decided by its "
    "lowest seed); exact two-sided binomial test on the rows where exactly one of the two arms is correct"
)


# ============================================================================ validation


def _int_array(x: Any, what: str, num_labels: int, ndim: int) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != ndim:
        raise ValueError(f"{what} must be a {ndim}-D array of class indices, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{what} must hold integer class indices, got {a.dtype}")
    a = a.astype(np.int64)
    bad = np.flatnonzero(((a < 0) | (a >= num_labels)).reshape(-1))
    if bad.size:
        raise ValueError(f"{what} has class indices outside [0, {num_labels}) (first at flat position {int(bad[0])})")
    return a


def _check_common(num_labels: Any, resamples: Any, confidence: Any, ece_bins: Any) -> None:
    for name, v, low in (("num_labels", num_labels, 1), ("resamples", resamples, 1), ("ece_bins", ece_bins, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number in (0, 1), e.g. 0.95, got {confidence!r}")


def _check_runs(
    y: Any, preds: Mapping[str, Any], confidences: Mapping[str, Any], num_labels: int
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    y = _int_array(y, "y", num_labels, 1)
    n = y.shape[0]
    if n == 0:
        raise ValueError("no held-out rows: y is empty")
    if not preds:
        raise ValueError("preds is empty: pass {arm: (seeds, rows) predicted labels}")
    if set(preds) != set(confidences):
        raise ValueError(f"preds and confidences must name the same arms, got {sorted(preds)} and {sorted(confidences)}")
    P, C = {}, {}
    for name in preds:
        p = _int_array(preds[name], f"preds[{name!r}]", num_labels, 2)
        c = np.asarray(confidences[name], dtype=np.float64)
        if p.shape[0] < 1 or p.shape[1] != n:
            raise ValueError(f"preds[{name!r}] must have shape (seeds >= 1, {n}) (one row per seed, one column per held-out row), got {p.shape}")
        if c.shape != p.shape:
            raise ValueError(f"confidences[{name!r}] must have the shape of preds[{name!r}] {p.shape}, got {c.shape}")
        if not np.isfinite(c).all() or (c < 0).any() or (c > 1).any():
            raise ValueError(f"confidences[{name!r}] must be probabilities in [0, 1] (the predicted class's probability)")
        P[name], C[name] = p, c
    return y, P, C


# ============================================================================ point metrics


def metrics(y_true, probs, num_labels: int, ece_bins: int = 15) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class F1 and expected calibration error of predicted probabilities.

    Per-class F1 is NaN for a class absent from both truth and predictions; macro-F1 averages the
    others (sklearn's default label set). ECE uses ``ece_bins`` equal-width confidence bins.
    """
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)) or num_labels < 1:
        raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}")
    if isinstance(ece_bins, bool) or not isinstance(ece_bins, (int, np.integer)) or ece_bins < 1:
        raise ValueError(f"ece_bins must be a positive integer, got {ece_bins!r}")
    if p.ndim != 2 or p.shape[1] != num_labels:
        raise ValueError(f"probs must have shape (n, {num_labels}), got {p.shape}")
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise ValueError(f"y_true must have one label per row of probs ({p.shape[0]}), got shape {y.shape}")
    if y.shape[0] == 0:
        raise ValueError("no rows to evaluate: the held-out split is empty")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y_true must hold integer labels, got {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= num_labels))
    if bad.size:
        raise ValueError(f"y_true has labels outside [0, {num_labels}) in rows {first(bad.tolist())}")
    bad = np.flatnonzero(~np.isfinite(p).all(axis=1))
    if bad.size:
        raise ValueError(f"probs is NaN/inf in rows {first(bad.tolist())}")
    y = y.astype(np.int64)
    pred = p.argmax(axis=1)
    correct = pred == y
    k = num_labels
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)  # 2tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
    conf = p.max(axis=1)
    bins = np.clip(np.ceil(conf * ece_bins).astype(np.int64) - 1, 0, ece_bins - 1)
    acc_b = np.bincount(bins, weights=correct.astype(np.float64), minlength=ece_bins)
    conf_b = np.bincount(bins, weights=conf, minlength=ece_bins)
    ece = float(np.abs(acc_b - conf_b).sum() / len(y))
    return {
        "accuracy": float(correct.mean()),
        "macro_f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else 0.0,
        "per_class_f1": [float(v) for v in f1],
        "ece": ece,
        "n": int(len(y)),
    }


# ============================================================================ bootstrap


def bootstrap_metrics(
    y: Any,
    preds: Mapping[str, Any],
    confidences: Mapping[str, Any],
    *,
    num_labels: int,
    resamples: int = 1000,
    seed: int = 0,
    ece_bins: int = 15,
) -> dict[str, Any]:
    """Accuracy, macro-F1 and ECE of several arms on the full held-out split and on paired resamples.

    ``y``: (n,) held-out labels. ``preds[arm]``: (seeds, n) predicted labels, one row per seed;
    ``confidences[arm]``: the same shape, each prediction's probability. Every arm is scored on
    the same ``resamples`` resamples of the n rows (drawn with ``seed``), and within a resample an
    arm's metric is the mean over its seeds.

    Returns ``point`` ({arm: {metric: mean over seeds on all rows}}), ``per_seed`` ({arm: {metric:
    (seeds,) array}}) and ``resampled`` ({arm: {metric: (resamples,) array}}).
    """
    _check_common(num_labels, resamples, 0.5, ece_bins)
    y, P, C = _check_runs(y, preds, confidences, num_labels)
    return _bootstrap_metrics(y, P, C, int(num_labels), int(resamples), int(seed), int(ece_bins))


def _features(y: np.ndarray, pred: np.ndarray, conf: np.ndarray, k: int, bins: int) -> np.ndarray:
    """Per-row indicators whose weighted sums give every metric: (n, 1 + 2k + 3 bins) float32.

    Columns: correct | one-hot(y) * correct (true positives) | one-hot(pred) | one-hot(bin) |
    one-hot(bin) * correct | one-hot(bin) * confidence.
    """
    n = y.shape[0]
    rows = np.arange(n)
    correct = (pred == y).astype(np.float32)
    f = np.zeros((n, 1 + 2 * k + 3 * bins), dtype=np.float32)
    f[:, 0] = correct
    f[rows, 1 + y] = correct
    f[rows, 1 + k + pred] = 1.0
    b = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    off = 1 + 2 * k
    f[rows, off + b] = 1.0
    f[rows, off + bins + b] = correct
    f[rows, off + 2 * bins + b] = conf.astype(np.float32)
    return f


def _scores(sums: np.ndarray, support: np.ndarray, n: int, k: int, bins: int) -> dict[str, np.ndarray]:
    """Metrics from the weighted sums of :func:`_features` ((B, cols)) and class supports ((B, k))."""
    sums = sums.astype(np.float64)
    tp, pc = sums[:, 1 : 1 + k], sums[:, 1 + k : 1 + 2 * k]
    denom = support + pc  # 2tp + fp + fn
    present = denom > 0
    f1 = np.where(present, 2 * tp / np.where(present, denom, 1.0), 0.0)
    macro = f1.sum(1) / np.maximum(present.sum(1), 1)
    off = 1 + 2 * k
    acc_b, conf_b = sums[:, off + bins : off + 2 * bins], sums[:, off + 2 * bins : off + 3 * bins]
    return {"accuracy": sums[:, 0] / n, "macro_f1": macro, "ece": np.abs(acc_b - conf_b).sum(1) / n}


def _bootstrap_metrics(
    y: np.ndarray, P: dict[str, np.ndarray], C: dict[str, np.ndarray], k: int, B: int, seed: int, bins: int
) -> dict[str, Any]:
    n = y.shape[0]
    onehot_y = np.zeros((n, k), dtype=np.float32)
    onehot_y[np.arange(n), y] = 1.0
    feats = {a: [_features(y, P[a][s], C[a][s], k, bins) for s in range(P[a].shape[0])] for a in P}
    # the full split: every row once
    ones = np.ones((1, n), dtype=np.float32)
    support_all = (ones @ onehot_y).astype(np.float64)
    per_seed = {a: {m: np.empty(len(fs)) for m in METRICS} for a, fs in feats.items()}
    for a, fs in feats.items():
        for s, f in enumerate(fs):
            sc = _scores(ones @ f, support_all, n, k, bins)
            for m in METRICS:
                per_seed[a][m][s] = sc[m][0]
    resampled = {a: {m: np.empty(B) for m in METRICS} for a in feats}
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xB007])
    for start in range(0, B, _BLOCK):
        size = min(_BLOCK, B - start)
        idx = rng.integers(0, n, size=(size, n))
        W = np.bincount((np.arange(size)[:, None] * n + idx).ravel(), minlength=size * n).reshape(size, n).astype(np.float32)
        support = (W @ onehot_y).astype(np.float64)
        for a, fs in feats.items():
            acc = {m: np.zeros(size) for m in METRICS}
            for f in fs:
                sc = _scores(W @ f, support, n, k, bins)
                for m in METRICS:
                    acc[m] += sc[m]
            for m in METRICS:
                resampled[a][m][start : start + size] = acc[m] / len(fs)
    point = {a: {m: float(per_seed[a][m].mean()) for m in METRICS} for a in feats}
    return {"point": point, "per_seed": per_seed, "resampled": resampled, "resamples": B, "rows": n}


def percentile_interval(resampled: Any, point: float, confidence: float = 0.95) -> dict[str, float]:
    """``{mean, lo, hi}``: ``point`` and the central ``confidence`` percentile interval of ``resampled``."""
    r = np.asarray(resampled, dtype=np.float64)
    if r.ndim != 1 or r.size == 0 or not np.isfinite(r).all():
        raise ValueError("resampled must be a non-empty 1-D array of finite values")
    _check_common(1, 1, confidence, 1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(r, [alpha, 1 - alpha])
    return {"mean": float(point), "lo": float(lo), "hi": float(hi)}


def verdict(lo: float, hi: float) -> str:
    """``higher`` / ``lower`` when the interval excludes zero, else ``not distinguishable``."""
    return "higher" if lo > 0 else "lower" if hi < 0 else "not distinguishable"


def paired_difference(
    resampled_a: Any, resampled_b: Any, point_a: float, point_b: float, confidence: float = 0.95
) -> dict[str, Any]:
    """Interval of ``a - b`` from paired resamples (the same resampled rows for both).

    ``{mean, lo, hi, excludes_zero, verdict}``: an interval of zero width (every resample agrees,
    e.g. identical predictions) includes zero and is ``not distinguishable``.
    """
    a, b = np.asarray(resampled_a, dtype=np.float64), np.asarray(resampled_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired resamples must have the same shape, got {a.shape} and {b.shape}")
    iv = percentile_interval(a - b, float(point_a) - float(point_b), confidence)
    v = verdict(iv["lo"], iv["hi"])
    return {**iv, "excludes_zero": v != "not distinguishable", "verdict": v}


# ============================================================================ McNemar


def majority_correct(correct: Any) -> np.ndarray:
    """(seeds, n) per-seed correctness -> (n,): correct in more than half of the seeds; a tie goes to seed 0."""
    c = np.asarray(correct, dtype=bool)
    if c.ndim != 2 or c.shape[0] < 1:
        raise ValueError(f"correct must have shape (seeds >= 1, rows), got {c.shape}")
    votes = c.sum(0) * 2
    s = c.shape[0]
    return np.where(votes == s, c[0], votes > s)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts (binomial test, p = 1/2)."""
    for name, v in (("only_a", only_a), ("only_b", only_b)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a count >= 0, got {v!r}")
    n = int(only_a) + int(only_b)
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(int(only_a), n, 0.5, alternative="two-sided").pvalue)


def mcnemar(correct_a: Any, correct_b: Any) -> dict[str, Any]:
    """Exact McNemar test of two classifiers on the same rows.

    ``correct_a``, ``correct_b``: (n,) booleans, or (seeds, n) pooled by :func:`majority_correct`.
    Returns ``only_arm_correct`` (a right, b wrong), ``only_reference_correct`` (b right, a wrong),
    ``rows`` and ``p_value``.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    a = majority_correct(a) if a.ndim == 2 else a
    b = majority_correct(b) if b.ndim == 2 else b
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must cover the same rows, got {a.shape} and {b.shape}")
    n01, n10 = int((a & ~b).sum()), int((~a & b).sum())
    return {"only_arm_correct": n01, "only_reference_correct": n10, "rows": int(a.size), "p_value": mcnemar_exact(n01, n10)}


def interval(values: Any, confidence: float = 0.95) -> dict[str, Any]:
    """Mean and t-based ``confidence`` interval over seeds; with one value lo = hi = mean (noted)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError("interval needs at least one value")
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise ValueError(f"interval got NaN/inf at positions {bad[:5].tolist()}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    mean = float(v.mean())
    if v.size == 1:
        return {"mean": mean, "lo": mean, "hi": mean, "n": 1, "sd": 0.0, "note": "one seed: no interval (run more seeds)"}
    if (v == v[0]).all():  # exactly zero spread (a deterministic retrain), free of rounding in the mean
        return {"mean": float(v[0]), "lo": float(v[0]), "hi": float(v[0]), "n": int(v.size), "sd": 0.0}
    from scipy import stats

    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * sd / math.sqrt(v.size))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": int(v.size), "sd": sd}
