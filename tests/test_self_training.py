"""Self-training: the pseudo-label rule, `hardmine pseudo-label` (versions, audit, idempotence, active queue),
the self_training arm's training set and the held-out split, and bad pools refused before training.

No Ray: the fold ensemble is a stand-in that reads the class from the text's keyword.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from hardmine import cli
from hardmine.review.pseudo import class_caps, select_pseudo
from hardmine.store import RunStore

NAMES = ["a", "b", "c"]


# ----------------------------------------------------------------------------- the rule


def test_threshold_and_per_class_caps():
    p = np.array([
        [0.95, 0.03, 0.02],  # 0 a
        [0.91, 0.05, 0.04],  # 1 a
        [0.99, 0.005, 0.005],  # 2 a (most probable a)
        [0.89, 0.06, 0.05],  # 3 a: below the threshold
        [0.05, 0.93, 0.02],  # 4 b
        [0.30, 0.40, 0.30],  # 5 uncertain
        [0.02, 0.02, 0.96],  # 6 c
        [0.02, 0.03, 0.95],  # 7 c
    ])
    idx, rep = select_pseudo(p, threshold=0.9, labelled_counts=[10, 10, 10])
    assert idx.tolist() == [0, 1, 2, 4, 6, 7]  # every row at >= 0.9, none below
    assert rep["candidates"] == 6 and rep["accepted"] == 6 and rep["capped"] == 0
    # a fixed cap keeps the most probable rows of each class
    idx, rep = select_pseudo(p, threshold=0.9, labelled_counts=[10, 10, 10], max_per_class=1)
    assert idx.tolist() == [2, 4, 6]
    assert rep["capped"] == 3 and [r["accepted"] for r in rep["per_class"]] == [1, 1, 1]
    # a share of the class's labelled rows: class a has 4 labelled rows -> at most 2
    idx, _ = select_pseudo(p, threshold=0.9, labelled_counts=[4, 10, 10], max_class_share=0.5)
    assert idx.tolist() == [0, 2, 4, 6, 7]
    # rows already pseudo-labelled count against the cap
    idx, rep = select_pseudo(p, threshold=0.9, labelled_counts=[4, 10, 10], existing_counts=[2, 0, 1], max_class_share=0.5,
                             max_per_class=2)
    assert idx.tolist() == [4, 6]
    assert [r["cap"] for r in rep["per_class"]] == [0, 2, 1]
    # a lower threshold admits row 3, never the uncertain row 5
    idx, _ = select_pseudo(p, threshold=0.85, labelled_counts=[10, 10, 10])
    assert 3 in idx and 5 not in idx


def test_class_caps_never_negative():
    caps = class_caps(2, np.array([3, 100]), np.array([5, 0]), max_per_class=10, max_class_share=0.5)
    assert caps.tolist() == [0, 10]


# ----------------------------------------------------------------------------- the command


class FakeEnsemble:
    """Stands in for FoldEnsemble: a text naming class ``x`` with ``!`` is confident, with ``?`` near the boundary."""

    def __init__(self, run_dir, *a, **kw):
        self.calls = 0

    def predict(self, texts):
        out = []
        for t in texts:
            k = NAMES.index(t.split()[0])
            if "!" in t:
                p = np.full(3, 0.02)
                p[k] = 0.96 - 0.001 * len(t)  # longer texts slightly less sure
            elif "?" in t:
                p = np.array([0.33, 0.33, 0.34])
                p[k] += 0.01
                p[(k + 1) % 3] -= 0.01
            else:
                p = np.full(3, 0.2)
                p[k] = 0.6
            out.append(p / p.sum())
        return np.asarray(out, np.float32)


@pytest.fixture
def run(tmp_path, monkeypatch):
    import hardmine.oof.predict

    monkeypatch.setattr(hardmine.oof.predict, "FoldEnsemble", FakeEnsemble)
    store = RunStore(str(tmp_path / "runs" / "t"))
    n = 30
    y = np.arange(n) % 3
    store.write_table("dataset.parquet", pa.table({
        "id": [f"r{i}" for i in range(n)], "text": [f"{NAMES[v]} labelled row {i}" for i, v in enumerate(y)],
        "label": pa.array(y, pa.int32()), "label_name": [NAMES[v] for v in y],
    }))
    store.write_table("test.parquet", pa.table({
        "id": ["t0", "t1", "t2"], "text": ["a  Held out one !", "b held out two", "c held out three"],
        "label": pa.array([0, 1, 2], pa.int32()), "label_name": ["a", "b", "c"],
    }))
    store.update_manifest(labels=NAMES)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "t", "run_root": str(tmp_path / "runs"), "data": {"path": "unused.csv"},
                                   "pseudo": {"max_class_share": 0.4, "active_batch": 4}}))
    return store, str(cfg)


def _pool(tmp_path, rows, name="pool.csv"):
    path = tmp_path / name
    pd.DataFrame(rows, columns=["id", "text"]).to_csv(path, index=False)
    return str(path)


POOL = (
    [(f"ua{i}", f"a sure{'x' * i} !") for i in range(7)]  # 7 confident a: the cap (0.4 x 10 labelled) keeps 4
    + [(f"ub{i}", f"b sure{'x' * i} !") for i in range(2)]
    + [(f"uq{i}", f"{NAMES[i % 3]} unsure {i} ?") for i in range(5)]  # near the boundary
    + [("um0", "c middling text"), ("ul0", "a held out one !")]  # below the threshold; a held-out text
)


def test_pseudo_label_version_audit_queue_and_idempotent(run, tmp_path, capsys):
    store, cfg = run
    pool = _pool(tmp_path, POOL)
    assert cli.main(["pseudo-label", cfg, "--unlabelled", pool]) == 0
    out = capsys.readouterr().out
    assert store.manifest()["dataset_version"] == 1
    v1 = store.read_table("review/versions/v1.parquet")
    v0 = store.read_table("review/versions/v0.parquet")
    assert v0.num_rows == 30 and v1.num_rows == 30 + 6
    added = v1.slice(30).to_pylist()
    # the cap keeps the 4 most probable a rows (the shortest texts), both b rows; no boundary, middling or held-out text
    assert [r["id"] for r in added] == ["ua0", "ua1", "ua2", "ua3", "ub0", "ub1"]
    assert [r["label_name"] for r in added] == ["a"] * 4 + ["b"] * 2
    audit = store.read_table("review/pseudo_audit.parquet")
    assert audit.column("id").to_pylist() == [r["id"] for r in added]
    assert audit.column("predicted_label").to_pylist() == ["a"] * 4 + ["b"] * 2
    assert min(audit.column("probability").to_pylist()) >= 0.9
    assert all(s.startswith("pseudo-label pool.csv") for s in audit.column("source").to_pylist())
    assert set(audit.column("version").to_pylist()) == {1}
    assert "held-out text" in out and "ul0" in out
    # the rows nearest the decision boundary go to the active-learning queue (lowest margin first)
    q = pd.read_csv(store.path("review/active_margin_unlabelled/active_margin_unlabelled.csv"), keep_default_na=False)
    assert len(q) == 4 and set(q["id"]) <= {f"uq{i}" for i in range(5)}
    assert not set(q["id"]) & set(audit.column("id").to_pylist())

    # same pool, same models: nothing new, no version
    assert cli.main(["pseudo-label", cfg, "--unlabelled", pool]) == 0
    assert "no new pseudo-labelled row" in capsys.readouterr().out
    assert store.manifest()["dataset_version"] == 1
    assert store.read_table("review/pseudo_audit.parquet").num_rows == 6
    # a larger cap takes the rest of the confident a rows, counting those already added
    assert cli.main(["pseudo-label", cfg, "--unlabelled", pool, "--set", "pseudo.max_class_share=0.6"]) == 0
    assert store.manifest()["dataset_version"] == 2
    assert store.read_table("review/pseudo_audit.parquet").slice(6).column("id").to_pylist() == ["ua4", "ua5"]
    # pseudo-labelled rows of the pool are not "training ids" of the pool: the pool stays usable
    assert cli.main(["pseudo-label", cfg, "--set", f"data.unlabelled_path={pool}"]) == 0


@pytest.mark.parametrize("rows, words", [
    ([("r3", "a sure !"), ("u1", "b sure !")], ["also labelled training rows", "r3"]),
    ([("t1", "a sure !")], ["held-out rows", "t1", "never reach the held-out evaluation"]),
    ([], ["empty"]),
])
def test_bad_pool_is_refused_before_any_prediction(run, tmp_path, capsys, rows, words):
    store, cfg = run
    pool = _pool(tmp_path, rows)
    code = cli.main(["pseudo-label", cfg, "--unlabelled", pool])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "hardmine: error:" in err
    assert all(w in err for w in words), err
    assert not store.exists("review/versions/v1.parquet")


def test_pseudo_label_needs_a_pool(run, capsys):
    _, cfg = run
    assert cli.main(["pseudo-label", cfg]) == 2
    assert "--unlabelled" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the arm and the held-out split


def test_self_training_set_never_holds_heldout_rows(run, tmp_path, monkeypatch):
    import hardmine.evaluate.stage as E
    import hardmine.runtime
    from hardmine.config import load_config

    store, cfg_path = run
    monkeypatch.setattr(hardmine.runtime, "connect", lambda cfg, log=print: None)
    ds = store.read_table("dataset.parquet")
    store.write_table("selected.parquet", pa.table({"id": ds.column("id"), "action": ["none"] * ds.num_rows,
                                                    "new_label": pa.array([-1] * ds.num_rows, pa.int32())}))
    pool = _pool(tmp_path, POOL)
    trained = {}

    def fake_retrain(cfg, store, sets, dataset, test, num_labels, *, fingerprint, log=print):
        trained.update(sets)
        y = test.column("label").to_numpy()
        return pa.Table.from_pylist([
            {"arm": a, "seed": s, "train_rows": t.num_rows, "n_augmented": 0, "requested_augmented": 0, "n_dropped": 0,
             "n_relabelled": 0, "accuracy": 1.0, "macro_f1": 1.0, "ece": 0.0, "per_class_f1": [1.0] * num_labels, "seconds": 0.0,
             "pred": y.astype(np.int32), "confidence": np.full(len(y), 0.9, np.float32)} for (a, s), t in sets.items()], schema=E.RUNS)

    monkeypatch.setattr(E, "retrain_many", fake_retrain)
    cfg = load_config(cfg_path, ["evaluate.arms=[baseline, self_training]", "evaluate.seeds=1", "evaluate.bootstrap=100",
                                 f"data.unlabelled_path={pool}"])
    summary = E.run_evaluate(cfg, store, log=lambda s: None, fingerprint="x")
    st = trained[("self_training", 0)]
    test = store.read_table("test.parquet")
    assert not set(st.column("id").to_pylist()) & set(test.column("id").to_pylist())
    norm = {" ".join(t.split()).casefold() for t in test.column("text").to_pylist()}
    assert not {" ".join(t.split()).casefold() for t in st.column("text").to_pylist()} & norm
    assert "ul0" not in st.column("id").to_pylist()  # its text repeats a held-out text (case and spaces aside)
    assert st.num_rows == ds.num_rows + 6 and summary["training_sets"]["self_training"]["n_pseudo"] == 6
    assert st.slice(ds.num_rows).column("origin").to_pylist() == ["augmented"] * 6
    assert store.read_table("evaluation/heldout.parquet").column("id").to_pylist() == test.column("id").to_pylist()
    assert trained[("baseline", 0)].num_rows == ds.num_rows  # the other arms never see the pool

    # a pool sharing an id with the held-out split is refused before anything trains
    trained.clear()
    bad = _pool(tmp_path, POOL + [("t2", "c something !")], "bad.csv")
    cfg = load_config(cfg_path, ["evaluate.arms=[baseline, self_training]", f"data.unlabelled_path={bad}"])
    from hardmine.data import DataError

    with pytest.raises(DataError, match="held-out rows"):
        E.run_evaluate(cfg, store, log=lambda s: None, fingerprint="x")
    assert not trained


# ----------------------------------------------------------------------------- `hardmine run`: refused in prepare


def _data(tmp_path):
    from tests.test_bad_inputs import rows

    pd.DataFrame(rows()).to_csv(tmp_path / "d.csv", index=False)
    return tmp_path / "d.csv"


@pytest.mark.parametrize("pool_rows, extra, words", [
    ([("billing-3", "my invoice please")], {}, ["also labelled training rows", "billing-3"]),
    ([], {}, ["empty"]),
    (None, {"evaluate": {"arms": ["baseline", "self_training"]}}, ["data.unlabelled_path is not set"]),
])
def test_run_refuses_bad_pool_before_training(tmp_path, capsys, pool_rows, extra, words):
    import ray

    from tests.test_bad_inputs import write_config

    data = _data(tmp_path)
    add = dict(extra)
    if pool_rows is not None:
        add["data"] = {"unlabelled_path": _pool(tmp_path, pool_rows)}
    cfg = write_config(tmp_path, data, yaml.safe_dump(add) if add else "")
    was = ray.is_initialized()  # another test's session cluster may already be up
    code = cli.main(["run", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and all(w in err for w in words), err
    assert ray.is_initialized() == was, "the pool must be refused before Ray starts"
    stages = RunStore(str(tmp_path / "runs" / "t")).manifest().get("stages", {})
    assert "oof" not in stages


class KeywordEnsemble:
    """Stands in for FoldEnsemble on tests.test_bad_inputs.rows(): the class whose keyword the text holds."""

    def __init__(self, *a, **kw):
        from tests.test_bad_inputs import CLASSES

        self.classes = CLASSES

    def predict(self, texts):
        names = sorted(self.classes)
        out = np.full((len(texts), len(names)), 0.02)
        for n, t in enumerate(texts):
            hit = [k for k, c in enumerate(names) if any(w in t for w in self.classes[c])]
            out[n, hit[0] if hit else 0] = 0.96 if hit else 0.34
        return (out / out.sum(1, keepdims=True)).astype(np.float32)


def test_run_continues_from_a_pseudo_labelled_version(tmp_path, monkeypatch, capsys):
    import hardmine.oof.predict
    from tests.test_bad_inputs import write_config

    monkeypatch.setattr(hardmine.oof.predict, "FoldEnsemble", KeywordEnsemble)
    data = _data(tmp_path)
    pool = _pool(tmp_path, [(f"p{i}", f"please {w} now") for i, w in enumerate(["invoice", "parcel", "password", "refund"])])
    cfg = str(write_config(tmp_path, data, f"data: {{test_size: 0.25, unlabelled_path: {pool}}}\n"))
    assert cli.main(["prepare", cfg]) == 0
    store = RunStore(str(tmp_path / "runs" / "t"))
    test_before = store.read_table("test.parquet")
    n0 = store.read_table("dataset.parquet").num_rows
    assert cli.main(["pseudo-label", cfg]) == 0
    assert store.manifest()["dataset_version"] == 1
    assert cli.main(["prepare", cfg]) == 0  # the next run trains on version 1: the labelled rows + the pool's
    ds = store.read_table("dataset.parquet")
    assert ds.num_rows == n0 + 4 and {"p0", "p1", "p2", "p3"} <= set(ds.column("id").to_pylist())
    assert store.manifest()["stages"]["prepare"]["summary"]["pseudo_rows"] == 4
    assert store.read_table("test.parquet").equals(test_before)
    # the pool still passes the overlap check (its rows in the dataset are pseudo-labelled, not labelled)
    assert cli.main(["pseudo-label", cfg]) == 0 and store.manifest()["dataset_version"] == 1
    capsys.readouterr()
    # ... but a pool row that is a labelled training row is refused before anything trains
    bad = _pool(tmp_path, [("billing-1", "my invoice please")], "bad.csv")
    assert cli.main(["run", cfg, "--set", f"data.unlabelled_path={bad}"]) == 2
    assert "billing-1" in capsys.readouterr().err
    assert "oof" not in store.manifest()["stages"]
