"""The choice on the validation split: every finished cell compared with the baseline
(:func:`hardmine.evaluate.compare`), ranked by the lower bound of its difference, the cell
:func:`choose` picks (:data:`CHOICE_RULE`), the test split's verdict on it
(:func:`confirmation_record`) and ``sweep/best.json`` (:func:`sweep_best`).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from hardmine.evaluate.compare import compare
from hardmine.summaries import SweepBest, SweepCell, SweepConfirmation
from hardmine.sweep.space import BASELINE, cell_key
from hardmine.vocab import METRICS, SWEEP_METRICS

CHOICE_RULE = (
    "the cell whose paired-bootstrap interval of ({metric} - baseline) on the validation split has the highest lower "
    "bound, provided it lies above zero (ties: the larger mean difference, then the smaller aug_ratio, then the smaller "
    "threshold); when no cell's interval lies above zero: the baseline (no action)"
)


def _cell_record(arm: dict, row: dict, key: str) -> SweepCell:
    rec: dict[str, Any] = {
        "key": key, "threshold_kind": row["threshold_kind"], "threshold": row["threshold"], "aug_ratio": row["aug_ratio"],
        "issue_action": row["issue_action"], "no_action": bool(row["no_action"]), "same_as": row["same_as"],
        "seeds": arm["seeds"], "n_seeds": arm["n_seeds"],
        **{m: arm[m] for m in METRICS}, "seed_spread": arm["seed_spread"],
    }
    for c in ("train_rows", "n_augmented"):
        if c in arm:
            rec[c] = arm[c]
    if "vs_baseline" in arm:
        rec["vs_baseline"] = arm["vs_baseline"]
    return rec  # type: ignore[return-value]


def _rank_key(c: dict, metric: str) -> tuple:
    d = c.get("vs_baseline", {}).get(metric) if not c["no_action"] else {"lo": 0.0, "mean": 0.0}
    if d is None:
        return (math.inf, math.inf, c["aug_ratio"], -1.0, "")
    return (-d["lo"], -d["mean"], c["aug_ratio"], c["threshold"] if c["threshold"] is not None else -1.0, c["issue_action"])


def choose(configs: Sequence[SweepCell], metric: str) -> SweepCell | None:
    """The chosen cell (see :data:`CHOICE_RULE`): the highest lower bound above zero, else the baseline; None without a baseline."""
    base = next((c for c in configs if c["no_action"]), None)
    if base is None:
        return None
    better = [c for c in configs if not c["no_action"] and "vs_baseline" in c and c["vs_baseline"][metric]["lo"] > 0]
    return min(better, key=lambda c: _rank_key(c, metric)) if better else base


def summarize(
    results: pa.Table,
    y: Sequence[int] | np.ndarray,
    *,
    metric: str = "accuracy",
    num_labels: int | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    ece_bins: int = 15,
) -> dict[str, Any]:
    """Every finished cell on the validation split: metrics and difference to the baseline with
    paired-bootstrap intervals over the validation rows ``y`` (:func:`hardmine.evaluate.compare`),
    ranked by the lower bound of that difference in ``metric``, and the cell :func:`choose` picks.

    Returns ``configs`` (best first), ``baseline``, ``best`` (None when the baseline did not
    finish), ``bootstrap`` and ``notes``.
    """
    if metric not in SWEEP_METRICS:
        raise ValueError(f"metric must be one of {SWEEP_METRICS}, got {metric!r}")
    done = [r for r in results.to_pylist() if r["status"] == "done"]
    if not done:
        return {"configs": [], "baseline": None, "best": None, "bootstrap": None, "notes": ["no cell finished"]}
    tk = done[0]["threshold_kind"]
    first: dict[str, dict] = {}
    for r in done:
        first.setdefault(cell_key(r, tk), r)
    runs = pa.table({
        "arm": [cell_key(r, tk) for r in done], "seed": [int(r["seed"]) for r in done],
        "pred": pa.array([r["pred"] for r in done], pa.list_(pa.int32())),
        "confidence": pa.array([r["confidence"] for r in done], pa.list_(pa.float32())),
        "train_rows": [r["train_rows"] for r in done], "n_augmented": [r["n_augmented"] for r in done],
    })
    s = compare(runs, np.asarray(y), num_labels=num_labels, resamples=resamples, confidence=confidence, seed=seed,
                ece_bins=ece_bins, pairs=())
    configs = [_cell_record(arm, first[key], key) for key, arm in s["arms"].items()]
    configs.sort(key=lambda c: _rank_key(c, metric))
    notes = list(s["notes"])
    base = next((c for c in configs if c["no_action"]), None)
    if base is None:
        notes.append("the baseline (no action) did not finish: no cell can be compared with it, nothing is chosen")
    return {"configs": configs, "baseline": base, "best": choose(configs, metric), "bootstrap": s["bootstrap"], "notes": notes}


def confirmation_record(
    runs: pa.Table,
    y: Sequence[int] | np.ndarray,
    *,
    cell: SweepCell,
    metric: str,
    train_rows: int,
    y_true: Sequence[int] | np.ndarray | None = None,
    num_labels: int | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    ece_bins: int = 15,
) -> SweepConfirmation:
    """The test split's verdict on the chosen cell: ``runs`` (arms ``baseline`` and, unless the
    baseline was chosen, ``chosen``; ``pred`` / ``confidence`` per test row) against the test labels
    ``y`` (and ``y_true`` when the truth is known), through :func:`hardmine.evaluate.compare`."""
    s = compare(runs, np.asarray(y), y_true=y_true, num_labels=num_labels, resamples=resamples, confidence=confidence,
                seed=seed, ece_bins=ece_bins, pairs=())
    rec: dict[str, Any] = {
        "split": "test", "rows": int(len(y)), "train_rows": int(train_rows), "metric": metric,
        "cell": {k: cell[k] for k in ("key", "threshold_kind", "threshold", "aug_ratio", "issue_action", "no_action")},
        "seeds": s["arms"][BASELINE]["seeds"], "arms": s["arms"], "label_sets": s["label_sets"], "truth": s["truth"],
        "bootstrap": s["bootstrap"], "notes": list(s["notes"]),
    }
    chosen = s["arms"].get("chosen")
    if chosen is not None and "vs_baseline" in chosen:
        rec["verdict"] = chosen["vs_baseline"][metric]["verdict"]
        if "true_labels" in chosen and "vs_baseline" in chosen["true_labels"]:
            rec["verdict_true_labels"] = chosen["true_labels"]["vs_baseline"][metric]["verdict"]
    else:
        rec["notes"].append("the baseline (no action) was chosen: the confirmation scores it alone")
    return rec  # type: ignore[return-value]


def sweep_best(
    summary: dict[str, Any],
    *,
    metric: str,
    selection: dict[str, Any],
    confirmation: SweepConfirmation | None,
    trials: dict[str, int],
    extra_notes: Sequence[str] = (),
) -> SweepBest:
    """``sweep/best.json``: the validation choice (:func:`summarize`) and its test confirmation."""
    best = summary["best"]
    if best is None:
        note = "nothing was chosen: " + "; ".join(summary["notes"][-1:] or ["no cell finished"])
    else:
        rows = selection["rows"]
        note = (
            f"chosen on the validation split ({rows} rows carved from the training rows, never the test split) by the "
            f"lower bound of the interval of its {metric} difference to the baseline (no action); its validation "
            f"numbers are optimistic (it was chosen on them). "
            + ("The test split then confirmed it once: see confirmation." if confirmation is not None else
               "Not yet confirmed on the test split (the sweep is incomplete: re-run to resume it).")
        )
    return {  # type: ignore[return-value]
        "metric": metric,
        "reference": BASELINE,
        "baseline": summary["baseline"],
        "best": best,
        "configs": summary["configs"],
        "selection": {**selection, "rule": CHOICE_RULE.format(metric=metric)},
        "bootstrap": summary["bootstrap"],
        "confirmation": confirmation,
        "trials": trials,
        "note": note,
        "notes": list(summary["notes"]) + list(extra_notes),
    }
