"""The dual model itself: a small tabular model of where the primary model fails, cross-fitted.

:func:`fit_error_risk` splits the rows into stratified folds and each fold's ``error_risk``
comes from a model fitted on the other folds only, so no row's risk comes from a model that
saw that row's target; permutation importances say which meta-features carry the signal.
:func:`error_risk_table` runs it on a scores table (meta-features and target from
:mod:`hardmine.dual.features`). scikit-learn only; ``_``-prefixed twins assume valid inputs.
"""
from __future__ import annotations

import contextlib
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from hardmine.dual.features import FEATURES, error_target, meta_features_with_duplicates

#: error-risk models accepted by :func:`fit_error_risk`
MODELS = ("gbdt", "logreg")

#: permutation importances are computed on at most this many held-out rows per fold
_MAX_IMPORTANCE_ROWS = 5_000
#: repeats of each permutation
_IMPORTANCE_REPEATS = 3
#: boosting iterations of the gbdt model (early stopping is off, for determinism)
_GBDT_MAX_ITER = 200


# --------------------------------------------------------------------------- the model
def make_model(model: str, seed: int) -> Any:
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


def fold_indices(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
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
    fold = fold_indices(y, folds, seed)
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
        est = make_model(model, seed)
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
    """:func:`~hardmine.dual.meta_features` -> :func:`~hardmine.dual.error_target` -> :func:`fit_error_risk`
    in one call.

    Returns ``(error_risk, info)``: the float32 ``(n,)`` cross-fitted risk (rows in scores
    order) and a JSON-serialisable dict with ``features`` (names used), ``duplicates_dropped``
    (``{dropped: kept}``), ``auc``, ``fold_auc``, ``base_rate``, ``n_rows``, ``n_errors``,
    ``importances`` (``{feature: value}`` sorted by value, descending), ``model``, ``folds``
    and ``note``. ``hard_quantile`` and ``features`` go to :func:`~hardmine.dual.meta_features`, ``n_threads``
    to :func:`fit_error_risk`.
    """
    if model not in MODELS:  # fail before the feature work
        raise ValueError(f"model={model!r} is not an error-risk model; choose one of {MODELS}")
    X, names, dups = meta_features_with_duplicates(scores, texts, hard_quantile=hard_quantile, features=features)
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
