"""The sweep stage: Ray Tune over threshold x aug_ratio x issue_action (:mod:`hardmine.sweep`), the trials
subsampling one augmentation pool (the ``sweep_pool`` record in the manifest, under the sweep's fingerprint)."""
from __future__ import annotations

from typing import Any

from hardmine.augment.format import format_funnel_short
from hardmine.pipeline.augment import augment_to_store
from hardmine.pipeline.run import Context, run_declared

POOL, SELECTED_POOL = "sweep/pool.parquet", "sweep/selected_pool.parquet"


def fingerprint_parts(ctx: Context) -> list[str]:
    """The evaluate.* settings the sweep's retrains use."""
    e = ctx.cfg.evaluate
    retrain = {"epochs": e.epochs, "ece_bins": e.ece_bins, "bootstrap": e.bootstrap, "confidence": e.confidence, "backbone": e.backbone}
    return [repr(sorted(retrain.items()))]


def sweep_stage(ctx: Context) -> dict[str, Any]:
    """Ray Tune over threshold x aug_ratio x issue_action, each cell over seeds, trials subsampling one
    augmentation pool; chosen on a validation split carved from the training rows, confirmed once on test."""
    cfg, store = ctx.cfg, ctx.store
    if not cfg.sweep.enabled or not store.exists("test.parquet"):
        ctx.log("[sweep] skipped: " + ("sweep.enabled is false" if not cfg.sweep.enabled else "no held-out split"))
        return {}
    return run_declared(ctx, "sweep", lambda fp: _sweep(ctx, fp))


def _sweep(ctx: Context, fp: str) -> dict[str, Any]:
    from hardmine.runtime import connect
    from hardmine.sweep import run_sweep, validation_split

    cfg, store = ctx.cfg, ctx.store
    sw = cfg.sweep
    labels = store.manifest()["labels"]
    # a validation split too small for the classes is refused before the pool is generated or anything trains
    validation_split(store.read_table("dataset.parquet", columns=["id", "label"]), sw.validation_size, cfg.seed, labels)
    connect(cfg, ctx.log)
    sweep_pool(ctx, fp, labels)
    results = run_sweep(cfg, store, store.read_table(POOL), ctx.log, fingerprint=fp)
    best = store.read_json("sweep/best.json")
    b, conf = best["best"], best["confirmation"]
    return {
        "rows": results.num_rows, "trials": best["trials"], "validation_rows": best["selection"]["rows"],
        "chosen": None if b is None else {k: b[k] for k in ("key", "threshold_kind", "threshold", "aug_ratio", "issue_action", "no_action")},
        "validation_diff": None if b is None or b["no_action"] else b["vs_baseline"][sw.metric],
        "test_verdict": None if conf is None else conf.get("verdict", "baseline chosen"),
        "test_verdict_true_labels": None if conf is None else conf.get("verdict_true_labels"),
    }


def sweep_pool(ctx: Context, fp: str, labels: list[str]) -> None:
    """sweep/pool.parquet (:mod:`hardmine.sweep.pool`), generated once per sweep fingerprint: recorded as ``sweep_pool``."""
    from hardmine.sweep.pool import pool_budget, pool_selection

    cfg, store = ctx.cfg, ctx.store
    if store.is_done("sweep_pool", fp, [POOL]):
        return
    store.write_table(SELECTED_POOL, pool_selection(cfg, store.read_table("scores.parquet"), store.read_table("dataset.parquet"), labels))
    pool_summary = augment_to_store(ctx, SELECTED_POOL, POOL, pool_budget(cfg), cfg.seed + 2)
    store.mark("sweep_pool", "done", fingerprint=fp, summary=pool_summary)
    ctx.log(format_funnel_short(pool_summary, "sweep pool, largest budget"))
