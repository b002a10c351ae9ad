"""Smoke test of jobs/bench_detect.py on a small banking77 subset (opt-in: slow, needs ../shared/data)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BANKING77 = ROOT.parent / "shared" / "data" / "banking77"


@pytest.mark.slow
def test_bench_detect_smoke(tmp_path):
    if not (BANKING77 / "train.csv").exists():
        pytest.skip(f"benchmark data not found at {BANKING77}")
    out = tmp_path / "detect.json"
    cmd = [sys.executable, "jobs/bench_detect.py", "--banking77", str(BANKING77), "--limit", "400", "--rates", "0.1",
           "--noise", "uniform,confusion", "--work", str(tmp_path / "work"), "--out", str(out),
           "--set", "oof.backbones=[tfidf]"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "skip clinc150" in proc.stdout and "skip nsmc" in proc.stdout
    d = json.loads(out.read_text())
    assert d["overrides"] == ["oof.backbones=[tfidf]"]
    assert d["config"]["oof"]["backbones"] == ["tfidf"]
    assert d["machine"]["ray_sessions"] == 1
    assert [(r["dataset"], r["noise"], r["rate"]) for r in d["results"]] == [("banking77", "uniform", 0.1), ("banking77", "confusion", 0.1)]
    for r in d["results"]:
        assert r["n_injected"] > 0 and r["n_classes"] == 77
        assert set(r["methods"]) == {"hardmine_default", "member_tfidf", "baseline_tfidf_lr", "baseline_embed_lr"}
        for m in r["methods"].values():
            assert {"oof_accuracy", "oof_accuracy_true", "ece", "log_loss", "precision", "recall", "f1", "n_flagged",
                    "recall_at_budget", "seconds"} <= set(m)
            assert 0.0 <= m["recall_at_budget"] <= 1.0
    assert set(d["targets"]["recall_at_budget_default_above_both_baselines"]) == {"banking77/uniform/0.1", "banking77/confusion/0.1"}
    assert isinstance(d["targets"]["all"], bool)
