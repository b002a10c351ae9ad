"""The sweep's pure parts: the validation split, the choice by the lower bound, best.json's contract, heat-map marks.

No Ray: Tune results are stood in by plain objects with the ResultGrid fields the sweep reads.
"""
import json
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from hardmine.data import DataError
from hardmine.summaries import SummaryError, read_sweep_best
from hardmine.sweep import (
    BASELINE,
    MIN_VALIDATION_PER_CLASS,
    NO_ACTION,
    cell_key,
    confirmation_record,
    format_results,
    grid_cells,
    pack_runs,
    results_table,
    summarize,
    sweep_best,
    validation_split,
)

NAMES = ["account", "billing", "shipping"]
TK = "hardness_quantile"


def _dataset(per_class=(30, 30, 30)):
    ids, labels = [], []
    for c, n in enumerate(per_class):
        for i in range(n):
            ids.append(f"{NAMES[c]}-{i}")
            labels.append(c)
    order = np.random.default_rng(1).permutation(len(ids))
    return pa.table({"id": [ids[i] for i in order], "text": [f"text {ids[i]}" for i in order],
                     "label": pa.array([labels[i] for i in order], pa.int32())})


# ============================================================================ validation split


def test_validation_split_is_stratified_seeded_and_disjoint():
    ds = _dataset((30, 20, 10))
    train, val = validation_split(ds, 0.2, seed=0, label_names=NAMES)
    assert train.num_rows + val.num_rows == ds.num_rows
    assert not set(train.column("id").to_pylist()) & set(val.column("id").to_pylist())
    assert np.bincount(val.column("label").to_numpy(), minlength=3).tolist() == [6, 4, 2]
    again = validation_split(ds, 0.2, seed=0, label_names=NAMES)[1]
    other = validation_split(ds, 0.2, seed=1, label_names=NAMES)[1]
    assert again.column("id").to_pylist() == val.column("id").to_pylist()
    assert other.column("id").to_pylist() != val.column("id").to_pylist()
    # the original row order is kept in both parts
    pos = {i: n for n, i in enumerate(ds.column("id").to_pylist())}
    assert [pos[i] for i in val.column("id").to_pylist()] == sorted(pos[i] for i in val.column("id").to_pylist())


def test_validation_split_too_small_for_the_classes_is_a_clear_error():
    ds = _dataset((30, 20, 5))
    # 0.1 x 5 rows -> 1 validation row (and 0.1 x 20 -> 2: fine)
    with pytest.raises(DataError, match=r"sweep.validation_size=0.1 is too small.*'shipping' \(5 training rows -> 1 validation row\)") as e:
        validation_split(ds, 0.1, seed=0, label_names=NAMES)
    assert "'billing'" not in str(e.value) and "at least 0.3" in str(e.value)  # 1.5 / 5 rows
    assert f"at least {MIN_VALIDATION_PER_CLASS} validation rows" in str(e.value)
    with pytest.raises(DataError, match=r"'account' \(30 training rows -> 0 validation rows\)"):
        validation_split(ds, 0.01, seed=0, label_names=NAMES)
    # a class too small for any share
    with pytest.raises(DataError, match=r"'shipping' \(2 training rows.*cannot be split"):
        validation_split(_dataset((30, 20, 2)), 0.5, seed=0, label_names=NAMES)
    # no training row left
    with pytest.raises(DataError, match="is too large.*no training row left.*lower sweep.validation_size"):
        validation_split(_dataset((30, 20, 3)), 0.9, seed=0, label_names=NAMES)
    with pytest.raises(ValueError, match=r"share in \(0, 1\)"):
        validation_split(ds, 0.0, seed=0)


def test_grid_num_samples_is_refused_in_favour_of_seeds():
    from hardmine.config import SweepConfig

    with pytest.raises(ValueError, match="sweep.seeds"):
        SweepConfig(num_samples=3)
    assert SweepConfig(search="random", num_samples=3).num_samples == 3
    assert len(grid_cells(SweepConfig(thresholds=[0.1, 0.1, 0.2], aug_ratios=[0.0], issue_actions=["drop"]))) == 2


# ============================================================================ a synthetic sweep (real writers, fake Tune results)

N_VAL, SEEDS = 150, [0, 1, 2]


def _preds(y, n_right, seed, offset=0, jitter=2):
    """Predictions right on ``n_right`` consecutive rows from ``offset`` (give or take a seed's ``jitter``), wrong elsewhere."""
    rng = np.random.default_rng(seed)
    right = np.zeros(len(y), bool)
    right[offset: offset + n_right + int(rng.integers(-jitter, jitter + 1))] = True
    pred = np.where(right, y, (y + 1) % 3).astype(np.int32)
    return pred, np.where(right, 0.9, 0.6).astype(np.float32)


def _runs(y, n_right, salt, offset=0):
    out = []
    for i, s in enumerate(SEEDS):
        pred, conf = _preds(y, n_right, 100 * salt + s, offset)
        out.append({"repeat": i, "seed": s, "accuracy": float((pred == y).mean()), "macro_f1": 0.5, "ece": 0.1,
                    "train_rows": 100, "n_augmented": 0, "requested_augmented": 0, "n_augment_sources": 0, "n_dropped": 0,
                    "n_relabelled": 0, "started": 0.0, "seconds": 1.0, "pred": pred, "confidence": conf})
    return out


def _result(cell, runs=None, error=None):
    metrics = {} if runs is None else {"accuracy": 0.0, "runs": json.dumps(pack_runs(runs))}
    return SimpleNamespace(config={"cell": cell}, metrics=metrics, error=error, path=f"/exp/trial_{cell_key(cell, TK)}")


def fake_sweep(with_confirmation=True, chosen_better=True):
    """(results table, validation labels, best.json) of a 2 x 2 x 2 grid written by the sweep's own writers.

    On validation (150 rows, baseline right on the first 105): drop/0.1/0.2 is right on the first 125
    (interval above zero), review/0.1/0.2 on the first 85 (below); the others are right on as many
    rows but shifted by 20 (gains and losses: not distinguishable); aug_ratio 0 cells share runs
    (review: the baseline's; drop/0.3: drop/0.1's)."""
    y = np.arange(N_VAL) % 3
    cells = [{"threshold": t, "aug_ratio": r, "issue_action": a} for t in (0.1, 0.3) for r in (0.0, 0.2) for a in ("drop", "review")]
    right = {("drop", 0.1, 0.2): (125, 0) if chosen_better else (104, 20), ("drop", 0.3, 0.2): (108, 20),
             ("review", 0.1, 0.2): (85, 0), ("review", 0.3, 0.2): (100, 20), ("drop", 0.1, 0.0): (110, 20)}
    same_as = {cell_key(c, TK): BASELINE for c in cells if c["aug_ratio"] == 0 and c["issue_action"] == "review"}
    same_as[cell_key({"threshold": 0.3, "aug_ratio": 0.0, "issue_action": "drop"}, TK)] = cell_key(
        {"threshold": 0.1, "aug_ratio": 0.0, "issue_action": "drop"}, TK)
    grid = [_result(c, _runs(y, *right[(c["issue_action"], c["threshold"], c["aug_ratio"])][:1], k,
                             right[(c["issue_action"], c["threshold"], c["aug_ratio"])][1]))
            for k, c in enumerate(cells) if cell_key(c, TK) not in same_as]
    table = results_table(grid, TK, SEEDS, baseline=(_runs(y, 105, 99), None), cells=cells, same_as=same_as)
    summary = summarize(table, y, metric="accuracy", num_labels=3, resamples=400, seed=0)
    selection = {"split": "validation", "rows": N_VAL, "validation_size": 0.2, "seed": 0, "train_rows": 600, "seeds": SEEDS,
                 "per_class": {n: 50 for n in NAMES}, "pool_rows_excluded": 7, "reads": ["dataset.parquet", "scores.parquet"]}
    conf = None
    if with_confirmation and summary["best"] is not None:
        y_test = np.arange(90) % 3
        y_true = np.where(np.arange(90) % 10 == 0, (y_test + 1) % 3, y_test)
        rows = []
        for arm, n_right in (("baseline", 60), ("chosen", 75)):
            if arm == "chosen" and summary["best"]["no_action"]:
                continue
            for r in _runs(y_test, n_right, 7 if arm == "chosen" else 8):
                rows.append({"arm": arm, "seed": r["seed"], "pred": r["pred"], "confidence": r["confidence"],
                             "train_rows": 750, "n_augmented": 0 if arm == "baseline" else 120})
        conf = confirmation_record(pa.Table.from_pylist(rows), y_test, y_true=y_true, cell=summary["best"], metric="accuracy",
                                   train_rows=750, num_labels=3, resamples=400)
    trials = {"done": len(grid), "error": 0, "incomplete": 0, "expected": len(grid), "shared": len(same_as), "baseline_done": 1}
    best = sweep_best(summary, metric="accuracy", selection=selection, confirmation=conf, trials=trials)
    return table, y, best


def _roundtrip(obj):
    import json

    return json.loads(json.dumps(obj))


def test_results_table_expands_seeds_shared_cells_and_failures():
    table, _, _ = fake_sweep(with_confirmation=False)
    rows = table.to_pylist()
    assert len(rows) == (8 + 1) * len(SEEDS)
    assert rows[0]["no_action"] and rows[0]["threshold"] is None and rows[0]["issue_action"] == "keep"
    shared = [r for r in rows if r["same_as"] is not None]
    assert {r["same_as"] for r in shared} == {BASELINE, "hardness_quantile=0.1 aug_ratio=0 issue_action=drop"}
    base_pred = [r["pred"] for r in rows if r["no_action"]]
    assert [r["pred"] for r in shared if r["same_as"] == BASELINE][:3] == base_pred
    # a failed and an unfinished trial give one row per seed without metrics
    bad = results_table([_result({"threshold": 0.1, "aug_ratio": 0.2, "issue_action": "drop"}, error=RuntimeError("boom")),
                         SimpleNamespace(config={"cell": {"threshold": 0.3, "aug_ratio": 0.2, "issue_action": "drop"}},
                                         metrics={}, error=None, path=None)], TK, SEEDS, baseline=(None, "RayTaskError: x"))
    st = [(r["no_action"], r["status"], r["accuracy"]) for r in bad.to_pylist()]
    assert st == [(True, "error", None)] * 3 + [(False, "error", None)] * 3 + [(False, "incomplete", None)] * 3
    assert bad.to_pylist()[3]["error"] == "RuntimeError: boom"
    assert summarize(bad, np.zeros(N_VAL, int))["best"] is None


def test_choice_is_the_highest_lower_bound_above_zero_on_validation():
    _, _, best = fake_sweep(with_confirmation=False)
    configs = best["configs"]
    b = best["best"]
    assert (b["threshold"], b["aug_ratio"], b["issue_action"]) == (0.1, 0.2, "drop")
    d = b["vs_baseline"]["accuracy"]
    assert d["lo"] > 0 and d["excludes_zero"] and d["verdict"] == "higher"
    assert d["mean"] == pytest.approx(20 / N_VAL, abs=0.02)
    # ranked by lower bound; the baseline (lower bound 0 by definition) sits among them
    los = [0.0 if c["no_action"] else c["vs_baseline"]["accuracy"]["lo"] for c in configs]
    assert los == sorted(los, reverse=True) and configs[0]["key"] == b["key"]
    by = {c["key"]: c for c in configs}
    assert by["hardness_quantile=0.3 aug_ratio=0.2 issue_action=drop"]["vs_baseline"]["accuracy"]["verdict"] == "not distinguishable"
    assert by["hardness_quantile=0.1 aug_ratio=0.2 issue_action=review"]["vs_baseline"]["accuracy"]["verdict"] == "lower"
    # cells sharing the baseline's runs differ from it by exactly zero, and are not distinguishable
    same = by["hardness_quantile=0.3 aug_ratio=0 issue_action=review"]["vs_baseline"]["accuracy"]
    assert (same["mean"], same["lo"], same["hi"], same["verdict"]) == (0.0, 0.0, 0.0, "not distinguishable")
    assert by[BASELINE]["no_action"] and "vs_baseline" not in by[BASELINE]
    assert all(c["n_seeds"] == 3 and c["seeds"] == SEEDS for c in configs)
    # intervals cover the validation rows' sampling noise: positive width
    assert all(c["accuracy"]["hi"] > c["accuracy"]["lo"] for c in configs)
    assert best["bootstrap"]["rows"] == N_VAL


def test_no_cell_above_zero_chooses_the_baseline():
    _, _, best = fake_sweep(with_confirmation=True, chosen_better=False)
    assert best["best"]["no_action"] and best["best"]["key"] == BASELINE
    conf = best["confirmation"]
    assert list(conf["arms"]) == [BASELINE] and "verdict" not in conf
    assert "baseline (no action)" in format_results(read_sweep_best(_roundtrip(best)))


def test_best_json_validates_against_sweep_best_and_records_the_confirmation():
    _, _, best = fake_sweep()
    sb = read_sweep_best(_roundtrip(best))
    assert sb["selection"]["split"] == "validation" and sb["selection"]["rows"] == N_VAL
    assert "lower bound" in sb["selection"]["rule"]
    conf = sb["confirmation"]
    assert conf["split"] == "test" and conf["rows"] == 90 and conf["cell"]["key"] == sb["best"]["key"]
    assert set(conf["arms"]) == {BASELINE, "chosen"} and conf["verdict"] in ("higher", "lower", "not distinguishable")
    assert conf["label_sets"] == ["given", "true"] and conf["truth"]["flipped"] == 9
    assert "vs_baseline" in conf["arms"]["chosen"]["true_labels"] and "verdict_true_labels" in conf
    text = format_results(sb)
    assert "chosen on validation: hardness_quantile=0.1 aug_ratio=0.2 issue_action=drop" in text
    assert "confirmed on the test split (90 rows, given test labels)" in text and "true test labels" in text
    # an incomplete sweep: a choice, no confirmation, still a SweepBest
    _, _, partial = fake_sweep(with_confirmation=False)
    assert read_sweep_best(_roundtrip(partial))["confirmation"] is None and "Not yet confirmed" in partial["note"]
    broken = _roundtrip(best)
    del broken["selection"]
    with pytest.raises(SummaryError, match="missing selection.*re-run the sweep stage"):
        read_sweep_best(broken)
    broken = _roundtrip(best)
    broken["confirmation"]["split"] = "validation"  # a confirmation must be on the test split
    with pytest.raises(SummaryError, match="confirmation"):
        read_sweep_best(broken)


def test_heat_map_marks_cells_whose_interval_excludes_zero():
    from hardmine.report import sweep_cell_labels, sweep_grid, sweep_heatmap_png

    _, _, best = fake_sweep()
    g = sweep_grid(_roundtrip(best))
    assert g["actions"] == ["drop", "review"] and g["thresholds"] == [0.1, 0.3] and g["ratios"] == [0.0, 0.2]
    # (action, threshold, ratio): drop/0.1/0.2 above zero, review/0.1/0.2 below, the rest not distinguishable
    assert g["marked"][0, 0, 1] and g["marked"][1, 0, 1] and g["marked"].sum() == 2
    assert not g["marked"][0, 1, 1] and not g["marked"][1, :, 0].any()
    assert g["diff"][0, 0, 1] > 0 > g["diff"][1, 0, 1] and g["diff"][1, 1, 0] == 0.0
    assert g["chosen"] == (0, 0, 1) and g["shared"][1, :, 0].all()
    labels = sweep_cell_labels(g)
    assert labels[0, 0, 1].split("\n")[0].endswith("*") and labels[1, 0, 1].split("\n")[0].endswith("*")
    assert not labels[0, 1, 1].split("\n")[0].endswith("*") and labels[1, 1, 0].startswith("+0.0\n")
    png = sweep_heatmap_png(_roundtrip(best))
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    # the baseline chosen: nothing outlined
    _, _, base_best = fake_sweep(chosen_better=False)
    assert sweep_grid(_roundtrip(base_best))["chosen"] is None


def test_no_action_is_the_training_rows_as_they_are():
    from hardmine.evaluate import training_set_info
    from hardmine.sweep import trial_training_set

    ds = _dataset()
    table, summary = trial_training_set(ds, None, None, NO_ACTION, seed=3)
    assert table.column("id").to_pylist() == ds.column("id").to_pylist()
    assert table.column("label").to_pylist() == ds.column("label").to_pylist()
    assert training_set_info(table)["n_augmented"] == 0 and summary == {"actions": {}}
