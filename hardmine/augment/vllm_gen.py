"""The ``vllm`` generator: LLM paraphrase and back-translation as ``ray.data.llm`` processors.

For GPU clusters (``pip install 'hardmine[gpu]'``); nothing here imports vLLM at
module import time, and the prompt / pre- / post-processing functions are plain
functions over row dicts, testable without an engine.

- paraphrase: one chat request per source asking for ``n`` numbered rewrites in the
  same language and register; the reply is parsed into ``n`` variants.
- back_translation: each (source, variant) row is translated to ``pivot_lang`` by one
  processor and back by a second, chained processor; a per-row seed gives distinct
  samples.

Processors run with ``should_continue_on_error=True``: a failed row carries
``__inference_error__`` (it bypasses postprocess) and lands in the ``error`` column.

Checked when the config loads (before Ray starts): ``sampling`` keys against vLLM's
``SamplingParams`` (the installed vLLM, else :data:`SAMPLING_KEYS`, the fields of vLLM
0.29.0); ``sampling.n > 1`` is refused, as Ray 2.60's engine stage keeps only the first of
the ``n`` outputs (``vLLMOutputData.from_vllm_engine_output`` reads ``outputs[0]``).

Processor wiring (Ray 2.60 ``ray.data.llm``): the chat template and tokenizer stages run as
CPU actor pools with the CPUs the augmentation plan gives them; the text is detokenised once,
by the engine (``SamplingParams.detokenize`` is on and the processor's detokenize stage off);
``chat_template_kwargs`` (e.g. ``{enable_thinking: false}``) reach ``apply_chat_template``; a
chat template that rejects the system role gets the system prompt folded into the user
message (``system_role: auto`` probes the template once on the driver).
"""
from __future__ import annotations

import difflib
import functools
import importlib.util
import re
from typing import Any

from hardmine.augment.variants import stable_hash64, variant_id

LANGUAGE_NAMES = {
    "en": "English", "ko": "Korean", "ja": "Japanese", "zh": "Chinese", "pt": "Portuguese",
    "es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "ru": "Russian",
    "vi": "Vietnamese", "th": "Thai", "id": "Indonesian", "ar": "Arabic", "hi": "Hindi", "tr": "Turkish",
}

SAMPLING_DEFAULTS = {"temperature": 0.8, "top_p": 0.95, "max_tokens": 512}

#: The input fields of ``vllm.SamplingParams`` in vLLM 0.29.0 (the version Ray 2.60's ``llm``
#: extra pins; read from vllm/sampling_params.py of the vllm-0.29.0 wheel, leaving out the
#: fields set internally: ``_``-prefixed ones, ``output_text_buffer_length``, ``skip_clone``).
#: Sampling keys are checked against the installed vLLM when it imports, else against this.
SAMPLING_KEYS_VLLM_VERSION = "0.29.0"
SAMPLING_KEYS = frozenset({
    "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "top_p", "top_k", "min_p",
    "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens", "min_tokens", "logprobs", "prompt_logprobs",
    "logprob_token_ids", "flat_logprobs", "detokenize", "skip_special_tokens", "spaces_between_special_tokens",
    "include_stop_str_in_output", "output_kind", "stream_interval", "structured_outputs", "logit_bias",
    "allowed_token_ids", "extra_args", "bad_words", "skip_reading_prefix_cache", "thinking_token_budget",
    "repetition_detection", "routed_experts_prompt_start", "trace_decode_token_ids",
})
_INTERNAL_SAMPLING_FIELDS = {"output_text_buffer_length", "skip_clone"}

#: Rows per batch sent to a vLLM engine (spec ``batch_size`` overrides). Ray keeps
#: ``max_concurrent_batches`` (8) batches in flight per engine, so 128 rows keep up to 1024
#: requests queued: vLLM's default ``max_num_seqs`` on H100/H200 (256 on A10G/A100), so the
#: engine's scheduler is never starved between batches; Ray warns below that. Smaller batches
#: only add per-batch overhead on a GPU; a failed batch is retried whole, and 128 short
#: prompts are seconds of work.
VLLM_BATCH_SIZE = 128
#: CPUs of one chat-template / tokenizer actor (Ray's default would be a whole CPU each): they
#: template and tokenise a batch in milliseconds next to seconds of generation.
VLLM_STAGE_CPUS = 0.25

PARAPHRASE_SYSTEM = (
    "You rewrite short texts for training-data augmentation. A rewrite keeps the exact meaning, "
    "the same language and the same register: slang stays slang, colloquial Korean stays colloquial "
    "Korean, polite stays polite, typos and emoticons may stay. Never translate, explain or add content."
)

PARAPHRASE_USER = (
    "Rewrite the text below in {n} different ways.\n"
    "Keep its meaning, its language ({language}) and its tone/register.\n"
    "Answer with exactly {n} lines, numbered 1. to {n}., and nothing else.\n\n"
    "Text: {text}"
)

TRANSLATE_SYSTEM = "You are a careful translator. Output only the translation, with no notes or quotes."

TRANSLATE_USER = (
    "Translate this {src} text into {tgt}. Keep the meaning and the register (informal stays informal).\n\n{text}"
)

#: keys of a vllm generator spec (besides type/name/weight).
SPEC_KEYS = {
    "type", "name", "weight", "task", "model", "backward_model", "src_lang", "pivot_lang", "language",
    "sampling", "engine_kwargs", "batch_size", "workers", "accelerator_type", "runtime_env", "system_prompt",
    "num_cpus", "num_gpus", "chat_template", "chat_template_kwargs", "system_role",
}
SYSTEM_ROLES = ("auto", "system", "user")


def language_name(code: str | None) -> str:
    """``ko`` -> ``Korean``; unknown codes pass through; None -> ``the same language as the text``."""
    if not code:
        return "the same language as the text"
    return LANGUAGE_NAMES.get(str(code).lower(), str(code))


def engine_gpus(spec: dict) -> int:
    """Whole GPUs one engine of ``spec`` spans: tensor x pipeline parallel size."""
    ek = spec.get("engine_kwargs") or {}
    return int(ek.get("tensor_parallel_size", 1)) * int(ek.get("pipeline_parallel_size", 1))


@functools.lru_cache(maxsize=1)
def sampling_keys() -> tuple[frozenset, str]:
    """(valid ``sampling`` keys, where they come from): the installed vLLM's ``SamplingParams``
    fields when vLLM imports, else :data:`SAMPLING_KEYS` (vLLM 0.29.0)."""
    if importlib.util.find_spec("vllm") is not None:
        try:
            import vllm
            from vllm import SamplingParams

            fields = getattr(SamplingParams, "__struct_fields__", None)  # a msgspec Struct (vLLM >= 0.6)
            if fields is None:
                import dataclasses
                import inspect

                fields = ([f.name for f in dataclasses.fields(SamplingParams)] if dataclasses.is_dataclass(SamplingParams)
                          else list(inspect.signature(SamplingParams).parameters))
            keys = frozenset(f for f in fields if not f.startswith("_") and f not in _INTERNAL_SAMPLING_FIELDS)
            if keys:
                return keys, f"vllm {getattr(vllm, '__version__', '?')} SamplingParams (installed)"
        except Exception:  # noqa: BLE001 - a vLLM that does not import here (CPU torch): the documented list
            pass
    return SAMPLING_KEYS, f"vllm {SAMPLING_KEYS_VLLM_VERSION} SamplingParams (documented list; vLLM not importable here)"


def check_sampling(sampling: Any, where: str = "vllm generator") -> dict:
    """Validate the ``sampling`` mapping of a spec; returns it (a dict)."""
    if sampling is None:
        return {}
    if not isinstance(sampling, dict):
        raise ValueError(f"{where}: sampling must be a mapping of vLLM SamplingParams, e.g. {{temperature: 0.7}}; got {sampling!r}")
    keys, source = sampling_keys()
    for k in sampling:
        if k not in keys:
            close = difflib.get_close_matches(str(k), sorted(keys), n=1, cutoff=0.5)
            hint = f" did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"{where}: sampling key {k!r} is not a vLLM SamplingParams field.{hint} "
                f"Valid keys ({source}): {', '.join(sorted(keys))}"
            )
    n = sampling.get("n", 1)
    if not isinstance(n, int) or n != 1:
        raise ValueError(
            f"{where}: sampling.n={n!r} is not supported: Ray 2.60's vLLM processor returns only the first of the n "
            "outputs, so n - 1 samples would be generated and dropped. Remove sampling.n: paraphrase asks the model for "
            "several numbered rewrites in one reply, back_translation samples each variant separately (its own seed); "
            "ask for more variants with augment.per_sample / augment.aug_ratio"
        )
    if sampling.get("detokenize") is False:
        raise ValueError(
            f"{where}: sampling.detokenize=false would leave the generated text empty: hardmine detokenises in the "
            "engine only (the processor's detokenize stage is off). Remove sampling.detokenize"
        )
    return dict(sampling)


def check_spec(spec: dict) -> dict:
    """Validate a vllm generator spec: task, model, known keys, sampling keys (config-load time)."""
    bad = sorted(set(spec) - SPEC_KEYS)
    if bad:
        raise ValueError(f"vllm generator has unknown key(s) {bad}: allowed {sorted(SPEC_KEYS)}")
    check_sampling(spec.get("sampling"), f"vllm generator {spec.get('name') or spec.get('task') or ''}".rstrip())
    ctk = spec.get("chat_template_kwargs")
    if ctk is not None and not isinstance(ctk, dict):
        raise ValueError(f"vllm chat_template_kwargs must be a mapping (e.g. {{enable_thinking: false}}); got {ctk!r}")
    if spec.get("system_role", "auto") not in SYSTEM_ROLES:
        raise ValueError(
            f"vllm system_role must be one of {list(SYSTEM_ROLES)} (auto: fold the system prompt into the user message "
            f"when the chat template rejects a system role); got {spec.get('system_role')!r}"
        )
    for key in ("batch_size", "workers"):
        v = spec.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError(f"vllm {key} must be a whole number >= 1; got {v!r}")
    share = spec.get("num_gpus")
    if share is not None:
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ValueError(f"vllm num_gpus is one engine's GPU share, 0 to 1 (e.g. 0.5: two engines per GPU); got {share!r}")
        if engine_gpus(spec) > 1:
            raise ValueError("vllm num_gpus applies to single-GPU engines: with tensor/pipeline parallelism each engine "
                             "takes tensor_parallel_size x pipeline_parallel_size whole GPUs; remove num_gpus")
    task = spec.get("task", "paraphrase")
    if task not in ("paraphrase", "back_translation"):
        raise ValueError(f"vllm task must be 'paraphrase' or 'back_translation'; got {task!r}")
    if not spec.get("model"):
        raise ValueError("the vllm generator needs `model` (an instruction LLM, e.g. Qwen/Qwen2.5-7B-Instruct)")
    if task == "back_translation" and not spec.get("pivot_lang"):
        raise ValueError("vllm back_translation needs `pivot_lang` (e.g. 'en' for Korean data)")
    if task == "back_translation" and not spec.get("src_lang"):
        raise ValueError("vllm back_translation needs `src_lang`, the language of the data (e.g. 'ko')")
    return {**spec, "task": task}


# --------------------------------------------------------------------------- prompts and parsing


def fold_system(messages: list[dict]) -> list[dict]:
    """Messages without a system role: the system prompt(s) go first into the first user message
    (for chat templates that raise on ``system``, e.g. Gemma's)."""
    system = "\n\n".join(str(m["content"]) for m in messages if m.get("role") == "system")
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if not system:
        return rest
    for m in rest:
        if m.get("role") == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


def _roles(messages: list[dict], spec: dict) -> list[dict]:
    """Fold the system prompt into the user message when the spec's (resolved) system_role says so."""
    return fold_system(messages) if spec.get("system_role") == "user" else messages


def paraphrase_messages(text: str, n: int, language: str | None = None, system: str | None = None) -> list[dict]:
    """Chat messages asking for ``n`` meaning-, language- and register-preserving rewrites."""
    user = PARAPHRASE_USER.format(n=int(n), language=language_name(language), text=text)
    return [{"role": "system", "content": system or PARAPHRASE_SYSTEM}, {"role": "user", "content": user}]


def translate_messages(text: str, src: str | None, tgt: str) -> list[dict]:
    """Chat messages asking to translate ``text`` from ``src`` to ``tgt``."""
    src_name = language_name(src) if src else "source"
    return [
        {"role": "system", "content": TRANSLATE_SYSTEM},
        {"role": "user", "content": TRANSLATE_USER.format(src=src_name, tgt=language_name(tgt), text=text)},
    ]


_NUMBERED = re.compile(r"^\s*(?:\d{1,3}\s*[.):\]]|[-*•])\s*(.+?)\s*$")
_QUOTES = "\"'“”‘’「」『』"


def _unquote(s: str) -> str:
    s = s.strip()
    while len(s) >= 2 and s[0] in _QUOTES and s[-1] in _QUOTES:
        s = s[1:-1].strip()
    return s


def parse_numbered(text: str, n: int) -> list[str]:
    """The first ``n`` items of a numbered (``1.``/``1)``) or bulleted list, unquoted and
    deduplicated; a reply without list markers counts as one item when ``n == 1``."""
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    items = [_unquote(m.group(1)) for ln in lines if (m := _NUMBERED.match(ln))]
    if not items and n == 1 and lines:
        items = [_unquote(" ".join(lines))]
    out: list[str] = []
    for it in items:
        if it and it not in out:
            out.append(it)
    return out[:n]


def clean_translation(text: str) -> str:
    """Strip a leading ``Translation:`` label and surrounding quotes from a model reply."""
    s = (text or "").strip()
    s = re.sub(r"^(?:translation|번역|tradução)\s*[:：]\s*", "", s, flags=re.IGNORECASE)
    return _unquote(s)


def _sampling(spec: dict, row: dict, seed: int, method: str) -> dict:
    params = {**SAMPLING_DEFAULTS, **(spec.get("sampling") or {})}
    params["seed"] = stable_hash64(seed, method, row["source_id"], row.get("variant", 0)) % (2**31 - 1)
    return params


# --------------------------------------------------------------------------- row functions (pre/post)

CARRY = ("source_id", "source_text", "label", "n", "variant")


def _carry(row: dict) -> dict:
    return {k: row[k] for k in CARRY if k in row}


def paraphrase_preprocess(row: dict, *, spec: dict, seed: int, method: str) -> dict:
    """Row -> ``messages`` + ``sampling_params`` for one paraphrase request."""
    return {
        "messages": _roles(paraphrase_messages(row["source_text"], int(row["n"]), spec.get("language"), spec.get("system_prompt")), spec),
        "sampling_params": _sampling(spec, row, seed, method),
    }


def paraphrase_postprocess(row: dict) -> dict:
    """Keep the carried columns and the raw reply."""
    return {**_carry(row), "generated_text": row.get("generated_text") or ""}


def bt_forward_preprocess(row: dict, *, spec: dict, seed: int, method: str) -> dict:
    """Row -> request translating the source into the pivot language."""
    return {
        "messages": _roles(translate_messages(row["source_text"], spec.get("src_lang"), spec["pivot_lang"]), spec),
        "sampling_params": _sampling(spec, row, seed, method),
    }


def bt_forward_postprocess(row: dict) -> dict:
    """Keep the carried columns and the pivot translation."""
    return {**_carry(row), "pivot_text": clean_translation(row.get("generated_text") or "")}


def bt_backward_preprocess(row: dict, *, spec: dict, seed: int, method: str) -> dict:
    """Pivot text -> request translating back to the source language.

    Rows that failed in the forward processor still pass through here (the engine
    stages skip them); they get a placeholder request and keep their error.
    """
    pivot = row.get("pivot_text") or "-"
    greedy = {**SAMPLING_DEFAULTS, **(spec.get("sampling") or {}), "temperature": 0.0}
    greedy.pop("seed", None)
    return {"messages": _roles(translate_messages(pivot, spec["pivot_lang"], spec.get("src_lang")), spec), "sampling_params": greedy}


def bt_backward_postprocess(row: dict) -> dict:
    """Keep the carried columns and the back-translation."""
    return {**_carry(row), "generated_text": row.get("generated_text") or ""}


def _variant_row(row: dict, method: str, v: int, text: str | None, error: str | None) -> dict:
    return {
        "id": variant_id(str(row["source_id"]), method, v),
        "source_id": str(row["source_id"]),
        "source_text": str(row.get("source_text") or ""),
        "text": text,
        "label": int(row["label"]),
        "method": method,
        "variant": int(v),
        "error": error,
    }


def rows_to_variants(row: dict, *, method: str, task: str) -> list[dict]:
    """A processor output row -> variant rows (``flat_map``): parsed rewrites, the
    back-translation, or error rows carrying ``__inference_error__``."""
    err = row.get("__inference_error__") or ""
    if task == "paraphrase":
        n = max(int(row.get("n") or 1), 1)
        if err:
            return [_variant_row(row, method, v, None, f"vllm: {err}"[:500]) for v in range(n)]
        items = parse_numbered(row.get("generated_text") or "", n)
        out = [_variant_row(row, method, v, t, None) for v, t in enumerate(items)]
        if not out:
            out = [_variant_row(row, method, 0, None, f"vllm: no rewrites could be parsed from the reply ({n} asked)")]
        return out
    v = int(row.get("variant") or 0)
    if err:
        return [_variant_row(row, method, v, None, f"vllm: {err}"[:500])]
    text = clean_translation(row.get("generated_text") or "")
    if not text:
        return [_variant_row(row, method, v, None, "vllm: empty back-translation")]
    return [_variant_row(row, method, v, text, None)]


def expand_variants(row: dict) -> list[dict]:
    """One row per requested variant (back-translation samples each one separately)."""
    return [{**row, "variant": v} for v in range(int(row["n"]))]


# --------------------------------------------------------------------------- processors


def system_role_supported(model: str, chat_template: str | None = None, chat_template_kwargs: dict | None = None) -> bool | None:
    """Whether ``model``'s chat template accepts a system message: True, False, or None when that
    cannot be told here (the tokenizer does not load on the driver; the stage will decide)."""
    try:
        from ray.llm._internal.common.utils.download_utils import NodeModelDownloadable, download_model_files

        path = download_model_files(model_id=model, mirror_config=None,
                                    download_model=NodeModelDownloadable.TOKENIZER_ONLY, download_extra_files=False) or model
    except Exception:  # noqa: BLE001 - a hub name or local path loads as is
        path = model
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
    except Exception:  # noqa: BLE001
        return None
    kw = dict(chat_template_kwargs or {})

    def renders(messages) -> bool:
        try:
            tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, chat_template=chat_template, **kw)
            return True
        except Exception:  # noqa: BLE001 - jinja's TemplateError ("System role not supported") and kin
            return False

    if renders([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]):
        return True
    return False if renders([{"role": "user", "content": "u"}]) else None


def resolve_system_role(spec: dict, model: str, log=None) -> str:
    """``system`` or ``user`` (fold the system prompt into the user message) for ``spec``'s model."""
    role = spec.get("system_role", "auto")
    if role != "auto":
        return role
    ok = system_role_supported(model, spec.get("chat_template"), spec.get("chat_template_kwargs"))
    if ok is False:
        if log:
            log(f"vllm: the chat template of {model} rejects a system message: the system prompt is folded into the user message")
        return "user"
    return "system"


def processor_config(spec: dict, *, model: str | None = None, resources: dict | None = None):
    """The ``vLLMEngineProcessorConfig`` of a spec (``should_continue_on_error=True``).

    ``resources`` (the augmentation plan's entry for this generator, see
    :func:`hardmine.augment.plan.plan_resources`) gives the chat-template and tokenizer
    stages their CPUs and pool size (``stage_cpus``, ``stage_workers``); without it they get
    :data:`VLLM_STAGE_CPUS` and up to ``workers`` actors. The detokenize stage is off: the
    engine already returns the text (``SamplingParams.detokenize``). ``num_gpus`` (0 to 1) is
    one engine's GPU share (default: a whole GPU per engine, Ray's default)."""
    from ray.data.llm import vLLMEngineProcessorConfig

    workers = int(spec.get("workers", 1))
    rp = resources or {}
    cpu_stage = {"num_cpus": float(rp.get("stage_cpus", VLLM_STAGE_CPUS)), "concurrency": (1, int(rp.get("stage_workers", workers)))}
    chat = dict(cpu_stage)
    if spec.get("chat_template"):
        chat["chat_template"] = spec["chat_template"]
    if spec.get("chat_template_kwargs"):
        chat["chat_template_kwargs"] = dict(spec["chat_template_kwargs"])
    kw: dict[str, Any] = dict(
        model_source=model or spec["model"],
        engine_kwargs=dict(spec.get("engine_kwargs") or {}),
        batch_size=int(spec.get("batch_size") or VLLM_BATCH_SIZE),
        concurrency=workers,
        should_continue_on_error=True,
        chat_template_stage=chat,
        tokenize_stage=dict(cpu_stage),
        detokenize_stage=False,  # the engine detokenises; a second pass would decode every token again
    )
    if spec.get("accelerator_type"):
        kw["accelerator_type"] = spec["accelerator_type"]
    if spec.get("runtime_env"):
        kw["runtime_env"] = spec["runtime_env"]
    if spec.get("num_gpus") is not None and engine_gpus(spec) == 1:
        # a single-GPU engine's share: Ray's engine stage (uni executor) sums the bundle into the actor's
        # num_cpus / num_gpus, so e.g. 0.5 puts two engines (back-translation's two) on one GPU
        kw["placement_group_config"] = {"bundles": [{"CPU": 1.0, "GPU": float(spec["num_gpus"])}]}
    return vLLMEngineProcessorConfig(**kw)


def build_processors(spec: dict, *, seed: int, method: str, resources: dict | None = None, log=None) -> list:
    """The processor chain of a spec: ``[paraphrase]`` or ``[forward, backward]``."""
    from ray.data.llm import build_processor

    spec = check_spec(spec)
    fwd_model = spec["model"]
    bwd_model = spec.get("backward_model") or spec["model"]
    fwd_spec = {**spec, "system_role": resolve_system_role(spec, fwd_model, log)}
    if spec["task"] == "paraphrase":
        return [
            build_processor(
                processor_config(fwd_spec, resources=resources),
                preprocess=functools.partial(paraphrase_preprocess, spec=fwd_spec, seed=seed, method=method),
                postprocess=paraphrase_postprocess,
            )
        ]
    bwd_spec = fwd_spec if bwd_model == fwd_model else {**spec, "system_role": resolve_system_role(spec, bwd_model, log)}
    fwd = build_processor(
        processor_config(fwd_spec, resources=resources),
        preprocess=functools.partial(bt_forward_preprocess, spec=fwd_spec, seed=seed, method=method),
        postprocess=bt_forward_postprocess,
    )
    bwd = build_processor(
        processor_config(bwd_spec, model=bwd_model, resources=resources),
        preprocess=functools.partial(bt_backward_preprocess, spec=bwd_spec, seed=seed, method=method),
        postprocess=bt_backward_postprocess,
    )
    return [fwd, bwd]


def vllm_variants(sources, spec: dict, *, seed: int, method: str, resources: dict | None = None, log=None):
    """Ray Dataset of sources (``source_id``, ``source_text``, ``label``, ``n``) -> variant rows."""
    spec = check_spec(spec)
    ds = sources.filter(lambda r: int(r["n"]) > 0)
    if spec["task"] == "back_translation":
        ds = ds.flat_map(expand_variants)
    for proc in build_processors(spec, seed=seed, method=method, resources=resources, log=log):
        ds = proc(ds)
    return ds.flat_map(functools.partial(rows_to_variants, method=method, task=spec["task"]))
