"""The "dual model": a secondary, cross-fitted model that learns where the primary model fails.

From the scores table (:data:`hardmine.scoring.SCORES_SCHEMA`, plus optional extra columns)
we build per-row meta-features (:func:`meta_features`), take as target whether the primary
out-of-fold prediction is wrong (:func:`error_target`), and fit a small tabular model
(:func:`fit_error_risk`) *cross-fitted*: the rows are split into stratified folds and each
fold's ``error_risk`` comes from a model fitted on the other folds only, so no row's risk
comes from a model that saw that row's target. Permutation importances say which
meta-features carry the signal.

Caveat on the target: ``margin`` (p_true minus the largest other probability) is > 0 iff the
given label is the strict argmax, i.e. iff ``pred == label``. With ``margin`` among the
features the target is (ties aside) a deterministic function of one feature and the AUC is
~1; pass ``features=`` without ``margin`` (and ``p_true`` / ``self_confidence`` /
``label_quality``, which largely decide it too) to ask what *else* predicts failure.

numpy / pyarrow / scikit-learn only, no Ray. Public functions validate their inputs and
raise ``ValueError`` naming the column / rows and the fix; ``_``-prefixed twins assume valid
inputs.
"""
from __future__ import annotations

import contextlib
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
#: named feature sets of :func:`error_risk_table`
FEATURE_SETS = {"independent": INDEPENDENT, "all": FEATURES}
#: error-risk models accepted by :func:`fit_error_risk`
MODELS = ("gbdt", "logreg")

#: permutation importances are computed on at most this many held-out rows per fold
_MAX_IMPORTANCE_ROWS = 5_000
#: repeats of each permutation
_IMPORTANCE_REPEATS = 3
#: boosting iterations of the gbdt model (early stopping is off, for determinism)
_GBDT_MAX_ITER = 200


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
    return _meta_features(scores, texts, hard_quantile=hard_quantile, features=features,
                          drop_duplicates=drop_duplicates)[:2]


def _meta_features(
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


# --------------------------------------------------------------------------- the model
def _make_model(model: str, seed: int) -> Any:
    """An unfitted scikit-learn classifier for ``model`` (see :func:`fit_error_risk`)."""
    if model == "gbdt":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=_GBDT_MAX_ITER, early_stopping=False, random_state=seed
        )
    if model == "logreg":
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        # the imputer's medians are learned on the training fold only (it is inside the pipeline);
        # a feature entirely NaN in the training fold is imputed as 0
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(max_iter=1000),
        )
    raise ValueError(f"model={model!r} is not an error-risk model; choose one of {MODELS}")


def _thread_limit(n_threads: int | None) -> Any:
    """A context capping BLAS/OpenMP threads at ``n_threads`` (None: no cap)."""
    if n_threads is None:
        return contextlib.nullcontext()
    import sklearn.ensemble  # noqa: F401  (loads sklearn's OpenMP runtime, so the cap reaches it)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(n_threads))


def _fold_indices(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """int32 ``(n,)``: each row's held-out fold from a shuffled StratifiedKFold(folds, seed)."""
    from sklearn.model_selection import StratifiedKFold

    fold = np.full(len(y), -1, dtype=np.int32)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(skf.split(np.zeros((len(y), 1)), y)):
        fold[test] = f
    return fold


def _constant(y: np.ndarray, model: str, note: str) -> dict[str, Any]:
    base = float(y.mean()) if len(y) else 0.0
    return {
        "error_risk": np.full(len(y), base, dtype=np.float32),
        "fold": np.full(len(y), -1, dtype=np.int32),
        "auc": None,
        "fold_auc": [],
        "base_rate": base,
        "importances": {},
        "model": model,
        "folds": 0,
        "note": note,
    }


def fit_error_risk(
    X: Any,
    y: Any,
    *,
    folds: int = 5,
    seed: int = 0,
    model: str = "gbdt",
    feature_names: Sequence[str] | None = None,
    n_threads: int | None = None,
) -> dict[str, Any]:
    """Cross-fitted probability that the primary model is wrong on each row.

    Rows are split into ``folds`` stratified folds (``StratifiedKFold(shuffle=True,
    random_state=seed)``); the ``error_risk`` of a fold's rows is ``predict_proba`` of a model
    fitted on the other folds only, so a row's risk never comes from a model that saw its
    target. ``model``: ``"gbdt"`` is ``HistGradientBoostingClassifier`` (NaN handled natively,
    200 iterations, no early stopping, ``random_state=seed``); ``"logreg"`` is median
    imputation (medians of the training fold) + ``StandardScaler`` + ``LogisticRegression``.

    Returns a dict: ``error_risk`` (float32 ``(n,)``), ``fold`` (int32 ``(n,)``, the fold each
    row was held out in; -1 when no model was fitted), ``auc`` (ROC AUC of the pooled
    out-of-fold ``error_risk`` against ``y``; None when undefined), ``fold_auc`` (per fold),
    ``base_rate`` (``y.mean()``), ``importances`` (``{feature: mean decrease in ROC AUC}``:
    permutation importance on each fold's held-out rows, at most 5,000 of them, 3 repeats,
    averaged over folds), ``model``, ``folds`` (the number actually used; 0 when none) and
    ``note`` (None, or why the fit was reduced or skipped).

    Degenerate cases: ``y`` all False or all True -> no model; ``error_risk`` is the constant
    base rate, ``auc`` None, ``importances`` {}, ``folds`` 0, and ``note`` says why. If the
    rarer class of ``y`` has fewer rows than ``folds``, ``folds`` is reduced to that count
    (when >= 2, said in ``note``); with a single such row, the constant fallback.

    ``feature_names`` key ``importances`` (default ``x0``, ``x1``, ...). ``n_threads`` caps the
    OpenMP/BLAS threads of the fits (None: the library default, all cores or ``OMP_NUM_THREADS``;
    on a shared machine pass 1: OpenMP threads busy-wait and an oversubscribed fit can run
    100x slower).
    """
    if model not in MODELS:
        raise ValueError(f"model={model!r} is not an error-risk model; choose one of {MODELS}")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds={folds!r}: pass an integer >= 2 (cross-fitting needs a held-out fold)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed={seed!r}: pass an integer")
    if n_threads is not None and (
        isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1
    ):
        raise ValueError(f"n_threads={n_threads!r}: pass a positive integer (or None for the default)")
    try:
        Xa = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"X must be a numeric (n, F) matrix: {e}") from None
    if Xa.ndim != 2:
        raise ValueError(f"X has shape {Xa.shape}; expected 2-D (n rows, F features)")
    n, n_feat = Xa.shape
    if n_feat == 0:
        raise ValueError(
            "X has no feature columns (every candidate meta-feature was absent or null); "
            "the scores table needs at least one of " + ", ".join(FEATURES)
        )
    inf = np.isinf(Xa)
    if inf.any():
        rows, cols = np.nonzero(inf)
        raise ValueError(
            f"X has infinite values (rows {rows[:10].tolist()}, columns {sorted(set(cols.tolist()))[:10]}); "
            "features must be finite or NaN (missing)"
        )
    ya = np.asarray(y)
    if ya.ndim != 1 or len(ya) != n:
        raise ValueError(f"y has shape {ya.shape} but X has {n} rows: pass one target per row (1-D)")
    if ya.dtype != bool:
        if ya.dtype.kind not in "biuf" or not np.isin(ya, (0, 1)).all():
            raise ValueError(f"y must be boolean (or 0/1), got values like {np.unique(ya)[:5].tolist()}")
        ya = ya.astype(bool)
    if feature_names is None:
        names = [f"x{j}" for j in range(n_feat)]
    else:
        names = [str(s) for s in feature_names]
        if len(names) != n_feat:
            raise ValueError(f"feature_names has {len(names)} names but X has {n_feat} columns: one per column")
    with _thread_limit(n_threads):
        return _fit_error_risk(Xa, ya, folds=int(folds), seed=int(seed), model=model, names=names)


def _fit_error_risk(
    X: np.ndarray, y: np.ndarray, *, folds: int, seed: int, model: str, names: list[str]
) -> dict[str, Any]:
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    n = len(y)
    n_pos = int(y.sum())
    minority = min(n_pos, n - n_pos)
    if minority == 0:
        what = "no" if n_pos == 0 else "every"
        return _constant(
            y, model,
            f"{what} row has an error (pred != label) among {n} rows: nothing to learn; "
            "error_risk is the constant base rate",
        )
    note = None
    if minority < folds:
        if minority < 2:
            return _constant(
                y, model,
                f"only {minority} row in the rarer class of the target (of {n} rows): cannot "
                "cross-fit (needs >= 2 per class); error_risk is the constant base rate",
            )
        note = (
            f"the rarer class of the target has {minority} rows < folds={folds}: "
            f"cross-fitted with {minority} folds instead"
        )
        folds = minority
    fold = _fold_indices(y, folds, seed)
    risk = np.empty(n, dtype=np.float32)
    rng = np.random.default_rng(seed)
    fold_auc: list[float] = []
    imp_sum = np.zeros(X.shape[1])
    imp_n = 0
    for f in range(folds):
        test = fold == f
        Xf = X
        empty = np.isnan(X[~test]).all(axis=0)
        if empty.any():  # no value to learn from in this training fold (and HGB cannot bin it):
            Xf = X.copy()  # a constant 0 column, which the model cannot use (importance 0)
            Xf[:, empty] = 0.0
        est = _make_model(model, seed)
        est.fit(Xf[~test], y[~test])
        pos = list(est.classes_).index(True)
        risk[test] = est.predict_proba(Xf[test])[:, pos]
        fold_auc.append(float(roc_auc_score(y[test], risk[test])))  # both classes: stratified
        held = np.flatnonzero(test)
        if len(held) > _MAX_IMPORTANCE_ROWS:
            held = np.sort(rng.choice(held, _MAX_IMPORTANCE_ROWS, replace=False))
            if y[held].all() or not y[held].any():
                continue  # AUC undefined on this subsample: skip the fold's importances
        pi = permutation_importance(
            est, Xf[held], y[held], scoring="roc_auc", n_repeats=_IMPORTANCE_REPEATS,
            random_state=seed, n_jobs=1,
        )
        imp_sum += pi.importances_mean
        imp_n += 1
    importances = {nm: float(v) for nm, v in zip(names, imp_sum / max(imp_n, 1))} if imp_n else {}
    return {
        "error_risk": risk,
        "fold": fold,
        "auc": float(roc_auc_score(y, risk)),
        "fold_auc": fold_auc,
        "base_rate": float(y.mean()),
        "importances": importances,
        "model": model,
        "folds": int(folds),
        "note": note,
    }


# --------------------------------------------------------------------------- convenience
def error_risk_table(
    scores: pa.Table,
    texts: Sequence[str] | None = None,
    *,
    folds: int = 5,
    seed: int = 0,
    model: str = "gbdt",
    hard_quantile: float = 0.2,
    features: Sequence[str] | None = None,
    n_threads: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`meta_features` -> :func:`error_target` -> :func:`fit_error_risk` in one call.

    Returns ``(error_risk, info)``: the float32 ``(n,)`` cross-fitted risk (rows in scores
    order) and a JSON-serialisable dict with ``features`` (names used), ``duplicates_dropped``
    (``{dropped: kept}``), ``auc``, ``fold_auc``, ``base_rate``, ``n_rows``, ``n_errors``,
    ``importances`` (``{feature: value}`` sorted by value, descending), ``model``, ``folds``
    and ``note``. ``hard_quantile`` and ``features`` go to :func:`meta_features`, ``n_threads``
    to :func:`fit_error_risk`.
    """
    if model not in MODELS:  # fail before the feature work
        raise ValueError(f"model={model!r} is not an error-risk model; choose one of {MODELS}")
    X, names, dups = _meta_features(scores, texts, hard_quantile=hard_quantile, features=features)
    y = error_target(scores)
    res = fit_error_risk(X, y, folds=folds, seed=seed, model=model, feature_names=names, n_threads=n_threads)
    imps = sorted(res["importances"].items(), key=lambda kv: (-kv[1], names.index(kv[0])))
    info = {
        "features": list(names),
        "duplicates_dropped": dict(dups),
        "auc": None if res["auc"] is None else float(res["auc"]),
        "fold_auc": [float(a) for a in res["fold_auc"]],
        "base_rate": float(res["base_rate"]),
        "n_rows": int(len(y)),
        "n_errors": int(y.sum()),
        "importances": {k: float(v) for k, v in imps},
        "model": str(res["model"]),
        "folds": int(res["folds"]),
        "note": res["note"],
    }
    return res["error_risk"], info
