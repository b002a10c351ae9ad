"""The score stage: hardness, confident learning and training dynamics from the OOF probabilities, the other
signals (:mod:`hardmine.signals`), and label-issue detection against injected truth."""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from hardmine.data import DataError
from hardmine.pipeline.run import Context, run_declared
from hardmine.scoring import detection_metrics, score_table
from hardmine.signals import compute_signals, format_signals


def score(ctx: Context) -> dict[str, Any]:
    """Hardness, confident learning and training dynamics from the OOF probabilities: scores.parquet."""
    return run_declared(ctx, "score", lambda fp: _score(ctx))


def _score(ctx: Context) -> dict[str, Any]:
    cfg, store = ctx.cfg, ctx.store
    oof_t = store.read_table("oof.parquet")
    ds = store.read_table("dataset.parquet")
    names = store.manifest()["labels"]
    ids = oof_t.column("id").to_pylist()
    rows = rows_in_order(ds, ids)
    labels = rows.column("label").to_numpy().astype("int64")
    s = cfg.score
    table, summary = score_table(
        oof_t.column("id"), labels, oof_t.column("probs"), oof_t.column("epoch_probs"), label_names=names,
        filter_by=s.filter_by, rank_by=s.rank_by, low_memory_threshold=s.low_memory_threshold,
    )
    for w in summary.get("warnings", []):
        ctx.log(f"warning: {w}")
    table, summary["signals"] = compute_signals(cfg, store, table, ids, rows.column("text").to_pylist(), ctx.log)
    store.write_table("scores.parquet", table)
    if store.exists("truth.parquet"):
        summary["detection"] = detection(store.read_table("truth.parquet"), table)
    store.write_json("label_quality.json", summary)
    ctx.log(format_label_quality(summary))
    ctx.log(format_signals(summary["signals"]))
    return {
        "label_issues": int(table.column("is_label_issue").to_numpy().sum()),
        "estimated_label_errors": summary["estimated_label_errors"],
        "detection": summary.get("detection"),
    }


def rows_in_order(ds: pa.Table, ids: list[str]) -> pa.Table:
    """The dataset rows of the OOF ``ids``, in that order: every training row exactly once."""
    if len(set(ids)) != len(ids) or len(ids) != ds.num_rows:
        missing = sorted(set(ds.column("id").to_pylist()) - set(ids))
        raise DataError(
            f"oof.parquet covers {len(set(ids))} distinct ids of the {ds.num_rows} training rows"
            + (f" ({len(missing)} missing, e.g. {missing[:5]})" if missing else "")
            + (f"; {len(ids) - len(set(ids))} ids repeat" if len(set(ids)) != len(ids) else "")
            + ": every row needs exactly one out-of-fold prediction. Fix: delete oof.parquet and re-run (the oof stage recomputes it)"
        )
    pos = {i: n for n, i in enumerate(ds.column("id").to_pylist())}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise DataError(f"{len(missing)} ids in oof.parquet are not in dataset.parquet (e.g. {missing[:5]}): re-run the oof stage")
    return ds.take(pa.array([pos[i] for i in ids], pa.int64()))


def detection(truth: pa.Table, scores: pa.Table) -> dict:
    """Label-issue detection (precision, recall, f1) against the injected truth's ``is_noisy`` (absent rows: not noisy)."""
    noisy = dict(zip(truth.column("id").to_pylist(), truth.column("is_noisy").to_pylist()))
    is_noisy = np.array([bool(noisy.get(i, False)) for i in scores.column("id").to_pylist()])
    return detection_metrics(scores.column("is_label_issue").to_numpy(zero_copy_only=False), is_noisy)


def format_label_quality(summary: dict) -> str:
    n = summary["n_rows"]
    lines = [
        "label quality:",
        f"  estimated wrong labels: {summary['estimated_label_errors']} of {n} "
        f"({100 * summary['estimated_label_error_fraction']:.1f}%); flagged as label issues: {summary['n_flagged']}",
    ]
    worst = sorted(summary["per_class"], key=lambda r: -r["estimated_noise_rate"])[:5]
    for r in worst:
        lines.append(f"  {r['name']:<24} estimated noise rate {100 * r['estimated_noise_rate']:5.1f}%  flagged {r['n_flagged']}")
    det = summary.get("detection")
    if det:
        lines.append(
            f"  label-issue detection vs the injected truth: precision {det['precision']:.3f}  "
            f"recall {det['recall']:.3f}  f1 {det['f1']:.3f}"
        )
    return "\n".join(lines)
