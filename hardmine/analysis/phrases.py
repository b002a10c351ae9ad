"""Readable phrases from n-grams: words (a word regex that keeps combining marks and inner apostrophes),
the phrase unit of a dataset (words, or characters for text written without spaces), and growing a
distinctive n-gram into the longest phrase its hard rows share (:func:`top_phrases`)."""
from __future__ import annotations

import functools
import re
import unicodedata

import numpy as np

# scripts written without spaces between words: CJK ideographs, kana, Thai, Lao, Tibetan, Myanmar, Khmer
_NO_SPACE_SCRIPT = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002ffff]"
)
_WORD_CHAR = re.compile(r"\w")
# English clitics: "it's", "i'm", "we're" count as stop words when the base word is one
_CLITIC = re.compile(r"^(\w+)['\u2019](?:s|m|re|ve|ll|d)$")


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


def word_tokens(text: str) -> list[str]:
    """The words of ``text``, case kept (the word vectorizer's tokenizer)."""
    return _word_re().findall(text)


_SENTENCE_END = re.compile("[.!?;\u3002\uff01\uff1f\uff1b\u2026]")
_BREAK = "\n"  # never a word: growing phrases stops at sentence ends


def word_doc(text: str) -> list[str]:
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


def is_stop_unigram(tok: str) -> bool:
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


def same_words(a: str, b: str) -> bool:
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


def find_words(seq: tuple, doc: list[str]) -> int:
    """Index of the first occurrence of the word sequence ``seq`` in ``doc`` (a word list), or -1."""
    m = len(seq)
    for i in range(len(doc) - m + 1):
        if doc[i] == seq[0] and tuple(doc[i : i + m]) == seq:
            return i
    return -1


def grow_words(tok: str, docs: list[list[str]], keep: float = 0.8, max_words: int = 8) -> str:
    """:func:`_grow` for word n-grams: extend ``tok`` one word at a time, left or right, while the
    longer phrase still occurs in at least ``keep`` of the ``docs`` (word lists) that contain ``tok``
    (``"cancel my order"`` -> ``"i want to cancel my order"``)."""
    phrase = tuple(tok.split())
    docs = [d for d in docs if find_words(phrase, d) >= 0]
    need = keep * len(docs)
    while docs and len(phrase) < max_words:
        best, best_df = None, 0
        for side in (0, 1):
            counts: dict[tuple, int] = {}
            for d in docs:
                i = find_words(phrase, d)
                j = i - 1 if side == 0 else i + len(phrase)
                if 0 <= j < len(d) and d[j] != _BREAK:
                    ext = (d[j], *phrase) if side == 0 else (*phrase, d[j])
                    counts[ext] = counts.get(ext, 0) + 1
            for ext in sorted(counts, key=counts.get, reverse=True)[:2]:
                df = sum(1 for d in docs if find_words(ext, d) >= 0)
                if df >= need and df > best_df:
                    best, best_df = ext, df
        if best is None:
            break
        phrase = best
    return " ".join(phrase)


def top_phrases(
    score: np.ndarray, vocab: np.ndarray, k: int, dedupe: bool, docs: list | None = None, unit: str = "char"
) -> list[tuple[int, str]]:
    """(index, phrase) of the k best positive scores (ties: longer n-gram, then token).

    With ``dedupe`` an n-gram is grown (:func:`_grow` for chars, :func:`grow_words` for words)
    into the longest phrase that still occurs in >= 80% of the hard ``docs`` containing it
    (``docs``: the class's hard texts, lowercased: padded strings for chars, word lists for words),
    and n-grams overlapping an already chosen phrase are skipped (:func:`_same_phrase`,
    :func:`same_words`).
    """
    same = same_words if unit == "word" else (lambda a, b: _same_phrase(a.strip(), b.strip()))
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
            phrase = grow_words(tok, docs) if unit == "word" else _grow(tok, docs)
        else:
            phrase = tok
        if dedupe and phrase != tok and any(same(phrase, ph) for _, ph in chosen):
            continue
        chosen.append((int(j), phrase))
    return chosen

