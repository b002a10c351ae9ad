"""Near-duplicates: MinHash over character n-grams with LSH banding.

Computed vectorised in numpy (no all-pairs comparison): :func:`minhash_signatures`,
:class:`NearDupIndex`. :func:`near_duplicate_reasons` gives the ``near_duplicate`` filter's
reasons (``near_duplicate_train``, ``near_duplicate_variant``) for a batch of variants.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Sequence

import numpy as np

# --------------------------------------------------------------------------- MinHash / LSH

_MASK32 = np.uint64(0xFFFFFFFF)
_EMPTY = np.uint32(0xFFFFFFFF)


def _perm_params(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True) | np.uint64(1)
    b = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
    return a, b


_WS_RE = re.compile(r"\s+")


def shingle_text(text: str | None) -> str:
    """The form of a text that is shingled: NFKC-normalised, casefolded, whitespace-collapsed."""
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
    norm = [shingle_text(t) for t in texts]
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
