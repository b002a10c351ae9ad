"""The select and augment stages on a Korean run whose hard rows are all label issues:
the select stage says why nothing is augmented and which setting changes it, and the
augment stage completes (no Ray needed), detects Korean from the training set, resolves
``generators: auto`` to eda and logs the same reason."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hardmine.config import from_dict
from hardmine.pipeline import Context
from hardmine.pipeline.augment import augment
from hardmine.pipeline.select import select_stage
from hardmine.store import RunStore
from tests.test_language import NSMC


def korean_run(tmp_path, **select):
    from hardmine.scoring import score_table

    n = 60
    label = np.arange(n) % 2
    ids = [f"r{i}" for i in range(n)]
    texts = [f"{NSMC[i % 10]} {i}번" for i in range(n)]
    # 54 rows confidently right, 6 confidently wrong: the 6 hardest are the label issues
    p_true = np.where(np.arange(n) < 54, 0.95, 0.02)
    probs = np.stack([np.where(label == 0, p_true, 1 - p_true), np.where(label == 1, p_true, 1 - p_true)], 1)
    cfg = from_dict({"name": "ko", "run_root": str(tmp_path), "data": {"path": "ratings.tsv", "text_column": "document"},
                     "select": {"hardness_quantile": 0.1, **select}})
    store = RunStore(cfg.run_dir)
    store.write_table("dataset.parquet", pa.table({"id": ids, "text": texts, "label": pa.array(label, pa.int32()),
                                                   "label_name": [["neg", "pos"][c] for c in label]}))
    scores, _ = score_table(pa.array(ids), label, probs, label_names=["neg", "pos"])
    assert scores.column("is_label_issue").to_pylist() == [i >= 54 for i in range(n)]
    store.write_table("scores.parquet", scores)
    store.update_manifest(labels=["neg", "pos"])
    store.mark("score", "done", fingerprint="f-score")
    return cfg, store


def test_all_hard_rows_are_label_issues_select_and_augment_say_why(tmp_path):
    cfg, store = korean_run(tmp_path)
    logs: list[str] = []
    ctx = Context(cfg, store, logs.append)
    sel = select_stage(ctx)
    want = ("0 rows to augment: all 6 hard rows (select.hardness_quantile=0.1) are label issues, sent to review "
            "(select.issue_action=review); set select.issue_action: keep to augment them anyway, "
            "or raise select.hardness_quantile to reach hard rows that are not label issues")
    assert sel["no_augment_reason"] == want
    assert f"selection: {want}" in logs

    logs.clear()
    s = augment(ctx)  # must complete with zero sources: empty outputs, no cluster
    assert s["no_sources_reason"] == want and f"augment: {want}" in logs
    assert s["language"] == "ko" and s["generators"] == ["eda"]
    t = s["targeted"]
    assert t["sources"] == 0 and t["rows"] == 0 and t["language_detection"]["from"] == "dataset"
    assert t["generators_from"] == "auto"
    assert pq.read_table(store.path("augmented.parquet")).num_rows == 0
    assert pq.read_table(store.path("augmented_random.parquet")).num_rows == 0
    lang = next(m for m in logs if m.startswith("augment: language"))  # the full funnel goes to the log file
    assert "language ko, detected from 60 training texts (Hangul" in lang and "generators ['eda'] (auto for ko)" in lang
    funnel = next(m for m in logs if m.startswith("augment (targeted"))
    assert "nothing to generate" in funnel and want in funnel
    assert store.manifest()["stages"]["augment"]["status"] == "done"


def test_keep_issue_action_leaves_rows_to_augment(tmp_path):
    cfg, store = korean_run(tmp_path, issue_action="keep")
    sel = select_stage(Context(cfg, store, lambda m: None))
    assert sel["actions"]["augment"] == 6 and "no_augment_reason" not in sel
