"""The Ray Data pipeline end to end on a real local Ray (``ray_local``): output contract,
failing rows recorded, atomic write, budget, validation, hf and consistency stages."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardmine.augment import pipeline as P
from hardmine.schema import AUGMENTED

TEXTS = [
    "I am still waiting on my card, it has not arrived",
    "What can I do if my card still hasn't arrived after two weeks?",
    "Can I track my card while it is in the process of delivery?",
    "How do I top up my account with a bank transfer?",
    "아 더빙.. 진짜 짜증나네요 목소리",
    "",
    "My transfer was declined, why did that happen today?",
    "I would like to cancel the payment I made yesterday",
]


def make_tables(texts=TEXTS, augment_every=1):
    n = len(texts)
    ids = [f"r{i}" for i in range(n)]
    labels = pa.array([i % 2 for i in range(n)], pa.int32())
    ds = pa.table({"id": ids, "text": texts, "label": labels, "label_name": [f"c{i % 2}" for i in range(n)]})
    actions = ["augment" if i % augment_every == 0 else "none" for i in range(n)]
    sel = pa.table({"id": ids, "label": labels, "action": actions, "rule": ["t"] * n,
                    "new_label": pa.array([None] * n, pa.int32()), "hardness": pa.array(np.linspace(0, 1, n), pa.float32())})
    return sel, ds


EDA_KW = dict(generators=[{"type": "eda", "alpha": 0.2}], filters={"length": {"min_chars": 3}, "identical": True,
              "script": True, "near_duplicate": True}, budget={"per_sample": 3}, seed=3, log=None, progress=False)


def test_eda_end_to_end_contract(ray_local, tmp_path):
    sel, ds = make_tables(augment_every=2)  # r0, r2, r4, r6 are sources
    out = tmp_path / "run" / "augmented.parquet"
    s = P.run_augment(sel, ds, out, **EDA_KW)
    t = pq.read_table(out)
    assert t.schema.equals(AUGMENTED)
    assert set(t["source_id"].to_pylist()) == {"r0", "r2", "r4", "r6"}
    assert t.num_rows == s["rows"] == 12 and s["by_method"]["eda"]["generated"] == 12
    ids = t["id"].to_pylist()
    assert len(set(ids)) == len(ids)
    assert all(i == f"{sid}~eda~{v}" for i, sid, v in zip(ids, t["source_id"].to_pylist(), t["variant"].to_pylist()))
    labels = dict(zip(ds["id"].to_pylist(), ds["label"].to_pylist()))
    assert all(lab == labels[sid] for lab, sid in zip(t["label"].to_pylist(), t["source_id"].to_pylist()))
    kept = t.filter(t["kept"])
    assert kept.num_rows == s["kept"] > 0 and kept["reject_reason"].null_count == kept.num_rows
    rejected = t.filter(pa.compute.invert(t["kept"]))
    assert rejected["reject_reason"].null_count == 0
    # the Hangul source yields Hangul variants (EDA works on word units)
    ko = t.filter(pa.compute.equal(t["source_id"], "r4"))["text"].to_pylist()
    assert all("더빙" in x or "목소리" in x for x in ko)


@pytest.mark.slow
def test_same_seed_same_file(ray_local, tmp_path):
    sel, ds = make_tables(augment_every=2)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    P.run_augment(sel, ds, a, **EDA_KW)
    P.run_augment(sel, ds, b, **EDA_KW)
    assert pq.read_table(a).equals(pq.read_table(b))
    c = tmp_path / "c.parquet"
    P.run_augment(sel, ds, c, **{**EDA_KW, "seed": 4})
    assert not pq.read_table(a).equals(pq.read_table(c))


def test_failing_rows_land_in_error_and_run_completes(ray_local, tmp_path):
    sel, ds = make_tables(TEXTS[3:6])  # English, Korean, empty
    out = tmp_path / "augmented.parquet"
    s = P.run_augment(sel, ds, out, generators=[{"type": "offline-bt", "workers": 1}], filters={"identical": True},
                      budget={"per_sample": 1}, language="en", log=None, progress=False)
    t = {r["source_id"]: r for r in pq.read_table(out).to_pylist()}
    assert s["errors"] == 2 and s["rows"] == 3 and s["reject_reasons"].get("error") == 2
    assert t["r0"]["error"] is None and isinstance(t["r0"]["text"], str) and len(t["r0"]["text"]) > 10
    assert "Hangul" in t["r1"]["error"] and t["r1"]["reject_reason"] == "error" and not t["r1"]["kept"]
    assert "empty" in t["r2"]["error"] and t["r2"]["text"] is None


def test_parquet_inputs_budget_ratio_consistency_and_atomic_replace(ray_local, tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    words = ["great", "awful"] * 20
    texts = [f"sample {i} was {w} and the film was {w} too, really {w}" for i, w in enumerate(words)]
    sel, ds = make_tables(texts)
    ds = ds.set_column(2, "label", pa.array([int(w == "great") for w in words], pa.int32()))
    sp, dp = tmp_path / "selected.parquet", tmp_path / "dataset.parquet"
    pq.write_table(sel, sp)
    pq.write_table(ds, dp)
    clf = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(["great film", "awful film"] * 5, [1, 0] * 5)

    def factory():  # called once inside each actor
        return clf.predict_proba

    out = tmp_path / "augmented.parquet"
    out.write_text("stale")
    s = P.run_augment(sp, dp, out, generators=[{"type": "eda", "workers": 1, "ops": ["swap", "delete"]}],
                      filters={"consistency": {"tau": 0.5}}, budget={"aug_ratio": 1.5}, predictor_factory=factory,
                      log=None, progress=False, batch_size=8)
    t = pq.read_table(out)
    assert s["budget"]["rates"] == {"eda": 1.5}
    assert abs(t.num_rows - 60) <= 12 and t.num_rows == s["rows"]  # 1.5 x 40 rows, drawn per source
    assert t["consistent"].null_count == 0
    # swap/delete keep the sentiment words, so the real classifier agrees with the source label
    assert s["kept"] == t.num_rows and s["reject_reasons"] == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["augmented.parquet", "dataset.parquet", "selected.parquet"]


@pytest.mark.slow
def test_hf_generator_and_consistency_filter_through_ray(ray_local, tmp_path):
    import torch
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    tok = ByT5Tokenizer()
    torch.manual_seed(0)
    T5ForConditionalGeneration(
        T5Config(vocab_size=len(tok), d_model=32, d_ff=64, d_kv=16, num_layers=1, num_decoder_layers=1, num_heads=2,
                 decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    ).save_pretrained(tmp_path / "t5")
    tok.save_pretrained(tmp_path / "t5")
    sel, ds = make_tables(TEXTS[:4])
    clf = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 2)), LogisticRegression()).fit(
        ds["text"].to_pylist(), ds["label"].to_numpy())

    def factory():
        return clf.predict_proba

    out = tmp_path / "augmented.parquet"
    s = P.run_augment(sel, ds, out, generators=[{"type": "hf", "task": "back_translation", "model": str(tmp_path / "t5"),
                                                 "max_new_tokens": 6, "workers": 1}],
                      filters={"consistency": {"tau": 0.0}}, budget={"per_sample": 2}, predictor_factory=factory,
                      log=None, progress=False)
    t = pq.read_table(out)
    assert t.num_rows == 8 and s["errors"] == 0 and set(t["method"].to_pylist()) == {"hf-back_translation"}
    assert all(isinstance(x, str) for x in t["text"].to_pylist())
    assert t["consistent"].to_pylist() == [True] * 8  # tau = 0 accepts every prediction


def test_validation_errors_name_the_problem(ray_local, tmp_path):
    sel, ds = make_tables()
    out = tmp_path / "a.parquet"
    base = dict(generators=[{"type": "eda"}], filters={}, budget={"per_sample": 1}, log=None, progress=False)
    bad_sel = sel.set_column(2, "action", pa.array(["augment", "keep"] + ["none"] * 6))
    with pytest.raises(ValueError, match=r"unknown action\(s\) \['keep'\]"):
        P.run_augment(bad_sel, ds, out, **base)
    with pytest.raises(ValueError, match=r"not in the dataset \(e.g. \['r0'"):
        P.run_augment(sel, ds.slice(1), out, **base)
    with pytest.raises(ValueError, match="predictor_factory"):
        P.run_augment(sel, ds, out, **{**base, "filters": {"consistency": True}})
    with pytest.raises(ValueError, match="both named 'eda'"):
        P.run_augment(sel, ds, out, **{**base, "generators": [{"type": "eda"}, {"type": "eda"}]})
    with pytest.raises(ValueError, match="lacks column"):
        P.run_augment(sel, ds.drop_columns(["text"]), out, **base)
    assert not out.exists()
    # nothing to augment: an empty file with the contract schema, no Ray work
    none_sel = sel.set_column(2, "action", pa.array(["review"] * 8))
    s = P.run_augment(none_sel, ds, out, **base)
    assert s["rows"] == 0 and pq.read_table(out).schema.equals(AUGMENTED) and pq.read_table(out).num_rows == 0


def test_plan_resources_leaves_room_for_reads():
    gens = P.check_generators([{"type": "offline-bt"}, {"type": "hf", "task": "paraphrase", "model": "x"}])
    plan = P.plan_resources(gens, cpus=2, gpus=0)
    assert sum(p["workers"] * p["num_cpus"] for k, p in plan.items() if k != "_io") <= 2 - 1.0
    gpu = P.plan_resources(gens, cpus=16, gpus=2)
    assert gpu["hf-paraphrase"]["num_gpus"] == 1 and gpu["hf-paraphrase"]["workers"] == 2
    assert gpu["offline-bt"]["num_gpus"] == 0
    assert P.detect_language(["아 진짜", "재밌다", "ok"]) == "ko"
    assert P.detect_language(["hello there", "I lost my card"]) == "en"
