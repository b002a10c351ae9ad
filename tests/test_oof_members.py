"""The OOF ensemble: the tfidf backbone, the converged logreg head, combination, calibration,
external probabilities (pure parts without Ray; end to end on a real local Ray)."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardmine.config import ConfigError, deep_merge, from_dict, load_config, parse_overrides
from hardmine.oof import combine as C
from hardmine.oof.linear import fit_snapshots, head_state_dict, resolve_analyzer
from hardmine.pipeline import run_all
from tests.helpers import make_rows, tiny_bert_dir, write_csv


# ----------------------------------------------------------------------------- pure parts


def _blobs(n=60, dim=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (k, dim))
    y = np.repeat(np.arange(k), n // k)
    return (centers[y] + rng.normal(0, 1, (len(y), dim))).astype(np.float32), y


@pytest.mark.parametrize("k", [2, 3])
def test_logreg_head_matches_sklearn_logistic_regression(k):
    from sklearn.linear_model import LogisticRegression

    from hardmine.oof.models import Head
    import torch

    x, y = _blobs(k=k)
    ref = LogisticRegression(C=10.0, max_iter=5000, tol=1e-8).fit(x, y).predict_proba(x)
    model, snaps = fit_snapshots(x, y, [x], num_labels=k, C=10.0, epochs=3, max_iter=5000)
    assert len(snaps[0]) == 3
    np.testing.assert_allclose(snaps[0][-1], ref, atol=5e-3)  # both stop at a solver tolerance
    # the saved torch head gives the same probabilities (what fold-model prediction loads)
    head = Head(x.shape[1], k, "linear")
    head.load_state_dict(head_state_dict(model, x.shape[1], k))
    head.eval()
    with torch.inference_mode():
        p = torch.softmax(head(torch.tensor(x)), -1).numpy()
    np.testing.assert_allclose(p, snaps[0][-1], atol=1e-5)


def test_snapshots_trace_the_solver_and_end_converged():
    x, y = _blobs(n=90, k=3, seed=1)
    _, snaps = fit_snapshots(x, y, [x], num_labels=3, C=10.0, epochs=4, max_iter=1000)
    p_true = [s[np.arange(len(y)), y].mean() for s in snaps[0]]
    assert p_true[0] < p_true[-1]  # the first snapshot is early in the trajectory
    assert all(np.allclose(s.sum(1), 1.0, atol=1e-5) for s in snaps[0])


def test_missing_class_in_training_rows_gets_zero_probability():
    x, y = _blobs(k=3)
    keep = y != 2
    _, snaps = fit_snapshots(x[keep], y[keep], [x], num_labels=3, C=1.0, epochs=1, max_iter=500)
    assert snaps[0][-1].shape == (len(y), 3) and np.allclose(snaps[0][-1][:, 2], 0.0)


def test_tfidf_analyzer_auto_follows_the_script():
    assert resolve_analyzer("auto", ["this movie was great", "not good at all"]) == "word"
    assert resolve_analyzer("auto", ["아 더빙.. 진짜 짜증나네요 목소리", "흠...포스터보고 초딩영화줄"]) == "char_wb"
    assert resolve_analyzer("char", ["anything"]) == "char"


def test_weights_minimise_log_loss_and_equal_is_equal():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    good = np.full((300, 3), 0.1)
    good[np.arange(300), y] = 0.8
    noise = rng.dirichlet(np.ones(3), 300)
    w = C.fit_weights([noise, good], y)
    assert w.shape == (2,) and np.isclose(w.sum(), 1.0) and w[1] > 0.9
    assert np.allclose(C.fit_weights([noise, good], y, "equal"), [0.5, 0.5])
    mix = C.combine([noise, good], [0.25, 0.75])
    np.testing.assert_allclose(mix, 0.25 * noise + 0.75 * good, atol=1e-6)
    # the chosen weights are no worse than either member alone
    assert C.log_loss(C.combine([noise, good], w), y) <= min(C.log_loss(good, y), C.log_loss(noise, y)) + 1e-4
    with pytest.raises(ValueError, match="no ensemble members"):
        C.fit_weights([], y)


def test_temperature_lowers_nll_of_an_overconfident_model_without_leakage():
    rng = np.random.default_rng(0)
    n, k = 2000, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.0
    honest = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    over = C.apply_temperature(honest, 0.25)  # four times sharper than the truth
    fold = np.arange(n) % 5
    calibrated, temps = C.cross_fit_temperature(over, y, fold)
    assert C.log_loss(calibrated, y) < C.log_loss(over, y)
    assert 3.0 < temps["all"] < 5.0 and len(temps["per_fold"]) == 5
    assert C.member_metrics(calibrated, y)["ece"] < C.member_metrics(over, y)["ece"]
    # cross-fitted: fold 0's rows are calibrated by a temperature fitted without them
    t0 = C.fit_temperature(over[fold != 0], y[fold != 0])
    np.testing.assert_allclose(calibrated[fold == 0], C.apply_temperature(over[fold == 0], t0), atol=1e-6)
    np.testing.assert_array_equal(calibrated.argmax(1), over.argmax(1))  # calibration never changes a prediction


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "yaml_text, fragment",
    [
        ("data: {path: a.csv}\noof: {backbones: [tfidf, bert]}\n", "oof.backbones.1"),
        ("data: {path: a.csv}\noof: {backbone: roberta}\n", "oof.backbones.0"),
        ("data: {path: a.csv}\noof: {backbones: []}\n", "oof.backbones"),
        ("data: {path: a.csv}\noof: {backbones: [tfidf, tfidf]}\n", "more than once"),
        ("data: {path: a.csv}\noof: {tfidf: {ngrams: [1, 2]}}\n", "did you mean 'oof.tfidf.ngram_range'"),
        ("data: {path: a.csv}\noof: {tfidf: {analyzer: chars}}\n", "oof.tfidf.analyzer"),
        ("data: {path: a.csv}\noof: {backbones: [external]}\n", "oof.probs_path"),
        ("data: {path: a.csv}\noof: {max_length: long}\n", "oof.max_length"),
        ("data: {path: a.csv}\noof: {backbone: frozen, backbones: [tfidf]}\n", "not both"),
    ],
)
def test_bad_ensemble_config_is_a_clear_error(tmp_path, yaml_text, fragment):
    p = tmp_path / "c.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert fragment in str(e.value)


def test_backbone_is_short_for_a_one_member_ensemble(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {path: a.csv}\noof: {backbone: frozen}\n")
    cfg = load_config(p)
    assert cfg.oof.backbones == ["frozen"] and cfg.oof.backbone == "frozen"
    assert load_config(p, ["oof.backbone=tfidf"]).oof.backbones == ["tfidf"]


# ----------------------------------------------------------------------------- end to end on Ray


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_bert_dir(tmp_path_factory.mktemp("tinybert"))


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("data") / "d.csv", make_rows(16))


def _cfg(tmp_path, csv_path, *sets):
    base = {"name": "t", "run_root": str(tmp_path / "runs"), "data": {"path": csv_path, "test_size": 0.25}}
    return from_dict(deep_merge(base, parse_overrides(["oof.folds=3", "oof.epochs=2", *sets])))


def _oof(store):
    t = store.read_table("oof.parquet")
    return t, {c: np.asarray(t.column(c).to_pylist(), dtype=np.float32) for c in t.column_names if c.startswith("probs")}


def test_tfidf_end_to_end_fold_models_serve_the_holdout(ray_local, tmp_path, csv_path):
    from hardmine.oof.predict import FoldEnsemble

    cfg = _cfg(tmp_path, csv_path, "oof.backbones=[tfidf]", "oof.tfidf.min_df=1")
    store = run_all(cfg, log=lambda s: None, until="holdout")
    t, probs = _oof(store)
    assert t.num_rows == 36 and np.allclose(probs["probs"].sum(1), 1.0, atol=1e-5)
    assert np.asarray(t.column("epoch_probs").to_pylist()).shape == (36, 2, 3)
    summary = store.manifest()["stages"]["oof"]["summary"]
    assert summary["backbones"] == ["tfidf"] and summary["weights"] == {"tfidf": 1.0}
    assert summary["accuracy"] > 0.9  # the words separate the classes
    for k in range(3):
        assert store.exists(f"models/tfidf/fold-{k}/tfidf.joblib")
    assert store.read_table("test_probs.parquet").num_rows == 12
    ens = FoldEnsemble(store.uri)
    p = ens.predict(["my invoice charge fee please help", "courier parcel tracking late"])
    labels = store.manifest()["labels"]
    assert [labels[i] for i in p.argmax(1)] == ["billing", "shipping"]


def test_ensemble_combines_members_and_resumes_member_by_member(ray_local, tmp_path, csv_path, tiny_model):
    logs = []
    one = _cfg(tmp_path, csv_path, "oof.backbones=[tfidf]", "oof.tfidf.min_df=1")
    run_all(one, log=logs.append, until="oof")
    two = _cfg(tmp_path, csv_path, "oof.backbones=[tfidf, frozen]", "oof.tfidf.min_df=1", f"oof.model={tiny_model}",
               "oof.calibration=temperature")
    logs.clear()
    store = run_all(two, log=logs.append, until="holdout")
    assert any("member tfidf: up to date" in line for line in logs), logs
    assert any("member frozen: 3 folds" in line for line in logs), logs
    assert any("max_length auto" in line for line in logs), logs
    t, probs = _oof(store)
    s = store.manifest()["stages"]["oof"]["summary"]
    assert set(probs) == {"probs", "probs_tfidf", "probs_frozen"}
    assert set(s["members"]) == {"tfidf", "frozen"} and np.isclose(sum(s["weights"].values()), 1.0)
    for m in s["members"].values():
        assert {"accuracy", "log_loss", "ece", "weight"} <= set(m)
    # probs = the weighted average of the members, then the cross-fitted temperature of each fold
    fold = np.asarray(t.column("fold").to_pylist())
    mix = C.combine([probs["probs_tfidf"], probs["probs_frozen"]], [s["weights"]["tfidf"], s["weights"]["frozen"]])
    cal = s["calibration"]
    assert cal["method"] == "temperature" and {"ece_before", "ece_after", "temperature"} <= set(cal)
    ep = np.asarray(t.column("epoch_probs").to_pylist(), dtype=np.float32)
    for k, temp in enumerate(cal["per_fold"]):
        np.testing.assert_allclose(probs["probs"][fold == k], C.apply_temperature(mix[fold == k], temp), atol=1e-5)
    np.testing.assert_allclose(ep[:, -1], probs["probs"], atol=1e-5)  # the dynamics end at the calibrated probs
    assert isinstance(s["max_length"], int) and s["max_length_info"]["auto"] is True
    assert store.exists("models/frozen/fold-0/head.pt") and store.exists("test_embeddings.parquet")


def test_external_probabilities_feed_scoring_and_join_an_ensemble(ray_local, tmp_path, csv_path):
    rows = make_rows(16)
    labels = sorted({r["label"] for r in rows})
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), len(rows)).astype(np.float64)
    path = tmp_path / "mine.parquet"
    pq.write_table(pa.table({"id": [r["id"] for r in rows[::-1]], **{n: p[::-1, i] for i, n in enumerate(labels)}}), path)
    # calibration off: the user's probabilities then reach scoring exactly as given
    cfg = _cfg(tmp_path, csv_path, "oof.backbones=[external]", f"oof.probs_path={path}", "data.test_size=0.0", "oof.calibration=none")
    store = run_all(cfg, log=lambda s: None, until="score")
    t, probs = _oof(store)
    by_id = dict(zip([r["id"] for r in rows], p))
    np.testing.assert_allclose(probs["probs"], np.array([by_id[i] for i in t.column("id").to_pylist()]), atol=1e-6)
    assert store.read_table("scores.parquet").num_rows == len(rows)
    # as a member of an ensemble beside tfidf
    cfg2 = _cfg(tmp_path, csv_path, "oof.backbones=[tfidf, external]", f"oof.probs_path={path}", "oof.tfidf.min_df=1",
                "data.test_size=0.0")
    store = run_all(cfg2, log=lambda s: None, until="score")
    s = store.manifest()["stages"]["oof"]["summary"]
    assert set(s["members"]) == {"tfidf", "external"}
    assert s["weights"]["tfidf"] > s["weights"]["external"]  # random probabilities earn little weight
