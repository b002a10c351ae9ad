"""Sweep: per-trial training sets (pure), ranking, and a real Ray Tune sweep with interruption + resume."""
import os
import signal

import pyarrow as pa
import pytest
from ray import tune

from hardmine.evaluate import training_set_info
from hardmine.sweep import best_config, format_results, trial_training_set
from tests.test_evaluate import build_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg, store, make_pool = build_run(
        tmp_path_factory.mktemp("sweeprun"), name="sw",
        overrides=[
            "oof.epochs=2", "sweep.thresholds=[0.2, 0.5]", "sweep.aug_ratios=[0.0, 0.5]", "sweep.issue_actions=[drop]",
            "sweep.max_concurrent_trials=2",
        ],
    )
    ds = store.read_table("dataset.parquet")
    pool = make_pool(ds.column("id").to_pylist(), 0)  # the most permissive pool: variants of every row
    return cfg, store, pool


def _aug_sources(table):
    return {i.split("-eda-")[0] for i, o in zip(table.column("id").to_pylist(), table.column("origin").to_pylist()) if o == "augmented"}


def test_trial_training_set_follows_threshold_and_action(run):
    cfg, store, pool = run
    ds, scores = store.read_table("dataset.parquet"), store.read_table("scores.parquet")
    issues = {i for i, f in zip(scores.column("id").to_pylist(), scores.column("is_label_issue").to_pylist()) if f}
    n = ds.num_rows
    small, s_small = trial_training_set(ds, scores, pool, {"threshold": 0.1, "aug_ratio": 1.0, "issue_action": "drop"})
    big, s_big = trial_training_set(ds, scores, pool, {"threshold": 0.6, "aug_ratio": 1.0, "issue_action": "drop"})
    # augmented rows come only from the trial's own augment set, which grows with the threshold
    from hardmine.select import select

    sel, _ = select(scores, ds, hardness_quantile=0.1, issue_action="drop")
    assert _aug_sources(small) == {i for i, a in zip(sel.column("id").to_pylist(), sel.column("action").to_pylist()) if a == "augment"}
    assert len(_aug_sources(small)) == s_small["actions"]["augment"] < s_big["actions"]["augment"] == len(_aug_sources(big))
    assert training_set_info(small)["n_augmented"] == 2 * s_small["actions"]["augment"]  # the pool is smaller than asked
    assert not (_aug_sources(big) & issues)
    # drop removes label issues; review keeps them in training but never augments them; keep may augment them
    ids = lambda t: set(t.column("id").to_pylist())  # noqa: E731
    assert not (ids(small) & issues) and small.num_rows - training_set_info(small)["n_augmented"] == n - len(issues)
    rev, _ = trial_training_set(ds, scores, pool, {"threshold": 1.0, "aug_ratio": 0.0, "issue_action": "review"})
    assert issues <= ids(rev) and rev.num_rows == n
    keep, _ = trial_training_set(ds, scores, pool, {"threshold": 1.0, "aug_ratio": 4.0, "issue_action": "keep"})
    assert issues <= _aug_sources(keep)
    # p_true_max: hard = p_true <= threshold
    pt, s_pt = trial_training_set(ds, scores, pool, {"threshold": 0.3, "aug_ratio": 0.0, "issue_action": "drop"}, threshold_kind="p_true_max")
    p_true = dict(zip(scores.column("id").to_pylist(), scores.column("p_true").to_pylist()))
    assert s_pt["actions"]["augment"] == sum(1 for i, p in p_true.items() if p <= 0.3 and i not in issues)
    with pytest.raises(ValueError, match="threshold_kind"):
        trial_training_set(ds, scores, pool, {"threshold": 0.3, "aug_ratio": 0.0, "issue_action": "drop"}, threshold_kind="bogus")


def test_best_config_ranks_by_mean_over_repeats():
    from hardmine.sweep import RESULTS

    def row(t, a, act, rep, acc, status="done"):
        return {"threshold_kind": "hardness_quantile", "threshold": t, "aug_ratio": a, "issue_action": act, "repeat": rep,
                "accuracy": acc, "macro_f1": acc, "train_rows": 100, "n_augmented": int(a * 100), "status": status}

    rows = [row(0.1, 0.0, "drop", 0, 0.80), row(0.1, 0.0, "drop", 1, 0.84), row(0.2, 0.1, "review", 0, 0.90),
            row(0.2, 0.1, "review", 1, 0.70), row(0.3, 0.2, "drop", 0, None, status="error")]
    best = best_config(pa.Table.from_pylist(rows, schema=RESULTS), "accuracy")
    assert (best["best"]["threshold"], best["best"]["n_trials"]) == (0.1, 2)
    assert best["best"]["accuracy"]["mean"] == pytest.approx(0.82)
    assert best["trials"] == {"done": 4, "error": 1, "incomplete": 0}
    assert "best: hardness_quantile=0.1" in format_results(best)


class InterruptAfter(tune.Callback):
    """Sends the driver SIGUSR1 (Tune's graceful stop, like Ctrl+C) once ``n`` trials completed."""

    def __init__(self, n, marker):
        self.n, self.marker, self.done = n, marker, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        if self.done == self.n and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGUSR1)


def test_sweep_2x2_interrupted_then_resumed(ray_local, run, tmp_path):
    """A 2x2 grid on local Ray: stopped after 2 trials (SIGUSR1, as Ctrl+C), then resumed: only the
    missing trials run, and the table, CSV and best configuration are written."""
    from hardmine.sweep import run_sweep

    cfg, store, pool = run
    logs = []
    first = run_sweep(cfg, store, pool, logs.append, callbacks=[InterruptAfter(2, str(tmp_path / "fired"))])
    done = {r["trial_id"]: r["started"] for r in first.to_pylist() if r["status"] == "done"}
    # the stop lands after the 2nd completion; a trial already running may still finish first
    assert 2 <= len(done) < 4, first.to_pylist()
    assert any(f"{4 - len(done)} of 4 trials did not finish" in line for line in logs), logs
    logs.clear()
    table = run_sweep(cfg, store, pool, logs.append)
    assert any("resuming" in line for line in logs)
    rows = table.to_pylist()
    assert [r["status"] for r in rows] == ["done"] * 4
    assert len({r["trial_id"] for r in rows}) == 4 and set(done) <= {r["trial_id"] for r in rows}
    for r in rows:  # the two finished trials were not run again
        if r["trial_id"] in done:
            assert r["started"] == done[r["trial_id"]]
    got = {(r["threshold"], r["aug_ratio"]): r for r in rows}
    assert got[(0.2, 0.0)]["n_augmented"] == got[(0.5, 0.0)]["n_augmented"] == 0
    assert 0 < got[(0.2, 0.5)]["n_augmented"] <= got[(0.5, 0.5)]["n_augmented"]
    assert got[(0.2, 0.5)]["train_rows"] == got[(0.2, 0.0)]["train_rows"] + got[(0.2, 0.5)]["n_augmented"]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert store.read_table("sweep/results.parquet").equals(table)
    assert store.read_bytes("sweep/results.csv").decode().splitlines()[0].startswith('"threshold_kind"')
    best = store.read_json("sweep/best.json")
    assert best["best"]["accuracy"]["mean"] == max(r["accuracy"] for r in rows)
    assert "\nbest: hardness_quantile=" in "\n".join(logs)


@pytest.mark.slow
def test_sweep_finetune_trial_in_process(ray_local, tmp_path):
    """A finetune trial trains the tiny BERT inside the Tune trial with the trial's resources."""
    from hardmine.sweep import run_sweep

    cfg, store, make_pool = build_run(
        tmp_path, name="swft",
        overrides=["oof.backbone=finetune", "oof.epochs=1", "oof.batch_size=8", "sweep.thresholds=[0.3]",
                   "sweep.aug_ratios=[0.25]", "sweep.issue_actions=[drop]"],
    )
    pool = make_pool(store.read_table("dataset.parquet").column("id").to_pylist(), 0)
    rows = run_sweep(cfg, store, pool, lambda s: None).to_pylist()
    assert len(rows) == 1 and rows[0]["status"] == "done", rows
    assert rows[0]["n_augmented"] > 0 and 0.0 <= rows[0]["accuracy"] <= 1.0
