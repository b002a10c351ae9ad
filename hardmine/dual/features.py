"""The dual model's inputs: per-row meta-features from the scores table, and the target.

:func:`meta_features` reads :data:`FEATURES` (columns of the scores table plus two derived
ones) into a float64 matrix; :func:`error_target` says whether the primary out-of-fold
prediction is wrong. Public functions validate their inputs and raise ``ValueError`` naming
the column / rows and the fix.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from hardmine.probs import describe_rows, row_namer

#: candidate meta-feature names, in order (columns of the scores table, plus two derived ones)
FEATURES = (
    "p_true",
    "margin",
    "entropy",
    "label_quality",
    "self_confidence",
    "dyn_confidence",
    "dyn_variability",
    "dyn_correctness",
    "dyn_forgetting",
    "dyn_aum",
    "outlier_score",
    "knn_label_agreement",
    "text_length",  # derived: character length of the row's text
    "class_hard_share",  # derived: share of the row's (given) class among the hardest rows
)
#: features computed here rather than read from a column
DERIVED = ("text_length", "class_hard_share")
#: the default feature set (``score.dual_features: independent``): the features that do not
#: contain the primary model's final verdict on the row (p_true, margin, self_confidence,
#: label_quality, and the dynamics that average the last epoch's p_true or correctness), so the
#: dual model learns from what *else* predicts a wrong out-of-fold prediction
INDEPENDENT = ("entropy", "dyn_variability", "dyn_forgetting", "outlier_score", "knn_label_agreement", "text_length",
               "class_hard_share")
#: named feature sets of :func:`hardmine.dual.error_risk_table`
FEATURE_SETS = {"independent": INDEPENDENT, "all": FEATURES}


# --------------------------------------------------------------------------- helpers
def _column_missing(col: pa.ChunkedArray) -> np.ndarray:
    """Boolean mask of null rows (NaN is a value, not a null)."""
    if not col.null_count:
        return np.zeros(len(col), dtype=bool)
    return np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _numeric_column(scores: pa.Table, name: str, namer: Any) -> np.ndarray | None:
    """A scores column as float64, or None when it is absent or entirely null (or NaN).

    A column partly null is a broken artifact: raise naming the rows.
    """
    if name not in scores.column_names:
        return None
    col = scores.column(name)
    t = col.type
    if pa.types.is_null(t):
        return None
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        raise ValueError(
            f"scores column {name!r} has type {t}; a meta-feature must be numeric "
            "(float/int/bool): fix the stage that writes it or drop the column"
        )
    n = len(col)
    nulls = _column_missing(col)
    if n and nulls.all():
        return None
    if nulls.any():
        raise ValueError(
            f"scores column {name!r}: {describe_rows(nulls, namer)} are null while the other rows "
            "have values; a meta-feature column must be complete or entirely null: re-run the "
            "stage that writes it (or drop the column)"
        )
    values = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    if n and np.isnan(values).all():
        return None  # carries no information: treat like all-null
    inf = np.isinf(values)
    if inf.any():
        raise ValueError(
            f"scores column {name!r}: {describe_rows(inf, namer)} are infinite; meta-features "
            "must be finite (NaN is allowed): fix the stage that writes it"
        )
    return values


def _check_features(features: Sequence[str] | None) -> tuple[str, ...]:
    if features is None:
        return FEATURES
    if isinstance(features, str):
        raise ValueError(f"features={features!r}: pass a list of names, e.g. [{features!r}]")
    feats = tuple(features)
    unknown = [f for f in feats if f not in FEATURES]
    if unknown:
        raise ValueError(f"features: unknown names {unknown}; choose from {FEATURES}")
    if len(set(feats)) != len(feats):
        raise ValueError(f"features={list(feats)} names a feature twice; list each once")
    return tuple(f for f in FEATURES if f in feats)  # canonical order


def _check_hard_quantile(q: Any) -> float:
    if isinstance(q, bool) or not isinstance(q, (int, float, np.integer, np.floating)) or not 0 < q <= 1:
        raise ValueError(f"hard_quantile={q!r}: pass a fraction in (0, 1], e.g. 0.2 for the hardest 20%")
    return float(q)


def _text_lengths(texts: Any, n: int) -> np.ndarray:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if isinstance(texts, str):
        raise ValueError("texts is one string; pass one text per scores row (a list of strings)")
    items = texts.to_pylist() if isinstance(texts, pa.Array) else list(texts)
    if len(items) != n:
        raise ValueError(
            f"texts has {len(items)} entries but scores has {n} rows: pass one text per row, in the "
            "order of the scores table (join on id first)"
        )
    bad = np.array([not isinstance(t, str) for t in items], dtype=bool)
    if bad.any():
        raise ValueError(
            f"texts: {describe_rows(bad, lambda idx: [int(i) for i in idx])} are not strings "
            "(null or another type); every row needs its text"
        )
    return np.fromiter((len(t) for t in items), dtype=np.float64, count=n)


def _class_hard_share(labels: np.ndarray, hardness: np.ndarray, q: float) -> np.ndarray:
    """For each row, the share of its class's rows that are "hard".

    A row is hard when its hardness is >= the ``ceil(q * n)``-th largest hardness of all rows
    (rows tied at that threshold are all hard, so slightly more than ``q * n`` rows may be).
    """
    n = len(labels)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    n_hard = min(n, max(1, math.ceil(q * n - 1e-9)))
    h = np.where(np.isnan(hardness), -np.inf, hardness)  # NaN hardness never counts as hard
    threshold = np.partition(h, n - n_hard)[n - n_hard]
    hard = h >= threshold
    classes, inv = np.unique(labels, return_inverse=True)
    per_class_hard = np.bincount(inv, weights=hard.astype(np.float64), minlength=len(classes))
    per_class_n = np.bincount(inv, minlength=len(classes))
    return (per_class_hard / per_class_n)[inv]


# --------------------------------------------------------------------------- meta-features
def meta_features(
    scores: pa.Table,
    texts: Sequence[str] | None = None,
    *,
    hard_quantile: float = 0.2,
    features: Sequence[str] | None = None,
    drop_duplicates: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """The ``(n, F)`` float64 meta-feature matrix of the scores rows and the names used.

    Candidates are :data:`FEATURES` (or the subset ``features``), in that order. A column that
    is absent, entirely null or entirely NaN is skipped (e.g. the dyn_* columns without
    training dynamics); a column partly null raises (a broken artifact), as do infinite values
    and non-numeric columns. Derived features:

    * ``text_length``: character length of ``texts`` (one per scores row, same order);
      skipped when ``texts`` is None.
    * ``class_hard_share``: for the row's given ``label``, the share of that class's rows whose
      ``hardness`` is in the top ``hard_quantile`` of all rows (see :func:`_class_hard_share`);
      skipped when ``label`` or ``hardness`` is absent.

    With ``drop_duplicates`` (default) a column identical to an earlier one is dropped (in a
    table written by :func:`hardmine.scoring.score_table`, ``self_confidence`` always equals
    ``p_true``, and so does ``label_quality`` under the default ``rank_by``): duplicates split
    permutation importance between them and add nothing to the model.
    """
    return meta_features_with_duplicates(scores, texts, hard_quantile=hard_quantile, features=features,
                                         drop_duplicates=drop_duplicates)[:2]


def meta_features_with_duplicates(
    scores: pa.Table,
    texts: Any = None,
    *,
    hard_quantile: float = 0.2,
    features: Sequence[str] | None = None,
    drop_duplicates: bool = True,
) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """:func:`meta_features` plus ``{dropped duplicate: the kept column it equals}``."""
    if not isinstance(scores, pa.Table):
        raise ValueError(f"scores must be a pyarrow Table (the scores table), got {type(scores).__name__}")
    feats = _check_features(features)
    q = _check_hard_quantile(hard_quantile)
    n = scores.num_rows
    namer = row_namer(scores.column("id"), n, "scores") if "id" in scores.column_names else (
        lambda idx: [int(i) for i in idx]
    )
    cols: list[np.ndarray] = []
    names: list[str] = []
    for name in feats:
        if name == "text_length":
            if texts is None:
                continue
            values: np.ndarray | None = _text_lengths(texts, n)
        elif name == "class_hard_share":
            lab = _numeric_column(scores, "label", namer)
            hardness = _numeric_column(scores, "hardness", namer)
            if lab is None or hardness is None:
                continue
            values = _class_hard_share(lab, hardness, q)
        else:
            values = _numeric_column(scores, name, namer)
        if values is not None:
            cols.append(values)
            names.append(name)
    duplicates: dict[str, str] = {}
    if drop_duplicates:
        keep: list[int] = []
        for j, c in enumerate(cols):
            twin = next((i for i in keep if np.array_equal(cols[i], c, equal_nan=True)), None)
            if twin is None:
                keep.append(j)
            else:
                duplicates[names[j]] = names[twin]
        cols = [cols[j] for j in keep]
        names = [names[j] for j in keep]
    X = np.column_stack(cols) if cols else np.zeros((n, 0), dtype=np.float64)
    return X.astype(np.float64, copy=False), names, duplicates


def error_target(scores: pa.Table) -> np.ndarray:
    """Boolean ``(n,)``: whether the primary out-of-fold prediction is wrong (``pred != label``)."""
    if not isinstance(scores, pa.Table):
        raise ValueError(f"scores must be a pyarrow Table (the scores table), got {type(scores).__name__}")
    n = scores.num_rows
    namer = row_namer(scores.column("id"), n, "scores") if "id" in scores.column_names else (
        lambda idx: [int(i) for i in idx]
    )
    out = []
    for name in ("pred", "label"):
        if name not in scores.column_names:
            raise ValueError(f"scores has no {name!r} column; pass the table written by scoring.score_table")
        col = scores.column(name)
        if not pa.types.is_integer(col.type):
            raise ValueError(f"scores column {name!r} has type {col.type}; expected integer class indices")
        nulls = _column_missing(col)
        if nulls.any():
            raise ValueError(f"scores column {name!r}: {describe_rows(nulls, namer)} are null; every row needs one")
        out.append(np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64))
    return out[0] != out[1]
