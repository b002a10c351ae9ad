"""Hard-case analysis: where the hard samples are, what they are confused with, what they look like.

Pure functions over the scores and dataset tables; results are pyarrow tables plus
JSON-able dicts (``analyze``), rendered for the console (``format_tables``) or written
to disk (``write_analysis``).
"""
from __future__ import annotations

import json
import math
import os
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
DISTINCTIVE_TOKENS = pa.schema(
    [
        pa.field("class", pa.int32()),
        pa.field("name", pa.string()),
        pa.field("token", pa.string()),
        pa.field("phrase", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("hard_df", pa.int64()),
        pa.field("versus", pa.string()),
    ]
)
#: the tables in an :func:`analyze` result (each written as ``<name>.parquet``)
TABLES = ("per_class", "confusion_pairs", "distinctive_tokens")
CONTRASTS = ("class", "all")
TOKEN_SCORES = ("lift", "tfidf")


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


def _top_tokens(
    score: np.ndarray, vocab: np.ndarray, k: int, dedupe: bool, docs: list[str] | None = None
) -> list[tuple[int, str]]:
    """(index, phrase) of the k best positive scores (ties: longer n-gram, then token).

    With ``dedupe`` an n-gram is grown (:func:`_grow`) into the longest string that still occurs
    in >= 80% of the hard ``docs`` containing it (``docs``: padded, lowercased hard texts of the
    class), and n-grams overlapping an already chosen phrase are skipped.
    """
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
        if dedupe and any(_same_phrase(tok.strip(), ph.strip()) for _, ph in chosen):
            continue
        phrase = _grow(tok, docs) if dedupe and docs is not None else tok
        if dedupe and any(_same_phrase(phrase.strip(), ph.strip()) for _, ph in chosen):
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
    ngram_range=(2, 4),
    contrast: str = "class",
    score: str = "lift",
    dedupe: bool = True,
    min_hard_df: int = 3,
) -> pa.Table:
    """Char n-grams (``TfidfVectorizer(analyzer="char_wb")``) over-represented in each class's hard samples.

    ``contrast="class"``: hard samples of a class vs its other samples (falls back to all other
    texts when every sample of the class is hard); ``"all"``: vs every text outside that hard set.
    ``score="lift"``: log ratio of the share of documents containing the n-gram (add-one
    smoothed), hard vs contrast; ``"tfidf"``: mean TF-IDF in the hard group minus in the contrast
    group (favours frequent short n-grams). Only scores > 0 are kept; an n-gram must occur in at
    least ``min(min_hard_df, n_hard_of_class)`` hard samples. ``dedupe`` skips an n-gram
    contained in, containing or overlapping a higher-ranked one's ``phrase`` (the n-gram grown
    char by char while it keeps 80% of its hard occurrences: ``"liv"`` -> ``" deliver"``), so
    each row is a different phrase. Cost is linear in the
    characters of ``texts``: pass a sample (:func:`token_sample`) for big sets.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    if score not in TOKEN_SCORES:
        raise ValueError(f"score must be one of {TOKEN_SCORES}, got {score!r}")
    texts = ["" if t is None else str(t) for t in texts]
    labels = np.asarray(labels)
    hard = np.asarray(hard, dtype=bool)
    empty = pa.Table.from_pylist([], schema=DISTINCTIVE_TOKENS)
    classes = [int(c) for c in np.unique(labels[hard])]
    if not classes or top_tokens == 0:
        return empty
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(ngram_range), sublinear_tf=True, dtype=np.float64)
    try:
        X = vec.fit_transform(texts).tocsr()
    except ValueError:  # empty vocabulary: every text is empty
        return empty
    vocab = vec.get_feature_names_out().astype(str)
    keep_tok = np.array([bool(t.strip()) for t in vocab])
    n = len(texts)
    B = (X > 0).astype(np.float64)
    M = X if score == "tfidf" else B  # summed per group: TF-IDF mass or document frequency
    hard_g = [hard & (labels == c) for c in classes]
    class_g = [labels == c for c in classes]
    g_hard, g_class = _indicator(hard_g, n), _indicator(class_g, n)
    s_hard = (g_hard @ M).tocsr()  # sparse: groups x V can be large (densified per class below)
    s_class = (g_class @ M).tocsr()
    df_hard = s_hard if M is B else (g_hard @ B).tocsr()
    s_all = np.asarray(M.sum(axis=0)).ravel()
    rows = []
    for g, c in enumerate(classes):
        sh = s_hard[g].toarray().ravel()
        n_h = int(hard_g[g].sum())
        n_rest = int(class_g[g].sum()) - n_h
        if contrast == "class" and n_rest > 0:
            ref, n_ref, versus = s_class[g].toarray().ravel() - sh, n_rest, "rest_of_class"
        else:
            ref, n_ref, versus = s_all - sh, n - n_h, "other_texts"
        if score == "tfidf":
            sc = sh / n_h - (ref / n_ref if n_ref else 0.0)
        else:
            sc = np.log((sh + 1.0) / (n_h + 2.0)) - np.log((ref + 1.0) / (n_ref + 2.0))
        df_g = sh if M is B else df_hard[g].toarray().ravel()
        sc = np.where(keep_tok & (df_g >= min(min_hard_df, n_h)), sc, -np.inf)
        docs = [f" {' '.join(texts[i].lower().split())} " for i in np.flatnonzero(hard_g[g])] if dedupe else None
        for j, phrase in _top_tokens(sc, vocab, top_tokens, dedupe, docs):
            rows.append(
                {
                    "class": c,
                    "name": label_names[c],
                    "token": str(vocab[j]),
                    "phrase": phrase.strip(),
                    "score": float(sc[j]),
                    "hard_df": int(round(df_g[j])),
                    "versus": versus,
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
    ngram_range=(2, 4),
    contrast: str = "class",
    token_score: str = "lift",
    dedupe: bool = True,
    min_hard_df: int = 3,
    max_token_texts: int | None = 20_000,
    seed: int = 0,
) -> dict:
    """Per-class hard/issue shares, top confusion pairs, lengths and distinctive n-grams of the hard set.

    Hard = ``hard_mask`` (aligned with ``scores``) or, when None, the top ``hardness_quantile``
    fraction by hardness (same rule as :func:`hardmine.select.select`). The n-gram analysis
    uses at most ``max_token_texts`` texts (stratified sample, see :func:`token_sample`).
    """
    if max_token_texts is not None and (
        isinstance(max_token_texts, bool) or not isinstance(max_token_texts, (int, np.integer)) or max_token_texts < 1
    ):
        raise ValueError(f"max_token_texts must be a positive integer or None, got {max_token_texts!r}")
    for name, v in (("top_pairs", top_pairs), ("top_tokens", top_tokens), ("min_hard_df", min_hard_df)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    if (
        not isinstance(ngram_range, (tuple, list))
        or len(ngram_range) != 2
        or not all(isinstance(x, (int, np.integer)) for x in ngram_range)
        or not 1 <= ngram_range[0] <= ngram_range[1]
    ):
        raise ValueError(f"ngram_range must be (min_n, max_n) with 1 <= min_n <= max_n, got {ngram_range!r}")
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
    tokens = distinctive_tokens(
        text[rows], labels[rows], hard[rows], label_names, top_tokens=top_tokens, ngram_range=ngram_range,
        contrast=contrast, score=token_score, dedupe=dedupe, min_hard_df=min_hard_df,
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
    tok = result["distinctive_tokens"]
    shown = tok.set_column(
        tok.schema.get_field_index("token"), "token", pa.array([repr(t) for t in tok.column("token").to_pylist()])
    ).select(["class", "name", "phrase", "token", "score", "hard_df", "versus"])
    title = f"distinctive character n-grams of hard samples ({result.get('token_rows', result['n'])} texts analysed)"
    parts += ["", title, render_table(shown, max_rows=max_rows * 3)]
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
