"""The retrains on Ray: one model per (arm, seed) training set, trained concurrently with the OOF
folds' resources and the one training loop (:func:`hardmine.oof.loop.train_fold`, whose "val"
split is the held-out split; nothing in the loop selects on it), each scored on the held-out rows
(:func:`retrain_many`).
"""
from __future__ import annotations

import functools
import time
from typing import Callable

import numpy as np
import pyarrow as pa

from hardmine.config import Config
from hardmine.evaluate.arms import arm_train_settings, training_set_info
from hardmine.evaluate.compare import RUNS
from hardmine.evaluate.features import assemble, augmented_texts, build_features, set_indices
from hardmine.oof.settings import oof_max_length, train_settings
from hardmine.stats import metrics


class MemoryCheckpoints:
    """No persistence: a retrain that dies starts over (used inside Tune trials)."""

    def latest(self) -> str | None:
        return None

    def save(self, local_dir: str, metrics: dict) -> None:
        pass


def _retrain_loop(config: dict) -> None:
    """``train_loop_per_worker`` of a retrain's TorchTrainer."""
    import ray

    from hardmine.oof.loop import TrainCheckpoints, train_fold
    from hardmine.oof.resources import ElasticThreads

    cfg = dict(config)
    shared = ray.get(cfg.pop("shared_ref"))
    cfg["data"] = assemble(shared, cfg.pop("run"))
    train_fold(cfg, TrainCheckpoints(), log=lambda s: None, threads=ElasticThreads.from_config(cfg))


def _fit_retrain_trainer(cfg: dict, storage_path: str, run_name: str, cpus: float, gpus: float, max_failures: int) -> tuple[np.ndarray, float]:
    """One retrain as its own TorchTrainer run (called in a driver thread): (test probs, seconds)."""
    from hardmine.oof.loop import read_checkpoint
    from hardmine.oof.runner import fit_trainer

    started = time.time()
    result = fit_trainer(
        _retrain_loop, cfg, storage_path=storage_path, run_name=run_name, cpus=cpus, gpus=gpus,
        max_failures=max_failures, num_to_keep=1,
    )
    with result.checkpoint.as_directory() as d:
        return np.asarray(read_checkpoint(d)["epoch_probs"][-1]), time.time() - started


def _fit_task_fn():
    import ray

    @ray.remote
    def fit_task(cfg: dict, shared: dict, ckpt_uri: str) -> np.ndarray:
        import torch

        from hardmine.oof.loop import DirCheckpoints, train_fold
        from hardmine.oof.resources import ElasticThreads

        torch.set_num_threads(max(1, int(cfg.get("threads") or 1)))
        cfg = dict(cfg)
        cfg.pop("shared_ref", None)
        cfg["data"] = assemble(shared, cfg.pop("run"))
        ckpts = DirCheckpoints(ckpt_uri)
        return np.asarray(train_fold(cfg, ckpts, log=lambda s: None, threads=ElasticThreads.from_config(cfg))["val_probs"])

    return fit_task


def retrain_many(
    cfg: Config,
    store,
    training_sets: dict[tuple[str, int], pa.Table],
    dataset: pa.Table,
    test: pa.Table,
    num_labels: int,
    *,
    fingerprint: str,
    log: Callable[[str], None] = print,
) -> pa.Table:
    """Train one model per ``(arm, seed) -> training set`` concurrently; score each on ``test``.

    Frozen heads run as plain Ray tasks (or TorchTrainer runs with ``oof.frozen_runner: trainer``),
    finetune models as TorchTrainer runs launched from driver threads (as many at once as the
    cluster holds, or ``evaluate.max_concurrent``), all with the OOF folds' resources. Returns the runs table (:data:`RUNS`),
    which keeps each run's held-out predictions (``pred``, ``confidence``) for :func:`compare`.
    """
    import ray

    from hardmine.oof.resources import check_resources, concurrent_runs, fold_cpus, fold_threads, in_threads
    from hardmine.runtime import connect

    o, e = cfg.oof, cfg.evaluate
    connect(cfg, log)
    cpus = fold_cpus(o.cpus_per_fold, o.folds)  # each run gets an OOF fold's share
    backbone = cfg.retrain_backbone
    gpus = o.gpus_per_fold if backbone != "tfidf" else 0.0
    check_resources(cpus, gpus)
    keys = list(training_sets)
    features = build_features(cfg, store, dataset, test, augmented_texts([training_sets[k] for k in keys]), log)
    shared_ref = ray.put(features["shared"])
    base = dict(
        train_settings(cfg, num_labels, threads=fold_threads(cpus), epochs=e.epochs, max_length=oof_max_length(store)), cpus=cpus, gpus=gpus
    )
    use_trainer = backbone == "finetune" or (backbone == "frozen" and o.frozen_runner == "trainer" and o.head != "logreg")

    def run_config(key: tuple) -> tuple[str, dict]:
        arm, seed = key
        slug = f"{arm.replace('+', '-')}-seed{seed}"
        return slug, dict(base, **arm_train_settings(cfg, arm), seed=int(seed), run=set_indices(training_sets[key], features),
                          shared_ref=shared_ref)

    if use_trainer:  # TorchTrainer runs from driver threads (see hardmine.oof.runner.fit_trainer)
        def fit(slug: str, rcfg: dict) -> tuple[np.ndarray, float]:
            return _fit_retrain_trainer(rcfg, store.uri_of("_train"), f"eval-{fingerprint}-{slug}", cpus, gpus, o.max_failures)

        limit = e.max_concurrent or concurrent_runs(cpus, gpus)
    else:
        fit_task = _fit_task_fn().options(num_cpus=cpus, num_gpus=gpus or None, max_retries=o.max_failures)

        def fit(slug: str, rcfg: dict) -> tuple[np.ndarray, float]:
            started = time.time()
            probs = ray.get(fit_task.remote(rcfg, shared_ref, store.uri_of(f"_checkpoints/eval-{fingerprint}/{slug}")))
            return probs, time.time() - started

        limit = e.max_concurrent or len(keys)  # Ray's scheduler queues the tasks beyond what fits
    done = dict(zip(keys, in_threads([functools.partial(fit, *run_config(key)) for key in keys], limit, progress="evaluate retrains")))
    y_test = features["shared"]["test_y"]
    rows = []
    for key in keys:
        probs, seconds = done[key]
        info = training_set_info(training_sets[key])
        m = metrics(y_test, probs, num_labels, e.ece_bins)
        rows.append(
            {
                "arm": key[0], "seed": int(key[1]), "train_rows": training_sets[key].num_rows,
                "n_augmented": info["n_augmented"], "requested_augmented": info["requested_augmented"],
                "n_dropped": info["n_dropped"], "n_relabelled": info["n_relabelled"],
                "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "ece": m["ece"],
                "per_class_f1": m["per_class_f1"], "seconds": seconds,
                "pred": np.asarray(probs).argmax(1).astype(np.int32), "confidence": np.asarray(probs).max(1).astype(np.float32),
            }
        )
    return pa.Table.from_pylist(rows, schema=RUNS)
