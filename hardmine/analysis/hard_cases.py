""":func:`analyze`: where the selection's hard rows are (per class), what they are confused with,
how long they are and which phrases mark them."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from hardmine.analysis.phrases import phrase_unit
from hardmine.analysis.tokens import check_token_options, distinctive_tokens, token_sample
from hardmine.checks import column, float_column, int_column
from hardmine.select.inputs import FIX, score_ids, text_for_ids
from hardmine.checks import check_int
from hardmine.select.table import check_mask

PER_CLASS = pa.schema(
    [
        pa.field("class", pa.int32()),
        pa.field("name", pa.string()),
        pa.field("n", pa.int64()),
        pa.field("n_hard", pa.int64()),
        pa.field("share_hard", pa.float64()),
        pa.field("n_issue", pa.int64()),
        pa.field("share_issue", pa.float64()),
    ]
)
CONFUSION_PAIRS = pa.schema(
    [
        pa.field("label", pa.int32()),
        pa.field("label_name", pa.string()),
        pa.field("pred", pa.int32()),
        pa.field("pred_name", pa.string()),
        pa.field("count", pa.int64()),
        pa.field("share_of_hard", pa.float64()),
    ]
)


def _share(a, b) -> float:
    return float(a) / float(b) if b else 0.0


def length_stats(lengths: np.ndarray) -> dict:
    """Count, mean, min, p10/p25/p50/p75/p90 and max of character lengths (None when empty)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    keys = ("mean", "min", "p10", "p25", "p50", "p75", "p90", "max")
    if lengths.size == 0:
        return {"n": 0, **{k: None for k in keys}}
    q = np.quantile(lengths, [0.1, 0.25, 0.5, 0.75, 0.9])
    vals = [lengths.mean(), lengths.min(), *q, lengths.max()]
    return {"n": int(lengths.size), **{k: round(float(v), 3) for k, v in zip(keys, vals)}}


def per_class_table(labels: np.ndarray, hard: np.ndarray, is_issue: np.ndarray, label_names: list[str]) -> pa.Table:
    """Rows, hard rows and label issues of every class, with their shares (schema :data:`PER_CLASS`)."""
    k = len(label_names)
    n_c = np.bincount(labels, minlength=k)
    h_c = np.bincount(labels[hard], minlength=k)
    i_c = np.bincount(labels[is_issue], minlength=k)
    return pa.table(
        {
            "class": pa.array(np.arange(k), pa.int32()),
            "name": label_names,
            "n": pa.array(n_c, pa.int64()),
            "n_hard": pa.array(h_c, pa.int64()),
            "share_hard": [_share(a, b) for a, b in zip(h_c, n_c)],
            "n_issue": pa.array(i_c, pa.int64()),
            "share_issue": [_share(a, b) for a, b in zip(i_c, n_c)],
        },
        schema=PER_CLASS,
    )


def confusion_pairs(labels: np.ndarray, preds: np.ndarray, hard: np.ndarray, label_names: list[str], top_pairs: int) -> pa.Table:
    """The ``top_pairs`` most frequent (given -> predicted) pairs among hard rows, off-diagonal
    (schema :data:`CONFUSION_PAIRS`; ties by pair index)."""
    k = len(label_names)
    off = hard & (labels != preds)
    pair_counts = np.bincount(labels[off] * k + preds[off], minlength=k * k)
    nz = np.flatnonzero(pair_counts)
    nz = nz[np.lexsort((nz, -pair_counts[nz]))][:top_pairs]
    return pa.table(
        {
            "label": pa.array(nz // k, pa.int32()),
            "label_name": [label_names[i] for i in nz // k],
            "pred": pa.array(nz % k, pa.int32()),
            "pred_name": [label_names[i] for i in nz % k],
            "count": pa.array(pair_counts[nz], pa.int64()),
            "share_of_hard": [_share(c, int(hard.sum())) for c in pair_counts[nz]],
        },
        schema=CONFUSION_PAIRS,
    )


def analyze(
    scores: pa.Table,
    texts: pa.Table,
    label_names: list[str],
    *,
    hard_mask: np.ndarray,
    hard_rule: str = "hard_mask",
    top_pairs: int = 10,
    top_tokens: int = 10,
    ngram_range=None,
    unit: str = "auto",
    contrast: str = "class",
    token_score: str = "lift",
    dedupe: bool = True,
    min_hard_df: int = 3,
    max_token_texts: int | None = 20_000,
    seed: int = 0,
) -> dict:
    """Per-class hard/issue shares, top confusion pairs, lengths and distinctive phrases of the hard set.

    Hard = ``hard_mask``, a bool array aligned with ``scores``: the selection's hard set
    (:func:`hardmine.select.hard_mask` of the table :func:`hardmine.select.select` returned), so the
    analysis describes the rows the selection chose, whatever its policy. ``hard_rule`` names it in the
    result (the select summary's ``hard_rule``). The phrase analysis (:func:`distinctive_tokens`;
    ``unit``: word n-grams, or char n-grams for text without spaces, ``"auto"`` decides; ``ngram_range``
    None: that unit's default) uses at most ``max_token_texts`` texts (stratified sample, see
    :func:`token_sample`); the unit used is ``result["phrase_unit"]``.
    """
    if max_token_texts is not None:
        check_int("max_token_texts", max_token_texts, 1)
    for name, v in (("top_pairs", top_pairs), ("top_tokens", top_tokens), ("min_hard_df", min_hard_df)):
        check_int(name, v, 0)
    check_token_options(unit, ngram_range, contrast, token_score, "token_score")
    label_names = [str(x) for x in label_names]
    if not label_names:
        raise ValueError("label_names is empty: pass the label vocabulary (index -> name) from the manifest")
    ids = score_ids(scores)
    n = len(ids)
    labels = int_column(scores, "label", "scores", FIX)
    preds = int_column(scores, "pred", "scores", FIX)
    hardness = float_column(scores, "hardness", "scores", FIX)
    is_issue = column(scores, "is_label_issue", "scores", FIX).to_numpy(zero_copy_only=False).astype(bool)
    k = len(label_names)
    for what, arr in (("label", labels), ("pred", preds)):
        bad = np.flatnonzero((arr < 0) | (arr >= k))
        if bad.size:
            raise ValueError(
                f"scores column {what!r} has ids outside 0..{k - 1} (label_names has {k} names) in rows "
                f"{bad[:5].tolist()}; pass the full label vocabulary"
            )
    hard = check_mask(hard_mask, n)
    text = text_for_ids(ids, texts)
    n_hard = int(hard.sum())

    lengths = np.fromiter((len(t or "") for t in text), dtype=np.int64, count=n)
    length = {
        "all": length_stats(lengths),
        "hard": length_stats(lengths[hard]),
        "not_hard": length_stats(lengths[~hard]),
    }
    rows = token_sample(labels, hard, max_token_texts, seed)
    unit = phrase_unit(text[rows]) if unit == "auto" else unit
    tokens = distinctive_tokens(
        text[rows], labels[rows], hard[rows], label_names, top_tokens=top_tokens, unit=unit,
        ngram_range=ngram_range, contrast=contrast, score=token_score, dedupe=dedupe, min_hard_df=min_hard_df,
    )
    return {
        "n": int(n),
        "n_hard": n_hard,
        "n_issue": int(is_issue.sum()),
        "hard_rule": hard_rule,
        "hardness_threshold": float(hardness[hard].min()) if n_hard else None,
        "label_names": label_names,
        "per_class": per_class_table(labels, hard, is_issue, label_names),
        "confusion_pairs": confusion_pairs(labels, preds, hard, label_names, top_pairs),
        "length": length,
        "distinctive_tokens": tokens,
        "phrase_unit": unit,
        "token_rows": int(rows.size),
    }
