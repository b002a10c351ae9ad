"""Smoke test of jobs/bench_review.py on banking77 at 8 rows per class (opt-in: slow, needs ../shared/data):
the simulated reviewer's rounds go through the real export / next / import commands, and a re-run resumes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BANKING77 = ROOT.parent / "shared" / "data" / "banking77"


@pytest.mark.slow
def test_bench_review_smoke(tmp_path):
    if not (BANKING77 / "train.csv").exists():
        pytest.skip(f"benchmark data not found at {BANKING77}")
    out = tmp_path / "review.json"
    cmd = [sys.executable, "jobs/bench_review.py", "--banking77", str(BANKING77), "--sizes", "8", "--noise-kind", "confusion",
           "--rounds", "2", "--budget", "0.05", "--seeds", "2", "--set", "oof.folds=3",
           "--run-root", str(tmp_path / "work"), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())["settings"]["banking77-8-confusion"]
    assert r["noise_kind"] == "confusion" and r["rows"]["train"] == 8 * 77 and r["rows"]["n_noisy"] > 0
    budget = r["budget_per_round"]
    assert budget == round(0.05 * 8 * 77)
    assert [x["round"] for x in r["rounds"]] == [1, 2]
    for x in r["rounds"]:
        assert x["queued"] == budget and 0 <= x["wrong_given"] <= budget and x["changed"] == x["wrong_given"]
    assert r["rounds"][1]["found_so_far"] == sum(x["wrong_given"] for x in r["rounds"]) <= r["rows"]["n_noisy"]
    arms = r["arms"]
    assert list(arms) == ["baseline", "reviewed-r1", "reviewed", "random-review", "dropped", "oracle"]
    assert all(a["n_seeds"] == 2 for a in arms.values())
    assert arms["oracle"]["train_rows"] == arms["reviewed"]["train_rows"] == arms["baseline"]["train_rows"] == 8 * 77
    assert arms["dropped"]["train_rows"] == 8 * 77 - 2 * budget
    assert set(r["pairs"]) == {"reviewed - random-review", "reviewed - dropped", "oracle - reviewed"}
    assert r["fold_ensemble_accuracy_v0"] is not None and all(x["fold_ensemble_accuracy"] is not None for x in r["rounds"])
    run = tmp_path / "work" / "review-banking77-8-confusion"
    assert (run / "review" / "reviewed.parquet").exists() and (run / "review" / "versions" / "v2.parquet").exists()

    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)  # resumes: no round, no retrain
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "labels changed" not in again.stdout and "retraining" not in again.stdout
    assert json.loads(out.read_text())["settings"]["banking77-8-confusion"]["arms"] == arms
