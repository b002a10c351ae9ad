"""hardmine.neighbors: kNN outliers and label agreement (known answers), duplicate groups, validation."""
from __future__ import annotations

import numpy as np
import pytest

from hardmine.neighbors import _lsh_candidate_pairs, duplicate_groups, knn_scores, outlier_flags


def clusters_with_outliers(seed=0):
    """3 Gaussian clusters of 50 points in 8-D, then 3 planted points far from all of them (rows 150-152)."""
    rng = np.random.default_rng(seed)
    centers = 10.0 * np.eye(8)[:3]
    x = np.concatenate([c + rng.standard_normal((50, 8)) for c in centers])
    planted = 10.0 * np.eye(8)[5:8] + 0.1 * rng.standard_normal((3, 8))
    labels = np.repeat([0, 1, 2], 50)
    return np.concatenate([x, planted]).astype(np.float32), np.concatenate([labels, [0, 1, 2]])


# --------------------------------------------------------------------------- kNN scores
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_planted_outliers_score_highest_and_are_flagged(metric):
    x, labels = clusters_with_outliers()
    out = knn_scores(x, labels, k=10, metric=metric)
    score = out["outlier_score"]
    assert score.dtype == np.float32 and score.shape == (153,)
    assert set(np.argsort(score)[-3:].tolist()) == {150, 151, 152}
    flags = outlier_flags(score, quantile=3 / 153)
    assert flags.dtype == bool
    assert np.flatnonzero(flags).tolist() == [150, 151, 152]
    # cluster members agree with their neighbourhood; their majority label is their own
    assert (out["knn_label_agreement"][:150] == 1.0).all()
    assert (out["knn_majority_label"][:150] == labels[:150]).all()
    assert out["knn_majority_label"].dtype == np.int32


def test_label_agreement_by_hand_on_a_line():
    # 1-D points; k=2 neighbours are unambiguous (no distance ties)
    x = np.array([[0.0], [1.0], [3.0], [10.0], [10.5], [12.0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, 1, 0])
    out = knn_scores(x, labels, k=2, metric="euclidean")
    # neighbours: 0->{1,2} 1->{0,2} 2->{1,0} 3->{4,5} 4->{3,5} 5->{4,3}
    np.testing.assert_array_equal(out["knn_label_agreement"], [0.5, 0.5, 0.0, 0.5, 0.5, 0.0])
    np.testing.assert_array_equal(out["knn_majority_label"], [0, 0, 0, 0, 0, 1])  # 1:1 ties -> smallest label
    np.testing.assert_allclose(out["outlier_score"], [2.0, 1.5, 2.5, 1.25, 1.0, 1.75], rtol=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_row_is_never_its_own_neighbour_even_with_exact_duplicates(metric):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    x[7] = x[3]  # a duplicate pair with different labels
    x[20] = x[21] = x[22]  # three copies: querying k+1=2 may not return the row itself
    labels = np.zeros(40, dtype=np.int64)
    labels[[7, 21, 22]] = 1
    out = knn_scores(x, labels, k=1, metric=metric)
    # the only neighbour of 3 is 7 (distance 0) and vice versa: agreement 0, not 1 (itself)
    assert out["outlier_score"][[3, 7]].max() < 1e-3
    assert out["knn_label_agreement"][3] == 0.0 and out["knn_label_agreement"][7] == 0.0
    assert out["knn_majority_label"][3] == 1 and out["knn_majority_label"][7] == 0
    # row 20 (label 0) has only label-1 copies at distance 0
    assert out["outlier_score"][20] < 1e-3 and out["knn_label_agreement"][20] == 0.0
    out3 = knn_scores(x, labels, k=2, metric=metric)
    assert out3["knn_label_agreement"][20] == 0.0  # both neighbours are the two other copies
    assert out3["knn_label_agreement"][21] == 0.5  # one copy of each label


def test_zero_vector_is_at_cosine_distance_one_not_nan():
    x, labels = clusters_with_outliers()
    x[[10, 60]] = 0.0
    out = knn_scores(x, labels, k=5)
    assert np.isfinite(out["outlier_score"]).all()
    np.testing.assert_allclose(out["outlier_score"][[10, 60]], 1.0)
    # a planted outlier (cosine distance ~1 to everything) may now have the zero rows as neighbours
    assert out["outlier_score"][150] <= 1.0 + 1e-3


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_batches_smaller_than_n_give_the_same_result(metric):
    x, labels = clusters_with_outliers(seed=5)
    x[4] = 0.0  # exercise the zero-row merge inside the batched cosine path
    whole = knn_scores(x, labels, k=7, metric=metric, batch_size=len(x))
    batched = knn_scores(x, labels, k=7, metric=metric, batch_size=10)
    for key in whole:
        np.testing.assert_array_equal(whole[key], batched[key], err_msg=key)


def test_k_too_large_says_how_many_rows():
    x = np.random.default_rng(0).standard_normal((5, 3))
    with pytest.raises(ValueError, match=r"5 rows.*k <= 4"):
        knn_scores(x, [0, 1, 0, 1, 0], k=5)
    with pytest.raises(ValueError, match="k must be >= 1"):
        knn_scores(x, [0, 1, 0, 1, 0], k=0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        knn_scores(x[:1], [0], k=1)


def test_nan_row_is_named_by_position():
    x = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    x[3, 2] = np.nan
    x[8, 0] = np.inf
    with pytest.raises(ValueError, match=r"rows \[3, 8\]"):
        knn_scores(x, np.zeros(10, dtype=int), k=2)


def test_bad_labels_and_shapes_raise():
    x = np.random.default_rng(0).standard_normal((10, 4))
    with pytest.raises(ValueError, match="labels has 9 entries but there are 10 rows"):
        knn_scores(x, np.zeros(9, dtype=int), k=2)
    with pytest.raises(ValueError, match=">= 0"):
        knn_scores(x, np.full(10, -1), k=2)
    with pytest.raises(ValueError, match="astype"):
        knn_scores(x, np.zeros(10), k=2)
    with pytest.raises(ValueError, match="2-D"):
        knn_scores(x[0], np.zeros(4, dtype=int), k=2)
    with pytest.raises(ValueError, match="metric"):
        knn_scores(x, np.zeros(10, dtype=int), k=2, metric="manhattan")


# --------------------------------------------------------------------------- outlier flags
def test_outlier_flags_count_and_ties_by_position():
    s = np.array([0.1, 0.9, 0.5, 0.9, 0.9, 0.2])
    np.testing.assert_array_equal(outlier_flags(s, quantile=2 / 6), [False, True, False, True, False, False])
    assert outlier_flags(s, quantile=0.0).sum() == 0
    assert outlier_flags(np.arange(1000.0), quantile=0.01).sum() == 10
    assert np.flatnonzero(outlier_flags(np.arange(1000.0), quantile=0.01)).tolist() == list(range(990, 1000))
    with pytest.raises(ValueError, match=r"\[0, 0.5\)"):
        outlier_flags(s, quantile=0.5)
    with pytest.raises(ValueError, match=r"rows \[2\]"):
        outlier_flags(np.array([0.1, 0.2, np.nan]))


# --------------------------------------------------------------------------- duplicates
LONG = (
    "My order arrived two weeks late and the package was damaged, so I would like a full refund "
    "to my original payment method as soon as possible."
)


def test_conflicting_consistent_near_and_unrelated_duplicates():
    near = LONG.replace("damaged", "damagod")
    texts = [
        "Refund please",  # 0: group A, label 0
        "Where is my parcel?",  # 1: unrelated
        "refund  please",  # 2: group A, label 1 -> conflicting
        "I love this shop!",  # 3: group B
        LONG,  # 4: near pair C
        "i love this shop",  # 5: group B, same label -> consistent
        "Cancel my subscription now",  # 6: unrelated
        near,  # 7: near pair C
    ]
    labels = [0, 2, 1, 3, 4, 3, 5, 4]
    out = duplicate_groups(texts, labels, near_threshold=0.8)
    g = out["dup_group"]
    assert g.dtype == np.int64 and out["dup_group_size"].dtype == np.int32
    np.testing.assert_array_equal(g, [0, -1, 0, 1, 2, 1, -1, 2])  # numbered by first row
    np.testing.assert_array_equal(out["is_conflicting_duplicate"], [True, False, True, False, False, False, False, False])
    np.testing.assert_array_equal(out["dup_group_size"], [2, 1, 2, 2, 2, 2, 1, 2])

    exact = duplicate_groups(texts, labels, near_threshold=None)
    np.testing.assert_array_equal(exact["dup_group"], [0, -1, 0, 1, -1, 1, -1, -1])
    assert exact["dup_group_size"][4] == 1 and exact["dup_group_size"][7] == 1


def test_near_duplicate_conflict_is_flagged():
    near = LONG.replace("weeks", "weeka")
    out = duplicate_groups([LONG, "unrelated text here", near], [0, 0, 1], near_threshold=0.8)
    np.testing.assert_array_equal(out["dup_group"], [0, -1, 0])
    np.testing.assert_array_equal(out["is_conflicting_duplicate"], [True, False, True])


def test_empty_texts_are_never_grouped():
    out = duplicate_groups(["", "", None, "  ", "!!", "?", "hello there"], [0, 1, 0, 1, 0, 1, 0])
    assert (out["dup_group"] == -1).all()
    assert (out["dup_group_size"] == 1).all()
    assert not out["is_conflicting_duplicate"].any()


def test_many_variant_families_and_a_bucket_larger_than_the_cap():
    rng = np.random.default_rng(0)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
             "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"]
    texts, family = [], []
    for f in range(20):
        base = " ".join(rng.choice(words, size=25))
        for v in range(3):
            t = list(base)
            pos = int(rng.integers(0, len(t)))
            t[pos] = "Z" if t[pos] != "Z" else "Y"  # one character changed
            texts.append("".join(t))
            family.append(f)
    # 40 near-identical texts: far more than MAX_BUCKET_CANDIDATES share every LSH bucket
    texts += [LONG + f" Ticket {i:03d}." for i in range(40)]
    family += [99] * 40
    out = duplicate_groups(texts, np.zeros(len(texts), dtype=int), near_threshold=0.8)
    g, family = out["dup_group"], np.array(family)
    assert (g >= 0).all()
    for f in np.unique(family):
        assert len(np.unique(g[family == f])) == 1, f"family {f} split"
    assert len(np.unique(g)) == 21  # families never merged
    assert (out["dup_group_size"][family == 99] == 40).all()


def test_lsh_candidate_pairs_are_bucket_mates_only():
    sig = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4], [8, 8, 8, 8]], dtype=np.uint32)
    pairs = _lsh_candidate_pairs(sig, bands=2, rows=2, max_candidates=16)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (0, 2)]


def test_duplicate_validation():
    with pytest.raises(ValueError, match="labels has 1 entries but there are 2 rows"):
        duplicate_groups(["a", "b"], [0])
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        duplicate_groups(["a", 3], [0, 0])
    with pytest.raises(ValueError, match="near_threshold"):
        duplicate_groups(["a", "b"], [0, 0], near_threshold=1.5)
    with pytest.raises(ValueError, match="single string"):
        duplicate_groups("ab", [0, 0])


def test_hnsw_index_agrees_with_exact_on_clustered_vectors():
    """The approximate index finds (almost) the exact neighbours: scores agree to float precision here."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, 48))
    x = (centres[rng.integers(0, 30, 3000)] + 0.3 * rng.normal(size=(3000, 48))).astype(np.float32)
    x[5] = 0.0  # a zero row: distance 1.0 to everything, as in the exact path
    y = rng.integers(0, 4, 3000)
    exact = knn_scores(x, y, k=10)
    approx = knn_scores(x, y, k=10, index="hnsw")
    assert approx["outlier_score"].dtype == np.float32 and approx["outlier_score"].shape == (3000,)
    assert np.corrcoef(exact["outlier_score"], approx["outlier_score"])[0, 1] > 0.999
    assert np.mean(np.isclose(exact["outlier_score"], approx["outlier_score"], atol=1e-5)) > 0.98
    assert approx["outlier_score"][5] == pytest.approx(1.0)
    assert np.mean(exact["knn_label_agreement"] == approx["knn_label_agreement"]) > 0.98


def test_hnsw_index_refuses_euclidean_and_unknown_index():
    x = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)
    y = np.arange(50) % 2
    with pytest.raises(ValueError, match="supports metric=.cosine. only"):
        knn_scores(x, y, k=3, metric="euclidean", index="hnsw")
    with pytest.raises(ValueError, match="index must be one of"):
        knn_scores(x, y, k=3, index="annoy")
