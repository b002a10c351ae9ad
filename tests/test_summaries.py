"""One contract per JSON artifact: what the writers produce validates against hardmine.summaries."""
import json

import numpy as np
import pyarrow as pa
import pytest

from hardmine.summaries import SummaryError, read_evaluation_summary, read_label_quality, read_sweep_best


def _runs(n=60, k=3, seeds=2):
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, n)
    rows = []
    for a, p in (("baseline", 0.7), ("clean", 0.8), ("random", 0.7)):
        pred = np.where(rng.random(n) < p, y, (y + 1) % k)
        for s in range(seeds):
            rows.append({"arm": a, "seed": s, "pred": pred.astype(np.int32), "confidence": np.full(n, 0.8, np.float32),
                         "train_rows": 100, "n_augmented": 0})
    return pa.Table.from_pylist(rows), y


def _roundtrip(obj):
    return json.loads(json.dumps(obj))


def test_compare_output_is_an_evaluation_summary():
    from hardmine.evaluate import compare

    runs, y = _runs()
    given = read_evaluation_summary(_roundtrip(compare(runs, y, resamples=200)))
    assert given["label_sets"] == ["given"] and not given["truth"]["available"]
    assert "true_labels" not in given["arms"]["clean"]
    assert set(given["arms"]["clean"]["vs_baseline"]) == {"accuracy", "macro_f1", "ece", "mcnemar"}
    assert "vs_baseline" not in given["arms"]["baseline"]
    both = read_evaluation_summary(_roundtrip(compare(runs, y, y_true=(y + 1) % 3, resamples=200)))
    assert both["label_sets"] == ["given", "true"] and both["truth"]["flipped"] == len(y)
    assert both["arms"]["clean"]["true_labels"]["vs_baseline"]["accuracy"]["verdict"] in ("higher", "lower", "not distinguishable")


def test_a_summary_off_contract_names_the_key_and_the_stage():
    from hardmine.evaluate import compare

    runs, y = _runs()
    good = _roundtrip(compare(runs, y, resamples=200))
    old = _roundtrip(good)
    old["arms"]["clean"]["diff_vs_baseline"] = old["arms"]["clean"].pop("vs_baseline")  # the second spelling of old
    del old["arms"]["clean"]["accuracy"]
    with pytest.raises(SummaryError, match=r"arms\.clean\.accuracy.*re-run the evaluate stage"):
        read_evaluation_summary(old)
    bad = _roundtrip(good)
    bad["arms"]["clean"]["vs_baseline"]["accuracy"]["verdict"] = "significant"
    with pytest.raises(SummaryError, match="verdict"):
        read_evaluation_summary(bad)
    with pytest.raises(SummaryError, match="arms"):
        read_evaluation_summary({"arms": "oops"})


def test_sweep_best_written_by_the_sweep_is_a_sweep_best():
    from tests.test_sweep_choice import fake_sweep

    _, _, best = fake_sweep()
    best = read_sweep_best(_roundtrip(best))
    assert best["best"] is not None and best["confirmation"] is not None
    with pytest.raises(SummaryError, match="re-run the sweep stage"):
        read_sweep_best({"metric": "accuracy"})


def test_score_table_summary_is_a_label_quality():
    from hardmine.scoring import detection_metrics, score_table

    rng = np.random.default_rng(0)
    n, k = 90, 3
    labels = np.arange(n) % k
    probs = rng.dirichlet(np.ones(k), n).astype(np.float32)
    probs[np.arange(n), labels] += 2
    probs /= probs.sum(1, keepdims=True)
    table, summary = score_table([f"r{i}" for i in range(n)], labels, probs, label_names=["a", "b", "c"])
    summary["detection"] = detection_metrics(table.column("is_label_issue").to_numpy(zero_copy_only=False), np.zeros(n, bool))
    lq = read_label_quality(_roundtrip(summary))
    assert lq["n_rows"] == n and len(lq["per_class"]) == k and "filter_used" in lq["label_issues"]
    assert lq["detection"]["tp"] == 0
    with pytest.raises(SummaryError, match="re-run the score stage"):
        read_label_quality({"n_rows": 3})
