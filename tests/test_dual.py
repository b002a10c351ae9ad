"""hardmine.dual: cross-fitted error-risk model, meta-features from the scores table."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime so the thread cap below reaches it)
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from hardmine.dual import (
    FEATURES,
    MODELS,
    error_risk_table,
    error_target,
    fit_error_risk,
    meta_features,
)
from hardmine.dual.model import fold_indices, make_model
from hardmine.scoring import DYNAMICS_COLUMNS, score_table


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The machine is shared: one OpenMP/BLAS thread (busy-waiting OpenMP threads thrash)."""
    with threadpool_limits(limits=1):
        yield


def random_scores(n=300, k=3, seed=0, strength=1.5, epochs=0):
    """A real scores table (score_table) from seeded random probabilities; ~30% wrong predictions."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    logits = rng.standard_normal((n, k))
    logits[np.arange(n), true] += strength
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    ep = None
    if epochs:
        ep = np.exp(logits[:, None, :] + 0.5 * rng.standard_normal((n, epochs, k)))
        ep /= ep.sum(axis=2, keepdims=True)
    table, _ = score_table([f"r{i}" for i in range(n)], true, p.astype(np.float32), ep)
    return table


def six_rows():
    """Hand-made 6-row table: labels [0,0,0,1,1,1]; hardness .1 .8 .9 | .3 .4 .05."""
    probs = np.array(
        [[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.4, 0.6], [0.05, 0.95]], dtype=np.float32
    )
    table, _ = score_table([f"r{i}" for i in range(6)], [0, 0, 0, 1, 1, 1], probs)
    return table


def with_column(table, name, values, type_=pa.float32()):
    """``table`` with column ``name`` set (replaced when the scores contract already has it)."""
    field, arr = pa.field(name, type_), pa.array(values, type=type_)
    if name in table.column_names:
        return table.set_column(table.schema.get_field_index(name), field, arr)
    return table.append_column(field, arr)


# --------------------------------------------------------------------------- cross-fitting
N_NOISE = 600


@pytest.fixture(scope="module")
def noise():
    """Pure-noise features and a random target (30% True): nothing to learn out of sample."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((N_NOISE, 3))
    y = rng.random(N_NOISE) < 0.3
    return X, y, fit_error_risk(X, y, folds=5, seed=0, n_threads=1)


@pytest.fixture(scope="module")
def in_sample(noise):
    """The same model fitted on every row of the noise data (it memorises them)."""
    X, y, _ = noise
    return make_model("gbdt", 0).fit(X, y)


def test_fold_indices_partition_every_row_once():
    rng = np.random.default_rng(0)
    y = rng.random(N_NOISE) < 0.3
    fold = fold_indices(y, 5, 0)
    assert fold.dtype == np.int32 and fold.shape == (N_NOISE,)
    assert set(np.unique(fold).tolist()) == {0, 1, 2, 3, 4}  # no row left at -1
    skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    seen = np.zeros(N_NOISE, dtype=int)
    for f, (train, test) in enumerate(skf.split(np.zeros((N_NOISE, 1)), y)):
        np.testing.assert_array_equal(np.flatnonzero(fold == f), np.sort(test))
        assert not np.isin(train, test).any()
        seen[test] += 1
        assert abs(y[test].mean() - y.mean()) < 0.02  # stratified
    assert (seen == 1).all()
    assert not np.array_equal(fold, fold_indices(y, 5, 1))  # the seed shuffles


def test_noise_gives_chance_auc_out_of_fold_but_memorised_in_sample(noise, in_sample):
    X, y, res = noise
    assert 0.35 < res["auc"] < 0.65, res["auc"]
    assert roc_auc_score(y, in_sample.predict_proba(X)[:, 1]) > 0.9  # the same model memorises
    np.testing.assert_array_equal(res["fold"], fold_indices(y, 5, 0))
    assert res["error_risk"].dtype == np.float32 and res["error_risk"].shape == (N_NOISE,)
    assert res["fold"].dtype == np.int32
    assert res["folds"] == 5 and res["model"] == "gbdt" and res["note"] is None
    assert res["base_rate"] == pytest.approx(y.mean())
    assert len(res["fold_auc"]) == 5


def test_each_fold_risk_comes_from_a_model_that_never_saw_it(noise, in_sample):
    X, y, res = noise
    f = 2
    held = res["fold"] == f
    excluded = make_model("gbdt", 0).fit(X[~held], y[~held])
    np.testing.assert_allclose(res["error_risk"][held], excluded.predict_proba(X[held])[:, 1], rtol=1e-5, atol=1e-6)
    # a model that did see these rows scores them very differently (it memorised them)
    assert roc_auc_score(y[held], in_sample.predict_proba(X[held])[:, 1]) > 0.9
    assert roc_auc_score(y[held], res["error_risk"][held]) < 0.75


@pytest.mark.parametrize("model", MODELS)
def test_signal_is_learned_and_ranked_first(model):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((400, 4))
    y = X[:, 0] + 0.5 * rng.standard_normal(400) > 0
    res = fit_error_risk(X, y, model=model, feature_names=["signal", "a", "b", "c"], n_threads=1)
    assert res["auc"] > 0.8
    assert set(res["importances"]) == {"signal", "a", "b", "c"}
    assert max(res["importances"], key=res["importances"].get) == "signal"
    assert res["importances"]["signal"] > 0.1


@pytest.mark.parametrize("model", MODELS)
def test_nan_in_X_is_handled(model):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 3))
    y = X[:, 0] + 0.5 * rng.standard_normal(400) > 0
    X[rng.random(400) < 0.2, 0] = np.nan
    X[rng.random(400) < 0.5, 1] = np.nan
    X[:, 2] = np.nan  # a feature missing everywhere
    res = fit_error_risk(X, y, model=model, n_threads=1)
    assert np.isfinite(res["error_risk"]).all()
    assert res["auc"] > 0.75
    assert max(res["importances"], key=res["importances"].get) == "x0"


# --------------------------------------------------------------------------- degenerate / validation
@pytest.mark.parametrize("value", [False, True])
def test_constant_target_gives_constant_risk_and_note(value):
    X = np.random.default_rng(0).standard_normal((50, 2))
    res = fit_error_risk(X, np.full(50, value), n_threads=1)
    np.testing.assert_array_equal(res["error_risk"], np.full(50, float(value), dtype=np.float32))
    assert res["auc"] is None and res["importances"] == {} and res["folds"] == 0
    assert res["base_rate"] == float(value)
    assert "nothing to learn" in res["note"]
    assert (res["fold"] == -1).all()


def test_rare_class_reduces_folds_or_falls_back():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2))
    y = np.zeros(60, dtype=bool)
    y[[3, 17, 40]] = True
    res = fit_error_risk(X, y, folds=5, model="logreg")
    assert res["folds"] == 3 and "3 folds" in res["note"]
    assert set(np.unique(res["fold"]).tolist()) == {0, 1, 2}
    for f in range(3):  # every fold holds out one of the three errors
        assert y[res["fold"] == f].sum() == 1
    y1 = np.zeros(60, dtype=bool)
    y1[5] = True
    one = fit_error_risk(X, y1, folds=5, model="logreg")
    assert one["folds"] == 0 and one["auc"] is None and "cannot" in one["note"]
    np.testing.assert_allclose(one["error_risk"], 1 / 60, rtol=1e-6)


def test_validation_errors():
    X = np.zeros((10, 2))
    y = np.arange(10) % 2 == 0
    with pytest.raises(ValueError, match=r"choose one of \('gbdt', 'logreg'\)"):
        fit_error_risk(X, y, model="forest")
    with pytest.raises(ValueError, match="folds=1"):
        fit_error_risk(X, y, folds=1)
    with pytest.raises(ValueError, match="2-D"):
        fit_error_risk(np.zeros(10), y)
    bad = X.copy()
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"infinite values \(rows \[4\], columns \[1\]\)"):
        fit_error_risk(bad, y)
    with pytest.raises(ValueError, match="y has shape"):
        fit_error_risk(X, y[:9])
    with pytest.raises(ValueError, match="boolean"):
        fit_error_risk(X, np.arange(10))
    with pytest.raises(ValueError, match="no feature columns"):
        fit_error_risk(np.zeros((10, 0)), y)
    with pytest.raises(ValueError, match="feature_names has 1"):
        fit_error_risk(X, y, feature_names=["a"])
    with pytest.raises(ValueError, match="n_threads=0"):
        fit_error_risk(X, y, n_threads=0)
    with pytest.raises(ValueError, match="choose one of"):
        error_risk_table(six_rows(), model="svm")


# --------------------------------------------------------------------------- meta-features
def test_meta_features_on_hand_made_table():
    table = six_rows()
    texts = ["a", "bb", "", "dddd", "ee ee", "f"]
    X, names = meta_features(table, texts, hard_quantile=1 / 3)
    # dyn_* are all null (no epoch_probs): skipped; self_confidence and label_quality equal p_true: dropped
    assert names == ["p_true", "margin", "entropy", "text_length", "class_hard_share"]
    assert X.dtype == np.float64 and X.shape == (6, 5)
    np.testing.assert_allclose(X[:, 0], table.column("p_true").to_numpy())
    np.testing.assert_allclose(X[:, 1], table.column("margin").to_numpy())
    np.testing.assert_array_equal(X[:, 3], [1, 2, 0, 4, 5, 1])
    # the 2 hardest rows (hardness .9, .8) are both class 0: class 0 share 2/3, class 1 share 0
    np.testing.assert_allclose(X[:, 4], [2 / 3] * 3 + [0] * 3)
    # the 3 hardest add row 4 (hardness .4, class 1)
    X, _ = meta_features(table, texts, hard_quantile=0.5)
    np.testing.assert_allclose(X[:, 4], [2 / 3] * 3 + [1 / 3] * 3)
    X, names = meta_features(table, hard_quantile=1.0)
    assert "text_length" not in names
    np.testing.assert_allclose(X[:, names.index("class_hard_share")], 1.0)
    _, names = meta_features(table, drop_duplicates=False)
    assert names == ["p_true", "margin", "entropy", "label_quality", "self_confidence", "class_hard_share"]
    _, names = meta_features(table, features=["entropy", "margin"])
    assert names == ["margin", "entropy"]


def test_meta_features_extra_columns_and_dynamics():
    table = random_scores(n=40, epochs=3)
    table = with_column(table, "knn_label_agreement", np.linspace(0, 1, 40))
    table = with_column(table, "outlier_score", [None] * 40)  # all null: skipped
    X, names = meta_features(table)
    expected = [f for f in FEATURES if f not in ("label_quality", "self_confidence", "outlier_score", "text_length")]
    assert names == expected  # FEATURES order, dyn_* present with epoch_probs
    assert set(DYNAMICS_COLUMNS) <= set(names)
    np.testing.assert_allclose(X[:, names.index("knn_label_agreement")], np.linspace(0, 1, 40), rtol=1e-6)
    np.testing.assert_array_equal(X[:, names.index("dyn_forgetting")], table.column("dyn_forgetting").to_numpy())


def test_meta_features_errors():
    table = six_rows()
    partly = with_column(table, "outlier_score", [0.1, None, 0.3, None, 0.5, 0.6])
    with pytest.raises(ValueError, match=r"'outlier_score': rows \['r1', 'r3'\] \(2 in total\) are null"):
        meta_features(partly)
    with pytest.raises(ValueError, match="texts has 5 entries but scores has 6 rows"):
        meta_features(table, ["a"] * 5)
    with pytest.raises(ValueError, match=r"texts: rows \[2\]"):
        meta_features(table, ["a", "b", None, "d", "e", "f"])
    with pytest.raises(ValueError, match="hard_quantile=0"):
        meta_features(table, hard_quantile=0)
    with pytest.raises(ValueError, match=r"unknown names \['bogus'\]"):
        meta_features(table, features=["bogus"])
    inf = with_column(table, "knn_label_agreement", [0.1, 0.2, np.inf, 0.4, 0.5, 0.6])
    with pytest.raises(ValueError, match=r"'knn_label_agreement': rows \['r2'\]"):
        meta_features(inf)
    strings = with_column(table, "outlier_score", list("abcdef"), pa.string())
    with pytest.raises(ValueError, match="'outlier_score' has type string"):
        meta_features(strings)


def test_error_target_is_pred_neq_label():
    table = six_rows()
    np.testing.assert_array_equal(error_target(table), [False, True, True, False, False, False])
    with pytest.raises(ValueError, match="no 'pred' column"):
        error_target(table.drop_columns(["pred"]))


# --------------------------------------------------------------------------- end to end
def test_error_risk_table_is_json_and_sorted():
    table = random_scores(n=300, seed=4)
    rng = np.random.default_rng(4)
    y = error_target(table)
    # an extra column that knows about errors beyond the confidence features
    table = with_column(table, "knn_label_agreement", np.where(y, 0.3, 0.7) + 0.3 * rng.standard_normal(300))
    texts = ["x" * int(n) for n in rng.integers(1, 50, 300)]
    risk, info = error_risk_table(
        table, texts, model="logreg", features=["entropy", "knn_label_agreement", "text_length"], n_threads=1
    )
    assert risk.shape == (300,) and risk.dtype == np.float32
    json.dumps(info)  # JSON-able: plain floats, lists, dicts
    assert info["features"] == ["entropy", "knn_label_agreement", "text_length"]
    assert info["n_rows"] == 300 and info["n_errors"] == int(y.sum())
    values = list(info["importances"].values())
    assert values == sorted(values, reverse=True)
    assert next(iter(info["importances"])) == "knn_label_agreement"
    assert info["auc"] > 0.8 and info["model"] == "logreg" and info["folds"] == 5
    assert info["base_rate"] == pytest.approx(y.mean())


def test_margin_alone_decides_the_target():
    """The documented caveat: margin > 0 iff pred == label, so with margin the AUC is ~1."""
    table = random_scores(n=300, seed=5)
    _, info = error_risk_table(table, features=["margin"], n_threads=1)
    assert info["auc"] > 0.99
    _, info = error_risk_table(table, model="logreg", n_threads=1)
    assert info["duplicates_dropped"] == {"label_quality": "p_true", "self_confidence": "p_true"}
    assert "margin" in info["features"] and json.dumps(info)
