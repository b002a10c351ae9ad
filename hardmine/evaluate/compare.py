"""The evaluation's numbers: the runs table (:data:`RUNS`) and the held-out labels (:data:`HELDOUT`)
compared arm by arm (:func:`compare`): held-out metrics with paired-bootstrap intervals, the
difference to ``baseline`` and an exact McNemar test (:mod:`hardmine.stats`), against the given
labels and, when known, the true ones. Pure numpy / pyarrow, no Ray.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from hardmine.checks import first, require_columns
from hardmine.stats import MCNEMAR_POOLING, bootstrap_metrics, interval, mcnemar, paired_difference, percentile_interval
from hardmine.summaries import ArmSummary, Comparison, EvaluationSummary, LabelScores, Pair
from hardmine.vocab import ARM_ORDER, METRICS

#: one row per (arm, seed) retrain, written to ``evaluation/runs.parquet``.
RUNS = pa.schema(
    [
        pa.field("arm", pa.string()),
        pa.field("seed", pa.int32()),
        pa.field("train_rows", pa.int64()),
        pa.field("n_augmented", pa.int64()),
        pa.field("requested_augmented", pa.int64()),
        pa.field("n_dropped", pa.int64()),
        pa.field("n_relabelled", pa.int64()),
        pa.field("accuracy", pa.float64()),
        pa.field("macro_f1", pa.float64()),
        pa.field("ece", pa.float64()),
        pa.field("per_class_f1", pa.list_(pa.float64())),
        pa.field("seconds", pa.float64()),
        # per held-out row (test.parquet order): the predicted class and its probability
        pa.field("pred", pa.list_(pa.int32())),
        pa.field("confidence", pa.list_(pa.float32())),
    ]
)
#: the held-out rows once, in the order of ``runs.pred``: ``evaluation/heldout.parquet``.
#: ``true_label`` is null where no true label is known.
HELDOUT = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("true_label", pa.int32()),
    ]
)
#: differences between arms reported beside those to baseline
PAIRS = (("targeted", "random"), ("clean+targeted", "clean"))


def heldout_labels(test: pa.Table, test_truth: pa.Table | None) -> tuple[pa.Table, str | None]:
    """The held-out rows' given labels and, where ``test_truth`` covers them, true labels (:data:`HELDOUT`).

    Returns (table, note): ``true_label`` is filled only when the truth covers *every* held-out
    row (else it is all null and ``note`` says why); a partial truth is not used.
    """
    ids = test.column("id").cast(pa.string()).to_pylist()
    given = test.column("label").cast(pa.int32())
    true = pa.nulls(len(ids), pa.int32())
    note = None
    if test_truth is not None:
        require_columns(test_truth, ["id", "true_label"], "test_truth", "pass test_truth.parquet written by the prepare stage",
                        no_nulls=True)
        pos = dict(zip(test_truth.column("id").cast(pa.string()).to_pylist(), test_truth.column("true_label").to_pylist()))
        covered = sum(1 for i in ids if i in pos)
        if covered == len(ids):
            true = pa.array([pos[i] for i in ids], pa.int32())
        elif covered:
            note = (f"the injected truth covers {covered} of {len(ids)} held-out rows: metrics are against the given "
                    "labels only (give a true label for every held-out row to score against the truth)")
    return pa.table({"id": pa.array(ids, pa.string()), "label": given, "true_label": true}, schema=HELDOUT), note


def _stack_runs(runs: pa.Table, n: int) -> tuple[list[str], dict[str, list[int]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(arms in display order, seeds per arm, preds (seeds, n) per arm, confidences per arm)."""
    arms_col = runs.column("arm").to_pylist()
    seeds = [int(x) for x in runs.column("seed").to_pylist()]
    dup = {k for k, c in Counter(zip(arms_col, seeds)).items() if c > 1}
    if dup:
        raise ValueError(f"runs has several rows for (arm, seed) {first(sorted(dup))}; keep one per arm and seed")
    order = [a for a in ARM_ORDER if a in arms_col] + sorted({a for a in arms_col if a not in ARM_ORDER})
    pred, conf = runs.column("pred").to_pylist(), runs.column("confidence").to_pylist()
    bad = [f"{a}/seed {s} ({len(p)})" for a, s, p, c in zip(arms_col, seeds, pred, conf) if len(p) != n or len(c) != n]
    if bad:
        raise ValueError(
            f"runs rows {first(bad)} do not have one prediction per held-out row ({n}): "
            "runs and the held-out labels must come from the same evaluation"
        )
    by_seed: dict[str, dict[int, int]] = {a: {} for a in order}
    for i, (a, s) in enumerate(zip(arms_col, seeds)):
        by_seed[a][s] = i
    seeds_of = {a: sorted(by_seed[a]) for a in order}
    P = {a: np.asarray([pred[by_seed[a][s]] for s in seeds_of[a]], dtype=np.int64).reshape(len(seeds_of[a]), n) for a in order}
    C = {a: np.asarray([conf[by_seed[a][s]] for s in seeds_of[a]], dtype=np.float64).reshape(len(seeds_of[a]), n) for a in order}
    return order, seeds_of, P, C


def _comparison(boot: dict, a: str, b: str, y: np.ndarray, P: dict[str, np.ndarray], confidence: float) -> Comparison:
    out: dict[str, Any] = {
        m: paired_difference(boot["resampled"][a][m], boot["resampled"][b][m], boot["point"][a][m], boot["point"][b][m], confidence)
        for m in METRICS
    }
    out["mcnemar"] = mcnemar(P[a] == y, P[b] == y)
    return out  # type: ignore[return-value]


def compare(
    runs: pa.Table,
    y: Sequence[int] | np.ndarray,
    *,
    y_true: Sequence[int] | np.ndarray | None = None,
    num_labels: int | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    ece_bins: int = 15,
    pairs: Sequence[tuple[str, str]] = PAIRS,
) -> EvaluationSummary:
    """Per arm: held-out metrics with paired-bootstrap intervals, the difference to ``baseline``, McNemar.

    ``runs``: one row per (arm, seed) with ``pred`` and ``confidence`` (each a list with one entry
    per held-out row, as ``evaluation/runs.parquet``); ``y``: the held-out rows' given labels in the
    same order; ``y_true``: their true labels when known (injected noise), reported under each
    arm's ``true_labels``. ``resamples`` bootstrap resamples of the held-out rows are drawn once
    (with ``seed``) and shared by every arm; within a resample an arm's metric is the mean over
    its seeds. ``pairs`` adds other paired differences (e.g. targeted vs the random control).
    Returns :class:`hardmine.summaries.EvaluationSummary` (without run_evaluate's context keys).
    """
    require_columns(runs, ["arm", "seed", "pred", "confidence"], "runs",
                    "pass evaluation/runs.parquet (arm, seed, pred, confidence: one row per retrain)", no_nulls=True)
    if runs.num_rows == 0:
        raise ValueError("runs is empty: nothing to compare")
    yg = np.asarray(y)
    if yg.ndim != 1 or yg.size == 0:
        raise ValueError(f"y must hold one given label per held-out row, got shape {yg.shape}")
    order, seeds_of, P, C = _stack_runs(runs, yg.size)
    if num_labels is None:
        num_labels = int(max(int(yg.max()), *(int(p.max()) for p in P.values()), int(np.max(y_true)) if y_true is not None else 0)) + 1
    label_sets: dict[str, np.ndarray] = {"given": yg}
    if y_true is not None:
        yt = np.asarray(y_true)
        if yt.shape != yg.shape:
            raise ValueError(f"y_true must have one true label per held-out row ({yg.size}), got shape {yt.shape}")
        label_sets["true"] = yt
    scores: dict[str, dict[str, LabelScores]] = {}
    pair_out: dict[str, dict[str, Comparison]] = {}
    for ls, yy in label_sets.items():
        boot = bootstrap_metrics(yy, P, C, num_labels=num_labels, resamples=resamples, seed=seed, ece_bins=ece_bins)
        yy = yy.astype(np.int64)
        scores[ls] = {}
        for a in order:
            rec: dict[str, Any] = {
                m: percentile_interval(boot["resampled"][a][m], boot["point"][a][m], confidence) for m in METRICS
            }
            rec["seed_spread"] = {m: interval(boot["per_seed"][a][m], confidence) for m in METRICS}
            if a != "baseline" and "baseline" in P:
                rec["vs_baseline"] = _comparison(boot, a, "baseline", yy, P, confidence)
            scores[ls][a] = rec  # type: ignore[assignment]
        for x, z in pairs:
            if x in P and z in P:
                pair_out.setdefault(f"{x} - {z}", {})[ls] = _comparison(boot, x, z, yy, P, confidence)

    arms: dict[str, ArmSummary] = {}
    extra_cols = [c for c in ("train_rows", "n_augmented") if c in runs.column_names]
    arm_col = runs.column("arm").to_pylist()
    for a in order:
        rec = dict(scores["given"][a])
        rec.update({"seeds": seeds_of[a], "n_seeds": len(seeds_of[a])})
        for c in extra_cols:
            rec[c] = float(np.mean([v for x, v in zip(arm_col, runs.column(c).to_pylist()) if x == a]))
        if "true" in scores:
            rec["true_labels"] = scores["true"][a]
        arms[a] = rec  # type: ignore[assignment]
    pairs_typed: dict[str, Pair] = {}
    for name, by_ls in pair_out.items():
        p: dict[str, Any] = dict(by_ls["given"])
        if "true" in by_ls:
            p["true_labels"] = by_ls["true"]
        pairs_typed[name] = p  # type: ignore[assignment]

    notes: list[str] = []
    if "baseline" not in P:
        notes.append("no 'baseline' runs: differences to it are not reported")
    if len({tuple(v) for v in seeds_of.values()}) > 1:
        notes.append("arms ran different seeds: each arm's metric is the mean over its own seeds")
    if any(len(v) < 2 for v in seeds_of.values()):
        notes.append("arms with one seed: intervals cover the held-out rows, not seed-to-seed variation (evaluate.seeds >= 2)")
    elif all((p == p[0]).all() for p in P.values()):
        notes.append("every seed gave the same predictions (a deterministic retrain): the intervals are the held-out rows' alone")
    flipped = int((label_sets["true"] != yg).sum()) if "true" in label_sets else 0
    truth = {
        "available": "true" in label_sets,
        "rows": int(yg.size) if "true" in label_sets else 0,
        "flipped": flipped,
        "note": (f"true labels known for all {yg.size} held-out rows; {flipped} given labels differ from them"
                 if "true" in label_sets else "no true labels for the held-out rows: metrics are against the given labels"),
    }
    return {
        "reference": "baseline",
        "metrics": list(METRICS),
        "label_sets": list(label_sets),
        "bootstrap": {
            "resamples": int(resamples), "confidence": float(confidence), "seed": int(seed), "rows": int(yg.size),
            "method": "paired percentile bootstrap over held-out rows; the same resampled rows for every arm, "
                      "seeds averaged within a resample",
        },
        "mcnemar_pooling": MCNEMAR_POOLING,
        "truth": truth,  # type: ignore[typeddict-item]
        "arms": arms,
        "pairs": pairs_typed,
        "notes": notes,
    }
