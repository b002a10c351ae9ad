"""OOF end to end on a real local Ray with tiny real transformers models."""
import numpy as np
import pytest

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
    assert store.exists("models/finetune/fold-0/config.json")


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
    assert any(line.startswith("[oof]") and "running" in line for line in logs)  # "[oof] outputs damaged ...: running again"
    _check_oof(store, 27, 3, 2)


def test_fold_cpus_share_the_cluster_in_whole_cpus(ray_local):
    from hardmine.oof.resources import fold_cpus, fold_threads

    # the fixture's cluster is one node with 2 CPUs
    assert fold_cpus(None, 5) == 1.0  # never a fractional share unless asked
    assert fold_cpus(None, 3) == 1.0
    assert fold_cpus(None, 2) == 1.0
    assert fold_cpus(None, 1) == 2.0
    assert fold_cpus(0.75, 5) == 0.75  # an explicit value wins
    assert [fold_threads(c) for c in (0.4, 1.0, 2.0, 5.3333)] == [1, 1, 2, 5]


def test_concurrent_runs_counts_what_the_nodes_hold(ray_local):
    from hardmine.oof.resources import concurrent_runs

    assert concurrent_runs(1.0) == 2
    assert concurrent_runs(0.4) == 5
    assert concurrent_runs(2.0) == 1
    assert concurrent_runs(3.0) == 1  # never 0: a run too big for the nodes is check_resources' error
    assert concurrent_runs(1.0, gpus=0.5) == 1  # the fixture has no GPU


def test_in_threads_keeps_order_respects_the_limit_and_fails_fast():
    import threading
    import time

    from hardmine.oof.resources import in_threads

    lock, running, peak = threading.Lock(), [0], [0]

    def call(i, seconds):
        def run():
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(seconds)
            with lock:
                running[0] -= 1
            return i * 10

        return run

    assert in_threads([call(i, 0.05 * (5 - i)) for i in range(5)], limit=2) == [0, 10, 20, 30, 40]
    assert peak[0] == 2

    def boom():
        raise ValueError("fold 1 failed")

    t0 = time.time()
    with pytest.raises(ValueError, match="fold 1 failed"):
        in_threads([call(0, 30.0), boom])  # raised at once, not after the 30 s run
    assert time.time() - t0 < 10


def test_elastic_threads_borrow_only_cpus_nobody_holds(ray_local):
    import time

    import ray

    @ray.remote(num_cpus=1)
    def threads_seen(want: int) -> int:
        from hardmine.oof.resources import ElasticThreads

        et = ElasticThreads(1.0, every_s=0.0)
        deadline = time.time() + 20  # the scheduler's view reaches the GCS within a second or so
        while et() != want and time.time() < deadline:
            time.sleep(0.2)
        return et()

    # alone on the 2-CPU node: its own CPU plus the idle one
    assert ray.get(threads_seen.remote(2)) == 2

    @ray.remote(num_cpus=1)
    class Holder:
        def ready(self):
            return True

    holder = Holder.remote()
    ray.get(holder.ready.remote())
    try:  # the other CPU is reserved: back to its own
        assert ray.get(threads_seen.remote(1)) == 1
    finally:
        ray.kill(holder)


def test_elastic_threads_off_by_config_or_on_gpu():
    from hardmine.oof.resources import ElasticThreads

    assert ElasticThreads.from_config({"elastic_threads": False, "threads": 1, "cpus": 1.0}) is None
    assert ElasticThreads.from_config({"elastic_threads": True, "threads": 1, "cpus": 1.0, "gpus": 0.5}) is None


def test_final_checkpoint_has_no_optimiser_state_and_resumes_to_the_same_result(tmp_path):
    import torch

    from hardmine.oof.loop import STATE, DirCheckpoints, train_fold

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 8)).astype(np.float32), np.arange(40) % 3
    cfg = {
        "fold": 0, "seed": 0, "backbone": "frozen", "num_labels": 3, "head": "linear", "head_hidden": 16,
        "max_length": 16, "batch_size": 8, "head_batch_size": 8, "lr": 1e-3, "head_lr": 1e-2, "epochs": 2,
        "warmup_ratio": 0.0, "weight_decay": 0.0, "mixed_precision": "no", "threads": 1,
        "data": {"train_x": x[:30], "train_y": y[:30], "val_x": x[30:], "val_y": y[30:], "test_x": None},
    }
    first = train_fold(cfg, DirCheckpoints(str(tmp_path / "ck")), log=lambda s: None)
    state = torch.load(tmp_path / "ck" / "epoch-0001" / STATE, weights_only=False)
    assert "optim" not in state and "model" in state
    assert "optim" in torch.load(tmp_path / "ck" / "epoch-0000" / STATE, weights_only=False)
    again = train_fold(cfg, DirCheckpoints(str(tmp_path / "ck")), log=lambda s: None)  # resumes from the final one
    np.testing.assert_array_equal(again["val_probs"], first["val_probs"])
