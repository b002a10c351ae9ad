"""The evaluate stage: the arms retrained over seeds and compared on the held-out split (:mod:`hardmine.evaluate`)."""
from __future__ import annotations

from typing import Any

from hardmine.pipeline.run import Context, run_declared
from hardmine.review.schemas import PSEUDO_AUDIT, VERSIONS
from hardmine.review.versions import newest_version, record_version_metrics
from hardmine.store import fingerprint_path


def evaluate_stage(ctx: Context) -> dict[str, Any]:
    """Retrain the arms (baseline, clean, targeted, clean+targeted, random) over seeds; held-out metrics
    with paired-bootstrap intervals, against the given labels and, with injected truth, the true ones."""
    if not ctx.store.exists("test.parquet"):
        ctx.log("[evaluate] skipped: no held-out split (set data.test_size or data.test_path)")
        return {}
    summary = run_declared(ctx, "evaluate", lambda fp: _evaluate(ctx, fp))
    record_version_metrics(ctx.store)  # the held-out accuracy of this dataset version, for the report's review history
    return summary


def _evaluate(ctx: Context, fp: str) -> dict[str, Any]:
    from hardmine.evaluate import run_evaluate

    return run_evaluate(ctx.cfg, ctx.store, ctx.log, fingerprint=fp)


def fingerprint_parts(ctx: Context) -> list[str]:
    """What the opt-in arms read beyond the upstream stages (nothing for the other arms, so their fingerprint is as before).

    self_training: the pool's content and the pseudo.* rule; reviewed: the newest dataset version and
    version 0 (their files' content), which the arm compares.
    """
    cfg, store = ctx.cfg, ctx.store
    extra = []
    arms = set(cfg.evaluate.arms)
    if "self_training" in arms and cfg.data.unlabelled_path:
        extra += [f"pool:{fingerprint_path(cfg.data.unlabelled_path)}", f"pseudo:{cfg.section_hash('pseudo')}"]
        if store.exists(PSEUDO_AUDIT):
            extra.append(f"pseudo_audit:{fingerprint_path(store.uri_of(PSEUDO_AUDIT))}")
    if "reviewed" in arms:
        newest = newest_version(store)
        for v in sorted({0, newest}):
            name = f"{VERSIONS}/v{v}.parquet"
            extra.append(f"v{v}:{fingerprint_path(store.uri_of(name)) if store.exists(name) else 'prepared'}")
    return extra
