"""The sweep stage: run (or resume) the Tune experiment over the cells and the baseline beside it,
choose on the validation split, confirm the choice on the test split once (:func:`run_sweep`).
"""
from __future__ import annotations

import hashlib
import io
import json
import time
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.config import Config
from hardmine.evaluate.arms import kept_pool
from hardmine.evaluate.compare import heldout_labels
from hardmine.evaluate.features import heldout_inputs, training_features, with_heldout
from hardmine.oof.settings import oof_max_length, train_settings
from hardmine.select import select_kwargs
from hardmine.summaries import SweepCell, SweepConfirmation
from hardmine.sweep.choice import confirmation_record, summarize, sweep_best
from hardmine.sweep.format import format_results
from hardmine.sweep.results import RESULTS, pack_runs, results_table, unpack_runs
from hardmine.sweep.space import BASELINE, CELL_KEYS, NO_ACTION, cell_key, cell_name, grid_cells, is_no_action, param_space, search_alg
from hardmine.sweep.trials import cell_task_fn, shared_cells, tune_trainable
from hardmine.sweep.validation import validation_split

#: the confirmation's retrains on the full training split, scored on the test split: ``sweep/confirmation.parquet``.
CONFIRMATION = pa.schema(
    [pa.field("arm", pa.string())] + [RESULTS.field(n) for n in (
        "threshold_kind", "threshold", "aug_ratio", "issue_action", "repeat", "seed", "accuracy", "macro_f1", "ece",
        "train_rows", "n_augmented", "requested_augmented", "n_augment_sources", "n_dropped", "n_relabelled",
        "seconds", "pred", "confidence")]
)
#: the validation rows, in the order of ``results.pred``: ``sweep/validation.parquet``.
VALIDATION = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("label", pa.int32(), nullable=False)])


def sweep_fingerprint(cfg: Config, store, pool: pa.Table) -> str:
    """Swept space + training settings + upstream stage fingerprints + the pool's rows."""
    from hardmine.pipeline.stages import stages_through
    from hardmine.store import fingerprint_bytes

    d = cfg.model_dump(mode="json")
    sweep = {k: v for k, v in d["sweep"].items() if k not in ("enabled",)}
    stages = store.manifest().get("stages", {})
    upstream = sorted((k, v.get("fingerprint")) for k, v in stages.items() if k in stages_through("score"))
    h = hashlib.sha256()
    for i, t in zip(pool.column("id").to_pylist(), pool.column("text").to_pylist()):
        h.update(f"{i}\0{t}\0".encode())
    e = d["evaluate"]
    return fingerprint_bytes(
        json.dumps(sweep, sort_keys=True), cfg.section_hash("select", "oof", "train", "seed"),
        json.dumps({k: e[k] for k in ("epochs", "ece_bins", "bootstrap", "confidence", "backbone")}, sort_keys=True),
        repr(upstream), h.hexdigest(),
    )


def _take(x, idx: Sequence[int]):
    return [x[i] for i in idx] if isinstance(x, list) else np.asarray(x)[np.asarray(idx, dtype=np.int64)]


def _runs_table(arm_runs: dict[str, tuple[dict, list[dict]]], threshold_kind: str) -> pa.Table:
    rows = []
    for arm, (cell, runs) in arm_runs.items():
        for r in runs:
            rows.append({"arm": arm, "threshold_kind": threshold_kind, **{k: cell[k] for k in CELL_KEYS},
                         **{k: r.get(k) for k in CONFIRMATION.names if k in r}})
    return pa.Table.from_pylist(rows, schema=CONFIRMATION)


def confirm_on_test(cfg: Config, store, chosen: SweepCell, *, common: dict, features: dict, dataset: pa.Table,
                    scores: pa.Table, pool: pa.Table, log: Callable[[str], None] = print) -> tuple[SweepConfirmation, pa.Table]:
    """Retrain the chosen cell and the baseline on the full training split; score them once on the test split.

    The only reader of ``test.parquet`` and ``test_truth.parquet`` in the sweep; called after the
    choice is fixed. Returns (the confirmation record, the runs: :data:`CONFIRMATION`).
    """
    import ray

    s = cfg.sweep
    test = store.read_table("test.parquet")
    truth = store.read_table("test_truth.parquet") if store.exists("test_truth.parquet") else None
    heldout, truth_note = heldout_labels(test, truth)
    y = heldout.column("label").to_numpy()
    true_col = heldout.column("true_label")
    y_true = true_col.to_numpy(zero_copy_only=False) if true_col.null_count == 0 else None
    inputs = {**common, "dataset": dataset, "scores": scores, "pool": pool,
              "features": with_heldout(features, heldout_inputs(cfg, store, test, log), y)}
    cell = {k: chosen[k] for k in CELL_KEYS}
    arms = {BASELINE: NO_ACTION} if chosen["no_action"] else {BASELINE: NO_ACTION, "chosen": cell}
    log(f"[sweep] confirming on the test split ({test.num_rows} rows): "
        f"{' and '.join(cell_name({**c, 'threshold_kind': cfg.sweep.threshold, 'no_action': is_no_action(c)}) for c in arms.values())} "
        f"retrained on all {dataset.num_rows} training rows over {len(common['seeds'])} seeds")
    task = cell_task_fn().options(num_cpus=s.cpus_per_trial, num_gpus=s.gpus_per_trial or None, max_retries=cfg.oof.max_failures)
    ref = ray.put(inputs)
    futures = {a: task.remote(ref, c) for a, c in arms.items()}
    got = {a: (arms[a], ray.get(f)) for a, f in futures.items()}
    runs = _runs_table(got, s.threshold)
    e = cfg.evaluate
    rec = confirmation_record(
        runs, y, cell=chosen, metric=s.metric, train_rows=dataset.num_rows, y_true=y_true,
        num_labels=common["num_labels"], resamples=e.bootstrap, confidence=e.confidence, seed=cfg.seed, ece_bins=e.ece_bins,
    )
    if truth_note:
        rec["truth"]["note"] = truth_note
    return rec, runs


def _read_json(fs, path: str):
    import pyarrow.fs as pafs

    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return json.loads(f.read())


def _write_json(fs, path: str, obj) -> None:
    from hardmine.store import json_default

    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(json.dumps(obj, default=json_default).encode())


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
    """Run (or resume) the sweep, choose on validation, confirm on test once.

    Writes ``<out>/results.parquet`` (+ ``results.csv``), ``validation.parquet``, ``best.json``
    (:class:`hardmine.summaries.SweepBest`), ``confirmation.parquet`` and ``heatmap.png``.
    ``pool_table`` holds augmented variants (AUGMENTED schema; kept rows are used) generated once
    from the most permissive selection at the largest ``aug_ratio``. ``callbacks`` are Tune
    callbacks of a new experiment (a restored one keeps those it was started with).
    Returns the results table (one row per cell and seed, on the validation split).
    """
    import pyarrow.csv as pacsv
    import ray
    from ray.tune import FailureConfig, RunConfig, TuneConfig, Tuner

    from hardmine.runtime import connect, require_fit
    from hardmine.store import split_uri

    s = cfg.sweep
    if not store.exists("test.parquet"):
        raise ValueError("the sweep confirms its choice on a held-out split: set data.test_path, or data.test_size (e.g. 0.2)")
    t0 = time.time()
    reads_from = len(store.reads)
    labels = store.manifest()["labels"]
    dataset = store.read_table("dataset.parquet").select(["id", "text", "label"])
    train_rows, val_rows = validation_split(dataset, s.validation_size, cfg.seed, labels)  # before Ray, before any training
    connect(cfg, log)
    # one node must hold a trial; on an autoscaling cluster that has no such node yet, wait for it (logged)
    require_fit(s.cpus_per_trial, s.gpus_per_trial, what="a sweep trial",
                fix="lower sweep.cpus_per_trial / sweep.gpus_per_trial", error=ValueError, log=log)
    scores = store.read_table("scores.parquet")
    pool = kept_pool(pool_table, "sweep")
    fingerprint = fingerprint or sweep_fingerprint(cfg, store, pool)
    val_ids = val_rows.column("id")
    trial_pool = pool.filter(pc.invert(pc.is_in(pool.column("source_id"), value_set=val_ids)))
    trial_scores = scores.filter(pc.invert(pc.is_in(scores.column("id").cast(pa.string()), value_set=val_ids)))
    features = training_features(cfg, store, dataset, pool.column("text").to_pylist(), log)
    val_y = val_rows.column("label").to_numpy().astype(np.int64)
    val_x = _take(features["shared"]["orig_x"], [features["orig_pos"][i] for i in val_ids.to_pylist()])
    seeds = [cfg.seed * 1000 + i for i in range(s.seeds)]
    select_kw = select_kwargs(cfg, labels)
    common = {
        "threshold_kind": s.threshold, "select_kw": select_kw, "seeds": seeds, "num_labels": len(labels),
        "ece_bins": cfg.evaluate.ece_bins,
        "train": train_settings(cfg, len(labels), threads=int(s.cpus_per_trial), epochs=cfg.evaluate.epochs, max_length=oof_max_length(store)),
    }
    inputs = {**common, "dataset": train_rows, "scores": trial_scores, "pool": trial_pool,
              "features": with_heldout(features, val_x, val_y)}
    cells, same_as = None, {}
    to_train: list[dict] | None = None
    if s.search == "grid":
        cells = grid_cells(s)
        same_as = shared_cells(train_rows, trial_scores, cells, threshold_kind=s.threshold, select_kw=select_kw, seed=seeds[0])
        to_train = [c for c in cells if cell_key(c, s.threshold) not in same_as]
    per_class = np.bincount(val_y, minlength=len(labels))
    log(f"[sweep] validation split: {val_rows.num_rows} of {dataset.num_rows} training rows "
        f"(sweep.validation_size {s.validation_size:g}, at least {int(per_class[per_class > 0].min())} per class); trials "
        f"train on the other {train_rows.num_rows}, without the {pool.num_rows - trial_pool.num_rows} pool variants of "
        f"validation rows; {len(seeds)} seeds per cell"
        + (f"; {len(same_as)} of {len(cells)} cells share another cell's training set and are not retrained" if same_as else ""))

    storage = storage_path or store.uri_of(f"{out}/tune")
    name = f"sweep-{fingerprint}"
    exp = storage.rstrip("/") + "/" + name
    fs, exp_path = split_uri(exp)
    restoring = resume and Tuner.can_restore(exp)
    if not restoring and fs.get_file_info(exp_path).type.name != "NotFound":
        fs.delete_dir(exp_path)
    baseline_cache, confirm_cache = f"{exp_path}/hardmine-baseline.json", f"{exp_path}/hardmine-confirmation.json"
    cached = _read_json(fs, baseline_cache) if resume else None
    task = cell_task_fn().options(num_cpus=s.cpus_per_trial, num_gpus=s.gpus_per_trial or None, max_retries=cfg.oof.max_failures)
    base_future = None
    if cached is None:  # the baseline runs beside the Tune trials (it is in no search space)
        base_future = task.remote(ray.put(inputs), NO_ACTION)
    grid: Any = []
    if to_train is None or to_train:
        trainable = tune_trainable(inputs, s)
        if restoring:
            log(f"[sweep] resuming the interrupted sweep at {exp}: only unfinished cells run")
            tuner = Tuner.restore(exp, trainable, resume_errored=True)
        else:
            space, num_samples = param_space(s, to_train)
            tuner = Tuner(
                trainable,
                param_space=space,
                tune_config=TuneConfig(
                    metric=s.metric, mode="max", search_alg=search_alg(s, cfg.seed), num_samples=num_samples,
                    max_concurrent_trials=s.max_concurrent_trials, reuse_actors=True,
                ),
                run_config=RunConfig(
                    name=name, storage_path=storage, callbacks=callbacks, verbose=0,
                    failure_config=FailureConfig(max_failures=cfg.oof.max_failures),
                ),
            )
        from hardmine.console import captured

        with captured("ray tune"):  # Tune's banner and trial tables: the run's log file
            grid = tuner.fit()
    base_runs, base_error = (unpack_runs(cached), None) if cached is not None else (None, None)
    if base_future is not None:
        try:
            base_runs = ray.get(base_future)
            _write_json(fs, baseline_cache, pack_runs(base_runs))
        except Exception as e:  # noqa: BLE001 - recorded as the baseline's error, like a failed trial
            base_error = f"{type(e).__name__}: {e}"[:2000]
    table = results_table(grid, s.threshold, seeds, baseline=(base_runs, base_error), cells=cells, same_as=same_as)
    e = cfg.evaluate
    summary = summarize(table, val_y, metric=s.metric, num_labels=len(labels), resamples=e.bootstrap,
                        confidence=e.confidence, seed=cfg.seed, ece_bins=e.ece_bins)
    # ---- the choice is fixed: nothing above read the test split (recorded for the leakage audit)
    statuses: dict[str, int] = {"done": 0, "error": 0, "incomplete": 0}
    for r in grid:
        m = r.metrics or {}
        statuses["error" if r.error is not None else "done" if "runs" in m else "incomplete"] += 1
    expected = len(to_train) if to_train is not None else s.num_samples
    trials = {**statuses, "expected": expected, "shared": len(same_as), "baseline_done": int(base_runs is not None)}
    selection = {
        "split": "validation", "rows": val_rows.num_rows, "validation_size": s.validation_size, "seed": cfg.seed,
        "train_rows": train_rows.num_rows, "seeds": seeds,
        "per_class": {labels[c]: int(n) for c, n in enumerate(per_class) if n},
        "pool_rows_excluded": pool.num_rows - trial_pool.num_rows,
        "reads": sorted(set(store.reads[reads_from:])),
    }
    store.write_table(f"{out}/results.parquet", table)
    buf = io.BytesIO()
    pacsv.write_csv(table.drop_columns(["pred", "confidence"]), buf)
    store.write_bytes(f"{out}/results.csv", buf.getvalue())
    store.write_table(f"{out}/validation.parquet", pa.table({"id": val_ids.cast(pa.string()), "label": pa.array(val_y, pa.int32())}, schema=VALIDATION))
    complete = statuses["done"] == expected and base_runs is not None
    confirmation, conf_runs = None, _runs_table({}, s.threshold)
    chosen = summary["best"]
    if chosen is not None and complete:
        cached_conf = _read_json(fs, confirm_cache)
        if cached_conf is not None and cached_conf.get("key") == chosen["key"]:
            log("[sweep] the test split already confirmed this choice: the recorded confirmation is reused")
            confirmation = cached_conf["record"]
            conf_runs = _runs_table({a: ({k: c[k] for k in CELL_KEYS}, unpack_runs(r)) for a, (c, r) in cached_conf["runs"].items()},
                                    s.threshold)
        else:
            confirmation, conf_runs = confirm_on_test(cfg, store, chosen, common=common, features=features, dataset=dataset,
                                                      scores=scores, pool=pool, log=log)
            packed = {}
            for arm in dict.fromkeys(conf_runs.column("arm").to_pylist()):
                rows = [r for r in conf_runs.to_pylist() if r["arm"] == arm]
                packed[arm] = ({k: rows[0][k] for k in CELL_KEYS},
                               pack_runs([{**r, "pred": np.asarray(r["pred"]), "confidence": np.asarray(r["confidence"])} for r in rows]))
            _write_json(fs, confirm_cache, {"key": chosen["key"], "record": confirmation, "runs": packed})
    best = sweep_best(summary, metric=s.metric, selection=selection, confirmation=confirmation, trials=trials)
    best["seconds"] = time.time() - t0
    best["experiment"] = exp
    store.write_json(f"{out}/best.json", best)
    store.write_table(f"{out}/confirmation.parquet", conf_runs)
    if best["configs"]:
        from hardmine.report import sweep_heatmap_png

        store.write_bytes(f"{out}/heatmap.png", sweep_heatmap_png(best))
    log(format_results(best))
    missing = expected - statuses["done"]
    if missing > 0 or base_runs is None:
        what = f"{missing} of {expected} cells" + (" and the baseline" if base_runs is None else "") if missing > 0 else "the baseline"
        log(f"[sweep] {what} did not finish (interrupted or failed): re-run to resume; the choice is confirmed on the "
            "test split once the sweep is complete")
    return table
