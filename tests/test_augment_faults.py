"""Fault (c): an augmentation actor dies mid-stream -> the stage still completes, every row
produced or recorded as failed, and the output equals an uninterrupted run (EDA is seeded per
source and variant, independent of batching and retries)."""
from __future__ import annotations

import pyarrow.parquet as pq

from hardmine.augment import pipeline as P
from tests.test_augment_pipeline import make_tables

TEXTS = [f"customer {i} asks where the parcel number {i} went after the courier picked it up" for i in range(24)]


def _run(tmp_path, name, marker=None):
    sel, ds = make_tables(texts=TEXTS)
    gen = {"type": "eda", "alpha": 0.2, "batch_size": 4}
    if marker:
        gen["crash_once_marker"] = str(marker)
    out = tmp_path / name
    summary = P.run_augment(sel, ds, out, generators=[gen], filters={"length": {"min_chars": 3}, "identical": True},
                            budget={"per_sample": 2}, seed=5, batch_size=4, log=None, progress=False)
    return pq.read_table(out).sort_by("id"), summary


def test_actor_killed_mid_stream_loses_nothing(ray_local, tmp_path):
    clean, _ = _run(tmp_path, "clean.parquet")
    marker = tmp_path / "crashed"
    crashed, summary = _run(tmp_path, "crashed.parquet", marker)
    assert marker.exists(), "the fault was not injected"
    assert crashed.num_rows == clean.num_rows == 48 == summary["rows"]
    assert crashed["id"].to_pylist() == clean["id"].to_pylist()
    assert crashed["text"].to_pylist() == clean["text"].to_pylist()
    # every row is either a produced variant or carries its failure
    for text, err in zip(crashed["text"].to_pylist(), crashed["error"].to_pylist()):
        assert (text is not None) or (err is not None)
