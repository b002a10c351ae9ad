"""The select stage with the data-map policy and a class-aware budget (no Ray: scores written by hand)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from hardmine.config import from_dict
from hardmine.data import DataError
from hardmine.pipeline import Context
from hardmine.pipeline.select import select_stage
from hardmine.store import RunStore


def run_with_dynamics(tmp_path, epochs: int, **select):
    """60 rows, 2 classes; rows 0-5 swing across epochs, the others are stable (easy or stuck)."""
    from hardmine.scoring import score_table

    n = 60
    label = np.arange(n) % 2
    ids = [f"r{i}" for i in range(n)]
    rng = np.random.default_rng(0)
    p_true = np.where(np.arange(n) < 6, 0.5, np.where(np.arange(n) < 50, 0.93, 0.2))[:, None] + np.zeros((1, epochs))
    if epochs > 1:
        p_true[:6] = np.resize([0.15, 0.85], epochs)[None, :]
        p_true[6:] += rng.uniform(-0.01, 0.01, size=(n - 6, epochs))
    ep = np.zeros((n, epochs, 2), np.float32)
    ep[np.arange(n), :, label] = p_true
    ep[np.arange(n), :, 1 - label] = 1 - p_true
    cfg = from_dict({"name": "dm", "run_root": str(tmp_path), "data": {"path": "data.csv"},
                     "select": {"hardness_quantile": 0.1, **select}})
    store = RunStore(cfg.run_dir)
    store.write_table("dataset.parquet", pa.table({"id": ids, "text": [f"text number {i}" for i in range(n)],
                                                   "label": pa.array(label, pa.int32()),
                                                   "label_name": [["a", "b"][c] for c in label]}))
    scores, _ = score_table(pa.array(ids), label, ep[:, -1, :], ep, label_names=["a", "b"])
    store.write_table("scores.parquet", scores)
    store.update_manifest(labels=["a", "b"])
    store.mark("score", "done", fingerprint="f-score")
    return cfg, store


def test_select_stage_ambiguous_policy_writes_regions_and_counts(tmp_path):
    cfg, store = run_with_dynamics(tmp_path, epochs=4, policy="ambiguous", issue_action="keep", class_budget="hard_share")
    logs: list[str] = []
    out = select_stage(Context(cfg, store, logs.append))
    sel = store.read_table("selected.parquet")
    aug = {r["id"] for r in sel.to_pylist() if r["action"] == "augment"}
    assert aug == {f"r{i}" for i in range(6)}  # the swinging rows: top 10% by variability
    assert set(sel.column("region").to_pylist()) <= {"easy", "ambiguous", "hard"}
    assert out["policy"] == "ambiguous" and out["params"]["ambiguous_quantile"] == 0.1
    assert sum(out["data_map"]["regions"].values()) == 60
    assert set(out["data_map"]["per_class"]) == {"0", "1"}
    assert out["class_budget"]["mode"] == "hard_share" and out["class_budget"]["total"] == 6
    assert any(m.startswith("data map regions: ") for m in logs)
    assert any(m.startswith("class budget hard_share: 6 of 6 sources placed") for m in logs)


def test_select_stage_refuses_the_ambiguous_policy_on_one_epoch(tmp_path):
    cfg, store = run_with_dynamics(tmp_path, epochs=1, policy="ambiguous")
    with pytest.raises(DataError, match=r"select: select policy 'ambiguous' needs p_true to vary across OOF epochs.*oof.epochs >= 2"):
        select_stage(Context(cfg, store, lambda m: None))
    assert not store.exists("selected.parquet")
