"""The report's pure helpers: artifact tables and summaries in, rows, counts and grids out (no HTML).

:func:`augmentation_funnel` (augmented.parquet), :func:`label_issue_rows` (scores.parquet),
:func:`arm_rows` (evaluation/summary.json), :func:`sweep_grid` and :func:`sweep_cell_labels`
(sweep/best.json).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.checks import require_columns
from hardmine.report.columns import bool_col, class_names, lookup, str_col
from hardmine.summaries import EvaluationSummary, SweepBest, read_sweep_best
from hardmine.vocab import ARM_ORDER, METRICS

#: which filter step an augmented row's ``reject_reason`` belongs to.
REASON_STEP = {
    "error": "error",
    "too_short": "length",
    "too_long": "length",
    "identical": "identical",
    "script_mismatch": "script",
    "low_similarity": "similarity",
    "label_inconsistent": "consistency",
    "near_duplicate_train": "near_duplicate",
    "near_duplicate_variant": "near_duplicate",
}
AUGMENTED_NEED = ("method", "kept", "reject_reason", "error")


def augmentation_funnel(table: pa.Table, *, filters: Sequence[str] | None = None) -> dict:
    """Counts of an AUGMENTED table: generated -> what is left after each filter -> kept.

    Steps follow the pipeline's order (per-row errors first, then
    :data:`hardmine.augment.filters.FILTER_ORDER`); each step lists the rows it rejected and
    the rows remaining. ``filters``: names of the filters that ran (from the config); steps of
    other filters are listed only when they rejected something. Without it every step is
    listed. Unknown reasons become their own step at the end; not-kept rows without a reason
    are counted in ``unexplained``. ``by_method``: generated / kept / errors / rejections per
    generator method, with the mean similarity of the kept rows.
    """
    from hardmine.augment.filters import FILTER_ORDER

    require_columns(table, AUGMENTED_NEED, "the augmented table", "pass augmented.parquet (hardmine.schema.AUGMENTED)")
    n = table.num_rows
    kept = bool_col(table, "kept")
    reason = str_col(table, "reject_reason", "")
    err = pc.is_valid(table.column("error")).to_numpy(zero_copy_only=False).astype(bool)
    method = str_col(table, "method", "(none)")
    rejected = ~kept & (reason != "")
    reasons, counts = np.unique(reason[rejected].astype(str), return_counts=True)
    by_reason = {str(r): int(c) for r, c in zip(reasons, counts)}

    order = ["error", *FILTER_ORDER]
    enabled = None if filters is None else set(filters) | {"error"}
    steps, remaining = [], n
    step_reasons: dict[str, dict[str, int]] = {}
    for r, c in by_reason.items():
        step_reasons.setdefault(REASON_STEP.get(r, f"other:{r}"), {})[r] = c
    for step in order + sorted(s for s in step_reasons if s not in order):
        rs = step_reasons.get(step, {})
        rej = sum(rs.values())
        if enabled is not None and step not in enabled and rej == 0:
            continue
        remaining -= rej
        steps.append({"step": step, "rejected": rej, "remaining": remaining, "reasons": rs})

    methods, inv = np.unique(method.astype(str), return_inverse=True)
    sim = None
    if "similarity" in table.column_names:
        sim = pc.fill_null(table.column("similarity").cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
    by_method = []
    for j, m in enumerate(methods):
        sel = inv == j
        g, k = int(sel.sum()), int((sel & kept).sum())
        ks = sim[sel & kept] if sim is not None else np.zeros(0)
        ks = ks[np.isfinite(ks)]
        rr, rc = np.unique(reason[sel & rejected].astype(str), return_counts=True)
        by_method.append(
            {
                "method": str(m),
                "generated": g,
                "kept": k,
                "keep_rate": k / g if g else 0.0,
                "errors": int((sel & err).sum()),
                "reasons": {str(a): int(b) for a, b in zip(rr, rc)},
                "mean_similarity_kept": float(ks.mean()) if ks.size else None,
            }
        )
    return {
        "generated": int(n),
        "kept": int(kept.sum()),
        "rejected": int(rejected.sum()),
        "errors": int(err.sum()),
        "unexplained": int((~kept & (reason == "")).sum()),
        "reasons": by_reason,
        "steps": steps,
        "by_method": by_method,
    }


def label_issue_rows(
    scores: pa.Table,
    dataset: pa.Table | None,
    label_names: Sequence[str],
    *,
    top: int = 50,
    truth: pa.Table | None = None,
) -> pa.Table:
    """The ``top`` label issues of a scores table in ``issue_rank`` order, with text and label names.

    Columns: ``issue_rank``, ``id``, ``text`` (None when ``dataset`` lacks the id), ``label_name``,
    ``suggested_name``, ``suggested_confidence``, ``p_true`` and, when present, ``label_quality``;
    with ``truth`` (id, true_label[, is_noisy]) also ``true_name`` and ``injected_noise``.
    """
    require_columns(
        scores, ("id", "label", "is_label_issue", "issue_rank", "suggested_label"), "scores",
        "pass scores.parquet written by the score stage",
    )
    if not isinstance(top, (int, np.integer)) or isinstance(top, bool) or top < 0:
        raise ValueError(f"top must be an integer >= 0, got {top!r}")
    flag = bool_col(scores, "is_label_issue")
    idx = np.flatnonzero(flag)
    big = int(np.iinfo(np.int64).max)
    rank = pc.fill_null(scores.column("issue_rank").cast(pa.int64()), big).to_numpy()
    rank = np.where(rank[idx] < 0, big, rank[idx])
    idx = idx[np.argsort(rank, kind="stable")][:top]
    t = scores.take(pa.array(idx, pa.int64()))
    ids = t.column("id").cast(pa.string())
    cols: dict[str, Any] = {
        "issue_rank": t.column("issue_rank").cast(pa.int64()),
        "id": ids,
    }
    if dataset is not None and {"id", "text"} <= set(dataset.column_names):
        texts, found = lookup(ids, dataset, "id", "text")
        cols["text"] = pa.array([x if v else None for x, v in zip(texts, found)], pa.string())
    else:
        cols["text"] = pa.nulls(t.num_rows, pa.string())
    cols["label_name"] = class_names(label_names, t.column("label").to_numpy().astype(np.int64))
    cols["suggested_name"] = class_names(label_names, t.column("suggested_label").to_numpy().astype(np.int64))
    for c in ("suggested_confidence", "p_true", "label_quality"):
        if c in t.column_names:
            cols[c] = t.column(c).cast(pa.float64())
    if truth is not None and {"id", "true_label"} <= set(truth.column_names):
        tl, found = lookup(ids, truth, "id", "true_label")
        cols["true_name"] = [(class_names(label_names, np.array([x]))[0] if v and x is not None else None)
                             for x, v in zip(tl, found)]
        if "is_noisy" in truth.column_names:
            noisy, _ = lookup(ids, truth, "id", "is_noisy")
            cols["injected_noise"] = pa.array([bool(x) if v else None for x, v in zip(noisy, found)], pa.bool_())
    return pa.table(cols)


def arm_rows(summary: EvaluationSummary, label_set: str = "given") -> list[dict]:
    """One dict per arm of a (validated) evaluation summary, baseline first, against ``label_set``.

    ``label_set``: ``given`` (the held-out labels as loaded) or ``true`` (injected truth; only when
    the summary has it). Each row: ``arm``, ``n_seeds``, ``train_rows``, ``n_augmented``,
    ``accuracy`` / ``macro_f1`` / ``ece`` (:class:`~hardmine.summaries.Interval`), ``diff``
    ({metric: :class:`~hardmine.summaries.Difference`}, empty for baseline) and ``mcnemar``.
    Arms follow :data:`hardmine.vocab.ARM_ORDER` (unknown ones after, sorted).
    """
    if label_set not in summary["label_sets"]:
        raise ValueError(f"the evaluation summary has no metrics against the {label_set} labels (it has {summary['label_sets']})")
    arms = summary["arms"]
    names = [a for a in ARM_ORDER if a in arms] + sorted(a for a in arms if a not in ARM_ORDER)
    rows = []
    for a in names:
        r = arms[a]
        rec = r if label_set == "given" else r["true_labels"]
        vs = rec.get("vs_baseline")
        rows.append({
            "arm": a, "n_seeds": r["n_seeds"], "train_rows": r.get("train_rows"), "n_augmented": r.get("n_augmented"),
            **{m: rec[m] for m in METRICS},
            "diff": {m: vs[m] for m in METRICS} if vs else {},
            "mcnemar": vs["mcnemar"] if vs else None,
        })
    return rows


def threshold_name(sb: SweepBest) -> str:
    """What the sweep's threshold thresholds (its cells' ``threshold_kind``), or ``threshold``."""
    return next((c["threshold_kind"] for c in sb["configs"] if not c["no_action"]), "threshold")


def sweep_grid(best: dict, metric: str | None = None) -> dict:
    """The sweep's cells on the validation split as (issue_action, threshold, aug_ratio) arrays.

    ``best``: sweep/best.json (:class:`hardmine.summaries.SweepBest`). Returns ``actions``,
    ``thresholds``, ``ratios`` (sorted) and arrays of shape (actions, thresholds, ratios): ``diff``,
    ``lo``, ``hi`` (the cell minus the baseline in ``metric``, default the sweep's, with its
    paired-bootstrap interval; NaN where no cell finished), ``marked`` (the interval excludes
    zero), ``value`` (the cell's own mean), ``seeds`` and ``shared`` (the cell reuses another
    cell's runs); ``chosen``: the chosen cell's index or None (the baseline, or nothing, chosen);
    ``threshold_kind``: :func:`threshold_name`.
    """
    sb = read_sweep_best(best)
    metric = metric or sb["metric"]
    if metric not in METRICS:
        raise ValueError(f"metric must be accuracy, macro_f1 or ece, got {metric!r}")
    cells = [c for c in sb["configs"] if not c["no_action"]]
    actions = sorted({c["issue_action"] for c in cells})
    thresholds = sorted({float(c["threshold"]) for c in cells})
    ratios = sorted({float(c["aug_ratio"]) for c in cells})
    shape = (len(actions), len(thresholds), len(ratios))
    out = {k: np.full(shape, np.nan) for k in ("diff", "lo", "hi", "value")}
    marked = np.zeros(shape, dtype=bool)
    seeds = np.zeros(shape, dtype=np.int64)
    shared = np.zeros(shape, dtype=bool)
    chosen = None
    b = sb["best"]
    for c in cells:
        i = (actions.index(c["issue_action"]), thresholds.index(float(c["threshold"])), ratios.index(float(c["aug_ratio"])))
        d = (c.get("vs_baseline") or {}).get(metric)
        if d is not None:
            out["diff"][i], out["lo"][i], out["hi"][i] = d["mean"], d["lo"], d["hi"]
            marked[i] = bool(d["excludes_zero"])
        out["value"][i] = c[metric]["mean"]
        seeds[i] = c["n_seeds"]
        shared[i] = c.get("same_as") is not None
        if b is not None and not b["no_action"] and b["key"] == c["key"]:
            chosen = i
    return {"metric": metric, "actions": actions, "thresholds": thresholds, "ratios": ratios, **out, "marked": marked,
            "seeds": seeds, "shared": shared, "chosen": chosen, "threshold_kind": threshold_name(sb),
            "baseline": (sb["baseline"] or {}).get(metric) if sb["baseline"] else None}


def sweep_cell_labels(grid: dict) -> np.ndarray:
    """The text of every heat-map cell: Δ in points, ``*`` when its interval excludes zero, the interval below."""
    labels = np.full(grid["diff"].shape, "", dtype=object)
    for i in np.ndindex(grid["diff"].shape):
        d = grid["diff"][i]
        if np.isfinite(d):
            labels[i] = (f"{100 * d:+.1f}{'*' if grid['marked'][i] else ''}\n"
                         f"[{100 * grid['lo'][i]:+.1f}, {100 * grid['hi'][i]:+.1f}]")
    return labels
