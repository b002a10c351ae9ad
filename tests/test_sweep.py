"""Sweep: per-cell training sets (pure), and real Ray Tune sweeps: interruption + resume, the choice on the
validation split with no read of the test split before the confirmation (leakage), a too-small validation split."""
import os
import signal

import numpy as np
import pyarrow as pa
import pytest
from ray import tune

from hardmine.data import DataError
from hardmine.evaluate import training_set_info
from hardmine.summaries import read_sweep_best
from hardmine.sweep import BASELINE, NO_ACTION, cell_key, grid_cells, shared_cells, trial_training_set
from tests.test_evaluate import build_run

#: artifacts holding the test split or anything derived from it
TEST_ARTIFACTS = ("test.parquet", "test_truth.parquet", "test_embeddings.parquet", "test_probs.parquet")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg, store, make_pool = build_run(
        tmp_path_factory.mktemp("sweeprun"), name="sw",
        overrides=[
            "oof.epochs=2", "sweep.thresholds=[0.2, 0.5]", "sweep.aug_ratios=[0.0, 0.5]", "sweep.issue_actions=[drop]",
            "sweep.max_concurrent_trials=2", "sweep.seeds=2", "sweep.validation_size=0.25", "evaluate.bootstrap=200",
        ],
    )
    ds = store.read_table("dataset.parquet")
    pool = make_pool(ds.column("id").to_pylist(), 0)  # the most permissive pool: variants of every row
    # the test rows' injected truth (as prepare writes for the demo): every 5th given label is a flip
    test = store.read_table("test.parquet")
    given = np.array(test.column("label").to_pylist())
    true = np.where(np.arange(len(given)) % 5 == 0, (given + 1) % 3, given)
    store.write_table("test_truth.parquet", pa.table({"id": test.column("id"), "true_label": pa.array(true, pa.int32()),
                                                      "is_noisy": pa.array(true != given)}))
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


def test_cells_with_the_same_training_set_share_runs(run):
    cfg, store, pool = run
    ds, scores = store.read_table("dataset.parquet"), store.read_table("scores.parquet")
    cells = [{"threshold": t, "aug_ratio": r, "issue_action": a} for t in (0.2, 0.5) for r in (0.0, 0.5) for a in ("drop", "review", "keep")]
    same = shared_cells(ds, scores, cells, threshold_kind="hardness_quantile", select_kw=None)
    key = lambda t, r, a: cell_key({"threshold": t, "aug_ratio": r, "issue_action": a}, "hardness_quantile")  # noqa: E731
    # review / keep without augmentation are the baseline; drop without augmentation is one set at any threshold
    assert same == {key(0.2, 0.0, "review"): BASELINE, key(0.2, 0.0, "keep"): BASELINE, key(0.5, 0.0, "review"): BASELINE,
                    key(0.5, 0.0, "keep"): BASELINE, key(0.5, 0.0, "drop"): key(0.2, 0.0, "drop")}
    base, _ = trial_training_set(ds, scores, None, NO_ACTION)
    rev, _ = trial_training_set(ds, scores, None, {"threshold": 0.2, "aug_ratio": 0.0, "issue_action": "review"})
    assert rev.column("id").to_pylist() == base.column("id").to_pylist() and rev.num_rows == ds.num_rows
    assert len(grid_cells(cfg.sweep)) == 4


def test_too_small_validation_split_is_refused_before_ray_or_any_training(run, monkeypatch):
    import hardmine.runtime
    import hardmine.sweep as sw

    cfg, store, pool = run
    bad = cfg.model_copy(deep=True)
    bad.sweep.validation_size = 0.1  # 12 training rows per class -> 1 validation row each

    def forbidden(*a, **k):
        raise AssertionError("reached Ray / training")

    monkeypatch.setattr(hardmine.runtime, "connect", forbidden)
    monkeypatch.setattr(sw, "run_cell", forbidden)
    with pytest.raises(DataError, match=r"sweep.validation_size=0.1 is too small.*'account' \(12 training rows -> 1 validation row\)"):
        sw.run_sweep(bad, store, pool, lambda s: None, out="sweep_bad")
    assert not store.exists("sweep_bad")


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
    """A 2x2 grid on local Ray (3 cells to train: drop without augmentation is one training set at both
    thresholds): stopped after 1 cell (SIGUSR1, as Ctrl+C), then resumed: only the missing cells run,
    the baseline's runs are kept, the test split is read only once the sweep is complete."""
    from hardmine.sweep import run_sweep

    cfg, store, pool = run
    logs = []
    store.reads.clear()
    first = run_sweep(cfg, store, pool, logs.append, callbacks=[InterruptAfter(1, str(tmp_path / "fired"))], out="sweep_int")
    done = {(r["trial_id"], r["repeat"]): r["started"] for r in first.to_pylist()
            if r["status"] == "done" and not r["no_action"] and not r["same_as"]}
    # the stop lands after the 1st completion; a trial already running may still finish first
    n_done = len({t for t, _ in done})
    assert 1 <= n_done < 3 and len(done) == 2 * n_done, first.to_pylist()
    assert any(f"{3 - n_done} of 3 cells did not finish" in line for line in logs), logs
    partial = read_sweep_best(store.read_json("sweep_int/best.json"))
    assert partial["confirmation"] is None and store.read_table("sweep_int/confirmation.parquet").num_rows == 0
    assert not set(store.reads) & set(TEST_ARTIFACTS), store.reads  # incomplete: the test split is not read
    base_started = [r["started"] for r in first.to_pylist() if r["no_action"]]
    assert None not in base_started, [r["error"] for r in first.to_pylist() if r["no_action"]]
    logs.clear()
    table = run_sweep(cfg, store, pool, logs.append, out="sweep_int")
    assert any("resuming" in line for line in logs)
    rows = table.to_pylist()
    assert len(rows) == (4 + 1) * 2 and [r["status"] for r in rows] == ["done"] * 10
    assert [r["started"] for r in rows if r["no_action"]] == base_started  # the baseline was not retrained
    for r in rows:  # the finished cells were not run again
        if (r["trial_id"], r["repeat"]) in done:
            assert r["started"] == done[(r["trial_id"], r["repeat"])]
    assert sum((r["trial_id"], r["repeat"]) in done for r in rows if not r["same_as"]) == len(done)
    got = {(r["threshold"], r["aug_ratio"], r["repeat"]): r for r in rows}
    assert got[(0.5, 0.0, 0)]["same_as"] == "hardness_quantile=0.2 aug_ratio=0 issue_action=drop"
    assert got[(0.2, 0.0, 0)]["n_augmented"] == got[(0.5, 0.0, 1)]["n_augmented"] == 0
    assert 0 < got[(0.2, 0.5, 0)]["n_augmented"] <= got[(0.5, 0.5, 0)]["n_augmented"]
    assert got[(0.2, 0.5, 0)]["train_rows"] == got[(0.2, 0.0, 0)]["train_rows"] + got[(0.2, 0.5, 0)]["n_augmented"]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    assert store.read_table("sweep_int/results.parquet").equals(table)
    assert store.read_bytes("sweep_int/results.csv").decode().splitlines()[0].startswith('"threshold_kind"')
    best = read_sweep_best(store.read_json("sweep_int/best.json"))
    assert best["confirmation"] is not None and best["trials"]["shared"] == 1
    assert store.exists("sweep_int/heatmap.png")
    # a third call finds everything done: no retrain, and the confirmation is not recomputed on the test split
    logs.clear()
    store.reads.clear()
    run_sweep(cfg, store, pool, logs.append, out="sweep_int")
    assert any("already confirmed this choice" in line for line in logs), logs
    assert not set(store.reads) & set(TEST_ARTIFACTS), store.reads


def test_sweep_chooses_on_validation_and_reads_the_test_split_only_to_confirm(ray_local, run, monkeypatch):
    """Leakage: until the choice is fixed the sweep reads no test artifact (store reads, in order), the
    trials are scored on validation rows carved from the training rows and never train on them or
    their variants; the confirmation then retrains the chosen cell on every training row and reads
    the test split (and its truth) once."""
    import hardmine.sweep as sw
    import hardmine.sweep.stage as sweep_stage

    cfg, store, pool = run
    order: list[tuple[str, str]] = []
    phase = {"now": "choosing"}
    real_read_table, real_read_bytes = store.read_table, store.read_bytes
    monkeypatch.setattr(store, "read_table", lambda name, *a, **k: (order.append((phase["now"], name)), real_read_table(name, *a, **k))[1])
    monkeypatch.setattr(store, "read_bytes", lambda name: (order.append((phase["now"], name)), real_read_bytes(name))[1])
    seen = {}
    real_confirm = sw.confirm_on_test

    def confirm(cfg_, store_, chosen, **kw):
        seen["chosen"] = chosen
        seen["reads_before"] = [n for p, n in order]
        phase["now"] = "confirming"
        return real_confirm(cfg_, store_, chosen, **kw)

    monkeypatch.setattr(sweep_stage, "confirm_on_test", confirm)  # where run_sweep looks it up
    table = sw.run_sweep(cfg, store, pool, lambda s: None, resume=False, out="sweep_leak")
    assert "chosen" in seen, "the confirmation did not run"
    assert not set(seen["reads_before"]) & set(TEST_ARTIFACTS), seen["reads_before"]
    assert ("confirming", "test.parquet") in order and ("confirming", "test_truth.parquet") in order
    assert ("choosing", "dataset.parquet") in order and ("choosing", "scores.parquet") in order
    best = read_sweep_best(store.read_json("sweep_leak/best.json"))
    assert not set(best["selection"]["reads"]) & set(TEST_ARTIFACTS)
    # the choice is the validation summary's, made before the test split was read
    assert seen["chosen"]["key"] == best["best"]["key"] == sw.choose(best["configs"], "accuracy")["key"]
    # trials: scored on the validation rows, trained without them and without their variants
    ds, test = store.read_table("dataset.parquet"), store.read_table("test.parquet")
    val = store.read_table("sweep_leak/validation.parquet")
    val_ids = set(val.column("id").to_pylist())
    assert val_ids < set(ds.column("id").to_pylist()) and not val_ids & set(test.column("id").to_pylist())
    assert val.num_rows == best["selection"]["rows"] == 9 and best["bootstrap"]["rows"] == 9  # 3 of 12 per class
    assert best["selection"]["pool_rows_excluded"] == sum(s in val_ids for s in pool.column("source_id").to_pylist()) > 0
    rows = table.to_pylist()
    assert {len(r["pred"]) for r in rows} == {val.num_rows}
    assert {r["train_rows"] for r in rows if r["no_action"]} == {ds.num_rows - val.num_rows}
    ids_train = set(ds.column("id").to_pylist()) - val_ids
    for r in rows:
        if not r["no_action"] and r["aug_ratio"] > 0:
            scores = store.read_table("scores.parquet")
            t, _ = trial_training_set(ds.filter(pa.array([i in ids_train for i in ds.column("id").to_pylist()])),
                                      scores.filter(pa.array([i in ids_train for i in scores.column("id").to_pylist()])),
                                      pool.filter(pa.array([s not in val_ids for s in pool.column("source_id").to_pylist()])),
                                      r, seed=r["seed"])
            assert not {i.split("-eda-")[0] for i in t.column("id").to_pylist()} & val_ids
    # confirmation: the chosen cell and the baseline retrained on every training row, scored on every test row
    conf = best["confirmation"]
    assert conf["split"] == "test" and conf["rows"] == test.num_rows and conf["train_rows"] == ds.num_rows
    assert conf["cell"]["key"] == best["best"]["key"] and conf["label_sets"] == ["given", "true"]
    runs = store.read_table("sweep_leak/confirmation.parquet").to_pylist()
    assert {len(r["pred"]) for r in runs} == {test.num_rows}
    assert {r["train_rows"] for r in runs if r["arm"] == "baseline"} == {ds.num_rows}
    assert len(runs) == 2 * (1 if best["best"]["no_action"] else 2)


@pytest.mark.slow
def test_sweep_finetune_trial_in_process(ray_local, tmp_path):
    """A finetune trial trains the tiny BERT inside the Tune trial with the trial's resources."""
    from hardmine.sweep import run_sweep

    cfg, store, make_pool = build_run(
        tmp_path, name="swft",
        overrides=["oof.backbone=finetune", "oof.epochs=1", "oof.batch_size=8", "sweep.thresholds=[0.3]",
                   "sweep.aug_ratios=[0.25]", "sweep.issue_actions=[drop]", "sweep.seeds=1", "sweep.validation_size=0.25",
                   "evaluate.bootstrap=100"],
    )
    pool = make_pool(store.read_table("dataset.parquet").column("id").to_pylist(), 0)
    rows = run_sweep(cfg, store, pool, lambda s: None).to_pylist()
    assert len(rows) == 2 and [r["status"] for r in rows] == ["done", "done"], rows
    assert rows[1]["n_augmented"] > 0 and 0.0 <= rows[1]["accuracy"] <= 1.0
