"""The review loop closes: export, edit, import, `run` resumes from the new version, `review next` skips reviewed rows.

No Ray: the OOF ensemble is an external-probabilities member (nothing trains), and the score
stage's neighbour embeddings are replaced by a deterministic stand-in.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from hardmine import cli
from hardmine.store import RunStore

CLASSES = {
    "billing": ["invoice", "charge", "payment", "card", "refund", "bill", "fee", "price"],
    "shipping": ["parcel", "courier", "tracking", "delivery", "package", "address", "box", "arrive"],
    "account": ["password", "login", "email", "username", "profile", "reset", "locked", "signin"],
}
NAMES = sorted(CLASSES)


def _rows(n_per_class: int, prefix: str, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"id": f"{prefix}{label}-{i}", "text": "my " + " ".join(rng.choice(words, 4)) + f" please {prefix}{i}", "label": label}
            for label, words in CLASSES.items() for i in range(n_per_class)]


def _fake_embed(cfg, texts, *, max_length=None, log=print):
    return np.stack([np.frombuffer(hashlib.sha256(str(t).encode()).digest(), dtype=np.uint8)[:8].astype(np.float32) for t in texts])


@pytest.fixture
def no_ray(monkeypatch):
    """The score stage's kNN embeddings without Ray (the pipeline code paths are otherwise real)."""
    import hardmine.embeddings
    import hardmine.runtime

    monkeypatch.setattr(hardmine.runtime, "connect", lambda cfg, log=print: None)
    monkeypatch.setattr(hardmine.embeddings, "cached_embeddings", _fake_embed)


@pytest.fixture
def loop(tmp_path, no_ray):
    train = _rows(14, "", 0)
    test = _rows(4, "t", 1)
    flipped = {r["id"] for r in train[::7]}  # planted label errors: the probabilities point at the true class
    given = [dict(r, label=NAMES[(NAMES.index(r["label"]) + 1) % 3]) if r["id"] in flipped else r for r in train]
    pd.DataFrame(given).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(test).to_csv(tmp_path / "test.csv", index=False)
    p = np.full((len(train), 3), 0.1)
    for n, r in enumerate(train):
        p[n, NAMES.index(r["label"])] = 0.8
    pq.write_table(pa.table({"id": [r["id"] for r in train], **{c: p[:, k] for k, c in enumerate(NAMES)}}), tmp_path / "probs.parquet")
    cfg = {
        "name": "t", "run_root": str(tmp_path / "runs"),
        "data": {"path": str(tmp_path / "train.csv"), "test_path": str(tmp_path / "test.csv")},
        "oof": {"folds": 3, "backbones": ["external"], "probs_path": str(tmp_path / "probs.parquet"), "calibration": "none"},
        "score": {"knn_k": 3, "dual_model": "off", "duplicates": "exact"},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return RunStore(str(tmp_path / "runs" / "t")), str(path), flipped


def _fps(store) -> dict[str, str]:
    return {k: v.get("fingerprint") for k, v in store.manifest()["stages"].items() if k in ("prepare", "oof", "score")}


def _updated(store) -> dict[str, str]:
    return {k: v.get("updated") for k, v in store.manifest()["stages"].items() if k in ("prepare", "oof", "score")}


def test_two_review_rounds_end_to_end(loop, capsys, tmp_path):
    from hardmine.review.versions import review_history

    store, cfg, flipped = loop
    assert cli.main(["score", cfg]) == 0
    fp0 = _fps(store)
    test_bytes = open(store.path("test.parquet"), "rb").read()
    test_fp = store.manifest()["test_fingerprint"]
    v0 = store.read_table("dataset.parquet")

    # ---- round 1: export, the annotator accepts every suggestion, import -> version 1
    assert cli.main(["review", "export", cfg, "--format", "csv"]) == 0
    csv = store.path("review/label_issues/label_issues.csv")
    q = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert set(q["id"]) == flipped
    q["corrected_label"] = q["suggested_label"]
    q.to_csv(csv, index=False)
    assert cli.main(["review", "import", cfg, csv]) == 0
    assert store.manifest()["dataset_version"] == 1
    out = capsys.readouterr().out
    assert "the next `hardmine run` trains on it" in out
    assert store.exists("review/versions/v0.parquet")  # the data as prepared, kept beside the versions
    round1 = set(q["id"])

    # ---- `run` resumes from version 1: prepare uses its labels, the held-out split is untouched
    assert cli.main(["score", cfg]) == 0
    fp1 = _fps(store)
    assert all(fp1[s] != fp0[s] for s in fp0), "the changed labels invalidate prepare and every stage after it"
    ds = store.read_table("dataset.parquet")
    assert store.manifest()["stages"]["prepare"]["summary"]["dataset_version"] == 1
    assert ds.column("id").to_pylist() == v0.column("id").to_pylist()
    v1 = store.read_table("review/versions/v1.parquet")
    assert ds.column("label").to_pylist() == v1.column("label").to_pylist() != v0.column("label").to_pylist()
    assert open(store.path("test.parquet"), "rb").read() == test_bytes
    assert store.manifest()["test_fingerprint"] == test_fp
    oof = store.read_table("scores.parquet")
    assert not set(oof.filter(oof.column("is_label_issue")).column("id").to_pylist()) & round1  # corrected rows are clean now

    # pinning the version it is on changes nothing: nothing re-runs
    before = _updated(store)
    assert cli.main(["score", cfg, "--set", "data.version=1"]) == 0
    assert _fps(store) == fp1 and _updated(store) == before
    assert "up to date" in capsys.readouterr().out
    # version 0 is the data as read: the same prepare fingerprint as the first run
    assert cli.main(["prepare", cfg, "--set", "data.version=0"]) == 0
    assert store.manifest()["stages"]["prepare"]["fingerprint"] == fp0["prepare"]
    assert store.read_table("dataset.parquet").column("label").to_pylist() == v0.column("label").to_pylist()
    # a version that does not exist
    assert cli.main(["prepare", cfg, "--set", "data.version=5"]) == 2
    assert "data.version: 5" in capsys.readouterr().err

    # ---- review next: retrains on the newest version (resuming), exports what was not reviewed yet
    assert cli.main(["review", "next", cfg, "--budget", "12", "--format", "csv"]) == 0
    assert _fps(store) == fp1  # back on version 1: the same fingerprints as the first run on it
    out = capsys.readouterr().out
    assert f"{len(round1)} rows already reviewed are left out" in out
    nxt = pd.read_csv(store.path("review/label_issues_v1/label_issues_v1.csv"), dtype=str, keep_default_na=False)
    assert len(nxt) == 12 and not set(nxt["id"]) & round1

    # ---- round 2: two labels changed, the rest confirmed
    new = {i: NAMES[(NAMES.index(g) + 1) % 3] for i, g in zip(nxt["id"][:2], nxt["given_label"][:2])}
    nxt["corrected_label"] = [new.get(i, g) for i, g in zip(nxt["id"], nxt["given_label"])]
    path2 = tmp_path / "round2.csv"
    nxt.to_csv(path2, index=False)
    assert cli.main(["review", "import", cfg, str(path2)]) == 0
    assert store.manifest()["dataset_version"] == 2
    audit = store.read_table("review/audit.parquet")
    assert audit.num_rows == len(round1) + 2
    assert cli.main(["review", "import", cfg, str(path2)]) == 0  # idempotent: no version, no review rows added
    assert store.manifest()["dataset_version"] == 2
    assert store.read_table("review/reviewed.parquet").num_rows == len(round1) + 12

    assert cli.main(["review", "next", cfg, "--budget", "10", "--format", "csv"]) == 0
    assert store.manifest()["stages"]["prepare"]["summary"]["dataset_version"] == 2
    ds2 = store.read_table("dataset.parquet")
    lab = dict(zip(ds2.column("id").to_pylist(), ds2.column("label_name").to_pylist()))
    assert all(lab[i] == n for i, n in new.items())
    nxt2 = pd.read_csv(store.path("review/label_issues_v2/label_issues_v2.csv"), dtype=str, keep_default_na=False)
    assert len(nxt2) == 10 and not set(nxt2["id"]) & (round1 | set(nxt["id"]))
    assert open(store.path("test.parquet"), "rb").read() == test_bytes

    # ---- the review history (the report's section)
    hist = review_history(store)
    assert [(r["round"], r["kind"], r["version"], r["rows"], r["changed"]) for r in hist] == [
        (0, "prepared", 0, None, None), (1, "review", 1, len(round1), len(round1)), (2, "review", 2, 12, 2)]
    from hardmine.report import build_report

    page = build_report(store)
    sec = page[page.index('<section id="review-history">'):]
    sec = sec[: sec.index("</section>")]
    assert "rows reviewed" in sec and f"<dd>{len(round1) + 12}</dd>" in sec and "could not be rendered" not in page


def test_record_version_metrics_keeps_accuracy_per_version(tmp_path):
    from hardmine.review.versions import record_version_metrics, review_history

    store = RunStore(str(tmp_path / "r"))
    for v, acc in ((0, 0.70), (1, 0.75)):
        store.update_manifest(stages={
            "prepare": {"status": "done", "fingerprint": f"p{v}", "summary": {"dataset_version": v}},
            "holdout": {"status": "done", "summary": {"test_accuracy_fold_ensemble": acc}},
            "evaluate": {"status": "done", "summary": {"arms": {"baseline": {"accuracy": {"mean": acc + 0.01}}}}},
        })
        record_version_metrics(store)
    m = store.manifest()["version_metrics"]
    assert m["0"]["fold_ensemble"] == 0.70 and m["1"]["baseline"] == pytest.approx(0.76)
    store.write_table("review/reviewed.parquet", pa.table({
        "id": ["a", "b"], "label": ["x", "y"], "changed": [True, False], "round": pa.array([1, 1], pa.int32()),
        "version": pa.array([1, 1], pa.int32()), "source": ["f.csv", "f.csv"], "time": ["2024-01-01T00:00:00Z"] * 2,
    }))
    hist = review_history(store)
    assert hist[0]["fold_ensemble"] == 0.70 and hist[1]["fold_ensemble"] == 0.75 and hist[1]["changed"] == 1


def test_reviewed_arm_compares_reviewed_labels_with_version_0(loop, monkeypatch, capsys):
    """The reviewed arm: the newest labels against version 0's on the same rows; a set equal to the baseline's is not retrained."""
    import hardmine.evaluate.stage as E

    store, cfg_path, flipped = loop
    assert cli.main(["prepare", cfg_path]) == 0
    v0 = store.read_table("dataset.parquet")
    corr = pd.DataFrame({"id": sorted(flipped), "corrected_label": ["billing"] * len(flipped)})
    corr.to_csv(store.path("corr.csv"), index=False)
    assert cli.main(["review", "import", cfg_path, store.path("corr.csv")]) == 0
    assert cli.main(["prepare", cfg_path]) == 0  # now on version 1
    ds = store.read_table("dataset.parquet")
    store.write_table("selected.parquet", pa.table({"id": ds.column("id"), "action": ["none"] * ds.num_rows,
                                                    "new_label": pa.array([-1] * ds.num_rows, pa.int32())}))
    trained = {}

    def fake_retrain(cfg, store, sets, dataset, test, num_labels, *, fingerprint, log=print):
        trained.update(sets)
        y = test.column("label").to_numpy()
        rows = []
        for (arm, seed), t in sets.items():
            pred = y if arm != E.BEFORE_REVIEW else (y + 1) % num_labels
            rows.append({"arm": arm, "seed": seed, "train_rows": t.num_rows, "n_augmented": 0, "requested_augmented": 0,
                         "n_dropped": 0, "n_relabelled": 0, "accuracy": float((pred == y).mean()), "macro_f1": 0.0, "ece": 0.0,
                         "per_class_f1": [0.0] * num_labels, "seconds": 0.0, "pred": pred.astype(np.int32),
                         "confidence": np.full(len(y), 0.9, np.float32)})
        return pa.Table.from_pylist(rows, schema=E.RUNS)

    monkeypatch.setattr(E, "retrain_many", fake_retrain)
    from hardmine.config import load_config

    cfg = load_config(cfg_path, ["evaluate.arms=[baseline, reviewed]", "evaluate.seeds=2", "evaluate.bootstrap=100"])
    summary = E.run_evaluate(cfg, store, log=lambda s: None, fingerprint="x")
    # the run is on version 1: the reviewed set is the baseline's, so only baseline and before_review train
    assert sorted({a for a, _ in trained}) == ["baseline", E.BEFORE_REVIEW]
    before = trained[(E.BEFORE_REVIEW, 0)]
    assert before.column("id").to_pylist() == v0.column("id").to_pylist()
    assert before.column("label").to_pylist() == v0.column("label").to_pylist()
    assert set(summary["arms"]) == {"baseline", "reviewed", E.BEFORE_REVIEW}
    pair = summary["pairs"]["reviewed - before_review"]
    assert pair["accuracy"]["mean"] == pytest.approx(1.0) and pair["accuracy"]["verdict"] == "higher"
    info = summary["training_sets"]["reviewed"]
    assert info["version"] == 1 and info["n_relabelled"] == 0
    assert summary["training_sets"][E.BEFORE_REVIEW]["n_relabelled"] == sum(
        1 for i in flipped if dict(zip(v0.column("id").to_pylist(), v0.column("label_name").to_pylist()))[i] != "billing")


def test_reviewed_arm_without_a_reviewed_version_is_refused_before_training(loop, capsys):
    store, cfg, _ = loop
    code = cli.main(["score", cfg, "--set", "evaluate.arms=[baseline, reviewed]"])
    err = capsys.readouterr().err
    assert code == 2 and "no reviewed dataset version" in err and "Traceback" not in err
    assert "oof" not in store.manifest().get("stages", {})


def test_review_history_section_without_reviews_is_not_a_missing_note(tmp_path):
    from hardmine import report as R

    store = RunStore(str(tmp_path / "r"))
    store.update_manifest(name="r", labels=["a", "b"])
    page = R.build_report(store, strict=True)
    sec = page[page.index('<section id="review-history">'):]
    sec = sec[: sec.index("</section>")]
    assert "No review round yet" in sec and R.NOT_RUN not in sec
