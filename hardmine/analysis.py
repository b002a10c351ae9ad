"""Hard-case analysis: where the hard samples are, what they are confused with, what they look like
(distinctive phrases: words and word n-grams, or character n-grams for text written without spaces).

Pure functions over the scores and dataset tables; results are pyarrow tables plus
JSON-able dicts (``analyze``), rendered for the console (``format_tables``) or written
to disk (``write_analysis``).
"""
from __future__ import annotations

import json
import math
import functools
import os
import re
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from hardmine.select import _column, _floats, _ints, score_ids, text_for_ids, top_quantile_mask

PER_CLASS = pa.schema(
    [
        pa.field("class", pa.int32()),
        pa.field("name", pa.string()),
        pa.field("n", pa.int64()),
        pa.field("n_hard", pa.int64()),
        pa.field("share_hard", pa.float64()),
        pa.field("n_issue", pa.int64()),
        pa.field("share_issue", pa.float64()),
    ]
)
CONFUSION_PAIRS = pa.schema(
    [
        pa.field("label", pa.int32()),
        pa.field("label_name", pa.string()),
        pa.field("pred", pa.int32()),
        pa.field("pred_name", pa.string()),
        pa.field("count", pa.int64()),
        pa.field("share_of_hard", pa.float64()),
    ]
)
#: one row per distinctive phrase (artifact ``distinctive_tokens.parquet``; the name is kept for old readers).
#: ``phrase``: what a reader sees (a word n-gram, or a character n-gram grown towards whole words);
#: ``hard_df`` of ``n_hard``: hard rows of the class containing ``phrase``; ``other_df`` of ``n_other``: the same
#: in the contrast group (``versus``); ``token``: the vectorizer's n-gram that was scored; ``unit``: word or char.
DISTINCTIVE_TOKENS = pa.schema(
    [
        pa.field("class", pa.int32()),
        pa.field("name", pa.string()),
        pa.field("phrase", pa.string()),
        pa.field("hard_df", pa.int64()),
        pa.field("n_hard", pa.int64()),
        pa.field("other_df", pa.int64()),
        pa.field("n_other", pa.int64()),
        pa.field("score", pa.float64()),
        pa.field("token", pa.string()),
        pa.field("versus", pa.string()),
        pa.field("unit", pa.string()),
    ]
)
#: the tables in an :func:`analyze` result (each written as ``<name>.parquet``)
TABLES = ("per_class", "confusion_pairs", "distinctive_tokens")
CONTRASTS = ("class", "all")
TOKEN_SCORES = ("lift", "tfidf")
#: phrase units: ``word`` (words and word n-grams), ``char`` (character n-grams inside words, for
#: scripts written without spaces), ``auto`` (:func:`phrase_unit` decides per dataset)
UNITS = ("auto", "word", "char")
DEFAULT_NGRAMS = {"word": (1, 3), "char": (2, 4)}

# scripts written without spaces between words: CJK ideographs, kana, Thai, Lao, Tibetan, Myanmar, Khmer
_NO_SPACE_SCRIPT = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002ffff]"
)
_WORD_CHAR = re.compile(r"\w")
# English clitics: "it's", "i'm", "we're" count as stop words when the base word is one
_CLITIC = re.compile(r"^(\w+)['\u2019](?:s|m|re|ve|ll|d)$")


def _share(a, b) -> float:
    return float(a) / float(b) if b else 0.0


def length_stats(lengths: np.ndarray) -> dict:
    """Count, mean, min, p10/p25/p50/p75/p90 and max of character lengths (None when empty)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    keys = ("mean", "min", "p10", "p25", "p50", "p75", "p90", "max")
    if lengths.size == 0:
        return {"n": 0, **{k: None for k in keys}}
    q = np.quantile(lengths, [0.1, 0.25, 0.5, 0.75, 0.9])
    vals = [lengths.mean(), lengths.min(), *q, lengths.max()]
    return {"n": int(lengths.size), **{k: round(float(v), 3) for k, v in zip(keys, vals)}}


def _indicator(mask_by_group: list[np.ndarray], n: int) -> sp.csr_matrix:
    rows, cols = [], []
    for g, m in enumerate(mask_by_group):
        idx = np.flatnonzero(m)
        rows.append(np.full(idx.size, g))
        cols.append(idx)
    rows = np.concatenate(rows) if rows else np.zeros(0, int)
    cols = np.concatenate(cols) if cols else np.zeros(0, int)
    return sp.csr_matrix((np.ones(rows.size, np.float64), (rows, cols)), shape=(len(mask_by_group), n))


@functools.lru_cache(maxsize=None)
def _word_re() -> re.Pattern:
    """A word: a run of ``\\w`` or combining marks (so Devanagari, Thai, ... vowel signs stay inside
    the word), with inner apostrophes (``don't``, ``it’s``). One-character words are kept (Korean 안, 못)."""
    ranges, start = [], None
    for cp in range(0x20000):
        is_mark = unicodedata.category(chr(cp))[0] == "M"
        if is_mark and start is None:
            start = cp
        elif not is_mark and start is not None:
            ranges.append((start, cp - 1))
            start = None
    marks = "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)
    w = rf"(?:\w|[{marks}])"
    return re.compile(rf"{w}+(?:['\u2019]{w}+)*")


def _word_tokens(text: str) -> list[str]:
    return _word_re().findall(text)


_SENTENCE_END = re.compile("[.!?;\u3002\uff01\uff1f\uff1b\u2026]")
_BREAK = "\n"  # never a word: growing phrases stops at sentence ends


def _word_doc(text: str) -> list[str]:
    """The lowercased words of ``text`` with :data:`_BREAK` between sentences (for growing phrases)."""
    out: list[str] = []
    last = 0
    text = text.lower()
    for m in _word_re().finditer(text):
        if out and _SENTENCE_END.search(text, last, m.start()):
            out.append(_BREAK)
        out.append(m.group())
        last = m.end()
    return out


def _is_stop_unigram(tok: str) -> bool:
    """An English stop word (sklearn's ENGLISH_STOP_WORDS, or one with a clitic: ``it's``); such
    unigrams say nothing on their own. Longer n-grams are kept (``cancel my order``, ``not good``)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    if tok in ENGLISH_STOP_WORDS:
        return True
    m = _CLITIC.match(tok)
    return bool(m) and m.group(1) in ENGLISH_STOP_WORDS


def phrase_unit(texts, *, max_texts: int = 5000) -> str:
    """``"word"`` for space-delimited text (English, Korean, Hindi, ...), ``"char"`` for text written
    without spaces: at least half of its word characters are CJK ideographs, kana, Thai, Lao, Tibetan,
    Myanmar or Khmer and whitespace-separated chunks average 3+ characters (not pre-segmented), or,
    any script, chunks average 12+ characters. Looks at the first ``max_texts`` non-empty texts."""
    n_chars = n_chunks = n_word = n_nospace = 0
    seen = 0
    for t in texts:
        if t is None:
            continue
        chunks = str(t).split()
        if not chunks:
            continue
        n_chunks += len(chunks)
        n_chars += sum(map(len, chunks))
        n_word += len(_WORD_CHAR.findall(str(t)))
        n_nospace += len(_NO_SPACE_SCRIPT.findall(str(t)))
        seen += 1
        if seen >= max_texts:
            break
    if not n_chunks:
        return "word"
    per_chunk = n_chars / n_chunks
    if per_chunk >= 12 or (n_word and n_nospace / n_word >= 0.5 and per_chunk >= 3):
        return "char"
    return "word"


def _same_words(a: str, b: str) -> bool:
    """True when one word n-gram contains the other or they overlap by >= max(1, shorter - 1) words
    (``cancel my`` / ``my order``)."""
    x, y = a.split(), b.split()
    if len(x) > len(y):
        x, y = y, x
    m = len(x)
    if any(y[i : i + m] == x for i in range(len(y) - m + 1)):
        return True
    return any(x[-o:] == y[:o] or y[-o:] == x[:o] for o in range(max(1, m - 1), m))


def _same_phrase(a: str, b: str) -> bool:
    """True when one string contains the other or they overlap by at least max(2, shorter - 1) chars."""
    if a in b or b in a:
        return True
    m = min(len(a), len(b))
    return any(a[-o:] == b[:o] or b[-o:] == a[:o] for o in range(max(2, m - 1), m))


def _grow(tok: str, docs: list[str], keep: float = 0.8, max_len: int = 40) -> str:
    """Extend ``tok`` one char at a time, left or right, while the longer string still occurs in
    at least ``keep`` of the ``docs`` that contain ``tok`` (``"liv"`` -> ``" deliver"``)."""
    docs = [d for d in docs if tok in d]
    need = keep * len(docs)
    phrase = tok
    while docs and len(phrase) < max_len:
        best, best_df = None, 0
        for side in (0, 1):
            counts: dict[str, int] = {}
            for d in docs:
                i = d.find(phrase)
                j = i - 1 if side == 0 else i + len(phrase)
                if 0 <= j < len(d):
                    ext = d[j] + phrase if side == 0 else phrase + d[j]
                    counts[ext] = counts.get(ext, 0) + 1
            for ext in sorted(counts, key=counts.get, reverse=True)[:2]:
                df = _doc_freq(ext, docs)
                if df >= need and df > best_df:
                    best, best_df = ext, df
        if best is None:
            break
        phrase = best
    return phrase


def _doc_freq(s: str, docs: list[str]) -> int:
    return sum(1 for d in docs if s in d)


def _find_words(seq: tuple, doc: list[str]) -> int:
    """Index of the first occurrence of the word sequence ``seq`` in ``doc`` (a word list), or -1."""
    m = len(seq)
    for i in range(len(doc) - m + 1):
        if doc[i] == seq[0] and tuple(doc[i : i + m]) == seq:
            return i
    return -1


def _grow_words(tok: str, docs: list[list[str]], keep: float = 0.8, max_words: int = 8) -> str:
    """:func:`_grow` for word n-grams: extend ``tok`` one word at a time, left or right, while the
    longer phrase still occurs in at least ``keep`` of the ``docs`` (word lists) that contain ``tok``
    (``"cancel my order"`` -> ``"i want to cancel my order"``)."""
    phrase = tuple(tok.split())
    docs = [d for d in docs if _find_words(phrase, d) >= 0]
    need = keep * len(docs)
    while docs and len(phrase) < max_words:
        best, best_df = None, 0
        for side in (0, 1):
            counts: dict[tuple, int] = {}
            for d in docs:
                i = _find_words(phrase, d)
                j = i - 1 if side == 0 else i + len(phrase)
                if 0 <= j < len(d) and d[j] != _BREAK:
                    ext = (d[j], *phrase) if side == 0 else (*phrase, d[j])
                    counts[ext] = counts.get(ext, 0) + 1
            for ext in sorted(counts, key=counts.get, reverse=True)[:2]:
                df = sum(1 for d in docs if _find_words(ext, d) >= 0)
                if df >= need and df > best_df:
                    best, best_df = ext, df
        if best is None:
            break
        phrase = best
    return " ".join(phrase)


def _top_tokens(
    score: np.ndarray, vocab: np.ndarray, k: int, dedupe: bool, docs: list | None = None, unit: str = "char"
) -> list[tuple[int, str]]:
    """(index, phrase) of the k best positive scores (ties: longer n-gram, then token).

    With ``dedupe`` an n-gram is grown (:func:`_grow` for chars, :func:`_grow_words` for words)
    into the longest phrase that still occurs in >= 80% of the hard ``docs`` containing it
    (``docs``: the class's hard texts, lowercased: padded strings for chars, word lists for words),
    and n-grams overlapping an already chosen phrase are skipped (:func:`_same_phrase`,
    :func:`_same_words`).
    """
    same = _same_words if unit == "word" else (lambda a, b: _same_phrase(a.strip(), b.strip()))
    cand = np.flatnonzero(score > 0)
    pool = k * 20 if dedupe else k
    rounded = np.round(score[cand], 10)  # float noise must not split n-grams of one phrase
    if cand.size > pool:  # keep everything tied with the pool-th score, then sort
        kth = np.partition(rounded, cand.size - pool)[cand.size - pool]
        cand, rounded = cand[rounded >= kth], rounded[rounded >= kth]
    core = np.char.strip(vocab[cand])
    cand = cand[np.lexsort((vocab[cand], -np.char.str_len(core), -rounded))]
    chosen: list[tuple[int, str]] = []
    for j in cand:
        if len(chosen) == k:
            break
        tok = str(vocab[j])
        if dedupe and any(same(tok, ph) for _, ph in chosen):
            continue
        if dedupe and docs is not None:
            phrase = _grow_words(tok, docs) if unit == "word" else _grow(tok, docs)
        else:
            phrase = tok
        if dedupe and phrase != tok and any(same(phrase, ph) for _, ph in chosen):
            continue
        chosen.append((int(j), phrase))
    return chosen


def token_sample(labels: np.ndarray, hard: np.ndarray, max_texts: int | None, seed: int = 0) -> np.ndarray:
    """Sorted row indices for the n-gram analysis: all rows, or at most ``max_texts`` (about) rows
    stratified by class x hard (up to ``max_texts // (2 * n_classes)`` of each, at least 10)."""
    labels = np.asarray(labels)
    hard = np.asarray(hard, dtype=bool)
    n = labels.shape[0]
    if max_texts is None or n <= max_texts:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = max(10, max_texts // (2 * len(classes)))
    keep = []
    for c in classes:
        for m in (hard & (labels == c), ~hard & (labels == c)):
            idx = np.flatnonzero(m)
            keep.append(rng.choice(idx, per, replace=False) if idx.size > per else idx)
    return np.sort(np.concatenate(keep))


def distinctive_tokens(
    texts,
    labels: np.ndarray,
    hard: np.ndarray,
    label_names: list[str],
    *,
    top_tokens: int = 10,
    unit: str = "auto",
    ngram_range=None,
    contrast: str = "class",
    score: str = "lift",
    dedupe: bool = True,
    min_hard_df: int = 3,
) -> pa.Table:
    """Distinctive phrases: n-grams over-represented in each class's hard samples (schema :data:`DISTINCTIVE_TOKENS`).

    ``unit="word"``: lowercased words and word n-grams (``ngram_range`` default (1, 3); a word is a
    run of letters, digits and combining marks, apostrophes inside kept, one-letter words too);
    unigrams that are English stop words are skipped. ``unit="char"``: character n-grams inside
    words (``TfidfVectorizer(analyzer="char_wb")``, default (2, 4)), for scripts written without
    spaces. ``"auto"``: :func:`phrase_unit` of ``texts``.
    ``contrast="class"``: hard samples of a class vs its other samples (falls back to all other
    texts when every sample of the class is hard); ``"all"``: vs every text outside that hard set.
    ``score="lift"``: log ratio of the share of documents containing the n-gram (add-one
    smoothed), hard vs contrast; ``"tfidf"``: mean TF-IDF in the hard group minus in the contrast
    group (favours frequent short n-grams). Only scores > 0 are kept; an n-gram must occur in at
    least ``min(min_hard_df, n_hard_of_class)`` hard samples. With ``dedupe`` each n-gram is shown
    grown (word by word, or char by char) while it keeps 80% of its hard occurrences
    (``"cancel my order"`` -> ``"i want to cancel my order"``, ``"liv"`` -> ``" deliver"``), and an
    n-gram contained in, containing or overlapping a higher-ranked phrase is skipped.
    ``hard_df``/``other_df`` count the rows containing the shown ``phrase`` (``score``: its ``token``).
    Cost is linear in the characters of ``texts``: pass a sample (:func:`token_sample`) for big sets.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    if score not in TOKEN_SCORES:
        raise ValueError(f"score must be one of {TOKEN_SCORES}, got {score!r}")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    texts = ["" if t is None else str(t) for t in texts]
    labels = np.asarray(labels)
    hard = np.asarray(hard, dtype=bool)
    empty = pa.Table.from_pylist([], schema=DISTINCTIVE_TOKENS)
    classes = [int(c) for c in np.unique(labels[hard])]
    if not classes or top_tokens == 0:
        return empty
    if unit == "auto":
        unit = phrase_unit(texts)
    ngram_range = tuple(ngram_range) if ngram_range is not None else DEFAULT_NGRAMS[unit]
    if unit == "word":
        vec = TfidfVectorizer(
            tokenizer=_word_tokens, token_pattern=None, lowercase=True, ngram_range=ngram_range,
            sublinear_tf=True, dtype=np.float64,
        )
    else:
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, sublinear_tf=True, dtype=np.float64)
    try:
        X = vec.fit_transform(texts).tocsr()
    except ValueError:  # empty vocabulary: every text is empty
        return empty
    vocab = vec.get_feature_names_out().astype(str)
    if unit == "word":
        keep_tok = np.array([" " in t or not _is_stop_unigram(t) for t in vocab], dtype=bool)
    else:
        keep_tok = np.array([bool(t.strip()) for t in vocab], dtype=bool)
    n = len(texts)
    B = (X > 0).astype(np.float64)
    M = X if score == "tfidf" else B  # summed per group: TF-IDF mass or document frequency
    hard_g = [hard & (labels == c) for c in classes]
    class_g = [labels == c for c in classes]
    g_hard, g_class = _indicator(hard_g, n), _indicator(class_g, n)
    s_hard = (g_hard @ M).tocsr()  # sparse: groups x V can be large (densified per class below)
    s_class = (g_class @ M).tocsr()
    s_all = np.asarray(M.sum(axis=0)).ravel()
    if M is B:
        df_hard, df_class, df_all = s_hard, s_class, s_all
    else:
        df_hard, df_class = (g_hard @ B).tocsr(), (g_class @ B).tocsr()
        df_all = np.asarray(B.sum(axis=0)).ravel()
    if unit == "word":  # lowercased word lists: growing phrases and counting the rows holding them
        docs_all = [_word_doc(t) for t in texts]
        holds = lambda ph, d: _find_words(ph, d) >= 0  # noqa: E731
    else:
        docs_all = [f" {' '.join(t.lower().split())} " for t in texts]
        holds = lambda ph, d: ph in d  # noqa: E731
    Bc = B.tocsc()  # rows holding each n-gram: a grown phrase holds its n-gram, so only those are searched
    rows = []
    for g, c in enumerate(classes):
        sh = s_hard[g].toarray().ravel()
        dh = df_hard[g].toarray().ravel()
        n_h = int(hard_g[g].sum())
        n_rest = int(class_g[g].sum()) - n_h
        if contrast == "class" and n_rest > 0:
            ref, n_ref, versus = s_class[g].toarray().ravel() - sh, n_rest, "rest_of_class"
            ref_df, ref_rows = df_class[g].toarray().ravel() - dh, class_g[g] & ~hard_g[g]
        else:
            ref, n_ref, versus = s_all - sh, n - n_h, "other_texts"
            ref_df, ref_rows = df_all - dh, ~hard_g[g]
        if score == "tfidf":
            sc = sh / n_h - (ref / n_ref if n_ref else 0.0)
        else:
            sc = np.log((sh + 1.0) / (n_h + 2.0)) - np.log((ref + 1.0) / (n_ref + 2.0))
        sc = np.where(keep_tok & (dh >= min(min_hard_df, n_h)), sc, -np.inf)
        docs = [docs_all[i] for i in np.flatnonzero(hard_g[g])] if dedupe else None
        for j, phrase in _top_tokens(sc, vocab, top_tokens, dedupe, docs, unit):
            with_tok = Bc.indices[Bc.indptr[j] : Bc.indptr[j + 1]]
            if phrase == vocab[j]:  # counted by the vectorizer
                h_df, o_df = int(round(dh[j])), int(round(ref_df[j]))
            else:  # the rows holding the shown (grown) phrase
                key = tuple(phrase.split()) if unit == "word" else phrase
                h_df = sum(holds(key, docs_all[i]) for i in with_tok[hard_g[g][with_tok]])
                o_df = sum(holds(key, docs_all[i]) for i in with_tok[ref_rows[with_tok]])
            rows.append(
                {
                    "class": c,
                    "name": label_names[c],
                    "phrase": phrase.strip(),
                    "hard_df": h_df,
                    "n_hard": n_h,
                    "other_df": o_df,
                    "n_other": n_ref,
                    "score": float(sc[j]),
                    "token": str(vocab[j]),
                    "versus": versus,
                    "unit": unit,
                }
            )
    return pa.Table.from_pylist(rows, schema=DISTINCTIVE_TOKENS)


def analyze(
    scores: pa.Table,
    texts: pa.Table,
    label_names: list[str],
    *,
    hard_mask: np.ndarray | None = None,
    hardness_quantile: float = 0.2,
    top_pairs: int = 10,
    top_tokens: int = 10,
    ngram_range=None,
    unit: str = "auto",
    contrast: str = "class",
    token_score: str = "lift",
    dedupe: bool = True,
    min_hard_df: int = 3,
    max_token_texts: int | None = 20_000,
    seed: int = 0,
) -> dict:
    """Per-class hard/issue shares, top confusion pairs, lengths and distinctive phrases of the hard set.

    Hard = ``hard_mask`` (aligned with ``scores``) or, when None, the top ``hardness_quantile``
    fraction by hardness (same rule as :func:`hardmine.select.select`). The phrase analysis
    (:func:`distinctive_tokens`; ``unit``: word n-grams, or char n-grams for text without spaces,
    ``"auto"`` decides; ``ngram_range`` None: that unit's default) uses at most ``max_token_texts``
    texts (stratified sample, see :func:`token_sample`); the unit used is ``result["phrase_unit"]``.
    """
    if max_token_texts is not None and (
        isinstance(max_token_texts, bool) or not isinstance(max_token_texts, (int, np.integer)) or max_token_texts < 1
    ):
        raise ValueError(f"max_token_texts must be a positive integer or None, got {max_token_texts!r}")
    for name, v in (("top_pairs", top_pairs), ("top_tokens", top_tokens), ("min_hard_df", min_hard_df)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if ngram_range is not None and (
        not isinstance(ngram_range, (tuple, list))
        or len(ngram_range) != 2
        or not all(isinstance(x, (int, np.integer)) for x in ngram_range)
        or not 1 <= ngram_range[0] <= ngram_range[1]
    ):
        raise ValueError(f"ngram_range must be None or (min_n, max_n) with 1 <= min_n <= max_n, got {ngram_range!r}")
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    if token_score not in TOKEN_SCORES:
        raise ValueError(f"token_score must be one of {TOKEN_SCORES}, got {token_score!r}")
    label_names = [str(x) for x in label_names]
    if not label_names:
        raise ValueError("label_names is empty: pass the label vocabulary (index -> name) from the manifest")
    fix = "pass the table written by the score stage (hardmine.scoring)"
    ids = score_ids(scores)
    n = len(ids)
    labels = _ints(scores, "label", "scores", fix)
    preds = _ints(scores, "pred", "scores", fix)
    hardness = _floats(scores, "hardness", "scores", fix)
    is_issue = _column(scores, "is_label_issue", "scores", fix).to_numpy(zero_copy_only=False).astype(bool)
    k = len(label_names)
    for what, arr in (("label", labels), ("pred", preds)):
        bad = np.flatnonzero((arr < 0) | (arr >= k))
        if bad.size:
            raise ValueError(
                f"scores column {what!r} has ids outside 0..{k - 1} (label_names has {k} names) in rows "
                f"{bad[:5].tolist()}; pass the full label vocabulary"
            )
    text = text_for_ids(ids, texts)

    if hard_mask is None:
        hard = top_quantile_mask(hardness, hardness_quantile, ids.astype(str), seed)
        rule = f"hardness_quantile={hardness_quantile:g}"
    else:
        hard = np.asarray(hard_mask)
        if hard.shape != (n,) or hard.dtype != bool:
            raise ValueError(
                f"hard_mask must be a bool array of shape ({n},) aligned with scores, got {hard.dtype} {hard.shape}"
            )
        rule = "hard_mask"
    n_hard = int(hard.sum())

    # per class
    n_c = np.bincount(labels, minlength=k)
    h_c = np.bincount(labels[hard], minlength=k)
    i_c = np.bincount(labels[is_issue], minlength=k)
    per_class = pa.table(
        {
            "class": pa.array(np.arange(k), pa.int32()),
            "name": label_names,
            "n": pa.array(n_c, pa.int64()),
            "n_hard": pa.array(h_c, pa.int64()),
            "share_hard": [_share(a, b) for a, b in zip(h_c, n_c)],
            "n_issue": pa.array(i_c, pa.int64()),
            "share_issue": [_share(a, b) for a, b in zip(i_c, n_c)],
        },
        schema=PER_CLASS,
    )

    # confusion pairs among hard samples (given -> predicted, off-diagonal)
    off = hard & (labels != preds)
    pair_counts = np.bincount(labels[off] * k + preds[off], minlength=k * k)
    nz = np.flatnonzero(pair_counts)
    nz = nz[np.lexsort((nz, -pair_counts[nz]))][:top_pairs]
    confusion = pa.table(
        {
            "label": pa.array(nz // k, pa.int32()),
            "label_name": [label_names[i] for i in nz // k],
            "pred": pa.array(nz % k, pa.int32()),
            "pred_name": [label_names[i] for i in nz % k],
            "count": pa.array(pair_counts[nz], pa.int64()),
            "share_of_hard": [_share(c, n_hard) for c in pair_counts[nz]],
        },
        schema=CONFUSION_PAIRS,
    )

    lengths = np.fromiter((len(t or "") for t in text), dtype=np.int64, count=n)
    length = {
        "all": length_stats(lengths),
        "hard": length_stats(lengths[hard]),
        "not_hard": length_stats(lengths[~hard]),
    }
    rows = token_sample(labels, hard, max_token_texts, seed)
    unit = phrase_unit(text[rows]) if unit == "auto" else unit
    tokens = distinctive_tokens(
        text[rows], labels[rows], hard[rows], label_names, top_tokens=top_tokens, unit=unit,
        ngram_range=ngram_range, contrast=contrast, score=token_score, dedupe=dedupe, min_hard_df=min_hard_df,
    )
    return {
        "n": int(n),
        "n_hard": n_hard,
        "n_issue": int(is_issue.sum()),
        "hard_rule": rule,
        "hardness_threshold": float(hardness[hard].min()) if n_hard else None,
        "label_names": label_names,
        "per_class": per_class,
        "confusion_pairs": confusion,
        "length": length,
        "distinctive_tokens": tokens,
        "phrase_unit": unit,
        "token_rows": int(rows.size),
    }


# --------------------------------------------------------------------------- console


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if math.isfinite(v) else str(v)
    return str(v)


def render_table(table: pa.Table, *, max_rows: int | None = 30) -> str:
    """A pyarrow table as an aligned plain-text table (wide CJK characters counted as 2 columns)."""
    header = table.column_names
    rows = table.to_pylist()
    more = 0
    if max_rows is not None and len(rows) > max_rows:
        more, rows = len(rows) - max_rows, rows[:max_rows]
    cells = [header] + [[_cell(r[h]) for h in header] for r in rows]
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) for t in table.schema.types]
    widths = [max(_width(row[j]) for row in cells) for j in range(len(header))]

    def line(row):
        out = []
        for j, c in enumerate(row):
            pad = " " * (widths[j] - _width(c))
            out.append(pad + c if numeric[j] else c + pad)
        return "  ".join(out).rstrip()

    lines = [line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]]
    if not rows:
        lines.append("(none)")
    if more:
        lines.append(f"... {more} more rows")
    return "\n".join(lines)


def _of(k, n) -> str | None:
    return None if k is None else (f"{k} of {n}" if n is not None else str(k))


def phrases_view(tok: pa.Table) -> pa.Table:
    """The distinctive phrases for people: class, name, phrase, ``hard rows`` ("12 of 85": hard rows of
    the class containing the phrase), ``other rows`` (the same in the contrast group), score, versus."""
    cols = set(tok.column_names)
    rows = tok.to_pylist()
    get = lambda r, k: r.get(k) if k in cols else None  # noqa: E731  (tables written before n_hard existed)
    return pa.table(
        {
            "class": pa.array([r["class"] for r in rows], pa.int32()),
            "name": pa.array([r["name"] for r in rows], pa.string()),
            "phrase": pa.array([(get(r, "phrase") or r["token"]).strip() for r in rows], pa.string()),
            "hard rows": pa.array([_of(get(r, "hard_df"), get(r, "n_hard")) for r in rows], pa.string()),
            "other rows": pa.array([_of(get(r, "other_df"), get(r, "n_other")) for r in rows], pa.string()),
            "score": pa.array([r["score"] for r in rows], pa.float64()),
            "versus": pa.array([r["versus"] for r in rows], pa.string()),
        }
    )


def phrases_title(result: dict) -> str:
    unit = result.get("phrase_unit", "char")
    what = "words and word n-grams" if unit == "word" else "character n-grams within words: text without spaces"
    return (f"distinctive phrases of hard samples ({what}; {result.get('token_rows', result['n'])} texts analysed; "
            "hard rows / other rows: rows containing the phrase)")


def format_tables(result: dict, *, max_rows: int = 30) -> str:
    """Render an :func:`analyze` result as plain-text tables for the console."""
    parts = [
        f"hard samples: {result['n_hard']} of {result['n']} ({result['hard_rule']}); "
        f"label issues: {result.get('n_issue', 0)}"
    ]
    per_class = result["per_class"]
    if per_class.num_rows:
        order = np.lexsort((per_class.column("class").to_numpy(), -per_class.column("n_hard").to_numpy()))
        per_class = per_class.take(order)
    parts += ["", "hard samples per class (most first)", render_table(per_class, max_rows=max_rows)]
    parts += ["", "confusion pairs among hard samples (given -> predicted)",
              render_table(result["confusion_pairs"], max_rows=max_rows)]
    length = result["length"]
    stats = ["n", "mean", "min", "p10", "p25", "p50", "p75", "p90", "max"]
    lt = pa.table(
        {
            "group": list(length),
            "n": pa.array([length[g]["n"] for g in length], pa.int64()),
            **{s: pa.array([length[g][s] for g in length], pa.float64()) for s in stats[1:]},
        }
    )
    parts += ["", "text length in characters", render_table(lt, max_rows=None)]
    parts += ["", phrases_title(result), render_table(phrases_view(result["distinctive_tokens"]), max_rows=max_rows * 3)]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- files


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_jsonable(result: dict) -> dict:
    """The result with every table turned into a list of row dicts."""
    return {k: (v.to_pylist() if isinstance(v, pa.Table) else v) for k, v in result.items()}


def write_analysis(result: dict, out_dir) -> dict[str, str]:
    """Write each table as ``<name>.parquet`` and everything as ``analysis.json`` (atomic); returns paths."""
    out = Path(out_dir)
    paths: dict[str, str] = {}
    for name, value in result.items():
        if isinstance(value, pa.Table):  # the TABLES (and any table a caller added)
            p = out / f"{name}.parquet"
            _atomic(p, lambda tmp, v=value: pq.write_table(v, tmp))
            paths[name] = str(p)
    text = json.dumps(to_jsonable(result), ensure_ascii=False, indent=2, allow_nan=False)
    p = out / "analysis.json"

    def _write_json(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    _atomic(p, _write_json)
    paths["analysis"] = str(p)
    return paths
