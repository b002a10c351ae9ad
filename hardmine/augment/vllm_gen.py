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
"""
from __future__ import annotations

import functools
import re
from typing import Any

from hardmine.augment.generators import stable_hash64, variant_id

LANGUAGE_NAMES = {
    "en": "English", "ko": "Korean", "ja": "Japanese", "zh": "Chinese", "pt": "Portuguese",
    "es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "ru": "Russian",
    "vi": "Vietnamese", "th": "Thai", "id": "Indonesian", "ar": "Arabic", "hi": "Hindi", "tr": "Turkish",
}

SAMPLING_DEFAULTS = {"temperature": 0.8, "top_p": 0.95, "max_tokens": 512}

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
    "num_cpus", "num_gpus",
}


def language_name(code: str | None) -> str:
    """``ko`` -> ``Korean``; unknown codes pass through; None -> ``the same language as the text``."""
    if not code:
        return "the same language as the text"
    return LANGUAGE_NAMES.get(str(code).lower(), str(code))


def check_spec(spec: dict) -> dict:
    """Validate a vllm generator spec: task, model, known keys."""
    bad = sorted(set(spec) - SPEC_KEYS)
    if bad:
        raise ValueError(f"vllm generator has unknown key(s) {bad}: allowed {sorted(SPEC_KEYS)}")
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
        "messages": paraphrase_messages(row["source_text"], int(row["n"]), spec.get("language"), spec.get("system_prompt")),
        "sampling_params": _sampling(spec, row, seed, method),
    }


def paraphrase_postprocess(row: dict) -> dict:
    """Keep the carried columns and the raw reply."""
    return {**_carry(row), "generated_text": row.get("generated_text") or ""}


def bt_forward_preprocess(row: dict, *, spec: dict, seed: int, method: str) -> dict:
    """Row -> request translating the source into the pivot language."""
    return {
        "messages": translate_messages(row["source_text"], spec.get("src_lang"), spec["pivot_lang"]),
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
    return {"messages": translate_messages(pivot, spec["pivot_lang"], spec.get("src_lang")), "sampling_params": greedy}


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


def processor_config(spec: dict, *, model: str | None = None):
    """The ``vLLMEngineProcessorConfig`` of a spec (``should_continue_on_error=True``)."""
    from ray.data.llm import vLLMEngineProcessorConfig

    kw: dict[str, Any] = dict(
        model_source=model or spec["model"],
        engine_kwargs=dict(spec.get("engine_kwargs") or {}),
        batch_size=int(spec.get("batch_size", 64)),
        concurrency=int(spec.get("workers", 1)),
        should_continue_on_error=True,
        chat_template_stage=True,
        tokenize_stage=True,
        detokenize_stage=True,
    )
    if spec.get("accelerator_type"):
        kw["accelerator_type"] = spec["accelerator_type"]
    if spec.get("runtime_env"):
        kw["runtime_env"] = spec["runtime_env"]
    return vLLMEngineProcessorConfig(**kw)


def build_processors(spec: dict, *, seed: int, method: str) -> list:
    """The processor chain of a spec: ``[paraphrase]`` or ``[forward, backward]``."""
    from ray.data.llm import build_processor

    spec = check_spec(spec)
    if spec["task"] == "paraphrase":
        return [
            build_processor(
                processor_config(spec),
                preprocess=functools.partial(paraphrase_preprocess, spec=spec, seed=seed, method=method),
                postprocess=paraphrase_postprocess,
            )
        ]
    fwd = build_processor(
        processor_config(spec),
        preprocess=functools.partial(bt_forward_preprocess, spec=spec, seed=seed, method=method),
        postprocess=bt_forward_postprocess,
    )
    bwd = build_processor(
        processor_config(spec, model=spec.get("backward_model") or spec["model"]),
        preprocess=functools.partial(bt_backward_preprocess, spec=spec, seed=seed, method=method),
        postprocess=bt_backward_postprocess,
    )
    return [fwd, bwd]


def vllm_variants(sources, spec: dict, *, seed: int, method: str):
    """Ray Dataset of sources (``source_id``, ``source_text``, ``label``, ``n``) -> variant rows."""
    spec = check_spec(spec)
    ds = sources.filter(lambda r: int(r["n"]) > 0)
    if spec["task"] == "back_translation":
        ds = ds.flat_map(expand_variants)
    for proc in build_processors(spec, seed=seed, method=method):
        ds = proc(ds)
    return ds.flat_map(functools.partial(rows_to_variants, method=method, task=spec["task"]))
