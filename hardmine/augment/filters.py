"""Filters for augmented variants: pure, vectorised functions over arrays of texts.

Each filter returns a boolean ``reject`` mask (or scores plus a mask); the pipeline
records the first failing filter as ``reject_reason`` and skips later, costlier
filters for rows already rejected (cheap filters run first).

Reasons (``REASONS``): ``error``, ``too_short``, ``too_long``, ``identical``,
``script_mismatch``, ``low_similarity``, ``label_inconsistent``,
``near_duplicate_train``, ``near_duplicate_variant``.

Near-duplicates use MinHash over character n-grams with LSH banding, computed
vectorised in numpy (no all-pairs comparison): :func:`minhash_signatures`,
:class:`NearDupIndex`.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable, Sequence

import numpy as np

REASONS = (
    "error",
    "too_short",
    "too_long",
    "identical",
    "script_mismatch",
    "low_similarity",
    "label_inconsistent",
    "near_duplicate_train",
    "near_duplicate_variant",
)

#: filter names accepted in the ``filters`` config, in the order they run.
FILTER_ORDER = ("length", "identical", "script", "similarity", "consistency", "near_duplicate")

FILTER_DEFAULTS: dict[str, dict] = {
    "length": {"min_chars": 1, "max_chars": 1000},
    "identical": {},
    "script": {},
    "similarity": {"model": "auto", "threshold": 0.75, "batch_size": 32, "max_length": 128},
    "consistency": {"tau": 0.5, "batch_size": 256},
    "near_duplicate": {"threshold": 0.9, "num_perm": 64, "ngram": 4, "against_train": True, "seed": 1},
}


# --------------------------------------------------------------------------- config


def normalize_filter_config(filters: dict | None) -> dict[str, dict]:
    """Validate a ``filters`` dict and fill defaults; a filter set to False/None is off.

    ``{"length": {"min_chars": 3}, "similarity": True}`` -> only those two, with defaults.
    """
    filters = dict(filters or {})
    unknown = sorted(set(filters) - set(FILTER_ORDER))
    if unknown:
        raise ValueError(f"unknown filter(s) {unknown}: choose from {list(FILTER_ORDER)}")
    out: dict[str, dict] = {}
    for name in FILTER_ORDER:
        spec = filters.get(name)
        if spec is None or spec is False:
            continue
        if spec is True:
            spec = {}
        if not isinstance(spec, dict):
            raise ValueError(f"filters.{name} must be a dict of options, true or false; got {spec!r}")
        bad = sorted(set(spec) - set(FILTER_DEFAULTS[name]))
        if bad:
            raise ValueError(
                f"filters.{name} has unknown option(s) {bad}: allowed {sorted(FILTER_DEFAULTS[name])}"
            )
        merged = {**FILTER_DEFAULTS[name], **spec}
        out[name] = merged
    if "length" in out:
        lo, hi = out["length"]["min_chars"], out["length"]["max_chars"]
        if lo < 0 or hi < lo:
            raise ValueError(f"filters.length needs 0 <= min_chars <= max_chars; got min_chars={lo}, max_chars={hi}")
    if "similarity" in out and not -1.0 <= float(out["similarity"]["threshold"]) <= 1.0:
        raise ValueError(f"filters.similarity.threshold must be a cosine in [-1, 1]; got {out['similarity']['threshold']}")
    if "consistency" in out and not 0.0 <= float(out["consistency"]["tau"]) <= 1.0:
        raise ValueError(f"filters.consistency.tau must be a probability in [0, 1]; got {out['consistency']['tau']}")
    if "near_duplicate" in out:
        nd = out["near_duplicate"]
        if not 0.0 < float(nd["threshold"]) <= 1.0:
            raise ValueError(f"filters.near_duplicate.threshold must be a Jaccard in (0, 1]; got {nd['threshold']}")
        if int(nd["num_perm"]) < 8 or int(nd["ngram"]) < 1:
            raise ValueError("filters.near_duplicate needs num_perm >= 8 and ngram >= 1")
    return out


# --------------------------------------------------------------------------- cheap filters



def length_reject(texts: Sequence[str | None], min_chars: int = 1, max_chars: int = 1000) -> np.ndarray:
    """Reason per text: ``too_short`` / ``too_long`` / ``None`` (lengths in characters, stripped)."""
    n = np.array([len(t.strip()) if t is not None else 0 for t in texts], dtype=np.int64)
    out = np.full(len(texts), None, dtype=object)
    out[n < min_chars] = "too_short"
    out[n > max_chars] = "too_long"
    return out


_PUNCT_RE = re.compile(r"[\W_]+", re.UNICODE)


def normalize_text(text: str) -> str:
    """NFKC, casefold, punctuation and whitespace removed: ``"Hi, there!" -> "hithere"``."""
    return _PUNCT_RE.sub("", unicodedata.normalize("NFKC", text).casefold())


def identical_reject(sources: Sequence[str], variants: Sequence[str | None]) -> np.ndarray:
    """True where the variant equals its source, or equals it after :func:`normalize_text`."""
    return np.fromiter(
        (v is not None and (v == s or normalize_text(v) == normalize_text(s)) for s, v in zip(sources, variants)),
        dtype=bool,
        count=len(sources),
    )


# --------------------------------------------------------------------------- scripts

#: (first code point, last code point, script) — sorted, non-overlapping.
_SCRIPT_RANGES = [
    (0x0041, 0x005A, "Latin"),
    (0x0061, 0x007A, "Latin"),
    (0x00C0, 0x00D6, "Latin"),
    (0x00D8, 0x00F6, "Latin"),
    (0x00F8, 0x024F, "Latin"),
    (0x0370, 0x03FF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"),
    (0x0590, 0x05FF, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"),
    (0x0750, 0x077F, "Arabic"),
    (0x0900, 0x097F, "Devanagari"),
    (0x0E00, 0x0E7F, "Thai"),
    (0x1100, 0x11FF, "Hangul"),
    (0x1E00, 0x1EFF, "Latin"),
    (0x3040, 0x30FF, "Kana"),
    (0x3130, 0x318F, "Hangul"),
    (0x3400, 0x4DBF, "Han"),
    (0x4E00, 0x9FFF, "Han"),
    (0xAC00, 0xD7AF, "Hangul"),
    (0xF900, 0xFAFF, "Han"),
]
SCRIPTS = ("none",) + tuple(dict.fromkeys(s for _, _, s in _SCRIPT_RANGES))
_STARTS = np.array([a for a, _, _ in _SCRIPT_RANGES], dtype=np.int64)
_ENDS = np.array([b for _, b, _ in _SCRIPT_RANGES], dtype=np.int64)
_IDS = np.array([SCRIPTS.index(s) for _, _, s in _SCRIPT_RANGES], dtype=np.int64)


def _codepoints(texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """All code points of a batch, concatenated, and the owning text index of each."""
    texts = [t or "" for t in texts]
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    owner = np.repeat(np.arange(len(texts)), lens)
    return cps, owner


def script_counts(texts: Sequence[str | None]) -> np.ndarray:
    """(n, len(SCRIPTS)) letter counts per script (column 0 counts other characters)."""
    cps, owner = _codepoints(texts)
    pos = np.searchsorted(_STARTS, cps, side="right") - 1
    inside = (pos >= 0) & (cps <= _ENDS[np.clip(pos, 0, None)])
    script = np.where(inside, _IDS[np.clip(pos, 0, None)], 0)
    s = len(SCRIPTS)
    return np.bincount(owner * s + script, minlength=len(texts) * s).reshape(len(texts), s)


def dominant_script(texts: Sequence[str | None]) -> np.ndarray:
    """Name of the most frequent letter script per text (``"none"`` when it has no letters)."""
    counts = script_counts(texts)[:, 1:]
    best = counts.argmax(axis=1) + 1
    best[counts.sum(axis=1) == 0] = 0
    return np.asarray(SCRIPTS, dtype=object)[best]


def script_reject(sources: Sequence[str], variants: Sequence[str | None]) -> np.ndarray:
    """True where the source has a letter script and the variant's dominant script differs
    (a Hangul source must yield a Hangul variant)."""
    src = dominant_script(sources)
    var = dominant_script(variants)
    return (src != "none") & (src != var)


# --------------------------------------------------------------------------- semantic similarity


def resolve_similarity_model(model: str, language: str | None) -> str:
    """``auto`` -> packaged MiniLM for English, packaged multilingual USE otherwise."""
    if model != "auto":
        return model
    if language is None or str(language).lower() in ("en", "eng", "english"):
        return "packaged:minilm"
    return "packaged:use-multilingual"


def _encode_sorted(encoder, texts: list[str], batch_size: int) -> np.ndarray:
    """Encode with texts sorted by length (little padding), returned in input order."""
    if not texts:
        return np.zeros((0, int(encoder.dim)), dtype=np.float32)
    order = np.argsort(np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)), kind="stable")
    emb = np.asarray(encoder.encode([texts[i] for i in order], batch_size=batch_size), dtype=np.float32)
    out = np.empty_like(emb)
    out[order] = emb
    return out


def similarity_scores(encoder, sources: Sequence[str], variants: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Cosine similarity of each variant to its source (float32, n).

    Each distinct text is embedded once (sources with several variants are not
    re-embedded) and batches are length-sorted; ``encoder.encode`` returns L2-normalised rows.
    """
    if len(sources) != len(variants):
        raise ValueError(f"sources and variants differ in length: {len(sources)} vs {len(variants)}")
    if len(sources) == 0:
        return np.zeros(0, dtype=np.float32)
    uniq, inv = np.unique(np.asarray(list(sources) + list(variants), dtype=object), return_inverse=True)
    emb = _encode_sorted(encoder, [str(u) for u in uniq], batch_size)
    n = len(sources)
    a, b = emb[inv[:n]], emb[inv[n:]]
    return np.einsum("ij,ij->i", a, b).astype(np.float32)


def similarity_reject(sim: np.ndarray, threshold: float) -> np.ndarray:
    """True where the similarity is below ``threshold`` (NaN counts as below)."""
    sim = np.asarray(sim, dtype=np.float64)
    return ~(sim >= threshold)


# --------------------------------------------------------------------------- label consistency


def label_consistency(probs: np.ndarray, labels: np.ndarray, tau: float) -> np.ndarray:
    """True where the predicted probability of the source label is >= ``tau``."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or probs.shape[0] != len(labels):
        raise ValueError(
            f"the predictor must return an (n, K) probability array for n={len(labels)} texts; got shape {probs.shape}"
        )
    bad = np.flatnonzero((labels < 0) | (labels >= probs.shape[1]))
    if bad.size:
        raise ValueError(
            f"labels {labels[bad[:5]].tolist()} (rows {bad[:5].tolist()}) are outside the predictor's "
            f"{probs.shape[1]} classes: the predictor must be trained on the same label vocabulary"
        )
    return probs[np.arange(len(labels)), labels] >= tau


def predict_in_batches(predict: Callable[[list[str]], np.ndarray], texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Call ``predict`` on slices of ``texts`` and stack the (n, K) results."""
    parts = [np.asarray(predict(list(texts[i : i + batch_size]))) for i in range(0, len(texts), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 0))


# --------------------------------------------------------------------------- MinHash / LSH

_MASK32 = np.uint64(0xFFFFFFFF)
_EMPTY = np.uint32(0xFFFFFFFF)


def _perm_params(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True) | np.uint64(1)
    b = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
    return a, b


_WS_RE = re.compile(r"\s+")


def _shingle_text(text: str | None) -> str:
    return _WS_RE.sub(" ", unicodedata.normalize("NFKC", text or "").casefold()).strip()


def minhash_signatures(
    texts: Sequence[str | None], num_perm: int = 64, ngram: int = 4, seed: int = 1, chunk: int = 16_384
) -> np.ndarray:
    """(n, num_perm) uint32 MinHash signatures of character ``ngram`` shingles.

    Texts are NFKC-normalised, casefolded and whitespace-collapsed; a text shorter
    than ``ngram`` is one shingle; an empty text gets an all-0xFFFFFFFF signature.
    Shingle hashes are rolling polynomial hashes over code points, so the whole
    batch is hashed and min-reduced in numpy.
    """
    norm = [_shingle_text(t) for t in texts]
    n = len(norm)
    sig = np.full((n, num_perm), _EMPTY, dtype=np.uint32)
    if n == 0:
        return sig
    lens = np.fromiter((len(t) for t in norm), dtype=np.int64, count=n)
    cps = np.frombuffer("".join(norm).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    k = np.minimum(lens, ngram)  # shingle width per text
    n_sh = np.where(lens > 0, lens - k + 1, 0)
    pos = np.arange(int(n_sh.sum())) - np.repeat(np.cumsum(n_sh) - n_sh, n_sh) + np.repeat(starts, n_sh)
    width = np.repeat(k, n_sh)
    h = np.zeros(len(pos), dtype=np.uint64)
    base = np.uint64(0x100000001B3)
    for j in range(ngram):
        use = j < width
        cp = np.zeros(len(pos), dtype=np.uint64)
        cp[use] = cps[pos[use] + j]
        h = np.where(use, (h ^ (cp + np.uint64(j + 1))) * base, h)
    h = (h ^ (h >> np.uint64(29))) & _MASK32  # fold to 32 bits
    a, b = _perm_params(num_perm, seed)
    have = np.flatnonzero(n_sh > 0)
    bounds = np.concatenate([[0], np.cumsum(n_sh[have])])
    # process whole texts in chunks of about `chunk` shingles to bound memory
    i = 0
    while i < len(have):
        j = int(np.searchsorted(bounds, bounds[i] + chunk, side="right")) - 1
        j = max(j, i + 1)
        lo, hi = bounds[i], bounds[j]
        hv = h[lo:hi, None]
        perm = (hv * a[None, :] + b[None, :]) >> np.uint64(32)  # multiply-shift universal hashing
        red = np.minimum.reduceat(perm, (bounds[i:j] - lo).astype(np.int64), axis=0)
        sig[have[i:j]] = red.astype(np.uint32)
        i = j
    return sig


def estimate_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise MinHash Jaccard estimate of two (n, num_perm) signature arrays."""
    return (np.asarray(a) == np.asarray(b)).mean(axis=-1)


def lsh_params(threshold: float, num_perm: int, fn_weight: float = 0.9) -> tuple[int, int]:
    """Bands ``b`` and rows ``r`` (b*r <= num_perm) minimising the weighted false-positive
    and false-negative areas of the S-curve ``1 - (1 - s^r)^b`` around ``threshold``.

    False negatives weigh more (``fn_weight``): candidates are verified afterwards, so a
    false positive only costs a comparison while a false negative is a missed duplicate."""
    s = np.linspace(0.0, 1.0, 1001)
    best, best_err = (1, num_perm), np.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1.0 - (1.0 - s**r) ** b
            fp = np.trapezoid(np.where(s < threshold, p, 0.0), s)
            fn = np.trapezoid(np.where(s >= threshold, 1.0 - p, 0.0), s)
            err = (1.0 - fn_weight) * fp + fn_weight * fn
            if err < best_err:
                best, best_err = (b, r), err
    return best


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64 keys, one hash per band of ``rows`` signature values."""
    sig = np.asarray(sig, dtype=np.uint64)[:, : bands * rows].reshape(len(sig), bands, rows)
    h = np.full(sig.shape[:2], np.uint64(0xCBF29CE484222325), dtype=np.uint64)
    for j in range(rows):
        h = (h ^ sig[:, :, j]) * np.uint64(0x100000001B3)
    return h ^ np.arange(bands, dtype=np.uint64)[None, :] * np.uint64(0x9E3779B97F4A7C15)


class NearDupIndex:
    """MinHash LSH index over signatures: vectorised insert and query, no all-pairs.

    Stored as a few sorted segments of band keys (merged when there are many), so
    a query is a ``searchsorted`` per band and segment. A candidate counts as a
    near-duplicate when its estimated Jaccard is >= ``threshold``; at most
    ``max_candidates`` entries are checked per band bucket.
    """

    def __init__(self, threshold: float = 0.9, num_perm: int = 64, max_candidates: int = 16, max_segments: int = 8):
        self.threshold = float(threshold)
        self.num_perm = int(num_perm)
        self.bands, self.rows = lsh_params(self.threshold, self.num_perm)
        self.max_candidates = int(max_candidates)
        self.max_segments = int(max_segments)
        self._segments: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (sig, sorted keys per band, order)
        self.size = 0

    def add(self, sig: np.ndarray) -> None:
        sig = np.asarray(sig, dtype=np.uint32)
        if len(sig) == 0:
            return
        self._check(sig)
        self._segments.append(self._segment(sig))
        self.size += len(sig)
        if len(self._segments) > self.max_segments:
            self._segments = [self._segment(np.concatenate([s for s, _, _ in self._segments]))]

    def _check(self, sig: np.ndarray) -> None:
        if sig.ndim != 2 or sig.shape[1] != self.num_perm:
            raise ValueError(f"signatures must have shape (n, {self.num_perm}); got {sig.shape}")

    def _segment(self, sig):
        keys = band_keys(sig, self.bands, self.rows)  # (n, bands)
        order = np.argsort(keys, axis=0, kind="stable")
        return sig, np.take_along_axis(keys, order, axis=0), order

    def query(self, sig: np.ndarray) -> np.ndarray:
        """Highest verified Jaccard estimate against the index per row (0 when none >= threshold)."""
        sig = np.asarray(sig, dtype=np.uint32)
        best = np.zeros(len(sig), dtype=np.float64)
        if len(sig) == 0 or not self._segments:
            return best
        self._check(sig)
        keys = band_keys(sig, self.bands, self.rows)
        for seg_sig, seg_keys, seg_order in self._segments:
            for band in range(self.bands):
                col = seg_keys[:, band]
                lo = np.searchsorted(col, keys[:, band], side="left")
                hi = np.minimum(np.searchsorted(col, keys[:, band], side="right"), lo + self.max_candidates)
                cnt = hi - lo
                hit = np.flatnonzero(cnt > 0)
                if hit.size == 0:
                    continue
                q = np.repeat(hit, cnt[hit])
                slot = np.arange(int(cnt[hit].sum())) - np.repeat(np.cumsum(cnt[hit]) - cnt[hit], cnt[hit]) + np.repeat(lo[hit], cnt[hit])
                cand = seg_order[slot, band]
                j = estimate_jaccard(sig[q], seg_sig[cand])
                np.maximum.at(best, q, j)
        best[best < self.threshold] = 0.0
        return best

    def dedupe_batch(self, sig: np.ndarray) -> np.ndarray:
        """True for rows that near-duplicate an earlier, kept row of the same batch (greedy, in order)."""
        sig = np.asarray(sig, dtype=np.uint32)
        n = len(sig)
        dup = np.zeros(n, dtype=bool)
        if n < 2:
            return dup
        self._check(sig)
        keys = band_keys(sig, self.bands, self.rows)
        pairs = set()
        for band in range(self.bands):
            order = np.argsort(keys[:, band], kind="stable")
            k = keys[order, band]
            starts = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
            sizes = np.diff(np.concatenate([starts, [n]]))
            for s0, size in zip(starts[sizes > 1], sizes[sizes > 1]):
                members = order[s0 : s0 + size]
                heads = members[: self.max_candidates]
                for m in members[1:]:
                    for h in heads:
                        if h < m:
                            pairs.add((int(h), int(m)))
        if not pairs:
            return dup
        arr = np.array(sorted(pairs, key=lambda p: (p[1], p[0])), dtype=np.int64)
        ok = estimate_jaccard(sig[arr[:, 0]], sig[arr[:, 1]]) >= self.threshold
        for (i, j), good in zip(arr.tolist(), ok.tolist()):
            if good and not dup[i]:
                dup[j] = True
        return dup


# --------------------------------------------------------------------------- batch application


def _guarded(fn: Callable[[np.ndarray], np.ndarray], idx: np.ndarray, errors: dict[int, str], what: str):
    """Run ``fn(idx)``; if it raises, run row by row and record failing rows in ``errors``."""
    try:
        return fn(idx), idx
    except Exception:
        ok_idx, parts = [], []
        for i in idx:
            try:
                parts.append(fn(np.array([i])))
                ok_idx.append(i)
            except Exception as e:  # noqa: BLE001 - recorded per row
                errors[int(i)] = f"{what} filter: {type(e).__name__}: {str(e)[:300]}"
        if not parts:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        return np.concatenate(parts), np.asarray(ok_idx, dtype=np.int64)


def apply_filters(table, filters: dict[str, dict], *, encoder=None, predict=None):
    """Filter a variant table (``source_text``, ``text``, ``label``, ``error``, ...).

    Adds ``similarity`` (float32, null where not computed), ``consistent`` (bool,
    null where not computed), ``kept``, ``reject_reason`` and, when near-duplicate
    filtering is on, ``_minhash`` (signatures of kept rows, for the global
    near-duplicate pass). Filters run in :data:`FILTER_ORDER`; a row rejected by one
    is not checked by the later ones. ``filters`` comes from :func:`normalize_filter_config`.
    """
    import pyarrow as pa

    n = table.num_rows
    src = np.asarray(table["source_text"].to_pylist(), dtype=object)
    txt = np.asarray(table["text"].to_pylist(), dtype=object)
    err = table["error"].to_pylist()
    labels = table["label"].to_numpy(zero_copy_only=False).astype(np.int64)
    reason = np.full(n, None, dtype=object)
    reason[np.array([e is not None for e in err], dtype=bool)] = "error"
    new_errors: dict[int, str] = {}

    def alive() -> np.ndarray:
        return np.flatnonzero(reason == None)  # noqa: E711

    if "length" in filters:
        idx = alive()
        r = length_reject(txt[idx], filters["length"]["min_chars"], filters["length"]["max_chars"])
        reason[idx] = r
    if "identical" in filters:
        idx = alive()
        reason[idx[identical_reject(src[idx], txt[idx])]] = "identical"
    if "script" in filters:
        idx = alive()
        reason[idx[script_reject(src[idx], txt[idx])]] = "script_mismatch"
    sim = np.full(n, np.nan, dtype=np.float32)
    if "similarity" in filters:
        if encoder is None:
            raise ValueError("the similarity filter needs an encoder (hardmine.embed.load_encoder)")
        cfg = filters["similarity"]
        s, idx = _guarded(
            lambda ix: similarity_scores(encoder, list(src[ix]), list(txt[ix]), cfg["batch_size"]), alive(), new_errors, "similarity"
        )
        sim[idx] = s
        reason[idx[similarity_reject(s, float(cfg["threshold"]))]] = "low_similarity"
    consistent = np.full(n, None, dtype=object)
    if "consistency" in filters:
        if predict is None:
            raise ValueError("the consistency filter needs a predictor (predictor_factory)")
        cfg = filters["consistency"]
        c, idx = _guarded(
            lambda ix: label_consistency(predict_in_batches(predict, list(txt[ix]), cfg["batch_size"]), labels[ix], float(cfg["tau"])),
            alive(), new_errors, "consistency",
        )
        consistent[idx] = c.astype(bool)
        reason[idx[~c.astype(bool)]] = "label_inconsistent"
    for i, e in new_errors.items():
        reason[i] = "error"
        err[i] = e
    kept = reason == None  # noqa: E711
    out = table
    for name, arr in (
        ("similarity", pa.array(sim, type=pa.float32(), mask=np.isnan(sim))),
        ("consistent", pa.array(consistent.tolist(), type=pa.bool_())),
        ("kept", pa.array(kept, type=pa.bool_())),
        ("reject_reason", pa.array(reason.tolist(), type=pa.string())),
        ("error", pa.array(err, type=pa.string())),
    ):
        if name in out.column_names:
            out = out.set_column(out.column_names.index(name), name, arr)
        else:
            out = out.append_column(name, arr)
    if "near_duplicate" in filters:
        cfg = filters["near_duplicate"]
        k = int(cfg["num_perm"])
        sig = np.zeros((n, k), dtype=np.uint32)
        keep_idx = np.flatnonzero(kept)
        sig[keep_idx] = minhash_signatures(list(txt[keep_idx]), num_perm=k, ngram=int(cfg["ngram"]), seed=int(cfg["seed"]))
        col = pa.FixedSizeListArray.from_arrays(pa.array(sig.reshape(-1), type=pa.uint32()), k, mask=pa.array(~kept))
        out = out.append_column("_minhash", col)
    return out


def near_duplicate_reasons(
    sig: np.ndarray, candidates: np.ndarray, train_index: NearDupIndex | None, variant_index: NearDupIndex
) -> np.ndarray:
    """Reasons (``near_duplicate_train`` / ``near_duplicate_variant`` / None) for the rows
    in ``candidates`` (a bool mask); kept rows are added to ``variant_index``."""
    n = len(sig)
    out = np.full(n, None, dtype=object)
    idx = np.flatnonzero(candidates)
    if idx.size == 0:
        return out
    if train_index is not None:
        hit = train_index.query(sig[idx]) > 0
        out[idx[hit]] = "near_duplicate_train"
        idx = idx[~hit]
    if idx.size:
        hit = variant_index.query(sig[idx]) > 0
        out[idx[hit]] = "near_duplicate_variant"
        idx = idx[~hit]
        dup = variant_index.dedupe_batch(sig[idx])
        out[idx[dup]] = "near_duplicate_variant"
        variant_index.add(sig[idx[~dup]])
    return out
