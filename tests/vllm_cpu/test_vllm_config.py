"""The vllm generator's checks against the installed vLLM (0.32, CPU), before any engine runs.

- a ``sampling`` typo is refused when the config loads, against the installed vLLM's
  ``SamplingParams`` (not the documented 0.29 list), and Ray is not started;
- ``run_augment`` refuses it too before Ray starts (its preflight);
- the processor config hardmine builds keeps failed rows (``should_continue_on_error``) and
  gives a fractional engine its GPU share;
- the system-role probe sees which tiny template rejects a system message, and the fold makes
  that template render.
"""
from __future__ import annotations

import pytest
from _optin import skip_reason

if (_why := skip_reason()) is not None:
    pytest.skip(_why, allow_module_level=True)

from hardmine.augment import vllm_gen as V  # noqa: E402


def _vllm_yaml(tmp_path, model: str, sampling: str) -> str:
    p = tmp_path / "vllm.yaml"
    p.write_text(
        "name: vllm-typo\n"
        "data: {path: a.csv}\n"
        "augment:\n"
        "  per_sample: 1\n"
        "  aug_ratio: null\n"
        "  generators:\n"
        f"    - {{type: vllm, task: paraphrase, model: {model}, sampling: {sampling}}}\n"
    )
    return str(p)


def test_sampling_keys_come_from_the_installed_vllm():
    import vllm

    keys, source = V.sampling_keys()
    assert "(installed)" in source and vllm.__version__ in source
    assert {"temperature", "top_p", "max_tokens", "seed", "structured_outputs"} <= keys
    # a field vLLM 0.32 has and the documented 0.29 list lacks: the installed version is what counts
    newer = keys - V.SAMPLING_KEYS
    assert newer, "expected vLLM 0.32 SamplingParams to have fields beyond the 0.29 list"
    V.check_sampling({sorted(newer)[0]: None, "temperature": 0.2})


def test_sampling_typo_refused_at_config_load_before_ray(tmp_path):
    import ray

    from hardmine.config import ConfigError, load_config

    before = ray.is_initialized()
    with pytest.raises(ConfigError) as e:
        load_config(_vllm_yaml(tmp_path, "some/llm", "{temprature: 0.5}"))
    msg = str(e.value)
    assert "'temprature' is not a vLLM SamplingParams field" in msg
    assert "did you mean 'temperature'" in msg and "(installed)" in msg
    with pytest.raises(ConfigError, match=r"sampling.n=2 is not supported"):
        load_config(_vllm_yaml(tmp_path, "some/llm", "{n: 2}"))
    cfg = load_config(_vllm_yaml(tmp_path, "some/llm", "{temperature: 0.5, max_tokens: 8}"))
    assert cfg.augment.generators[0]["sampling"] == {"temperature": 0.5, "max_tokens": 8}
    if not before:
        assert not ray.is_initialized(), "loading a config must not start Ray"


def test_run_augment_refuses_a_typo_before_ray(tmp_path):
    import ray

    import tiny_llm as T
    from hardmine.augment.pipeline import run_augment

    before = ray.is_initialized()
    selected, dataset = T.demo_inputs(4)
    spec = {"type": "vllm", "task": "paraphrase", "model": "some/llm", "sampling": {"max_token": 8}}
    with pytest.raises(ValueError, match=r"did you mean 'max_tokens'"):
        run_augment(selected, dataset, tmp_path / "aug.parquet", generators=[spec], filters={},
                    budget={"per_sample": 1}, language="en", progress=False, log=None)
    assert not (tmp_path / "aug.parquet").exists()
    if not before:
        assert not ray.is_initialized(), "a refused generator spec must not start Ray"


def test_processor_config_keeps_failed_rows_and_gpu_share():
    import tiny_llm as T

    spec = V.check_spec({"type": "vllm", "task": "back_translation", "model": "m", "src_lang": "en", "pivot_lang": "pt",
                         "engine_kwargs": dict(T.ENGINE_KWARGS), "num_gpus": 0.5, "batch_size": 8})
    cfg = V.processor_config(spec)
    assert cfg.should_continue_on_error is True
    assert cfg.batch_size == 8
    assert cfg.placement_group_config["bundles"] == [{"CPU": 1.0, "GPU": 0.5}]  # two engines share a GPU
    assert cfg.engine_kwargs["max_model_len"] == T.ENGINE_KWARGS["max_model_len"]


def test_system_role_probe_and_fold(tiny_models):
    from transformers import AutoTokenizer

    chat, nosys = str(tiny_models["chat"]), str(tiny_models["nosys"])
    assert V.system_role_supported(chat) is True
    assert V.system_role_supported(nosys) is False
    assert V.resolve_system_role({"system_role": "auto"}, chat) == "system"
    assert V.resolve_system_role({"system_role": "auto"}, nosys) == "user"
    tok = AutoTokenizer.from_pretrained(nosys)
    messages = V.paraphrase_messages("where is my parcel", 2, "en")
    with pytest.raises(Exception, match="System role not supported"):
        tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    folded = tok.apply_chat_template(V.fold_system(messages), tokenize=False, add_generation_prompt=True)
    assert "<|system|>" not in folded and V.PARAPHRASE_SYSTEM in folded and "where is my parcel" in folded
