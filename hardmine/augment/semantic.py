"""Model-based filters: semantic similarity to the source and label consistency.

``similarity``: cosine of the variant's and its source's embeddings (:func:`similarity_scores`,
an encoder); ``consistency``: a predictor's probability of the source label
(:func:`label_consistency`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

# --------------------------------------------------------------------------- semantic similarity


def resolve_similarity_model(model: str, language: str | None) -> str:
    """``auto`` -> packaged MiniLM for English, packaged multilingual USE otherwise."""
    if model != "auto":
        return model
    if language is None or str(language).lower() in ("en", "eng", "english"):
        return "packaged:minilm"
    return "packaged:use-multilingual"


def _encode_sorted(encoder, texts: list[str], batch_size: int) -> np.ndarray:
    """Encode with texts sorted by length (little padding), returned in input order."""
    if not texts:
        return np.zeros((0, int(encoder.dim)), dtype=np.float32)
    order = np.argsort(np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)), kind="stable")
    emb = np.asarray(encoder.encode([texts[i] for i in order], batch_size=batch_size), dtype=np.float32)
    out = np.empty_like(emb)
    out[order] = emb
    return out


def similarity_scores(encoder, sources: Sequence[str], variants: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Cosine similarity of each variant to its source (float32, n).

    Each distinct text is embedded once (sources with several variants are not
    re-embedded) and batches are length-sorted; ``encoder.encode`` returns L2-normalised rows.
    """
    if len(sources) != len(variants):
        raise ValueError(f"sources and variants differ in length: {len(sources)} vs {len(variants)}")
    if len(sources) == 0:
        return np.zeros(0, dtype=np.float32)
    uniq, inv = np.unique(np.asarray(list(sources) + list(variants), dtype=object), return_inverse=True)
    emb = _encode_sorted(encoder, [str(u) for u in uniq], batch_size)
    n = len(sources)
    a, b = emb[inv[:n]], emb[inv[n:]]
    return np.einsum("ij,ij->i", a, b).astype(np.float32)


def similarity_reject(sim: np.ndarray, threshold: float) -> np.ndarray:
    """True where the similarity is below ``threshold`` (NaN counts as below)."""
    sim = np.asarray(sim, dtype=np.float64)
    return ~(sim >= threshold)


# --------------------------------------------------------------------------- label consistency


def label_consistency(probs: np.ndarray, labels: np.ndarray, tau: float) -> np.ndarray:
    """True where the predicted probability of the source label is >= ``tau``."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or probs.shape[0] != len(labels):
        raise ValueError(
            f"the predictor must return an (n, K) probability array for n={len(labels)} texts; got shape {probs.shape}"
        )
    bad = np.flatnonzero((labels < 0) | (labels >= probs.shape[1]))
    if bad.size:
        raise ValueError(
            f"labels {labels[bad[:5]].tolist()} (rows {bad[:5].tolist()}) are outside the predictor's "
            f"{probs.shape[1]} classes: the predictor must be trained on the same label vocabulary"
        )
    return probs[np.arange(len(labels)), labels] >= tau


def predict_in_batches(predict: Callable[[list[str]], np.ndarray], texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Call ``predict`` on slices of ``texts`` and stack the (n, K) results."""
    parts = [np.asarray(predict(list(texts[i : i + batch_size]))) for i in range(0, len(texts), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 0))
