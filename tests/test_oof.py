"""OOF end to end on a real local Ray with tiny real transformers models."""
import numpy as np
import pytest

from hardmine.config import load_config
from hardmine.pipeline import run_all
from tests.helpers import make_rows, tiny_bert_dir, write_csv


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_bert_dir(tmp_path_factory.mktemp("tinybert"))


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("data") / "d.csv", make_rows(12))


def _cfg(tmp_path, csv_path, model, **over):
    sets = [f"{k}={v}" for k, v in over.items()]
    base = {"name": "t", "run_root": str(tmp_path / "runs"), "data": {"path": csv_path}}
    from hardmine.config import deep_merge, parse_overrides, from_dict

    return from_dict(deep_merge(base, parse_overrides(["oof.folds=3", "oof.epochs=2", f"oof.model={model}"] + sets)))


def _check_oof(store, n_rows, folds, epochs):
    oof = store.read_table("oof.parquet")
    ds = store.read_table("dataset.parquet")
    assert sorted(oof.column("id").to_pylist()) == sorted(ds.column("id").to_pylist())
    assert oof.num_rows == n_rows
    probs = np.array(oof.column("probs").to_pylist())
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    ep = np.array(oof.column("epoch_probs").to_pylist())
    assert ep.shape == (n_rows, epochs, 3)
    np.testing.assert_allclose(ep[:, -1], probs, atol=1e-6)
    # folds are disjoint by construction (one fold per id) and stratified
    fold = np.array(oof.column("fold").to_pylist())
    labels = dict(zip(ds.column("id").to_pylist(), ds.column("label").to_pylist()))
    y = np.array([labels[i] for i in oof.column("id").to_pylist()])
    for k in range(folds):
        per_class = np.bincount(y[fold == k], minlength=3)
        assert per_class.max() - per_class.min() <= 1, per_class
    return store.manifest()["stages"]["oof"]["summary"]


def _overlapped(folds_info):
    spans = sorted((f["started"], f["finished"]) for f in folds_info)
    return any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1))


def test_oof_finetune_trainer_end_to_end(ray_local, tmp_path, csv_path, tiny_model):
    cfg = _cfg(tmp_path, csv_path, tiny_model, **{"oof.backbone": "finetune", "oof.batch_size": 8, "oof.lr": 0.001})
    store = run_all(cfg, until="oof")
    summary = _check_oof(store, 36, 3, 2)
    assert summary["runner"] == "TorchTrainer"
    assert _overlapped(summary["folds"]), summary["folds"]
    assert store.exists("models/fold-0/config.json")


def test_oof_frozen_end_to_end_and_resume(ray_local, tmp_path, csv_path, tiny_model):
    logs = []
    cfg = _cfg(tmp_path, csv_path, tiny_model, **{"oof.backbone": "frozen", "data.test_size": 0.25, "oof.folds": 3})
    store = run_all(cfg, log=logs.append, until="holdout")
    summary = _check_oof(store, 27, 3, 2)
    assert summary["runner"] == "ray task"
    assert _overlapped(summary["folds"])
    assert store.exists("test_probs.parquet") and store.read_table("test_probs.parquet").num_rows == 9
    m = store.manifest()["stages"]
    assert "test.parquet" not in m["oof"]["reads"] and "test.parquet" in m["holdout"]["reads"]
    assert 0.0 <= summary["accuracy"] <= 1.0
    # a second run skips every stage
    logs.clear()
    run_all(cfg, log=logs.append, until="holdout")
    assert any("[oof] up to date" in line for line in logs) and not any("[oof] running" in line for line in logs)
    # deleting oof.parquet recomputes only the OOF stage
    store.delete("oof.parquet")
    logs.clear()
    run_all(cfg, log=logs.append, until="holdout")
    assert any("[prepare] up to date" in line for line in logs)
    assert any("[oof] running" in line for line in logs)
    _check_oof(store, 27, 3, 2)


def test_fold_cpus_share_the_cluster_in_whole_cpus(ray_local):
    from hardmine.oof.runner import fold_cpus, fold_threads

    # the fixture's cluster is one node with 2 CPUs
    assert fold_cpus(None, 5) == 1.0  # never a fractional share unless asked
    assert fold_cpus(None, 3) == 1.0
    assert fold_cpus(None, 2) == 1.0
    assert fold_cpus(None, 1) == 2.0
    assert fold_cpus(0.75, 5) == 0.75  # an explicit value wins
    assert [fold_threads(c) for c in (0.4, 1.0, 2.0, 5.3333)] == [1, 1, 2, 5]
