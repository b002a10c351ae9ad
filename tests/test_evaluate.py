"""Retrain & evaluate: arm training sets, metrics, intervals (pure) and the arms on a real local Ray."""
import math

import numpy as np
import pyarrow as pa
import pytest

from hardmine.evaluate import (
    arm_training_set,
    compare,
    format_summary,
    interval,
    metrics,
    spread_order,
    training_set_info,
)
from hardmine.schema import AUGMENTED


# ----------------------------------------------------------------------------- fixtures (pure)


def _dataset(n=100, k=3):
    return pa.table(
        {
            "id": [f"r{i:03d}" for i in range(n)],
            "text": [f"text number {i} about topic {i % k}" for i in range(n)],
            "label": pa.array([i % k for i in range(n)], pa.int32()),
            "label_name": [f"c{i % k}" for i in range(n)],
        }
    )


def _selected(ds):
    """r000-r004 drop, r005-r009 relabel (+1), r010-r014 review, r020-r039 augment, rest none."""
    ids = ds.column("id").to_pylist()
    label = np.array(ds.column("label").to_pylist())
    action = np.array(["none"] * len(ids), dtype=object)
    action[0:5], action[5:10], action[10:15], action[20:40] = "drop", "relabel", "review", "augment"
    new_label = label.copy()
    new_label[5:10] = (label[5:10] + 1) % 3
    return pa.table(
        {
            "id": ids, "label": pa.array(label, pa.int32()), "action": action.tolist(), "rule": ["r"] * len(ids),
            "new_label": pa.array(new_label, pa.int32()), "hardness": np.linspace(0, 1, len(ids)),
        }
    )


def _pool(ds, source_rows, per_source, prefix="aug", kept_every=None):
    ids, texts, labels = ds.column("id").to_pylist(), ds.column("text").to_pylist(), ds.column("label").to_pylist()
    rows = []
    for r in source_rows:
        for v in range(per_source):
            kept = kept_every is None or (v % kept_every != 0)
            rows.append(
                {
                    "id": f"{prefix}-{ids[r]}-{v}", "source_id": ids[r], "text": f"{texts[r]} variant {v} {prefix}",
                    "label": labels[r], "method": "eda", "variant": v, "similarity": 0.9, "consistent": True,
                    "kept": kept, "reject_reason": None if kept else "similarity", "error": None,
                }
            )
    return pa.Table.from_pylist(rows, schema=AUGMENTED)


@pytest.fixture()
def parts():
    ds = _dataset()
    sel = _selected(ds)
    pool = _pool(ds, range(20, 40), 2)  # 40 kept variants of the 20 augment sources
    pool = pa.concat_tables([pool, _pool(ds, range(20, 25), 2, prefix="rej", kept_every=1)])  # rejected rows
    rpool = _pool(ds, range(50, 100), 1, prefix="rnd")
    return ds, sel, pool, rpool


# ----------------------------------------------------------------------------- arms


def test_arm_sizes_and_contents(parts):
    ds, sel, pool, rpool = parts
    kw = dict(aug_ratio=0.1, review_as="drop", seed=0)
    sets = {a: arm_training_set(ds, sel, pool, rpool, a, **kw) for a in ("baseline", "clean", "targeted", "clean+targeted", "random")}
    assert sets["baseline"].num_rows == 100
    assert sets["baseline"].column("label").to_pylist() == ds.column("label").to_pylist()
    # clean: 5 drops + 5 reviews (review_as=drop) removed, 5 relabelled
    clean = sets["clean"]
    assert clean.num_rows == 90
    assert not {f"r{i:03d}" for i in range(15) if i < 5 or i >= 10} & set(clean.column("id").to_pylist())
    lab = dict(zip(clean.column("id").to_pylist(), clean.column("label").to_pylist()))
    assert [lab[f"r{i:03d}"] for i in range(5, 10)] == [(i + 1) % 3 for i in range(5, 10)]
    info = training_set_info(clean)
    assert (info["n_dropped"], info["n_relabelled"], info["n_review"]) == (10, 5, 5)
    # targeted: round(0.1 * 100) = 10 kept variants of augment sources, one per source (spread)
    t = sets["targeted"]
    aug = t.filter(pa.compute.equal(t.column("origin"), "augmented"))
    assert t.num_rows == 110 and aug.num_rows == 10
    assert all(i.startswith("aug-") for i in aug.column("id").to_pylist())  # never a rejected row
    sources = [i.split("-")[1] for i in aug.column("id").to_pylist()]
    assert len(set(sources)) == 10 and all(20 <= int(s[1:]) < 40 for s in sources)
    assert sets["clean+targeted"].num_rows == 100
    # random: the same number from the random pool
    r = sets["random"]
    raug = r.filter(pa.compute.equal(r.column("origin"), "augmented"))
    assert raug.num_rows == 10 and all(i.startswith("rnd-") for i in raug.column("id").to_pylist())
    assert training_set_info(r)["n_augmented"] == training_set_info(t)["n_augmented"] == 10


def test_review_as_keep_and_relabel(parts):
    ds, sel, pool, rpool = parts
    keep = arm_training_set(ds, sel, None, None, "clean", aug_ratio=0.0, review_as="keep")
    assert keep.num_rows == 95
    n = ds.num_rows
    sugg = np.full(n, -1)
    sugg[10:13] = 2  # rows 10..12 get a suggestion; r012 has label 0, r011 label 2 (= suggestion: stays)
    scores = pa.table({"id": ds.column("id"), "suggested_label": pa.array(sugg, pa.int32())})
    rel = arm_training_set(ds, sel, None, None, "clean", aug_ratio=0.0, review_as="relabel", scores=scores)
    lab = dict(zip(rel.column("id").to_pylist(), rel.column("label").to_pylist()))
    assert rel.num_rows == 95
    assert (lab["r010"], lab["r011"], lab["r012"], lab["r013"]) == (2, 2, 2, 1)
    assert training_set_info(rel)["n_relabelled"] == 5 + 2
    with pytest.raises(ValueError, match="suggested labels"):
        arm_training_set(ds, sel, None, None, "clean", aug_ratio=0.0, review_as="relabel")


def test_pool_smaller_than_budget_is_reported(parts):
    ds, sel, pool, rpool = parts
    t = arm_training_set(ds, sel, pool, rpool, "targeted", aug_ratio=0.5, seed=1)  # asks 50, pool has 40
    info = training_set_info(t)
    assert (info["requested_augmented"], info["available_augmented"], info["n_augmented"], info["shortfall"]) == (50, 40, 40, 10)
    small_random = rpool.slice(0, 7)
    r = arm_training_set(ds, sel, pool, small_random, "random", aug_ratio=0.5, seed=1)
    ri = training_set_info(r)
    assert ri["targeted_budget"] == 40 and ri["n_augmented"] == 7 and r.num_rows == 107


def test_seed_changes_sample_and_fixed_seed_reproduces(parts):
    ds, sel, pool, rpool = parts
    a = arm_training_set(ds, sel, pool, rpool, "targeted", aug_ratio=0.15, seed=3)
    b = arm_training_set(ds, sel, pool, rpool, "targeted", aug_ratio=0.15, seed=3)
    c = arm_training_set(ds, sel, pool, rpool, "targeted", aug_ratio=0.15, seed=4)
    assert a.equals(b)
    assert a.column("id").to_pylist() != c.column("id").to_pylist()


def test_spread_order_covers_sources_first():
    src = ["a"] * 5 + ["b"] * 2 + ["c"]
    order = spread_order(src, seed=0, stream=1)
    assert sorted(order.tolist()) == list(range(8))
    assert {src[i] for i in order[:3]} == {"a", "b", "c"}
    assert {src[i] for i in order[3:5]} == {"a", "b"}


def test_arm_validation_errors(parts):
    ds, sel, pool, rpool = parts
    with pytest.raises(ValueError, match="unknown arm"):
        arm_training_set(ds, sel, pool, rpool, "bogus", aug_ratio=0.1)
    with pytest.raises(ValueError, match="no row in the selection"):
        arm_training_set(ds, sel.slice(0, 50), pool, rpool, "clean", aug_ratio=0.1)
    stray = _pool(_dataset(120), [110], 1)
    with pytest.raises(ValueError, match="not in the dataset"):
        arm_training_set(ds, sel, stray, rpool, "targeted", aug_ratio=0.1)
    with pytest.raises(ValueError, match="random pool is missing"):
        arm_training_set(ds, sel, pool, None, "random", aug_ratio=0.1)
    with pytest.raises(ValueError, match="aug_ratio"):
        arm_training_set(ds, sel, pool, rpool, "targeted", aug_ratio=-1)


# ----------------------------------------------------------------------------- metrics


def test_metrics_match_sklearn_and_hand_ece():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(0)
    k = 4
    y = rng.integers(0, 3, 200)  # class 3 never occurs
    probs = rng.dirichlet(np.ones(k), 200)
    probs[np.arange(200)[:60], y[:60]] += 2.0
    probs /= probs.sum(1, keepdims=True)
    m = metrics(y, probs, k, ece_bins=10)
    pred = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    present = sorted(set(y) | set(pred))
    sk = f1_score(y, pred, average=None, labels=present)
    for c, v in zip(present, sk):
        assert m["per_class_f1"][c] == pytest.approx(v)
    if 3 not in present:
        assert math.isnan(m["per_class_f1"][3])
    conf, correct = probs.max(1), pred == y
    ece = 0.0
    for b in range(10):
        inb = (conf > b / 10) & (conf <= (b + 1) / 10)
        if inb.any():
            ece += inb.mean() * abs(correct[inb].mean() - conf[inb].mean())
    assert m["ece"] == pytest.approx(ece)


def test_metrics_perfect_and_validation():
    y = np.array([0, 1, 2])
    m = metrics(y, np.eye(3), 3)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["ece"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="shape"):
        metrics(y, np.eye(3)[:, :2], 3)
    with pytest.raises(ValueError, match="outside"):
        metrics(np.array([0, 1, 5]), np.eye(3), 3)


def test_interval_t_based_and_single_seed():
    from scipy import stats

    v = [0.80, 0.82, 0.85]
    iv = interval(v)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(v), scale=stats.sem(v))
    assert iv["lo"] == pytest.approx(lo) and iv["hi"] == pytest.approx(hi) and iv["n"] == 3
    one = interval([0.7])
    assert one["lo"] == one["hi"] == one["mean"] == 0.7 and "one seed" in one["note"]
    with pytest.raises(ValueError):
        interval([])


def _heldout_runs(arms: dict, n_seeds=3, k=3):
    """runs rows (pred + confidence lists) for {arm: (seeds, n) predictions}."""
    rows = []
    for a, preds in arms.items():
        preds = np.asarray(preds)
        preds = np.broadcast_to(preds, (n_seeds, preds.shape[-1])) if preds.ndim == 1 else preds
        for s, p in enumerate(preds):
            rows.append({"arm": a, "seed": s, "pred": np.asarray(p, np.int32), "confidence": np.full(p.shape, 0.9, np.float32),
                         "train_rows": 100, "n_augmented": 0})
    return pa.Table.from_pylist(rows)


def _labels(n=400, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    base = np.where(rng.random(n) < 0.8, y, (y + 1) % k)
    return y, base


def test_compare_bootstrap_over_rows_with_deterministic_seeds():
    """Three identical seeds (a converged model): intervals still have width, from the held-out rows."""
    y, base = _labels()
    wrong, right = np.flatnonzero(base != y), np.flatnonzero(base == y)
    clean = base.copy()
    clean[wrong[:30]] = y[wrong[:30]]  # fixes 30 rows
    targeted = base.copy()
    targeted[wrong[:4]] = y[wrong[:4]]
    targeted[right[:4]] = (y[right[:4]] + 2) % 3  # as many fixed as broken
    out = compare(_heldout_runs({"baseline": base, "clean": clean, "targeted": targeted, "random": base.copy()}), y, resamples=500)
    b = out["arms"]["baseline"]
    assert b["accuracy"]["mean"] == pytest.approx((base == y).mean())
    assert b["accuracy"]["lo"] < b["accuracy"]["mean"] < b["accuracy"]["hi"]  # width from the rows, not the seeds
    assert b["seed_spread"]["accuracy"]["sd"] == 0.0  # the seeds alone would say zero width
    c = out["arms"]["clean"]["vs_baseline"]
    assert c["accuracy"]["mean"] == pytest.approx(30 / len(y)) and c["accuracy"]["excludes_zero"] and c["accuracy"]["verdict"] == "higher"
    assert c["mcnemar"]["only_arm_correct"] == 30 and c["mcnemar"]["only_reference_correct"] == 0 and c["mcnemar"]["p_value"] < 1e-6
    t = out["arms"]["targeted"]["vs_baseline"]
    assert t["accuracy"]["lo"] < 0 < t["accuracy"]["hi"] and t["accuracy"]["verdict"] == "not distinguishable"
    assert t["mcnemar"]["p_value"] == pytest.approx(1.0)
    r = out["arms"]["random"]["vs_baseline"]["accuracy"]  # identical predictions: zero width, never real
    assert r["lo"] == r["hi"] == 0.0 and not r["excludes_zero"]
    assert "targeted - random" in out["pairs"]
    assert any("deterministic" in n for n in out["notes"])
    text = format_summary(out)
    lines = {ln.split()[0]: ln for ln in text.splitlines() if ln.split() and ln.split()[0] in out["arms"]}
    assert "higher" in lines["clean"] and "not distinguishable" not in lines["clean"]
    assert "not distinguishable" in lines["targeted"] and "not distinguishable" in lines["random"]
    assert "higher" not in lines["random"] and "lower" not in lines["random"]
    assert "(given labels)" in text and "(true labels)" not in text
    with pytest.raises(ValueError, match="several rows"):
        runs = _heldout_runs({"baseline": base})
        compare(pa.concat_tables([runs, runs.slice(0, 1)]), y)
    with pytest.raises(ValueError, match="one prediction per held-out row"):
        compare(_heldout_runs({"baseline": base}), y[:-1])
    with pytest.raises(ValueError, match="pred"):
        compare(_heldout_runs({"baseline": base}).drop_columns(["pred"]), y)


def test_compare_seed_noise_enters_the_interval():
    y, base = _labels(n=300)
    rng = np.random.default_rng(5)
    noisy = np.stack([np.where(rng.random(300) < 0.1, (base + 1) % 3, base) for _ in range(3)])
    out = compare(_heldout_runs({"baseline": base, "clean": noisy}), y, resamples=300)
    assert out["arms"]["clean"]["seed_spread"]["accuracy"]["sd"] > 0
    assert out["arms"]["clean"]["n_seeds"] == 3 and out["arms"]["clean"]["seeds"] == [0, 1, 2]


def test_compare_against_true_labels_when_known():
    """Demo-like: the held-out labels carry injected flips; an arm that learned the truth is scored on both."""
    rng = np.random.default_rng(2)
    n = 500
    true = rng.integers(0, 3, n)
    given = true.copy()
    flip = rng.choice(n, 40, replace=False)
    given[flip] = (true[flip] + 1) % 3
    learned_truth = true.copy()  # e.g. the clean arm
    memorised = given.copy()  # e.g. a baseline that fits the flips
    out = compare(_heldout_runs({"baseline": memorised, "clean": learned_truth}), given, y_true=true, resamples=300)
    assert out["label_sets"] == ["given", "true"]
    assert out["truth"] == {"available": True, "rows": n, "flipped": 40, "note": out["truth"]["note"]}
    clean, base = out["arms"]["clean"], out["arms"]["baseline"]
    assert clean["accuracy"]["mean"] == pytest.approx(1 - 40 / n)  # given labels: scored down for learning the truth
    assert clean["true_labels"]["accuracy"]["mean"] == 1.0  # true labels
    assert base["true_labels"]["accuracy"]["mean"] == pytest.approx(1 - 40 / n)
    assert clean["vs_baseline"]["accuracy"]["verdict"] == "lower"
    assert clean["true_labels"]["vs_baseline"]["accuracy"]["verdict"] == "higher"
    text = format_summary(out)
    assert "against the given held-out labels" in text and "against the true held-out labels" in text
    assert "accuracy % (given labels)" in text and "accuracy % (true labels)" in text
    assert "40 of 500 given labels differ" in text


def test_heldout_labels_use_truth_only_when_it_covers_every_row():
    from hardmine.evaluate import heldout_labels

    test = pa.table({"id": ["a", "b", "c"], "text": ["x", "y", "z"], "label": pa.array([0, 1, 2], pa.int32())})
    full = pa.table({"id": ["c", "a", "b"], "true_label": pa.array([2, 1, 1], pa.int32())})
    h, note = heldout_labels(test, full)
    assert h.column("true_label").to_pylist() == [1, 1, 2] and note is None
    h, note = heldout_labels(test, full.slice(0, 2))
    assert h.column("true_label").null_count == 3 and "2 of 3" in note
    h, note = heldout_labels(test, full.slice(0, 0))
    assert h.column("true_label").null_count == 3 and note is None
    h, note = heldout_labels(test, None)
    assert h.column("label").to_pylist() == [0, 1, 2] and h.column("true_label").null_count == 3


def test_bootstrap_zero_is_a_config_error_before_any_training(tmp_path, capsys):
    from hardmine.cli import main
    from hardmine.config import ConfigError, load_config

    for bad in ("0", "-5", "50"):
        with pytest.raises(ConfigError, match=r"evaluate\.bootstrap: Input should be greater than or equal to 100"):
            load_config(None, [f"evaluate.bootstrap={bad}"], base={"data": {"demo": {}}})
    with pytest.raises(ConfigError, match=r"evaluate\.confidence"):
        load_config(None, ["evaluate.confidence=1.0"], base={"data": {"demo": {}}})
    cfg = load_config(None, ["evaluate.bootstrap=200"], base={"data": {"demo": {}}})
    assert cfg.evaluate.bootstrap == 200 and cfg.evaluate.confidence == 0.95
    # the command line refuses it before any stage runs: no run directory is created
    (tmp_path / "c.yaml").write_text(f"name: b0\nrun_root: {tmp_path / 'runs'}\ndata:\n  demo: {{}}\n")
    assert main(["run", str(tmp_path / "c.yaml"), "--set", "evaluate.bootstrap=0"]) == 2
    assert "evaluate.bootstrap" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="resamples"):
        y, base = _labels(n=20)
        compare(_heldout_runs({"baseline": base}), y, resamples=0)


def test_prepare_demo_keeps_heldout_truth_apart(tmp_path):
    """The demo's held-out rows carry injected flips; their truth goes to test_truth.parquet (read by evaluate only)."""
    from hardmine.config import load_config
    from hardmine.evaluate import heldout_labels
    from hardmine.pipeline import Context
    from hardmine.pipeline.prepare import prepare
    from hardmine.store import RunStore

    cfg = load_config(None, ["data.demo.n_rows=600", "data.test_size=0.25", "oof.folds=3"],
                      base={"name": "demo", "run_root": str(tmp_path), "data": {"demo": {}}})
    store = RunStore(cfg.run_dir)
    logs = []
    summary = prepare(Context(cfg, store, logs.append))
    test, truth, test_truth = (store.read_table(n) for n in ("test.parquet", "truth.parquet", "test_truth.parquet"))
    test_ids = set(test.column("id").to_pylist())
    assert not test_ids & set(truth.column("id").to_pylist())  # mining stages never see held-out truth
    assert set(test_truth.column("id").to_pylist()) == test_ids
    assert summary["test_truth_rows"] == test.num_rows and summary["truth_rows"] == truth.num_rows
    h, note = heldout_labels(test, test_truth)
    given, true = h.column("label").to_numpy(), h.column("true_label").to_numpy()
    assert note is None and (given != true).sum() > 0  # the held-out split has flipped labels, and their truth
    noisy = dict(zip(test_truth.column("id").to_pylist(), test_truth.column("is_noisy").to_pylist()))
    assert [noisy[i] for i in h.column("id").to_pylist()] == (given != true).tolist()
    assert any("held-out rows have a true label" in line for line in logs)


# ----------------------------------------------------------------------------- on Ray


def build_run(root, *, n_per_class=16, name="ev", overrides=()):
    """A run directory holding what the mining stages write (real rows, real tiny-BERT embeddings,
    the real ``select``), without running OOF: dataset/test/scores/selected/embeddings + EDA pools."""
    from hardmine.augment.generators import eda_variants
    from hardmine.config import deep_merge, from_dict, parse_overrides
    from hardmine.embed import embeddings_table, load_encoder
    from hardmine.select import select
    from hardmine.store import RunStore
    from tests.helpers import make_rows, tiny_bert_dir

    model = tiny_bert_dir(root / "tinybert")
    names = ["account", "billing", "shipping"]
    rows = make_rows(n_per_class)
    test_rows, train_rows = rows[::4], [r for i, r in enumerate(rows) if i % 4]

    def table(rs):
        return pa.table({"id": [r["id"] for r in rs], "text": [r["text"] for r in rs],
                         "label": pa.array([names.index(r["label"]) for r in rs], pa.int32()), "label_name": [r["label"] for r in rs]})

    ds, test = table(train_rows), table(test_rows)
    cfg = from_dict(deep_merge(
        {"name": name, "run_root": str(root / "runs"), "data": {"path": str(root / "unused.csv")}},
        parse_overrides([f"oof.model={model}", "oof.backbone=frozen", "oof.head=linear", *overrides]),
    ))
    store = RunStore(cfg.run_dir)
    store.update_manifest(labels=names)
    enc = load_encoder(model, max_length=32)
    store.write_table("dataset.parquet", ds)
    store.write_table("test.parquet", test)
    store.write_table("embeddings.parquet", embeddings_table(ds.column("id"), enc.encode(ds.column("text").to_pylist())))
    store.write_table("test_embeddings.parquet", embeddings_table(test.column("id"), enc.encode(test.column("text").to_pylist())))
    rng = np.random.default_rng(0)
    n = ds.num_rows
    y = np.array(ds.column("label").to_pylist())
    p_true = rng.uniform(0.05, 0.95, n)
    issue = np.zeros(n, bool)
    issue[rng.choice(n, 4, replace=False)] = True
    other = (y + 1) % 3
    scores = pa.table({
        "id": ds.column("id"), "label": pa.array(y, pa.int32()), "pred": pa.array(np.where(p_true < 0.4, other, y), pa.int32()),
        "p_true": p_true, "hardness": 1 - p_true, "margin": 2 * p_true - 1, "entropy": np.full(n, 0.5),
        "self_confidence": p_true, "is_label_issue": issue, "issue_rank": pa.array(np.where(issue, 1, -1), pa.int32()),
        "suggested_label": pa.array(np.where(issue, other, -1), pa.int32()), "suggested_confidence": np.where(issue, 0.9, 0.0),
    })
    store.write_table("scores.parquet", scores)
    sel, _ = select(scores, ds, hardness_quantile=0.3)
    store.write_table("selected.parquet", sel)
    text = dict(zip(ds.column("id").to_pylist(), ds.column("text").to_pylist()))
    label = dict(zip(ds.column("id").to_pylist(), ds.column("label").to_pylist()))

    def pool(ids, seed):
        out = []
        for sid in ids:
            for v, t in enumerate(eda_variants(text[sid], 2, source_id=sid, seed=seed)):
                out.append({"id": f"{sid}-eda-{seed}-{v}", "source_id": sid, "text": t, "label": label[sid], "method": "eda",
                            "variant": v, "similarity": 1.0, "consistent": True, "kept": True, "reject_reason": None, "error": None})
        return pa.Table.from_pylist(out, schema=AUGMENTED)

    aug_ids = [i for i, a in zip(sel.column("id").to_pylist(), sel.column("action").to_pylist()) if a == "augment"]
    rand_ids = list(rng.choice(ds.column("id").to_pylist(), size=len(aug_ids), replace=False))
    store.write_table("augmented.parquet", pool(aug_ids, 0))
    store.write_table("augmented_random.parquet", pool(rand_ids, 1))
    return cfg, store, pool


@pytest.fixture(scope="module")
def mined_run(tmp_path_factory):
    cfg, store, _ = build_run(
        tmp_path_factory.mktemp("evalrun"),
        overrides=["oof.epochs=3", "evaluate.seeds=2", "evaluate.aug_ratio=0.25", "evaluate.epochs=4", "evaluate.bootstrap=300"],
    )
    # injected truth for the held-out rows (as prepare writes for the demo): every 5th given label is a flip
    test = store.read_table("test.parquet")
    given = np.array(test.column("label").to_pylist())
    true = np.where(np.arange(len(given)) % 5 == 0, (given + 1) % 3, given)
    store.write_table("test_truth.parquet", pa.table({"id": test.column("id"), "true_label": pa.array(true, pa.int32()),
                                                      "is_noisy": pa.array(true != given)}))
    return cfg, store


def test_run_evaluate_arms_on_ray(ray_local, mined_run):
    from hardmine.evaluate import arm_training_set as ats
    from hardmine.evaluate import retrain_many, run_evaluate

    cfg, store = mined_run
    logs = []
    summary = run_evaluate(cfg, store, logs.append)
    runs = store.read_table("evaluation/runs.parquet")
    assert runs.num_rows == 6 * 2
    assert set(summary["arms"]) == {"baseline", "clean", "targeted", "clean+targeted", "random", "hard_weighted"}
    n = store.read_table("dataset.parquet").num_rows
    sizes = {(a, s): (r, na) for a, s, r, na in zip(*(runs.column(c).to_pylist() for c in ("arm", "seed", "train_rows", "n_augmented")))}
    want_aug = min(round(0.25 * n), store.read_table("augmented.parquet").num_rows)
    assert sizes[("baseline", 0)] == (n, 0)
    assert sizes[("hard_weighted", 0)] == (n, 0)  # the baseline's rows, weighted by hardness
    assert sizes[("targeted", 0)] == (n + want_aug, want_aug)
    assert sizes[("random", 1)][1] == want_aug
    n_clean = sizes[("clean", 0)][0]
    assert sizes[("clean+targeted", 0)] == (n_clean + want_aug, want_aug)
    test_rows = store.read_table("test.parquet").num_rows
    assert summary["test_rows"] == test_rows
    acc = np.array(runs.column("accuracy").to_pylist())
    assert ((acc >= 0) & (acc <= 1)).all()
    assert all(len(p) == 3 for p in runs.column("per_class_f1").to_pylist())
    assert store.exists("evaluation/summary.json")
    assert any("held-out evaluation" in line for line in logs)
    assert "test.parquet" in store.reads and "test_truth.parquet" in store.reads
    # predictions per run, the held-out labels once, and metrics against the given and the true labels
    preds = runs.column("pred").to_pylist()
    assert all(len(p) == test_rows for p in preds) and all(len(c) == test_rows for c in runs.column("confidence").to_pylist())
    heldout = store.read_table("evaluation/heldout.parquet")
    given, true = heldout.column("label").to_numpy(), heldout.column("true_label").to_numpy()
    assert heldout.column("id").to_pylist() == store.read_table("test.parquet").column("id").to_pylist() and (given != true).any()
    assert summary["label_sets"] == ["given", "true"] and summary["truth"]["flipped"] == int((given != true).sum())
    for arm in summary["arms"]:
        mine = [np.mean(np.array(p) == true) for a, p in zip(runs.column("arm").to_pylist(), preds) if a == arm]
        assert summary["arms"][arm]["true_labels"]["accuracy"]["mean"] == pytest.approx(np.mean(mine))
        given_acc = [r for a, r in zip(runs.column("arm").to_pylist(), runs.column("accuracy").to_pylist()) if a == arm]
        assert summary["arms"][arm]["accuracy"]["mean"] == pytest.approx(np.mean(given_acc))
    assert summary["bootstrap"]["resamples"] == 300
    text = "\n".join(logs)
    assert "(given labels)" in text and "(true labels)" in text
    from hardmine.summaries import read_evaluation_summary

    read_evaluation_summary(store.read_json("evaluation/summary.json"))
    # seeds change results; a fixed seed reproduces them (fresh checkpoint dirs: really retrained)
    ece = dict(zip(zip(runs.column("arm").to_pylist(), runs.column("seed").to_pylist()), runs.column("ece").to_pylist()))
    assert ece[("baseline", 0)] != ece[("baseline", 1)]
    ds, test = store.read_table("dataset.parquet"), store.read_table("test.parquet")
    sel, pool = store.read_table("selected.parquet"), store.read_table("augmented.parquet")
    again = retrain_many(
        cfg, store,
        {(a, s): ats(ds, sel, pool, None, a, aug_ratio=0.25, review_as="drop", seed=cfg.seed * 1000 + s) for a in ("baseline", "targeted") for s in (0,)},
        ds, test, 3, fingerprint="repro", log=lambda s: None,
    )
    for a, e2, acc2 in zip(again.column("arm").to_pylist(), again.column("ece").to_pylist(), again.column("accuracy").to_pylist()):
        assert e2 == pytest.approx(ece[(a, 0)], abs=1e-12)
    # augmented texts were embedded once and cached by text, in the one shared cache
    from hardmine.embeddings import cache_folder, cache_store, read_cache
    from hardmine.oof.settings import oof_max_length

    known, _ = read_cache(cache_store(cfg), cache_folder(cfg, oof_max_length(store)))
    assert set(pool.column("text").to_pylist()) & set(known)


@pytest.mark.slow
def test_run_evaluate_finetune_trainer(ray_local, tmp_path):
    """Finetune retrains run as TorchTrainer runs (tiny BERT): right sizes, finite metrics."""
    from hardmine.evaluate import run_evaluate

    cfg, store, _ = build_run(
        tmp_path, name="ft",
        overrides=["oof.backbone=finetune", "oof.epochs=1", "oof.batch_size=8", "oof.lr=0.001", "evaluate.seeds=1",
                   "evaluate.arms=[baseline,targeted]", "evaluate.aug_ratio=0.25"],
    )
    summary = run_evaluate(cfg, store, lambda s: None)
    runs = store.read_table("evaluation/runs.parquet").to_pylist()
    n = store.read_table("dataset.parquet").num_rows
    by = {r["arm"]: r for r in runs}
    assert by["baseline"]["train_rows"] == n and by["targeted"]["train_rows"] == n + round(0.25 * n)
    assert all(0.0 <= r["accuracy"] <= 1.0 and math.isfinite(r["ece"]) for r in runs)
    assert summary["arms"]["baseline"]["n_seeds"] == 1 and summary["arms"]["baseline"]["seed_spread"]["accuracy"]["n"] == 1
    assert store.exists("_train")  # Ray Train run directories
