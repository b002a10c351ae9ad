"""The evaluate stage: every arm x seed retrained and scored on the held-out split
(:func:`run_evaluate`), and what its results depend on (:func:`evaluation_fingerprint`).
"""
from __future__ import annotations

import time
from typing import Callable

import pyarrow as pa

from hardmine.config import Config
from hardmine.evaluate.arms import arm_train_settings, arm_training_set, hard_weighted_mode, training_notes, training_set_info
from hardmine.evaluate.compare import PAIRS, RUNS, compare, heldout_labels
from hardmine.evaluate.format import format_summary
from hardmine.evaluate.opt_in import opt_in_sets
from hardmine.evaluate.retrain import retrain_many
from hardmine.summaries import EvaluationSummary
from hardmine.vocab import BEFORE_REVIEW


def evaluation_fingerprint(cfg: Config, store) -> str:
    """Config of the retrains plus the fingerprints of the stages whose outputs they read."""
    from hardmine.store import fingerprint_bytes

    stages = store.manifest().get("stages", {})
    upstream = sorted((k, v.get("fingerprint")) for k, v in stages.items() if k in ("prepare", "oof", "holdout", "select", "augment"))
    return fingerprint_bytes(cfg.section_hash("evaluate", "oof", "train", "seed"), repr(upstream))


def _same_training_rows(a: pa.Table, b: pa.Table) -> bool:
    """The same rows, texts, labels and origins (a reviewed set on the baseline's version)."""
    return a.num_rows == b.num_rows and a.select(["id", "text", "label", "origin"]).equals(b.select(["id", "text", "label", "origin"]))


def run_evaluate(cfg: Config, store, log: Callable[[str], None] = print, *, fingerprint: str | None = None) -> EvaluationSummary:
    """Retrain every arm x seed, score on the held-out split; write evaluation/runs.parquet, heldout.parquet, summary.json.

    Reads dataset.parquet, test.parquet, selected.parquet (clean / targeted arms),
    augmented.parquet (targeted arms), augmented_random.parquet (``random``), scores.parquet
    (``review_as: relabel``), embeddings.parquet / test_embeddings.parquet (frozen), and
    test_truth.parquet when the prepare stage wrote one (the held-out rows' injected truth: only
    this stage reads it). ``runs.parquet`` keeps every run's held-out predictions,
    ``heldout.parquet`` the held-out labels once (given, and true when known), so the summary can
    be recomputed with :func:`compare`.
    """
    from hardmine.runtime import connect

    e = cfg.evaluate
    if not store.exists("test.parquet"):
        raise ValueError(
            "evaluation needs a held-out split that mining never touched: set data.test_path, or data.test_size (e.g. 0.2)"
        )
    connect(cfg, log)
    fingerprint = fingerprint or evaluation_fingerprint(cfg, store)
    arms = list(dict.fromkeys(e.arms))
    dataset = store.read_table("dataset.parquet")
    test = store.read_table("test.parquet")
    heldout, truth_note = heldout_labels(test, store.read_table("test_truth.parquet") if store.exists("test_truth.parquet") else None)
    if truth_note:
        log(f"warning: {truth_note}")
    num_labels = len(store.manifest()["labels"])
    need_sel = any(a != "baseline" for a in arms)
    selected = store.read_table("selected.parquet") if need_sel else None
    pool = None
    if any(a in ("targeted", "clean+targeted", "random") for a in arms) and e.aug_ratio > 0:
        if not store.exists("augmented.parquet"):
            raise ValueError("the targeted and random arms need augmented.parquet: run the augment stage, or remove them from evaluate.arms")
        pool = store.read_table("augmented.parquet")
    random_pool = None
    if "random" in arms and e.aug_ratio > 0:
        if not store.exists("augmented_random.parquet"):
            raise ValueError(
                "the 'random' control arm needs augmented_random.parquet (variants of randomly chosen rows): "
                "run the augment stage with the random control, or remove 'random' from evaluate.arms"
            )
        random_pool = store.read_table("augmented_random.parquet")
    scores = store.read_table("scores.parquet") if (e.review_as == "relabel" and any(a.startswith("clean") for a in arms)) else None
    if "hard_weighted" in arms and scores is None:  # hardness and label issues (ohem without them: no exemptions)
        if store.exists("scores.parquet"):
            scores = store.read_table("scores.parquet")
        elif hard_weighted_mode(cfg) != "ohem":
            raise ValueError(f"the hard_weighted arm ({hard_weighted_mode(cfg)}) needs scores.parquet (hardness): run the score "
                             "stage first, or remove hard_weighted from evaluate.arms")

    sets: dict[tuple[str, int], pa.Table] = opt_in_sets(cfg, store, dataset, test, arms, e.seeds, log)
    if "reviewed" in arms:
        arms.insert(arms.index("reviewed") + 1, BEFORE_REVIEW)
    for arm in arms:
        if arm in ("self_training", "reviewed", BEFORE_REVIEW):
            continue
        for s in range(e.seeds):
            sets[(arm, s)] = arm_training_set(
                dataset, selected, pool, random_pool, arm, aug_ratio=e.aug_ratio, review_as=e.review_as,
                seed=cfg.seed * 1000 + s, scores=scores, hard_weighting=hard_weighted_mode(cfg),
                hard_weight_cap=cfg.train.hard_weight_cap,
            )
    for arm in arms:
        info = training_set_info(sets[(arm, 0)])
        if arm == "random" and info["shortfall"] > 0:
            short = info["n_augmented"] < info["targeted_budget"]
            log(
                f"{'warning: ' if short else ''}arm random: {info['n_augmented']} augmented rows, matching the targeted "
                f"arm's {info['targeted_budget']}" + (f" only partly (the random pool has {info['available_augmented']})" if short else "")
            )
        elif info["shortfall"] > 0:
            log(
                f"warning: arm {arm}: asked for {info['requested_augmented']} augmented rows "
                f"(aug_ratio {e.aug_ratio:g} x {info['n_train']}), the pool has {info['available_augmented']}: "
                f"added {info['n_augmented']}"
            )
    for line in training_notes(cfg, arms, {a: training_set_info(sets[(a, 0)]) for a in arms}):
        log(line)
    t0 = time.time()
    # a reviewed / before_review set equal to the baseline's (the run is on that version) reuses the baseline's retrains
    same = {k for k in sets if k[0] in ("reviewed", BEFORE_REVIEW) and ("baseline", k[1]) in sets
            and _same_training_rows(sets[k], sets[("baseline", k[1])])}
    log(f"retraining {len(sets) - len(same)} models ({len(arms)} arms x {e.seeds} seeds, backbone {cfg.retrain_backbone})"
        + (f"; {', '.join(sorted({a for a, _ in same}))} = baseline's training set: its retrains reused" if same else ""))
    runs = retrain_many(cfg, store, {k: v for k, v in sets.items() if k not in same}, dataset, test, num_labels,
                        fingerprint=fingerprint, log=log)
    if same:
        rows = runs.to_pylist()
        base = {(r["arm"], int(r["seed"])): r for r in rows}
        runs = pa.Table.from_pylist(rows + [{**base[("baseline", s)], "arm": a} for a, s in sorted(same)], schema=RUNS)
    true_col = heldout.column("true_label")
    summary = compare(
        runs, heldout.column("label").to_numpy(),
        y_true=true_col.to_numpy(zero_copy_only=False) if true_col.null_count == 0 else None,
        num_labels=num_labels, resamples=e.bootstrap, confidence=e.confidence, seed=cfg.seed, ece_bins=e.ece_bins,
        pairs=PAIRS + ((("reviewed", BEFORE_REVIEW),) if "reviewed" in arms else ()),
    )
    if truth_note:
        summary["truth"]["note"] = truth_note
    summary["seconds"] = time.time() - t0
    summary["test_rows"] = test.num_rows
    summary["aug_ratio"] = e.aug_ratio
    summary["review_as"] = e.review_as
    summary["backbone"] = cfg.retrain_backbone
    summary["training_sets"] = {
        a: {**training_set_info(sets[(a, 0)]), **({"train": arm_train_settings(cfg, a)} if a in ("hard_weighted", "adversarial") else {})}
        for a in arms
    }
    store.write_table("evaluation/runs.parquet", runs)
    store.write_table("evaluation/heldout.parquet", heldout)
    store.write_json("evaluation/summary.json", summary)
    log(f"held-out evaluation on {test.num_rows} rows:\n" + format_summary(summary))
    return summary
