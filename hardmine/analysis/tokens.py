"""Distinctive phrases of the hard set: n-grams over-represented in each class's hard rows
(:func:`distinctive_tokens`), on a bounded, stratified sample of rows (:func:`token_sample`)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from hardmine.analysis.phrases import find_words, is_stop_unigram, phrase_unit, top_phrases, word_doc, word_tokens
from hardmine.checks import check_choice

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
#: what the hard rows of a class are compared with: the rest of the class, or every text outside the hard set
CONTRASTS = ("class", "all")
#: how an n-gram is scored: log ratio of document shares (lift) or mean TF-IDF difference
TOKEN_SCORES = ("lift", "tfidf")
#: phrase units: ``word`` (words and word n-grams), ``char`` (character n-grams inside words, for
#: scripts written without spaces), ``auto`` (:func:`phrase_unit` decides per dataset)
UNITS = ("auto", "word", "char")
DEFAULT_NGRAMS = {"word": (1, 3), "char": (2, 4)}


def check_token_options(unit: str, ngram_range, contrast: str, score: str, score_name: str = "score") -> None:
    """Refuse an unknown ``unit`` / ``contrast`` / ``score`` or an ``ngram_range`` other than None or
    ``(min_n, max_n)`` with ``1 <= min_n <= max_n``."""
    check_choice("unit", unit, UNITS)
    if ngram_range is not None and (
        not isinstance(ngram_range, (tuple, list))
        or len(ngram_range) != 2
        or not all(isinstance(x, (int, np.integer)) for x in ngram_range)
        or not 1 <= ngram_range[0] <= ngram_range[1]
    ):
        raise ValueError(f"ngram_range must be None or (min_n, max_n) with 1 <= min_n <= max_n, got {ngram_range!r}")
    check_choice("contrast", contrast, CONTRASTS)
    check_choice(score_name, score, TOKEN_SCORES)


def _indicator(mask_by_group: list[np.ndarray], n: int) -> sp.csr_matrix:
    rows, cols = [], []
    for g, m in enumerate(mask_by_group):
        idx = np.flatnonzero(m)
        rows.append(np.full(idx.size, g))
        cols.append(idx)
    rows = np.concatenate(rows) if rows else np.zeros(0, int)
    cols = np.concatenate(cols) if cols else np.zeros(0, int)
    return sp.csr_matrix((np.ones(rows.size, np.float64), (rows, cols)), shape=(len(mask_by_group), n))


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

    check_token_options(unit, ngram_range, contrast, score)
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
            tokenizer=word_tokens, token_pattern=None, lowercase=True, ngram_range=ngram_range,
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
        keep_tok = np.array([" " in t or not is_stop_unigram(t) for t in vocab], dtype=bool)
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
        docs_all = [word_doc(t) for t in texts]
        holds = lambda ph, d: find_words(ph, d) >= 0  # noqa: E731
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
        for j, phrase in top_phrases(sc, vocab, top_tokens, dedupe, docs, unit):
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
