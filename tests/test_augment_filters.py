"""Filters: each one's accept/reject on crafted cases, with real models (MiniLM, scikit-learn)."""
from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest

from hardmine.augment import filters as F


# --------------------------------------------------------------------------- config


def test_filter_config_defaults_and_errors():
    cfg = F.normalize_filter_config({"length": {"min_chars": 3}, "similarity": True, "script": False})
    assert list(cfg) == ["length", "similarity"]
    assert cfg["length"] == {"min_chars": 3, "max_chars": 1000}
    assert cfg["similarity"]["threshold"] == 0.75
    with pytest.raises(ValueError, match="unknown filter"):
        F.normalize_filter_config({"lenght": True})
    with pytest.raises(ValueError, match="unknown option"):
        F.normalize_filter_config({"similarity": {"treshold": 0.5}})
    with pytest.raises(ValueError, match="min_chars <= max_chars"):
        F.normalize_filter_config({"length": {"min_chars": 10, "max_chars": 5}})
    with pytest.raises(ValueError, match="tau"):
        F.normalize_filter_config({"consistency": {"tau": 1.5}})


# --------------------------------------------------------------------------- cheap filters


def test_length_reject():
    r = F.length_reject(["ok", "  a  ", "x" * 20, "fine text", None], min_chars=2, max_chars=10)
    assert r.tolist() == [None, "too_short", "too_long", None, "too_short"]


def test_identical_and_normalised_identical():
    src = ["Hello, world!", "Hello, world!", "I lost my card", "Ｈｅｌｌｏ"]
    var = ["Hello, world!", "hello world", "I misplaced my card", "hello"]
    assert F.identical_reject(src, var).tolist() == [True, True, False, True]
    assert F.normalize_text("  What's   UP?! ") == "whatsup"


def test_script_check_hangul_source_needs_hangul_variant():
    src = ["아 더빙.. 진짜 짜증나네요 목소리", "아 더빙.. 진짜 짜증나네요 목소리", "I lost my card", "12345 !!", "ㅋㅋㅋ 재밌다"]
    var = ["더빙 진짜 짜증나네 목소리", "Oh the dubbing is really annoying", "Perdi meu cartão", "anything", "ㅋㅋ 재밌음"]
    assert F.dominant_script(src).tolist() == ["Hangul", "Hangul", "Latin", "none", "Hangul"]
    assert F.script_reject(src, var).tolist() == [False, True, False, False, False]
    assert F.dominant_script(["Привет мир", "東京タワー", ""]).tolist() == ["Cyrillic", "Kana", "none"]


# --------------------------------------------------------------------------- similarity (real MiniLM)


@pytest.fixture(scope="module")
def minilm():
    from hardmine.embed import load_encoder

    return load_encoder("packaged:minilm")


class CountingEncoder:
    """Wraps the real encoder and records how many texts it embeds."""

    def __init__(self, enc):
        self.enc, self.dim, self.seen = enc, enc.dim, 0

    def encode(self, texts, batch_size=64):
        self.seen += len(texts)
        return self.enc.encode(texts, batch_size=batch_size)


def test_similarity_accepts_paraphrase_rejects_unrelated(minilm):
    src = ["How do I reset my card PIN?", "How do I reset my card PIN?", "My card payment was declined"]
    var = ["How can I change the PIN of my card?", "The weather in Lisbon is sunny today", "Why was my card payment refused?"]
    enc = CountingEncoder(minilm)
    sim = F.similarity_scores(enc, src, var)
    assert sim.dtype == np.float32 and sim.shape == (3,)
    assert sim[0] > 0.75 and sim[2] > 0.75 and sim[1] < 0.3
    assert F.similarity_reject(sim, 0.75).tolist() == [False, True, False]
    assert enc.seen == 5  # the repeated source is embedded once
    # order-independent: length sorting inside must not shuffle the pairing
    rev = F.similarity_scores(minilm, src[::-1], var[::-1])
    np.testing.assert_allclose(rev[::-1], sim, atol=1e-4)
    assert F.similarity_reject(np.array([np.nan]), 0.0).tolist() == [True]


def test_resolve_similarity_model():
    assert F.resolve_similarity_model("auto", "en") == "packaged:minilm"
    assert F.resolve_similarity_model("auto", "hangul") == "packaged:use-multilingual"
    assert F.resolve_similarity_model("sentence-transformers/LaBSE", "ko") == "sentence-transformers/LaBSE"


# --------------------------------------------------------------------------- label consistency


@pytest.fixture(scope="module")
def sentiment_predict():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pos = ["great movie", "loved it", "wonderful acting", "great fun", "really loved the story", "wonderful film"]
    neg = ["terrible movie", "hated it", "awful acting", "boring mess", "really hated the story", "terrible film"]
    model = make_pipeline(TfidfVectorizer(), LogisticRegression(C=10.0)).fit(pos + neg, [1] * 6 + [0] * 6)
    return model.predict_proba


def test_label_consistency_crafted_probs():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])
    assert F.label_consistency(probs, np.array([0, 0, 1]), tau=0.5).tolist() == [True, False, True]
    with pytest.raises(ValueError, match=r"\(n, K\)"):
        F.label_consistency(probs[:2], np.array([0, 0, 1]), 0.5)
    with pytest.raises(ValueError, match="outside the predictor's 2 classes"):
        F.label_consistency(probs, np.array([0, 2, 1]), 0.5)


def test_label_consistency_with_real_model(sentiment_predict):
    texts = ["loved the acting, wonderful", "terrible and boring film", "hated this awful movie"]
    labels = np.array([1, 1, 0])  # the middle one flipped sentiment: inconsistent with label 1
    probs = F.predict_in_batches(sentiment_predict, texts, batch_size=2)
    assert probs.shape == (3, 2)
    assert F.label_consistency(probs, labels, tau=0.5).tolist() == [True, False, True]


# --------------------------------------------------------------------------- MinHash / LSH


def _exact_jaccard(a: str, b: str, n: int = 4) -> float:
    def sh(t):
        t = F._shingle_text(t)
        return {t[i : i + n] for i in range(len(t) - n + 1)} if len(t) >= n else {t}

    x, y = sh(a), sh(b)
    return len(x & y) / len(x | y)


def test_minhash_estimates_jaccard():
    pairs = [
        ("the quick brown fox jumps over the lazy dog", "the quick brown fox jumped over the lazy dog"),
        ("아 더빙.. 진짜 짜증나네요 목소리", "아 더빙.. 진짜 짜증나네 목소리"),
        ("I want to top up my account", "How do I cancel a transfer?"),
        ("same", "same"),
    ]
    a = F.minhash_signatures([p[0] for p in pairs], num_perm=256)
    b = F.minhash_signatures([p[1] for p in pairs], num_perm=256)
    est = F.estimate_jaccard(a, b)
    exact = np.array([_exact_jaccard(*p) for p in pairs])
    assert np.abs(est - exact).max() < 0.12
    assert est[3] == 1.0
    # deterministic, and empty text gets the sentinel signature
    np.testing.assert_array_equal(F.minhash_signatures(["abc def"]), F.minhash_signatures(["abc def"]))
    assert (F.minhash_signatures([""]) == 0xFFFFFFFF).all()


def test_lsh_params_s_curve():
    b, r = F.lsh_params(0.9, 64)
    assert b * r <= 64
    p = lambda s: 1 - (1 - s**r) ** b  # noqa: E731
    assert p(0.95) > 0.9 and p(0.5) < 0.05


def test_near_dup_index_query_and_batch_dedupe():
    rng = np.random.default_rng(0)
    alphabet = list("abcdefghijklmnopqrstuvwxyz     ")
    train = ["".join(rng.choice(alphabet, 60)) for _ in range(20_000)]
    idx = F.NearDupIndex(threshold=0.8, num_perm=64)
    t0 = time.time()
    idx.add(F.minhash_signatures(train))
    queries = [train[5] + "!", train[77].upper(), "completely new text about card payments and fees"]
    got = idx.query(F.minhash_signatures(queries))
    assert time.time() - t0 < 20
    assert got[0] >= 0.8 and got[1] >= 0.8 and got[2] == 0.0
    # unrelated random strings are not flagged
    fresh = ["".join(rng.choice(alphabet, 60)) for _ in range(2000)]
    assert (idx.query(F.minhash_signatures(fresh)) > 0).sum() == 0
    batch = ["the card arrived late again", "completely different sentence here", "the card arrived late again!", "The card arrived late again"]
    dup = idx.dedupe_batch(F.minhash_signatures(batch))
    assert dup.tolist() == [False, False, True, True]


def test_near_duplicate_reasons_train_then_variants():
    k = 64
    train = F.NearDupIndex(0.9, k)
    train.add(F.minhash_signatures(["I lost my card yesterday evening"], num_perm=k))
    var_index = F.NearDupIndex(0.9, k)
    texts = ["I lost my card yesterday evening.", "my card was stolen on the bus", "My card was stolen on the bus", "short"]
    sig = F.minhash_signatures(texts, num_perm=k)
    cand = np.array([True, True, True, False])
    r = F.near_duplicate_reasons(sig, cand, train, var_index)
    assert r.tolist() == ["near_duplicate_train", None, "near_duplicate_variant", None]
    assert var_index.size == 1
    # a later batch repeating a kept variant is caught against the index
    r2 = F.near_duplicate_reasons(F.minhash_signatures(["my card was stolen on the bus!"], num_perm=k), np.array([True]), None, var_index)
    assert r2.tolist() == ["near_duplicate_variant"]


# --------------------------------------------------------------------------- apply_filters on a batch


def test_apply_filters_records_first_reason(minilm, sentiment_predict):
    rows = [
        # source, variant, label, error
        ("great movie, loved it", None, 1, "RuntimeError: generation failed"),
        ("great movie, loved it", "ok", 1, None),  # too short
        ("great movie, loved it", "Great movie - loved it!", 1, None),  # identical after normalisation
        ("정말 재밌는 영화", "a really fun movie indeed", 1, None),  # script mismatch
        ("great movie, loved it", "the bank transfer is pending since monday", 1, None),  # low similarity
        ("great movie, loved it", "terrible movie, hated it", 1, None),  # label flips
        ("great movie, loved it", "loved it, a great movie", 1, None),  # kept
    ]
    t = pa.table(
        {
            "id": [f"s{i}~m~0" for i in range(len(rows))],
            "source_id": [f"s{i}" for i in range(len(rows))],
            "source_text": [r[0] for r in rows],
            "text": [r[1] for r in rows],
            "label": pa.array([r[2] for r in rows], pa.int32()),
            "method": ["m"] * len(rows),
            "variant": pa.array([0] * len(rows), pa.int32()),
            "error": [r[3] for r in rows],
        }
    )
    cfg = F.normalize_filter_config(
        {"length": {"min_chars": 5}, "identical": True, "script": True,
         "similarity": {"threshold": 0.5}, "consistency": {"tau": 0.5}, "near_duplicate": True}
    )
    out = F.apply_filters(t, cfg, encoder=minilm, predict=sentiment_predict)
    assert out["reject_reason"].to_pylist() == [
        "error", "too_short", "identical", "script_mismatch", "low_similarity", "label_inconsistent", None
    ]
    assert out["kept"].to_pylist() == [False] * 6 + [True]
    sim = out["similarity"].to_pylist()
    assert sim[:4] == [None] * 4 and sim[4] < 0.5 and sim[6] > 0.5
    assert out["consistent"].to_pylist() == [None] * 5 + [False, True]
    mh = out["_minhash"].to_pylist()
    assert mh[:6] == [None] * 6 and len(mh[6]) == 64
    with pytest.raises(ValueError, match="needs an encoder"):
        F.apply_filters(t, cfg, encoder=None, predict=sentiment_predict)


def test_apply_filters_model_failure_is_per_row(minilm):
    def predict(texts):
        if any("boom" in x for x in texts):
            raise RuntimeError("predictor cannot handle boom")
        return np.tile([[0.2, 0.8]], (len(texts), 1))

    t = pa.table(
        {
            "id": ["a~m~0", "b~m~0"], "source_id": ["a", "b"], "source_text": ["x one", "x two"],
            "text": ["fine variant", "boom variant"], "label": pa.array([1, 1], pa.int32()),
            "method": ["m", "m"], "variant": pa.array([0, 0], pa.int32()), "error": pa.array([None, None], pa.string()),
        }
    )
    out = F.apply_filters(t, F.normalize_filter_config({"consistency": True}), predict=predict)
    assert out["kept"].to_pylist() == [True, False]
    assert out["reject_reason"].to_pylist() == [None, "error"]
    assert "predictor cannot handle boom" in out["error"][1].as_py()
