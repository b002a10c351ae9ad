"""The one embeddings cache (hardmine.embeddings): keyed by text, shared by every stage and run under one run_root."""
from __future__ import annotations

import numpy as np

from hardmine.config import deep_merge, from_dict, parse_overrides


def _cfg(root, model, name):
    return from_dict(deep_merge({"name": name, "run_root": str(root / "runs"), "data": {"path": str(root / "unused.csv")}},
                                parse_overrides([f"oof.model={model}", "oof.backbone=frozen", "oof.max_length=32"])))


def test_cache_embeds_each_text_once_across_calls_and_runs(ray_local, tmp_path):
    from hardmine.embed import load_encoder
    from hardmine.embeddings import cache_folder, cache_store, cached_embeddings, read_cache
    from tests.helpers import tiny_bert_dir

    model = tiny_bert_dir(tmp_path / "tinybert")
    a, b = _cfg(tmp_path, model, "a"), _cfg(tmp_path, model, "b")  # two runs, one run_root
    texts = ["my account is locked please help", "the bill is wrong", "my account is locked please help", "a box"]
    logs: list[str] = []
    x = cached_embeddings(a, texts, log=logs.append)
    folder = cache_folder(a)
    shards = lambda: sorted(i for i in (tmp_path / "runs" / "_cache" / folder).iterdir())  # noqa: E731
    assert len(shards()) == 1 and "embedded 3 texts" in logs[-1]  # the repeated text embedded once
    # rows follow the input order and match the encoder run directly
    direct = load_encoder(model, max_length=32, chunk=True).encode(texts)
    np.testing.assert_allclose(x, direct, atol=1e-5)
    np.testing.assert_array_equal(x[0], x[2])
    # another run under the same run_root: nothing new to embed, no new shard
    y = cached_embeddings(b, texts[:2], log=logs.append)
    assert "from the cache" in logs[-1] and len(shards()) == 1
    np.testing.assert_array_equal(y, x[:2])
    # one new text: one new shard holding only it
    z = cached_embeddings(b, ["the bill is wrong", "please help me"], log=logs.append)
    assert "embedded 1 texts" in logs[-1] and len(shards()) == 2
    known, emb = read_cache(cache_store(a), folder)
    assert set(known) == {*texts, "please help me"} and emb.shape == (4, x.shape[1])
    np.testing.assert_array_equal(z[0], x[1])
    # another max_length is another encoder: its own folder
    assert cache_folder(a, 16) != folder
    assert cached_embeddings(a, []).shape[0] == 0
