"""Ray Tune sweep: hardness threshold x augmentation ratio x label-issue action.

Each trial re-selects the hard set with its threshold and issue action (:func:`hardmine.select.select`
on ``scores.parquet``), takes the augmented variants of *its* augment set from a pool generated
once at the largest budget (trials subsample it, they never regenerate), retrains once with the
OOF backbone (in the trial's process, with the trial's resources) and scores the held-out split.

How a trial treats label issues (``issue_action``): ``drop`` removes them, ``relabel`` relabels the
confident ones (the rest go to review), ``review`` leaves them in training untouched (no human has
reviewed yet) but never augments them, ``keep`` treats them as ordinary rows (they may be augmented).

Resume: the experiment lives at ``<run>/sweep/tune/sweep-<fingerprint>``; re-running with the same
inputs restores it with ``Tuner.restore`` and runs only the trials that had not finished.
"""
from __future__ import annotations

import io
import json
import time
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from hardmine.config import Config
from hardmine.oof.settings import oof_max_length
from hardmine.evaluate import (
    MemoryCheckpoints,
    _kept_pool,
    arm_training_set,
    assemble,
    build_features,
    interval,
    metrics,
    set_indices,
    train_settings,
    training_set_info,
)

#: one row per trial: ``sweep/results.parquet`` and ``sweep/results.csv``.
RESULTS = pa.schema(
    [
        pa.field("threshold_kind", pa.string()),
        pa.field("threshold", pa.float64()),
        pa.field("aug_ratio", pa.float64()),
        pa.field("issue_action", pa.string()),
        pa.field("repeat", pa.int32()),
        pa.field("seed", pa.int64()),
        pa.field("accuracy", pa.float64()),
        pa.field("macro_f1", pa.float64()),
        pa.field("ece", pa.float64()),
        pa.field("train_rows", pa.int64()),
        pa.field("n_augmented", pa.int64()),
        pa.field("requested_augmented", pa.int64()),
        pa.field("n_augment_sources", pa.int64()),
        pa.field("n_dropped", pa.int64()),
        pa.field("n_relabelled", pa.int64()),
        pa.field("started", pa.float64()),
        pa.field("seconds", pa.float64()),
        pa.field("trial_id", pa.string()),
        pa.field("status", pa.string()),
        pa.field("error", pa.string()),
    ]
)
_KEYS = ("threshold", "aug_ratio", "issue_action")


# ============================================================================ pure part


def select_kwargs(cfg: Config, labels: Sequence[str]) -> dict[str, Any]:
    """The select stage's settings other than the swept ones (threshold, issue_action)."""
    s = cfg.select
    classes = None
    if s.classes is not None:
        unknown = [c for c in s.classes if c not in labels]
        if unknown:
            raise ValueError(f"select.classes has unknown class names {unknown}: choose from {list(labels)}")
        classes = [list(labels).index(c) for c in s.classes]
    return {
        "max_confidence": s.max_confidence, "min_length": s.min_length, "classes": classes,
        "max_per_class": s.max_per_class, "relabel_min_confidence": s.relabel_min_confidence, "seed": cfg.seed,
    }


def trial_training_set(
    dataset: pa.Table,
    scores: pa.Table,
    pool: pa.Table,
    params: dict,
    *,
    threshold_kind: str = "hardness_quantile",
    select_kw: dict | None = None,
    seed: int = 0,
) -> tuple[pa.Table, dict]:
    """(training set, selection summary) of one trial's ``threshold`` / ``aug_ratio`` / ``issue_action``."""
    from hardmine.select import select

    if threshold_kind not in ("hardness_quantile", "p_true_max"):
        raise ValueError(f"threshold_kind must be 'hardness_quantile' or 'p_true_max', got {threshold_kind!r}")
    kw = dict(select_kw or {})
    kw["hardness_quantile"] = params["threshold"] if threshold_kind == "hardness_quantile" else None
    kw["p_true_max"] = params["threshold"] if threshold_kind == "p_true_max" else None
    selected, summary = select(scores, dataset, issue_action=params["issue_action"], **kw)
    table = arm_training_set(
        dataset, selected, pool, None, "clean+targeted", aug_ratio=float(params["aug_ratio"]), review_as="keep", seed=seed
    )
    return table, summary


def param_space(sweep) -> tuple[dict, int]:
    """(Tune param_space, num_samples): a grid (x ``num_samples`` repeats with their own seeds) or choices."""
    from ray import tune

    if sweep.search == "grid":
        return (
            {
                "threshold": tune.grid_search(list(sweep.thresholds)),
                "aug_ratio": tune.grid_search(list(sweep.aug_ratios)),
                "issue_action": tune.grid_search(list(sweep.issue_actions)),
                "repeat": tune.grid_search(list(range(sweep.num_samples))),
            },
            1,
        )
    return (
        {
            "threshold": tune.choice(list(sweep.thresholds)),
            "aug_ratio": tune.choice(list(sweep.aug_ratios)),
            "issue_action": tune.choice(list(sweep.issue_actions)),
            "repeat": 0,
        },
        sweep.num_samples,
    )


def best_config(results: pa.Table, metric: str = "accuracy") -> dict[str, Any]:
    """Configurations ranked by mean ``metric`` over their finished trials (repeats), best first."""
    if metric not in ("accuracy", "macro_f1"):
        raise ValueError(f"metric must be 'accuracy' or 'macro_f1', got {metric!r}")
    rows = [r for r in results.to_pylist() if r["status"] == "done"]
    counts = {s: sum(1 for r in results.to_pylist() if r["status"] == s) for s in ("done", "error", "incomplete")}
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in _KEYS), []).append(r)
    configs = []
    for key, rs in groups.items():
        configs.append(
            {
                **dict(zip(_KEYS, key)),
                "threshold_kind": rs[0]["threshold_kind"],
                "n_trials": len(rs),
                "accuracy": interval([r["accuracy"] for r in rs]),
                "macro_f1": interval([r["macro_f1"] for r in rs]),
                "train_rows": float(np.mean([r["train_rows"] for r in rs])),
                "n_augmented": float(np.mean([r["n_augmented"] for r in rs])),
            }
        )
    configs.sort(key=lambda c: (-c[metric]["mean"], c["aug_ratio"], c["threshold"], c["issue_action"]))
    return {
        "metric": metric,
        "best": configs[0] if configs else None,
        "configs": configs,
        "trials": counts,
        "note": "chosen on the held-out split itself: the best configuration's score is optimistic (winner's curse); "
        "confirm it with `hardmine evaluate` or on another split",
    }


def format_results(best: dict, top: int = 10) -> str:
    """The best configurations as a table (percent, mean [95% CI] over repeats)."""
    m = best["metric"]
    lines = [f"{'threshold':>9} {'aug_ratio':>9} {'issue_action':<12} {'trials':>6} {'train':>7} {'aug':>6}  {m + ' % [95% CI]'}"]
    for c in best["configs"][:top]:
        iv = c[m]
        lines.append(
            f"{c['threshold']:>9g} {c['aug_ratio']:>9g} {c['issue_action']:<12} {c['n_trials']:>6} {c['train_rows']:>7.0f} "
            f"{c['n_augmented']:>6.0f}  {100 * iv['mean']:.2f} [{100 * iv['lo']:.2f}, {100 * iv['hi']:.2f}]"
        )
    t = best["trials"]
    lines.append(f"trials: {t['done']} finished, {t['error']} failed, {t['incomplete']} not finished")
    if best["best"]:
        b = best["best"]
        lines.append(
            f"best: {b['threshold_kind']}={b['threshold']:g} aug_ratio={b['aug_ratio']:g} issue_action={b['issue_action']} "
            f"-> {m} {100 * b[m]['mean']:.2f}%"
        )
    return "\n".join(lines)


# ============================================================================ the trial (runs in a Tune actor)


def _sweep_trial(config: dict, inputs: dict | None = None) -> None:
    """Function trainable: select, build the training set, retrain once, report held-out metrics."""
    import torch
    from ray import tune

    from hardmine.oof.loop import train_fold

    started = time.time()
    seed = int(inputs["seed"]) * 1000 + int(config.get("repeat", 0))
    torch.set_num_threads(inputs["train"]["threads"])
    table, ssum = trial_training_set(
        inputs["dataset"], inputs["scores"], inputs["pool"], config,
        threshold_kind=inputs["threshold_kind"], select_kw=inputs["select_kw"], seed=seed,
    )
    info = training_set_info(table)
    feats = inputs["features"]
    run = set_indices(table, feats)
    tcfg = dict(inputs["train"], seed=seed, data=assemble(feats["shared"], run))
    probs = np.asarray(train_fold(tcfg, MemoryCheckpoints(), log=lambda s: None)["val_probs"])
    m = metrics(feats["shared"]["test_y"], probs, inputs["num_labels"], inputs["ece_bins"])
    tune.report(
        {
            "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "ece": m["ece"], "seed": seed,
            "train_rows": table.num_rows, "n_augmented": info["n_augmented"],
            "requested_augmented": info["requested_augmented"], "n_augment_sources": ssum["actions"]["augment"],
            "n_dropped": info["n_dropped"], "n_relabelled": info["n_relabelled"],
            "started": started, "seconds": time.time() - started,
        }
    )


# ============================================================================ Ray part


def sweep_fingerprint(cfg: Config, store, pool: pa.Table) -> str:
    """Swept space + training settings + upstream stage fingerprints + the pool's rows."""
    import hashlib

    from hardmine.store import fingerprint_bytes

    d = cfg.model_dump(mode="json")
    sweep = {k: v for k, v in d["sweep"].items() if k not in ("enabled",)}
    stages = store.manifest().get("stages", {})
    upstream = sorted((k, v.get("fingerprint")) for k, v in stages.items() if k in ("prepare", "oof", "holdout", "score"))
    h = hashlib.sha256()
    for i, t in zip(pool.column("id").to_pylist(), pool.column("text").to_pylist()):
        h.update(f"{i}\0{t}\0".encode())
    return fingerprint_bytes(
        json.dumps(sweep, sort_keys=True), cfg.section_hash("select", "oof", "seed"),
        json.dumps({"epochs": d["evaluate"]["epochs"], "ece_bins": d["evaluate"]["ece_bins"]}), repr(upstream), h.hexdigest(),
    )


def _search_alg(sweep, seed: int):
    if sweep.search == "grid":
        return None
    if sweep.search == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed)
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ValueError("sweep.search: optuna needs the optuna package (pip install optuna); or use grid or random") from None
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=seed)


def results_table(grid, threshold_kind: str) -> pa.Table:
    """One row per trial of a Tune ResultGrid (finished, failed, or not finished)."""
    rows = []
    for r in grid:
        c, m = r.config or {}, r.metrics or {}
        status = "error" if r.error is not None else ("done" if "accuracy" in m else "incomplete")
        trial_id = m.get("trial_id") or (str(r.path).rstrip("/").rsplit("/", 1)[-1] if r.path else None)
        row = {
            "threshold_kind": threshold_kind, "threshold": c.get("threshold"), "aug_ratio": c.get("aug_ratio"),
            "issue_action": c.get("issue_action"), "repeat": c.get("repeat", 0), "trial_id": trial_id,
            "status": status, "error": None if r.error is None else f"{type(r.error).__name__}: {r.error}"[:2000],
        }
        for f in RESULTS.names:
            if f not in row:
                row[f] = m.get(f) if status == "done" else None
        rows.append(row)
    rows.sort(key=lambda r: (r["threshold"] or 0, r["aug_ratio"] or 0, r["issue_action"] or "", r["repeat"] or 0))
    return pa.Table.from_pylist(rows, schema=RESULTS)


def run_sweep(
    cfg: Config,
    store,
    pool_table: pa.Table,
    log: Callable[[str], None] = print,
    *,
    storage_path: str | None = None,
    resume: bool = True,
    callbacks: list | None = None,
    fingerprint: str | None = None,
    out: str = "sweep",
) -> pa.Table:
    """Run (or resume) the sweep; write ``<out>/results.parquet``, ``results.csv``, ``best.json``.

    ``pool_table`` holds augmented variants (AUGMENTED schema; kept rows are used) generated once
    from the most permissive selection at the largest ``aug_ratio``. ``callbacks`` are Tune
    callbacks of a new experiment (a restored one keeps those it was started with).
    Returns the results table (one row per trial).
    """
    import pyarrow.csv as pacsv
    from ray import tune
    from ray.tune import FailureConfig, RunConfig, TuneConfig, Tuner

    from hardmine.runtime import connect
    from hardmine.store import split_uri

    s = cfg.sweep
    if not store.exists("test.parquet"):
        raise ValueError("the sweep scores trials on a held-out split: set data.test_path, or data.test_size (e.g. 0.2)")
    connect(cfg, log)
    res = __import__("ray").cluster_resources()
    if res.get("CPU", 0) < s.cpus_per_trial or res.get("GPU", 0) < s.gpus_per_trial:
        raise ValueError(
            f"a trial needs {s.cpus_per_trial} CPUs and {s.gpus_per_trial} GPUs but the cluster has "
            f"{res.get('CPU', 0)} CPUs and {res.get('GPU', 0)} GPUs: lower sweep.cpus_per_trial / sweep.gpus_per_trial"
        )
    dataset = store.read_table("dataset.parquet").select(["id", "text", "label"])
    test = store.read_table("test.parquet")
    scores = store.read_table("scores.parquet")
    labels = store.manifest()["labels"]
    pool = _kept_pool(pool_table, "sweep")
    fingerprint = fingerprint or sweep_fingerprint(cfg, store, pool)
    features = build_features(cfg, store, dataset, test, pool.column("text").to_pylist(), log)
    inputs = {
        "dataset": dataset, "scores": scores, "pool": pool, "features": features,
        "threshold_kind": s.threshold, "select_kw": select_kwargs(cfg, labels), "seed": cfg.seed,
        "train": train_settings(cfg, len(labels), threads=int(s.cpus_per_trial), epochs=cfg.evaluate.epochs, max_length=oof_max_length(store)),
        "num_labels": len(labels), "ece_bins": cfg.evaluate.ece_bins,
    }
    trainable = tune.with_resources(
        tune.with_parameters(_sweep_trial, inputs=inputs), {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial}
    )
    storage = storage_path or store.uri_of(f"{out}/tune")
    name = f"sweep-{fingerprint}"
    exp = storage.rstrip("/") + "/" + name
    t0 = time.time()
    if resume and Tuner.can_restore(exp):
        log(f"[sweep] resuming the interrupted sweep at {exp}: only unfinished trials run")
        tuner = Tuner.restore(exp, trainable, resume_errored=True)
    else:
        fs, path = split_uri(exp)
        if fs.get_file_info(path).type.name != "NotFound":
            fs.delete_dir(path)
        space, num_samples = param_space(s)
        tuner = Tuner(
            trainable,
            param_space=space,
            tune_config=TuneConfig(
                metric=s.metric, mode="max", search_alg=_search_alg(s, cfg.seed), num_samples=num_samples,
                max_concurrent_trials=s.max_concurrent_trials, reuse_actors=True,
            ),
            run_config=RunConfig(
                name=name, storage_path=storage, callbacks=callbacks, verbose=0,
                failure_config=FailureConfig(max_failures=cfg.oof.max_failures),
            ),
        )
    grid = tuner.fit()
    table = results_table(grid, s.threshold)
    best = best_config(table, s.metric)
    best["seconds"] = time.time() - t0
    best["experiment"] = exp
    best["trials"]["expected"] = expected_trials(s)
    store.write_table(f"{out}/results.parquet", table)
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    store.write_bytes(f"{out}/results.csv", buf.getvalue())
    store.write_json(f"{out}/best.json", best)
    log(format_results(best))
    missing = expected_trials(s) - best["trials"]["done"]
    if missing > 0:
        log(f"[sweep] {missing} of {expected_trials(s)} trials did not finish (interrupted or failed): re-run to resume them")
    return table


def expected_trials(sweep) -> int:
    """Trials in a complete sweep: the grid times its repeats, or ``num_samples``."""
    if sweep.search == "grid":
        return len(sweep.thresholds) * len(sweep.aug_ratios) * len(sweep.issue_actions) * sweep.num_samples
    return sweep.num_samples
