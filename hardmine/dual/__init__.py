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

Modules: :mod:`~hardmine.dual.features` (meta-features and target: :func:`meta_features`,
:func:`error_target`, :data:`FEATURES`, :data:`FEATURE_SETS`) and :mod:`~hardmine.dual.model`
(:func:`fit_error_risk`, :func:`error_risk_table`, :data:`MODELS`).
"""
from hardmine.dual.features import DERIVED, FEATURE_SETS, FEATURES, INDEPENDENT, error_target, meta_features
from hardmine.dual.model import MODELS, error_risk_table, fit_error_risk

__all__ = [
    "DERIVED", "FEATURES", "FEATURE_SETS", "INDEPENDENT", "MODELS", "error_risk_table", "error_target",
    "fit_error_risk", "meta_features",
]
