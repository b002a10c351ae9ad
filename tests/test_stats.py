"""Paired bootstrap over held-out rows and the exact McNemar test (pure numpy, no Ray)."""
import time

import numpy as np
import pytest

from hardmine.evaluate import metrics
from hardmine.stats import (
    _features,
    _scores,
    bootstrap_metrics,
    majority_correct,
    mcnemar,
    mcnemar_exact,
    paired_difference,
    percentile_interval,
)


def _data(n=300, k=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    base = np.where(rng.random(n) < 0.75, y, rng.integers(0, k, n))
    conf = rng.uniform(0.3, 1.0, n)
    return y, base, conf


def _diff(y, a, b, conf, metric="accuracy", resamples=1000, k=4):
    boot = bootstrap_metrics(y, {"a": a[None], "b": b[None]}, {"a": conf[None], "b": conf[None]}, num_labels=k, resamples=resamples)
    return paired_difference(boot["resampled"]["a"][metric], boot["resampled"]["b"][metric],
                             boot["point"]["a"][metric], boot["point"]["b"][metric]), boot


def test_identical_predictions_give_a_zero_width_interval_never_a_real_difference():
    y, base, conf = _data()
    for m in ("accuracy", "macro_f1", "ece"):
        d, _ = _diff(y, base, base.copy(), conf, m)
        assert d["lo"] == d["hi"] == d["mean"] == 0.0
        assert d["excludes_zero"] is False and d["verdict"] == "not distinguishable"


def test_predictions_differing_on_some_rows_give_a_positive_width():
    y, base, conf = _data()
    wrong = np.flatnonzero(base != y)
    better = base.copy()
    better[wrong[:12]] = y[wrong[:12]]  # fixes 12 rows, nothing else changes
    d, boot = _diff(y, better, base, conf)
    assert d["hi"] > d["lo"] and d["mean"] == pytest.approx(12 / len(y))
    assert d["lo"] > 0 and d["excludes_zero"] and d["verdict"] == "higher"  # one-sided changes: every resample agrees in sign
    # even a single differing row widens the interval (its count in a resample varies)
    one = base.copy()
    one[wrong[0]] = y[wrong[0]]
    d1, _ = _diff(y, one, base, conf)
    assert d1["hi"] > d1["lo"] and d1["lo"] >= 0 and not d1["excludes_zero"]
    # a swap of as many fixes as breaks: positive width around zero, not distinguishable
    right = np.flatnonzero(base == y)
    mixed = base.copy()
    mixed[wrong[:10]] = y[wrong[:10]]
    mixed[right[:10]] = (y[right[:10]] + 1) % 4
    dm, _ = _diff(y, mixed, base, conf)
    assert dm["mean"] == 0.0 and dm["lo"] < 0 < dm["hi"] and dm["verdict"] == "not distinguishable"


def test_interval_collapses_only_where_every_resample_agrees():
    """Different wrong answers on rows both arms get wrong: accuracy agrees in every resample, macro-F1 does not."""
    y, base, conf = _data()
    wrong = np.flatnonzero(base != y)[:15]
    other = base.copy()
    other[wrong] = np.array([next(c for c in range(4) if c not in (y[i], base[i])) for i in wrong])
    acc, _ = _diff(y, other, base, conf, "accuracy")
    f1, _ = _diff(y, other, base, conf, "macro_f1")
    assert acc["lo"] == acc["hi"] == 0.0 and acc["verdict"] == "not distinguishable"
    assert f1["hi"] > f1["lo"]


def test_resampled_metrics_equal_the_metrics_of_the_resampled_rows():
    """The vectorised per-resample scores (weights x indicators) match evaluate.metrics on the drawn rows."""
    rng = np.random.default_rng(3)
    n, k, bins = 120, 5, 15
    y = rng.integers(0, k - 1, n)  # class k-1 never occurs in the truth
    probs = rng.dirichlet(np.ones(k), n)
    probs[np.arange(40), y[:40]] += 1.5
    probs /= probs.sum(1, keepdims=True)
    pred, conf = probs.argmax(1), probs.max(1)
    f = _features(y, pred, conf, k, bins)
    onehot = np.eye(k, dtype=np.float32)[y]
    for _ in range(5):
        idx = rng.integers(0, n, n)
        w = np.bincount(idx, minlength=n).astype(np.float32)[None]
        got = _scores(w @ f, (w @ onehot).astype(np.float64), n, k, bins)
        want = metrics(y[idx], probs[idx], k, bins)
        for m in ("accuracy", "macro_f1", "ece"):
            assert got[m][0] == pytest.approx(want[m], abs=1e-6), m
    boot = bootstrap_metrics(y, {"a": pred[None]}, {"a": conf[None]}, num_labels=k, resamples=100)
    full = metrics(y, probs, k, bins)
    for m in ("accuracy", "macro_f1", "ece"):
        assert boot["point"]["a"][m] == pytest.approx(full[m], abs=1e-6)


def test_seeds_are_averaged_within_each_resample():
    y, base, conf = _data(n=200)
    rng = np.random.default_rng(1)
    seeds = np.stack([np.where(rng.random(200) < 0.9, base, y) for _ in range(3)])
    boot = bootstrap_metrics(y, {"a": seeds}, {"a": np.tile(conf, (3, 1))}, num_labels=4, resamples=200)
    per_seed = [bootstrap_metrics(y, {"a": s[None]}, {"a": conf[None]}, num_labels=4, resamples=200) for s in seeds]
    np.testing.assert_allclose(boot["resampled"]["a"]["accuracy"], np.mean([p["resampled"]["a"]["accuracy"] for p in per_seed], 0))
    assert boot["point"]["a"]["accuracy"] == pytest.approx(np.mean([(s == y).mean() for s in seeds]))
    assert boot["per_seed"]["a"]["accuracy"].shape == (3,)


def test_bootstrap_is_fast_enough():
    """1000 resamples x 3000 rows x 5 arms x 3 seeds (20 classes): a few seconds at most."""
    rng = np.random.default_rng(0)
    n, k = 3000, 20
    y = rng.integers(0, k, n)
    preds = {f"arm{a}": np.where(rng.random((3, n)) < 0.8, y, rng.integers(0, k, (3, n))) for a in range(5)}
    confs = {a: rng.uniform(0.1, 1, (3, n)) for a in preds}
    t0 = time.perf_counter()
    boot = bootstrap_metrics(y, preds, confs, num_labels=k, resamples=1000)
    assert time.perf_counter() - t0 < 10.0
    assert boot["resampled"]["arm0"]["macro_f1"].shape == (1000,)


def test_bootstrap_is_reproducible_and_validates():
    y, base, conf = _data(n=50)
    a = bootstrap_metrics(y, {"a": base[None]}, {"a": conf[None]}, num_labels=4, resamples=100, seed=7)
    b = bootstrap_metrics(y, {"a": base[None]}, {"a": conf[None]}, num_labels=4, resamples=100, seed=7)
    np.testing.assert_array_equal(a["resampled"]["a"]["accuracy"], b["resampled"]["a"]["accuracy"])
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_metrics(y, {"a": base[None]}, {"a": conf[None]}, num_labels=4, resamples=0)
    with pytest.raises(ValueError, match=r"shape \(seeds >= 1, 50\)"):
        bootstrap_metrics(y, {"a": base[None, :40]}, {"a": conf[None, :40]}, num_labels=4)
    with pytest.raises(ValueError, match="probabilities"):
        bootstrap_metrics(y, {"a": base[None]}, {"a": conf[None] + 1}, num_labels=4)
    with pytest.raises(ValueError, match="outside"):
        bootstrap_metrics(y, {"a": base[None] + 4}, {"a": conf[None]}, num_labels=4)
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval([0.1, 0.2], 0.15, confidence=1.5)


# ----------------------------------------------------------------------------- McNemar


def test_mcnemar_exact_on_hand_made_tables():
    # discordant 1 vs 8: two-sided binomial p = 2 * P(X <= 1 | n=9, 1/2) = 2 * (1 + 9) / 2**9
    assert mcnemar_exact(1, 8) == pytest.approx(20 / 512)
    assert mcnemar_exact(8, 1) == pytest.approx(20 / 512)
    # 2 vs 10: 2 * (1 + 12 + 66) / 2**12
    assert mcnemar_exact(2, 10) == pytest.approx(158 / 4096)
    assert mcnemar_exact(5, 5) == pytest.approx(1.0)
    assert mcnemar_exact(0, 0) == 1.0  # no discordant row: no evidence of a difference
    with pytest.raises(ValueError, match="count"):
        mcnemar_exact(-1, 3)


def test_mcnemar_counts_discordant_rows():
    # contingency: both right 5, only a right 1, only b right 8, both wrong 6
    a = np.array([1] * 5 + [1] * 1 + [0] * 8 + [0] * 6, bool)
    b = np.array([1] * 5 + [0] * 1 + [1] * 8 + [0] * 6, bool)
    out = mcnemar(a, b)
    assert out == {"only_arm_correct": 1, "only_reference_correct": 8, "rows": 20, "p_value": pytest.approx(20 / 512)}


def test_majority_over_seeds_ties_go_to_seed_zero():
    c = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 0, 1]], bool)
    assert majority_correct(c).tolist() == [True, True, False, False]
    even = np.array([[1, 0], [0, 1]], bool)
    assert majority_correct(even).tolist() == [True, False]
    assert mcnemar(np.stack([c[0], c[0]]), c[0])["only_arm_correct"] == 0
