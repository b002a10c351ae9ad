"""The score stage's other signals where they are used: selection sends outliers and conflicting
duplicates to review (never to augmentation), the review queue carries them with their reason and
can be ordered by the dual model's error_risk, and the config refuses an order it cannot give."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from hardmine import review
from hardmine.config import ConfigError, from_dict
from hardmine.scoring import score_table, with_signals
from hardmine.select import select

NAMES = ["neg", "pos"]


def _scored(n: int = 40, seed: int = 0):
    """Real score_table output: a hard row (r05), a flipped label (r07), then signals filled in."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    probs = np.full((n, 2), 0.05)
    probs[np.arange(n), labels] = 0.95
    probs[5] = [0.45, 0.55] if labels[5] == 0 else [0.55, 0.45]  # hard, not an issue-level error
    probs[7] = probs[7][::-1].copy()  # confidently the other class: a label issue
    probs += rng.uniform(0, 0.01, probs.shape)
    probs /= probs.sum(1, keepdims=True)
    ids = [f"r{i:02d}" for i in range(n)]
    table, _ = score_table(ids, labels, probs, label_names=NAMES)
    ds = pa.table({"id": ids, "text": [f"text number {i}" for i in range(n)], "label": pa.array(labels, pa.int32()),
                   "label_name": [NAMES[k] for k in labels]})
    return table, ds


def _with_flags(table, outlier=(), dup=(), risk=None):
    n = table.num_rows
    is_out = np.zeros(n, bool)
    is_out[list(outlier)] = True
    conf = np.zeros(n, bool)
    conf[list(dup)] = True
    group = np.full(n, -1)
    group[list(dup)] = 0
    sig = {"is_outlier": is_out, "outlier_score": np.linspace(0, 1, n), "is_conflicting_duplicate": conf, "dup_group": group}
    if risk is not None:
        sig["error_risk"] = risk
    return with_signals(table, sig)


def test_outliers_and_conflicting_duplicates_go_to_review_never_augment():
    table, ds = _scored()
    assert table.column("is_label_issue").to_pylist()[7]
    flagged = _with_flags(table, outlier=[5], dup=[2, 3])
    sel, summary = select(flagged, ds, hardness_quantile=0.5)
    rows = {r["id"]: r for r in sel.to_pylist()}
    assert rows["r05"]["action"] == "review" and rows["r05"]["rule"] == "outlier->review"
    assert rows["r02"]["action"] == rows["r03"]["action"] == "review"
    assert rows["r02"]["rule"] == "conflicting_duplicate->review"
    assert rows["r07"]["rule"].startswith("label_issue->")  # a label issue keeps its own reason
    assert summary["n_outliers"] == 1 and summary["n_conflicting_duplicates"] == 2
    # without the flags the hard row r05 is augmented: the flag is what keeps it out
    plain, _ = select(table, ds, hardness_quantile=0.5)
    assert {r["id"]: r["action"] for r in plain.to_pylist()}["r05"] == "augment"


def test_issue_action_keep_leaves_flagged_rows_but_does_not_augment_them():
    table, ds = _scored()
    sel, _ = select(_with_flags(table, outlier=[5]), ds, hardness_quantile=0.5, issue_action="keep")
    r = {x["id"]: x for x in sel.to_pylist()}["r05"]
    assert r["action"] == "none" and r["rule"] == "outlier->keep(not_augmented)"


def test_review_queue_carries_signals_with_their_reason():
    table, ds = _scored()
    q = review.label_issue_queue(_with_flags(table, outlier=[5, 9], dup=[2, 3]), ds, NAMES)
    ids, reasons = q["id"].to_pylist(), q["reason"].to_pylist()
    assert ids[0] == "r07" and reasons[0] == "label_issue"  # label issues first, by issue_rank
    assert ids[1:3] == ["r02", "r03"] and reasons[1:3] == ["conflicting_duplicate"] * 2
    assert ids[3:] == ["r09", "r05"] and reasons[3:] == ["outlier", "outlier"]  # farthest first


def test_review_queue_by_error_risk():
    table, ds = _scored()
    risk = np.linspace(0.0, 0.5, table.num_rows)
    risk[11] = 0.99
    scored = _with_flags(table, outlier=[5], risk=risk)
    q = review.label_issue_queue(scored, ds, NAMES, budget=3, rank_by="error_risk")
    assert q["id"].to_pylist() == ["r11", "r39", "r38"]
    assert q["reason"].to_pylist()[0] == "high_error_risk"
    flagged = review.label_issue_queue(scored, ds, NAMES, rank_by="error_risk")
    assert flagged["id"].to_pylist() == ["r07", "r05"]  # the flagged rows, highest error_risk first (0.090 > 0.064)
    assert np.all(np.diff(flagged["error_risk"].to_numpy()) <= 0)


def test_error_risk_order_needs_the_dual_model():
    table, ds = _scored()
    with pytest.raises(ValueError, match="error_risk"):
        review.label_issue_queue(table, ds, NAMES, budget=3, rank_by="error_risk")
    with pytest.raises(ValueError, match="rank_by must be one of"):
        review.label_issue_queue(table, ds, NAMES, rank_by="hardness")
    with pytest.raises((ConfigError, ValueError), match="dual model"):
        from_dict({"data": {"path": "x.csv"}, "score": {"review_rank_by": "error_risk", "dual_model": "off"}})


def test_with_signals_checks_names_and_lengths():
    table, _ = _scored(n=10)
    with pytest.raises(ValueError, match="unknown signal"):
        with_signals(table, {"outlierscore": np.zeros(10)})
    with pytest.raises(ValueError, match="10 rows"):
        with_signals(table, {"outlier_score": np.zeros(9)})
    with pytest.raises(ValueError, match="NaN"):
        with_signals(table, {"error_risk": np.array([0.1, np.nan] + [0.0] * 8)})


def test_knn_k_above_the_training_rows_fails_before_training(tmp_path):
    import pandas as pd

    from hardmine.data import DataError
    from hardmine.pipeline import Context
    from hardmine.pipeline.prepare import prepare
    from hardmine.store import RunStore

    path = tmp_path / "d.csv"
    pd.DataFrame({"id": [f"i{i}" for i in range(12)], "text": [f"row {i}" for i in range(12)], "label": ["a", "b"] * 6}).to_csv(path, index=False)
    cfg = from_dict({"name": "k", "run_root": str(tmp_path / "runs"), "data": {"path": str(path)}, "score": {"knn_k": 12}})
    with pytest.raises(DataError, match=r"score.knn_k=12 .* 12 rows: set score.knn_k below 12"):
        prepare(Context(cfg, RunStore(cfg.run_dir)))
    assert not RunStore(cfg.run_dir).exists("oof.parquet")
