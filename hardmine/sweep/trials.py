"""A cell's retrains: its training set (:func:`trial_training_set`), the cells that share another's
(:func:`shared_cells`), and its models trained over the sweep's seeds and scored on the held-out rows
(:func:`run_cell`) in a Tune trial (:func:`tune_trainable`) or a Ray task (:func:`cell_task_fn`).
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Sequence

import numpy as np
import pyarrow as pa

from hardmine.evaluate.arms import arm_training_set, training_set_info
from hardmine.evaluate.features import assemble, set_indices
from hardmine.evaluate.retrain import MemoryCheckpoints
from hardmine.stats import metrics
from hardmine.sweep.results import pack_runs
from hardmine.sweep.space import BASELINE, NO_ACTION, cell_key, cell_of, is_no_action
from hardmine.vocab import METRICS, THRESHOLD_KINDS


def trial_training_set(
    dataset: pa.Table,
    scores: pa.Table,
    pool: pa.Table | None,
    params: dict,
    *,
    threshold_kind: str = "hardness_quantile",
    select_kw: dict | None = None,
    seed: int = 0,
) -> tuple[pa.Table, dict]:
    """(training set, selection summary) of one cell's ``threshold`` / ``aug_ratio`` / ``issue_action``.

    The baseline cell (``threshold`` None: no action) is the training rows as they are, with an
    empty selection summary.
    """
    from hardmine.select import select

    if threshold_kind not in THRESHOLD_KINDS:
        raise ValueError(f"threshold_kind must be one of {THRESHOLD_KINDS}, got {threshold_kind!r}")
    if is_no_action(params):
        return arm_training_set(dataset, None, None, None, "baseline", aug_ratio=0.0, seed=seed), {"actions": {}}
    kw = dict(select_kw or {})
    kw["hardness_quantile"] = params["threshold"] if threshold_kind == "hardness_quantile" else None
    kw["p_true_max"] = params["threshold"] if threshold_kind == "p_true_max" else None
    selected, summary = select(scores, dataset, issue_action=params["issue_action"], **kw)
    table = arm_training_set(
        dataset, selected, pool, None, "clean+targeted", aug_ratio=float(params["aug_ratio"]), review_as="keep", seed=seed
    )
    return table, summary


def _signature(table: pa.Table) -> str:
    h = hashlib.sha256()
    for col in ("id", "label", "text"):
        for v in table.column(col).to_pylist():
            h.update(f"{v}\0".encode())
    return h.hexdigest()


def shared_cells(
    dataset: pa.Table, scores: pa.Table, cells: Sequence[dict], *, threshold_kind: str, select_kw: dict | None, seed: int = 0
) -> dict[str, str]:
    """``{cell key: key of the cell whose runs it can share}`` for cells that need no retrain of their own.

    Only ``aug_ratio 0`` cells are compared (nothing is sampled, so their training set is the same
    for every seed): one whose rows and labels equal the baseline's (``review`` / ``keep``) shares
    the baseline's runs; one equal to an earlier cell (``drop`` at another threshold) shares that one's.
    """
    base, _ = trial_training_set(dataset, scores, None, NO_ACTION, threshold_kind=threshold_kind, seed=seed)
    by_sig = {_signature(base): BASELINE}
    same: dict[str, str] = {}
    for cell in cells:
        if cell["aug_ratio"] != 0:
            continue
        table, _ = trial_training_set(dataset, scores, None, cell, threshold_kind=threshold_kind, select_kw=select_kw, seed=seed)
        sig, key = _signature(table), cell_key(cell, threshold_kind)
        if sig in by_sig:
            same[key] = by_sig[sig]
        else:
            by_sig[sig] = key
    return same


def run_cell(inputs: dict, cell: dict) -> list[dict]:
    """Train ``cell`` over ``inputs['seeds']`` and score each model on the held-out rows of ``inputs['features']``.

    ``inputs``: dataset / scores / pool (the rows the trials may use), features (shared model inputs
    with the held-out rows as ``test_x`` / ``test_y``), threshold_kind, select_kw, seeds, train
    (``train_fold`` settings), num_labels, ece_bins. Returns one dict per seed with the metrics, the
    training-set counts and the per-row ``pred`` / ``confidence``.
    """
    from hardmine.oof.loop import train_fold

    out = []
    feats = inputs["features"]
    y = feats["shared"]["test_y"]
    for i, seed in enumerate(inputs["seeds"]):
        started = time.time()
        table, ssum = trial_training_set(
            inputs["dataset"], inputs["scores"], inputs["pool"], cell,
            threshold_kind=inputs["threshold_kind"], select_kw=inputs["select_kw"], seed=int(seed),
        )
        info = training_set_info(table)
        tcfg = dict(inputs["train"], seed=int(seed), data=assemble(feats["shared"], set_indices(table, feats)))
        probs = np.asarray(train_fold(tcfg, MemoryCheckpoints(), log=lambda s: None)["val_probs"])
        m = metrics(y, probs, inputs["num_labels"], inputs["ece_bins"])
        out.append({
            "repeat": i, "seed": int(seed), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "ece": m["ece"],
            "train_rows": table.num_rows, "n_augmented": info["n_augmented"], "requested_augmented": info["requested_augmented"],
            "n_augment_sources": int(ssum.get("actions", {}).get("augment", 0)), "n_dropped": info["n_dropped"],
            "n_relabelled": info["n_relabelled"], "started": started, "seconds": time.time() - started,
            "pred": probs.argmax(1).astype(np.int32), "confidence": probs.max(1).astype(np.float32),
        })
    return out


def _sweep_trial(config: dict, inputs: dict | None = None) -> None:
    """Function trainable: one cell over every seed, scored on the validation rows."""
    import torch
    from ray import tune

    torch.set_num_threads(max(1, int(inputs["train"]["threads"])))
    runs = run_cell(inputs, cell_of(config))
    tune.report({
        **{m: float(np.mean([r[m] for r in runs])) for m in METRICS},  # what Tune (random / optuna) optimises
        "runs": json.dumps(pack_runs(runs)),  # one string: every Tune logger stores it as it is
    })


def cell_task_fn():
    """The Ray task that runs :func:`run_cell` (the baseline beside the Tune trials, the confirmation)."""
    import ray

    @ray.remote
    def cell_task(inputs: dict, cell: dict) -> list[dict]:
        import torch

        torch.set_num_threads(max(1, int(inputs["train"]["threads"])))
        return run_cell(inputs, cell)

    return cell_task


def tune_trainable(inputs: dict, sweep):
    """The Tune trainable of the sweep's cells, with the trial's resources."""
    from ray import tune

    return tune.with_resources(
        tune.with_parameters(_sweep_trial, inputs=inputs), {"cpu": sweep.cpus_per_trial, "gpu": sweep.gpus_per_trial}
    )
