"""`hardmine review export|import` against a run directory (no Ray needed)."""
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hardmine import cli
from hardmine.scoring import score_table
from hardmine.store import RunStore


@pytest.fixture
def run(tmp_path):
    rng = np.random.default_rng(0)
    n, k = 60, 3
    labels = ["a", "b", "c"]
    y = np.arange(n) % k
    probs = np.full((n, k), 0.05)
    probs[np.arange(n), y] = 0.9
    flipped = np.arange(0, n, 10)
    given = y.copy()
    given[flipped] = (y[flipped] + 1) % k  # planted label errors: probs point at the true class
    probs = probs / probs.sum(1, keepdims=True)
    ids = [f"r{i}" for i in range(n)]
    store = RunStore(str(tmp_path / "runs" / "t"))
    store.write_table("dataset.parquet", pa.table({
        "id": ids, "text": [f"text number {i} 한국어" for i in range(n)],
        "label": pa.array(given, pa.int32()), "label_name": [labels[v] for v in given],
    }))
    scores, _ = score_table(ids, given, probs, label_names=labels)
    store.write_table("scores.parquet", scores)
    store.write_table("oof.parquet", pa.table({"id": ids, "probs": pa.array(list(probs.astype(np.float32)), pa.list_(pa.float32()))}))
    store.update_manifest(labels=labels)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: t\nrun_root: {tmp_path / 'runs'}\ndata: {{path: unused.csv}}\n")
    return store, str(cfg), flipped


def test_export_edit_import_roundtrip_and_idempotent(run, capsys):
    store, cfg, flipped = run
    assert cli.main(["review", "export", cfg]) == 0
    csv = store.path("review/label_issues/label_issues.csv")
    q = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert set(q["id"]) == {f"r{i}" for i in flipped}
    q["corrected_label"] = q["suggested_label"]  # the annotator accepts every suggestion
    q.to_csv(csv, index=False)
    assert cli.main(["review", "import", cfg, csv]) == 0
    assert store.manifest()["dataset_version"] == 1
    v1 = store.read_table("review/versions/v1.parquet")
    assert v1.num_rows == 60
    audit = store.read_table("review/audit.parquet")
    assert audit.num_rows == len(flipped)
    # re-importing the same file changes nothing
    assert cli.main(["review", "import", cfg, csv]) == 0
    assert store.manifest()["dataset_version"] == 1
    assert store.read_table("review/audit.parquet").num_rows == len(flipped)
    assert "no label changed" in capsys.readouterr().out


def test_label_studio_export_and_unknown_ids_fail(run, tmp_path, capsys):
    store, cfg, _ = run
    assert cli.main(["review", "export", cfg, "--queue", "active", "--strategy", "entropy", "--batch-size", "5", "--format", "label-studio"]) == 0
    tasks = json.loads(open(store.path("review/active_entropy/active_entropy.tasks.json")).read())
    assert len(tasks) == 5 and "text" in tasks[0]["data"] and tasks[0]["predictions"][0]["result"][0]["value"]["choices"]
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"id": ["nope"], "corrected_label": ["a"]}).to_csv(bad, index=False)
    assert cli.main(["review", "import", cfg, str(bad)]) == 2
    assert "nope" in capsys.readouterr().err


def test_budget_export_ranks_past_flagged_rows(run, capsys):
    store, cfg, flipped = run
    scores = store.read_table("scores.parquet")
    n_flagged = int(scores.column("is_label_issue").to_numpy(zero_copy_only=False).sum())
    budget = n_flagged + 7
    assert cli.main(["review", "export", cfg, "--budget", str(budget), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert f"review budget {budget}: {budget} rows" in out and f"{n_flagged} of them flagged" in out
    q = pd.read_csv(store.path("review/label_issues/label_issues.csv"), keep_default_na=False)
    assert len(q) == budget
    lq = dict(zip(scores.column("id").to_pylist(), scores.column("label_quality").to_pylist()))
    flag = dict(zip(scores.column("id").to_pylist(), scores.column("is_label_issue").to_pylist()))
    expect = sorted(lq, key=lambda i: (lq[i], i))[:budget]
    assert q["id"].tolist() == expect  # lowest label_quality first, ties by id
    assert q["flagged"].tolist() == [flag[i] for i in expect]
    assert q["flagged"].sum() == n_flagged and (~q["flagged"]).sum() == 7  # extra unflagged rows
    assert np.all(np.diff(q["score"].to_numpy()) >= 0)
    assert q["rank"].tolist() == list(range(1, budget + 1))


def test_budget_larger_than_rows_takes_all_with_note(run, capsys):
    store, cfg, _ = run
    assert cli.main(["review", "export", cfg, "--budget", "500", "--format", "csv"]) == 0
    assert "exceeds the 60 scored rows" in capsys.readouterr().out
    assert len(pd.read_csv(store.path("review/label_issues/label_issues.csv"))) == 60


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--budget", "0"], "must be a whole number of rows >= 1"),
        (["--budget", "-5"], "must be a whole number of rows >= 1"),
        (["--budget", "3", "--limit", "2"], "not both"),
        (["--budget", "3", "--queue", "active"], "--queue issues"),
    ],
)
def test_bad_budget_is_a_clear_error(run, capsys, extra, needle):
    store, cfg, _ = run
    assert cli.main(["review", "export", cfg, *extra]) == 2
    err = capsys.readouterr().err
    assert "hardmine: error:" in err and needle in err
    assert not store.exists("review/label_issues/label_issues.csv")


def test_export_without_budget_keeps_flagged_rows_and_limit(run):
    store, cfg, flipped = run
    assert cli.main(["review", "export", cfg, "--limit", "2", "--format", "csv"]) == 0
    q = pd.read_csv(store.path("review/label_issues/label_issues.csv"), keep_default_na=False)
    assert len(q) == 2 and q["flagged"].all() and set(q["id"]) <= {f"r{i}" for i in flipped}
