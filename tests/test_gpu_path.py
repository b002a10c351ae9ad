"""The GPU-cluster path, checked without a GPU: device choice, offline env and the job's runtime env,
autoscaler-aware sizing, vLLM spec validation and processor wiring, precision, pins, the GPU check."""
from __future__ import annotations

import importlib.machinery
import importlib.metadata
import inspect
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from hardmine import runtime as R
from hardmine.augment import vllm_gen as V
from hardmine.config import ConfigError, RayConfig, from_dict
from hardmine.oof.resources import ResourceError, check_resources, concurrent_runs, fold_cpus

ROOT = Path(__file__).resolve().parents[1]
DEMO = {"data": {"demo": {"n_rows": 200}}}


def cfg_with(**over):
    raw = json.loads(json.dumps(DEMO))
    for k, v in over.items():
        raw[k] = v
    return from_dict(raw)


# ----------------------------------------------------------------------------- offline env, job runtime env


def test_hub_names_are_told_from_packaged_and_local(tmp_path):
    assert R.is_hub_name("Qwen/Qwen2.5-7B-Instruct") and R.is_hub_name("klue/roberta-base") and R.is_hub_name("gpt2")
    assert not R.is_hub_name("packaged:minilm")
    assert not R.is_hub_name(str(tmp_path)) and not R.is_hub_name("./models/x") and not R.is_hub_name("~/models/x")
    assert not R.is_hub_name("s3://bucket/model")


def test_packaged_and_local_models_stay_offline(tmp_path):
    cfg = cfg_with(oof={"model": "packaged:minilm"})
    assert R.offline_env(cfg, environ={}) == {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    local = cfg_with(oof={"model": str(tmp_path)},
                     augment={"generators": [{"type": "vllm", "task": "paraphrase", "model": str(tmp_path)}]})
    env = R.worker_env(local, environ={})
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1" and env["TOKENIZERS_PARALLELISM"] == "false"


def test_hub_names_are_not_forced_offline():
    cfg = cfg_with(oof={"model": "klue/roberta-base"})
    assert R.hub_models(cfg) == ["klue/roberta-base"]
    env = R.worker_env(cfg, environ={})
    assert "HF_HUB_OFFLINE" not in env and "TRANSFORMERS_OFFLINE" not in env
    # a vLLM generator naming a hub LLM, everything else packaged
    gen = cfg_with(augment={"generators": [{"type": "vllm", "task": "paraphrase", "model": "Qwen/Qwen2.5-7B-Instruct"}]})
    assert R.hub_models(gen) == ["Qwen/Qwen2.5-7B-Instruct"] and "HF_HUB_OFFLINE" not in R.worker_env(gen, environ={})
    sim = cfg_with(augment={"filters": {"similarity": {"model": "BAAI/bge-m3"}}})
    assert "HF_HUB_OFFLINE" not in R.offline_env(sim, environ={})
    # the user's own setting is respected either way
    assert R.offline_env(cfg, environ={"HF_HUB_OFFLINE": "1"}) == {"HF_HUB_OFFLINE": "1"}
    assert R.offline_env(cfg_with(), environ={"HF_HUB_OFFLINE": "0"})["HF_HUB_OFFLINE"] == "0"


def test_runtime_env_does_not_conflict_with_the_jobs():
    from ray.runtime_env.runtime_env import _merge_runtime_env

    ours = {"TOKENIZERS_PARALLELISM": "false", "RAY_TRAIN_V2_ENABLED": "1", "HF_HUB_OFFLINE": "1"}
    assert R.driver_runtime_env(ours, environ={}) == {"env_vars": ours}  # no job: ours as they are
    job = {"working_dir": "gcs://_ray_pkg_x.zip", "excludes": [".venv"],
           "env_vars": {"HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_x", "TOKENIZERS_PARALLELISM": "true"}}
    environ = {R.JOB_CONFIG_ENV: json.dumps({"runtime_env": job, "metadata": {}})}
    mine = R.driver_runtime_env(ours, environ=environ)
    assert mine == {"env_vars": {"RAY_TRAIN_V2_ENABLED": "1"}}  # the job's keys win
    # what ray.init does with them under `ray job submit` (worker.py): None means "Failed to merge"
    assert _merge_runtime_env(job, {"env_vars": ours}) is None  # the old behaviour
    merged = _merge_runtime_env(job, mine)
    assert merged is not None and merged["env_vars"]["HF_HUB_OFFLINE"] == "0" and merged["env_vars"]["HF_TOKEN"] == "hf_x"
    # every key taken by the job: nothing passed at all
    assert R.driver_runtime_env({"HF_TOKEN": "x"}, environ={R.JOB_CONFIG_ENV: json.dumps({"runtime_env": {"env_vars": {"HF_TOKEN": "y"}}})}) is None
    from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR

    assert R.JOB_CONFIG_ENV == RAY_JOB_CONFIG_JSON_ENV_VAR


# ----------------------------------------------------------------------------- devices


def test_device_follows_ray_gpu_ids(monkeypatch):
    import ray

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(R, "_in_ray_worker", lambda: True)
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    assert R.torch_device() == torch.device("cpu")  # a CPU actor on a GPU node stays off the GPU
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [1])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert R.torch_device() == torch.device("cuda", 0)
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [3])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert R.torch_device() == torch.device("cuda", 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")  # nothing hidden: the GPU id is the index
    assert R.torch_device() == torch.device("cuda", 3)
    monkeypatch.setattr(R, "_in_ray_worker", lambda: False)  # the driver, plain python
    assert R.torch_device() == torch.device("cuda")
    assert R.torch_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert R.torch_device() == torch.device("cpu")


def test_every_model_loader_asks_the_helper():
    for rel in ("hardmine/oof/loop.py", "hardmine/oof/predict.py", "hardmine/embed.py", "hardmine/augment/generators.py"):
        src = (ROOT / rel).read_text()
        assert "torch.cuda.is_available()" not in src, rel
        assert "torch_device(" in src, rel


def test_in_ray_worker_is_true_only_inside_tasks(ray_local):
    @ray_local.remote(num_cpus=0.1)
    def probe():
        from hardmine import runtime

        return runtime._in_ray_worker(), str(runtime.torch_device())

    assert not R._in_ray_worker()
    assert ray_local.get(probe.remote()) == (True, "cpu")


# ----------------------------------------------------------------------------- autoscaling and sizing

HEAD = {"CPU": 8.0, "GPU": 0.0}


def launcher_info(tmp_path) -> dict:
    boot = tmp_path / "ray_bootstrap_config.yaml"
    boot.write_text((ROOT / "cluster.yaml").read_text())  # what `ray up cluster.yaml` leaves on the head
    return R.autoscaler_info(RayConfig(), joined=True, environ={}, bootstrap_path=str(boot))


def test_autoscaler_is_detected_from_the_launcher_config(tmp_path):
    info = launcher_info(tmp_path)
    assert info["autoscaling"] is True and "launcher" in info["source"]
    assert info["worker"] == {"name": "worker.gpu", "resources": {"CPU": 4.0, "GPU": 1.0}, "max_workers": 5}
    # a local cluster this process started is never taken for the launcher's
    assert R.autoscaler_info(RayConfig(), joined=False, environ={}, bootstrap_path=str(tmp_path / "ray_bootstrap_config.yaml"))["autoscaling"] is False
    # config and env override detection; ray.worker_resources names the worker type
    cfg = RayConfig(autoscaling=True, worker_resources={"CPU": 8, "GPU": 1})
    info = R.autoscaler_info(cfg, joined=False, environ={}, bootstrap_path=str(tmp_path / "none.yaml"))
    assert info["autoscaling"] and info["worker"]["resources"] == {"CPU": 8.0, "GPU": 1.0}
    assert R.autoscaler_info(RayConfig(), joined=False, environ={R.AUTOSCALING_ENV: "1"}, bootstrap_path="x")["autoscaling"]
    assert not R.autoscaler_info(RayConfig(autoscaling=False), joined=True, environ={}, bootstrap_path=str(tmp_path / "ray_bootstrap_config.yaml"))["autoscaling"]
    with pytest.raises(ConfigError, match="worker_resources"):
        cfg_with(ray={"worker_resources": {"GPU": 1}})


def test_folds_are_sized_from_the_worker_type_not_the_gpu_less_head(tmp_path):
    info = launcher_info(tmp_path)
    nodes = R.sizing_nodes(5, 1.0, alive=[HEAD], info=info)
    assert nodes == [HEAD] + [{"CPU": 4.0, "GPU": 1.0}] * 5
    assert fold_cpus(None, 5, 1.0, nodes) == 4.0 and concurrent_runs(4.0, 1.0, nodes) == 5
    assert fold_cpus(None, 5, 0.2, nodes) == 4.0  # one worker node holds 5 packed folds, but the target is all 5 at once
    # CPU-only runs are not sized for GPU nodes (they must not make the autoscaler add them)
    assert R.sizing_nodes(5, 0.0, alive=[HEAD], info=info) == [HEAD]
    # an alive worker of that type counts against max_workers
    assert len(R.sizing_nodes(5, 1.0, alive=[HEAD, {"CPU": 4.0, "GPU": 1.0}], info=info)) == 6
    assert R.planning_resources(alive=[HEAD], info=info) == {"CPU": 8.0, "GPU": 5.0}
    assert R.planning_resources(alive=[HEAD], info={"autoscaling": False, "worker": None}) == {"CPU": 8.0, "GPU": 0.0}


def test_fold_sizing_on_one_gpu_node():
    h200 = [{"CPU": 16.0, "GPU": 1.0}]
    assert fold_cpus(None, 5, 0.2, h200) == 3.2 and concurrent_runs(3.2, 0.2, h200) == 5   # packed
    assert fold_cpus(None, 5, 1.0, h200) == 16.0 and concurrent_runs(16.0, 1.0, h200) == 1  # sequential
    # CPU folds unchanged: the largest whole-CPU share that runs all folds at once, else 1
    assert fold_cpus(None, 5, 0.0, [{"CPU": 2.0, "GPU": 0.0}]) == 1.0
    assert fold_cpus(None, 1, 0.0, [{"CPU": 2.0, "GPU": 0.0}]) == 2.0
    assert fold_cpus(None, 5, 0.0, [{"CPU": 16.0}] * 3) == 8.0  # two per node hold all 5


def test_autoscaling_cluster_waits_with_a_message(tmp_path):
    info = launcher_info(tmp_path)
    logs: list[str] = []
    assert check_resources(4.0, 1.0, log=logs.append, nodes=[HEAD], info=info) == "waiting"
    assert logs and "waiting for the autoscaler to add a node with 4 CPUs, 1 GPU" in logs[0] and "worker.gpu" in logs[0]
    # unknown worker type: still waits, and says how to size for it
    logs.clear()
    assert check_resources(1.0, 1.0, log=logs.append, nodes=[HEAD], info={"autoscaling": True, "source": "env", "worker": None}) == "waiting"
    assert "ray.worker_resources" in logs[0]
    # a fold larger than the worker type would wait forever: refused
    with pytest.raises(ResourceError, match="wait forever"):
        check_resources(4.0, 2.0, log=None, nodes=[HEAD], info=info)
    # a node that holds it: fine, silently
    assert check_resources(1.0, 0.0, log=None, nodes=[HEAD], info=info) == "fits"


def test_fixed_cluster_still_refuses_clearly():
    fixed = {"autoscaling": False, "source": "no autoscaler found", "worker": None}
    with pytest.raises(ResourceError, match=r"oof.gpus_per_fold: 0.*ray.autoscaling: true"):
        check_resources(1.0, 1.0, log=None, nodes=[HEAD], info=fixed)
    with pytest.raises(ResourceError, match="lower oof.cpus_per_fold"):
        check_resources(16.0, 0.0, log=None, nodes=[HEAD], info=fixed)


# ----------------------------------------------------------------------------- vLLM spec, sampling, processors


@pytest.fixture
def fresh_sampling_keys():
    V.sampling_keys.cache_clear()
    yield
    V.sampling_keys.cache_clear()


def vllm_gen(**kw):
    return {"type": "vllm", "task": "paraphrase", "model": "Qwen/Qwen2.5-7B-Instruct", **kw}


def test_sampling_typo_fails_at_config_load_with_the_nearest_key(fresh_sampling_keys):
    with pytest.raises(ConfigError) as e:
        cfg_with(augment={"generators": [vllm_gen(sampling={"temprature": 0.7})]})
    msg = str(e.value)
    assert "'temprature'" in msg and "did you mean 'temperature'" in msg
    if importlib.util.find_spec("vllm") is None:
        assert f"vllm {V.SAMPLING_KEYS_VLLM_VERSION}" in msg and "documented list" in msg
    cfg_with(augment={"generators": [vllm_gen(sampling={"temperature": 0.7, "max_tokens": 64, "stop": ["\n\n"]})]})


def test_sampling_keys_come_from_an_importable_vllm(monkeypatch, fresh_sampling_keys):
    fake = types.ModuleType("vllm")
    fake.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    fake.__version__ = "9.9.9"
    fake.SamplingParams = type("SamplingParams", (), {"__struct_fields__": ("n", "temperature", "brand_new_knob", "_eos_token_id")})
    monkeypatch.setitem(sys.modules, "vllm", fake)
    keys, source = V.sampling_keys()
    assert keys == {"n", "temperature", "brand_new_knob"} and "9.9.9" in source
    V.check_sampling({"brand_new_knob": 1})
    with pytest.raises(ValueError, match="top_p"):
        V.check_sampling({"top_p": 0.9})  # not a field of this (fake) version


def test_documented_sampling_keys_are_vllm_029s():
    assert V.SAMPLING_KEYS_VLLM_VERSION == "0.29.0"
    assert {"n", "temperature", "top_p", "top_k", "min_p", "max_tokens", "seed", "stop", "repetition_penalty",
            "skip_special_tokens", "thinking_token_budget", "detokenize"} <= V.SAMPLING_KEYS
    assert not any(k.startswith("_") for k in V.SAMPLING_KEYS)
    assert set(V.SAMPLING_DEFAULTS) <= V.SAMPLING_KEYS


def test_n_above_one_is_refused_because_ray_keeps_one_output(fresh_sampling_keys):
    # the installed Ray's engine stage reads outputs[0] only: if that changes, n > 1 could be supported
    from ray.llm._internal.batch.stages.vllm_engine_stage import vLLMOutputData

    src = inspect.getsource(vLLMOutputData.from_vllm_engine_output)
    assert "output.outputs[0].text" in src and "for o in output.outputs" not in src
    with pytest.raises(ConfigError, match=r"sampling.n=3 is not supported.*first of the n"):
        cfg_with(augment={"generators": [vllm_gen(sampling={"n": 3})]})
    V.check_sampling({"n": 1})
    with pytest.raises(ValueError, match="detokenize"):
        V.check_sampling({"detokenize": False})


def test_other_spec_checks():
    with pytest.raises(ValueError, match="chat_template_kwargs must be a mapping"):
        V.check_spec(vllm_gen(chat_template_kwargs="enable_thinking=false"))
    with pytest.raises(ValueError, match="system_role"):
        V.check_spec(vllm_gen(system_role="assistant"))
    with pytest.raises(ValueError, match="GPU share"):
        V.check_spec(vllm_gen(num_gpus=2))
    with pytest.raises(ValueError, match="tensor/pipeline"):
        V.check_spec(vllm_gen(num_gpus=0.5, engine_kwargs={"tensor_parallel_size": 2}))
    V.check_spec(vllm_gen(chat_template_kwargs={"enable_thinking": False}, system_role="user", num_gpus=0.5))


def test_system_prompt_folds_into_the_user_message():
    msgs = V.paraphrase_messages("내일 배송 되나요?", 2, "ko")
    folded = V.fold_system(msgs)
    assert [m["role"] for m in folded] == ["user"]
    assert folded[0]["content"].startswith(V.PARAPHRASE_SYSTEM) and folded[0]["content"].endswith("내일 배송 되나요?")
    assert V.fold_system([{"role": "user", "content": "x"}]) == [{"role": "user", "content": "x"}]
    row = {"source_id": "s1", "source_text": "hello", "label": 0, "n": 2}
    spec = V.check_spec(vllm_gen())
    assert V.paraphrase_preprocess(row, spec={**spec, "system_role": "user"}, seed=0, method="m")["messages"][0]["role"] == "user"
    assert V.paraphrase_preprocess(row, spec=spec, seed=0, method="m")["messages"][0]["role"] == "system"


def test_processor_config_wiring():
    cfg = V.processor_config(vllm_gen(chat_template_kwargs={"enable_thinking": False}, workers=2),
                             resources={"stage_cpus": 0.5, "stage_workers": 2})
    assert cfg.batch_size == V.VLLM_BATCH_SIZE == 128 and cfg.concurrency == 2
    assert cfg.detokenize_stage is False  # the engine detokenises; no second pass
    assert cfg.chat_template_stage["chat_template_kwargs"] == {"enable_thinking": False}
    assert cfg.chat_template_stage["num_cpus"] == 0.5 and cfg.tokenize_stage["num_cpus"] == 0.5
    assert cfg.tokenize_stage["concurrency"] == (1, 2)
    assert cfg.placement_group_config is None
    half = V.processor_config(vllm_gen(num_gpus=0.5))
    assert half.placement_group_config["bundles"][0]["GPU"] == 0.5


def test_augment_plan_reserves_the_processors_cpu_stages():
    from hardmine.augment.pipeline import check_generators, plan_resources

    gens = check_generators([
        {"type": "eda"},
        {"type": "vllm", "task": "back_translation", "model": "m", "src_lang": "ko", "pivot_lang": "en", "num_gpus": 0.5},
    ])
    plan = plan_resources(gens, cpus=16, gpus=1)
    bt = plan["vllm-back_translation"]
    assert bt["engine_workers"] == 1 and bt["engine_gpus"] == 0.5 and bt["stage_cpus"] == V.VLLM_STAGE_CPUS
    # CPU stages (eda + the vLLM filter stage) share what the engines and their CPU stages leave
    reserve = 1.1 + 2 * 1 * (1.0 + 2 * V.VLLM_STAGE_CPUS)
    used = sum(p["workers"] * p["num_cpus"] for k, p in plan.items() if k != "_io")
    assert used <= 16 - reserve + 1e-6


def tiny_model(tmp_path: Path, system_role: bool) -> Path:
    sys.path.insert(0, str(ROOT / "jobs"))
    try:
        import gpu_check as G
    finally:
        sys.path.remove(str(ROOT / "jobs"))
    texts = [V.PARAPHRASE_SYSTEM, V.PARAPHRASE_USER, V.TRANSLATE_SYSTEM, V.TRANSLATE_USER, "my card was lost", "hello there"]
    return G.build_tiny_llm(tmp_path / ("m" if system_role else "nosys"), system_role=system_role, vocab_size=320, texts=texts)


def test_tiny_local_llm_and_processors_without_vllm(tmp_path, ray_local):
    """What jobs/gpu_check.py builds: a random Llama + a tokenizer trained here, with a chat template;
    the processors hardmine builds over it (Ray's builder runs without vLLM installed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ok, nosys = tiny_model(tmp_path, True), tiny_model(tmp_path, False)
    tok = AutoTokenizer.from_pretrained(ok)
    prompt = tok.apply_chat_template(V.paraphrase_messages("my card was lost", 2), tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|bos|><|system|>") and prompt.endswith("<|assistant|>")
    model = AutoModelForCausalLM.from_pretrained(ok)
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tok)
    assert V.system_role_supported(str(ok)) is True and V.system_role_supported(str(nosys)) is False

    spec = {"type": "vllm", "task": "back_translation", "model": str(nosys), "src_lang": "en", "pivot_lang": "pt",
            "num_gpus": 0.5, "chat_template_kwargs": {"enable_thinking": False}}
    logs: list[str] = []
    procs = V.build_processors(spec, seed=0, method="vllm-bt", resources={"stage_cpus": 0.25, "stage_workers": 1}, log=logs.append)
    assert len(procs) == 2 and any("folded into the user message" in m for m in logs)
    for p in procs:
        assert p.list_stage_names() == ["ChatTemplateStage", "TokenizeStage", "vLLMEngineStage"]  # no DetokenizeStage
        chat, tokz, engine = (p.get_stage_by_name(n) for n in p.list_stage_names())
        assert chat.map_batches_kwargs["num_cpus"] == 0.25 and tokz.map_batches_kwargs["num_cpus"] == 0.25
        assert chat.fn_constructor_kwargs["chat_template_kwargs"] == {"enable_thinking": False}
        assert engine.map_batches_kwargs["num_gpus"] == 0.5


# ----------------------------------------------------------------------------- precision


def test_autocast_dtype_follows_compute_capability(monkeypatch):
    from hardmine.oof.models import autocast_dtype

    cuda = torch.device("cuda")
    for cap, want in (((7, 0), torch.float16), ((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((8, 6), torch.bfloat16), ((9, 0), torch.bfloat16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, _c=cap: _c)
        assert autocast_dtype("auto", cuda) is want, cap
    assert autocast_dtype("bf16", cuda) is torch.bfloat16 and autocast_dtype("fp16", cuda) is torch.float16
    assert autocast_dtype("no", cuda) is None and autocast_dtype("auto", torch.device("cpu")) is None


def test_heldout_probabilities_are_float32_and_exact():
    from hardmine.oof.loop import _Backbone

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 24)).astype(np.float32)
    cfg = {"backbone": "frozen", "num_labels": 5, "head": "mlp", "head_hidden": 16, "batch_size": 8, "head_batch_size": 8,
           "data": {"train_x": x}}
    bb = _Backbone(cfg, torch.device("cpu"))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as during mixed-precision training
        probs = bb.predict(x)
    bb.model.eval()
    with torch.no_grad():
        ref = torch.softmax(bb.model(torch.from_numpy(x)).float(), -1).numpy()
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, ref / ref.sum(1, keepdims=True), rtol=1e-6, atol=1e-7)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        quantised = torch.softmax(bb.model(torch.from_numpy(x)).float(), -1).numpy()
    assert np.abs(quantised - ref).max() > 1e-4  # what autocast at prediction would have fed cleanlab


def test_grad_scaler_state_round_trips_through_the_checkpoint():
    from hardmine.oof.loop import restore_scaler, scaler_state

    scaler = torch.amp.GradScaler("cpu", enabled=True)
    scaler.scale(torch.ones(()))  # the scale exists from the first step on
    scaler.update(new_scale=1024.0)
    state = scaler_state(scaler)
    assert state["scaler"]["scale"] == 1024.0
    resumed = torch.amp.GradScaler("cpu", enabled=True)
    restore_scaler(resumed, state)
    assert resumed.get_scale() == 1024.0
    assert scaler_state(torch.amp.GradScaler("cpu", enabled=False)) == {}  # bf16 / float32 runs: nothing to save
    src = (ROOT / "hardmine/oof/loop.py").read_text()
    assert "**scaler_state(scaler)" in src and "restore_scaler(scaler, state)" in src


# ----------------------------------------------------------------------------- pins, the GPU check


def test_gpu_extra_pins_vllm_beside_rays_llm_extra():
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    gpu = project["optional-dependencies"]["gpu"]
    assert gpu == ["vllm==0.29.0", "ray[llm]==2.60.0"]
    ray_pin = next(Requirement(d) for d in project["dependencies"] if Requirement(d).name == "ray")
    assert str(ray_pin.specifier) == "==2.60.0"
    # the installed ray 2.60.0's own `llm` extra requires exactly this vLLM
    llm_reqs = [Requirement(r) for r in importlib.metadata.requires("ray") if 'extra == "llm"' in r]
    vllm_req = next(r for r in llm_reqs if r.name == "vllm")
    assert str(vllm_req.specifier) == "==0.29.0"


def test_gpu_check_fold_configs_and_script():
    sys.path.insert(0, str(ROOT / "jobs"))
    try:
        import gpu_check as G
    finally:
        sys.path.remove(str(ROOT / "jobs"))
    packed = from_dict(G.fold_config(Path("/tmp/gc"), "packed"))
    seq = from_dict(G.fold_config(Path("/tmp/gc"), "sequential"))
    for c in (packed, seq):
        assert c.oof.backbones == ["finetune"] and c.oof.model == "packaged:minilm" and c.oof.folds == 5
    assert packed.oof.gpus_per_fold == 0.2 and packed.oof.max_concurrent == 5
    assert seq.oof.gpus_per_fold == 1.0 and seq.oof.max_concurrent == 1
    assert packed.name != seq.name  # separate runs: the second must not resume from the first
    assert G._max_overlap([{"started": 0, "finished": 2}, {"started": 1, "finished": 3}, {"started": 4, "finished": 5}]) == 2
    for spec in G.vllm_specs(Path("/tmp/m"), Path("/tmp/n")):
        V.check_spec(spec)
    assert subprocess.run(["bash", "-n", str(ROOT / "jobs" / "gpu_check.sh")]).returncode == 0


def test_connect_env_follows_the_config_in_one_process(monkeypatch):
    """A packaged-only run forces offline for the driver; a later hub-model run in the same process does not inherit it."""
    import ray

    for k in R.OFFLINE_KEYS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(R, "_FORCED", set())
    monkeypatch.setattr(R, "_STATE", dict(R._STATE))
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # no ray.init here: only the env handling
    monkeypatch.setattr(R, "check_storage", lambda run_root: None)
    R.connect(cfg_with(), log=lambda m: None)
    assert R.os.environ["HF_HUB_OFFLINE"] == "1"
    logs: list[str] = []
    R.connect(cfg_with(oof={"model": "klue/roberta-base"}), log=logs.append)
    assert "HF_HUB_OFFLINE" not in R.os.environ and "TRANSFORMERS_OFFLINE" not in R.os.environ
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the user's own choice is kept, with a note
    R.connect(cfg_with(oof={"model": "klue/roberta-base"}), log=logs.append)
    assert R.os.environ["HF_HUB_OFFLINE"] == "1" and any("Hugging Face cache" in m for m in logs)


def test_readme_cluster_recipe_and_unrun_gpu_check():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Running on a Ray cluster"):readme.index("## Configuration reference")]
    for needle in ("ray up cluster.yaml", "ray job submit", "HF_TOKEN", "run_root", "shared storage", "ray down cluster.yaml",
                   "jobs/gpu_check.sh", "UNRUN", "100 back-translations/s", "waiting for the autoscaler"):
        assert needle in section, needle
