"""The oof stage (the K fold models of every member: out-of-fold probabilities) and the holdout stage (the
fold models on the held-out split). Ray is imported only when a stage runs."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from hardmine.console import detail
from hardmine.oof.format import format_oof
from hardmine.oof.settings import oof_training_key
from hardmine.pipeline.run import Context, run_declared
from hardmine.store import fingerprint_path


def fingerprint_parts(ctx: Context) -> list[str]:
    """The content of oof.probs_path ("" when unset), then the train.* settings that reach the fold models (left out
    when none, so fingerprints of runs without them are unchanged)."""
    o = ctx.cfg.oof
    return [fingerprint_path(o.probs_path) if o.probs_path else "", *filter(None, [oof_training_key(ctx.cfg)])]


def oof(ctx: Context) -> dict[str, Any]:
    return run_declared(ctx, "oof", lambda fp: _oof(ctx, fp))


def _oof(ctx: Context, fp: str) -> dict[str, Any]:
    from hardmine.oof.runner import run_oof
    from hardmine.runtime import connect

    cfg, store = ctx.cfg, ctx.store
    if cfg.oof.trainable:
        connect(cfg, ctx.log)
    train = store.read_table("dataset.parquet")
    labels = store.manifest()["labels"]
    summary = run_oof(cfg, store, train, len(labels), fp, log=ctx.log, data_fingerprint=ctx.fingerprint("prepare"))
    head, *rest = format_oof(summary).splitlines()
    ctx.log(head)
    detail("\n".join(rest))  # per-member and per-fold tables: the log file (console with -v)
    return summary


def holdout(ctx: Context) -> dict[str, Any]:
    """The K fold models predict the held-out split (averaged probabilities): test_probs.parquet.

    Only this stage and ``evaluate`` read test.parquet; no mining stage reads what it writes.
    """
    if not ctx.store.exists("test.parquet"):
        return {}
    if not ctx.cfg.oof.trainable:
        ctx.log("[holdout] skipped: an external-only ensemble has no fold models to predict the held-out split")
        return {}
    return run_declared(ctx, "holdout", lambda fp: _holdout(ctx))


def _holdout(ctx: Context) -> dict[str, Any]:
    from hardmine.embed import embeddings_table
    from hardmine.oof.predict import FoldEnsemble

    cfg, store = ctx.cfg, ctx.store
    test = store.read_table("test.parquet")
    ens = FoldEnsemble(store.uri, batch_size=cfg.oof.embed_batch_size)
    probs = ens.predict(test.column("text").to_pylist())
    if ens.frozen is not None:
        store.write_table("test_embeddings.parquet", embeddings_table(test.column("id"), ens.frozen.last_embeddings))
    store.write_table("test_probs.parquet", pa.table({"id": test.column("id"), "probs": pa.array(list(probs), pa.list_(pa.float32()))}))
    acc = float((probs.argmax(1) == test.column("label").to_numpy()).mean())
    ctx.log(f"held-out accuracy of the fold models ({', '.join(ens.members)}; {len(ens.models)} models, combined): {acc:.4f} on {test.num_rows} rows")
    return {"test_accuracy_fold_ensemble": acc, "rows": test.num_rows}
