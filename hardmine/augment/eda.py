"""EDA-style variants (``eda``): random swap / deletion / insertion of in-corpus tokens.

Edits work on whitespace word units (so it works on Korean eojeol), seeded per
``(seed, source_id, variant)`` — independent of batching. :func:`build_vocab` gives the
in-corpus tokens insertions draw from.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from hardmine.augment.variants import Variant, error_text, stable_hash64

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
                out.append([(None, error_text(e))] * max(int(k), 1))
        return out
