"""Embedding-neighbourhood and duplicate scores: kNN outliers, kNN label agreement, duplicate groups.

A functional core like :mod:`hardmine.scoring`: numpy arrays in, numpy arrays out, no Ray,
no torch. Public functions validate their inputs and raise ``ValueError`` naming what is
wrong and how to fix it; the ``_``-prefixed versions assume valid inputs.

Scores (one value per row ``i``; "neighbours" are the ``k`` nearest OTHER rows, all classes):

``outlier_score``
    Mean distance from row ``i`` to its ``k`` nearest neighbours (cosine distance
    ``1 - cos`` by default, so in ``[0, 2]``). High = far from every other example: an
    outlier / out-of-distribution row. This is the kNN "weight" outlier score of Angiulli &
    Pizzuti (2002, "Fast outlier detection in high dimensional spaces"), a smoother variant
    of the k-th-neighbour distance of Ramaswamy, Rastogi & Shim (2000, "Efficient algorithms
    for mining outliers from large data sets"); the average kNN distance in a pretrained
    embedding space is the out-of-distribution baseline of Kuan & Mueller (2022, "Back to the
    Basics: Revisiting Out-of-Distribution Detection Baselines"), used by cleanlab's Datalab.
    :func:`outlier_flags` turns it into a fixed-size flag.
``knn_label_agreement``
    Share of the ``k`` neighbours whose given label equals row ``i``'s label, in ``[0, 1]``.
    Low = the row's label disagrees with its neighbourhood: a possible label error, or a
    hard / boundary example (Bahri, Jiang & Gupta, 2020, "Deep k-NN for Noisy Labels").
``knn_majority_label``
    The most common label among the ``k`` neighbours (ties: the smallest label index); a
    candidate correction to show a reviewer next to the model's ``suggested_label``.
``dup_group`` / ``dup_group_size`` / ``is_conflicting_duplicate``
    Groups of exact duplicates (equal after :func:`hardmine.augment.filters.normalize_text`)
    and near duplicates (MinHash estimate of the character-4-gram Jaccard similarity
    >= ``near_threshold``; Broder, 1997, "On the resemblance and containment of documents"),
    found with LSH banding (no all-pairs comparison) and joined transitively (connected
    components). A group whose rows carry different labels is a conflicting duplicate: at
    least one label is wrong, or the text alone cannot decide the class. Duplicates also
    leak between CV folds and inflate out-of-fold accuracy (Lee et al., 2022,
    "Deduplicating Training Data Makes Language Models Better").

Training-dynamics scores (Dataset Cartography, Swayamdipta et al., 2020) live in
:func:`hardmine.scoring.training_dynamics` and :mod:`hardmine.select`; label-quality scores
from out-of-fold probabilities in :mod:`hardmine.scoring`.

Cost: :func:`knn_scores` with ``index="exact"`` is brute force, ``O(n^2 d)`` time (one GEMM per
query batch, through scikit-learn's chunked ``NearestNeighbors``), ``O(n d + batch_size * k)``
memory: the ``n x n`` distance matrix is never built. ``index="hnsw"`` (cosine only) uses FAISS's
HNSW graph (Malkov & Yashunin, 2018), about ``O(n log n)``: approximate neighbours (recall
measured in README, "Other signals") for hundreds of thousands of rows.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from hardmine.augment.filters import normalize_text
from hardmine.augment.neardup import band_keys, estimate_jaccard, lsh_params, minhash_signatures
from hardmine.checks import check_int
from hardmine.probs import MAX_ROWS_NAMED, check_label_array

#: distance metrics accepted by :func:`knn_scores`
METRICS = ("cosine", "euclidean")
#: neighbour indexes accepted by :func:`knn_scores`
INDEXES = ("exact", "hnsw")
#: HNSW graph degree, construction and search beam widths (FAISS IndexHNSWFlat)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 96
#: ``score.knn_index: auto`` uses HNSW above this many rows: exact search grows as n^2 (19.1 s at 40,000 real
#: NSMC rows here, about 30 s at 50,000 and 270 s at 150,000); HNSW took 55 s at 150,000 with recall@10 0.90
#: (README, Other signals: jobs/bench_outliers.py)
HNSW_AUTO_ROWS = 50_000
#: query rows per ``kneighbors`` call (bounds the per-call result and work buffers)
DEFAULT_BATCH_SIZE = 4096
#: per LSH bucket, each member is compared with at most this many earlier members (as
#: ``NearDupIndex(max_candidates=16)``): a huge bucket costs ``O(size)``, not ``O(size^2)``
MAX_BUCKET_CANDIDATES = 16
#: candidate pairs verified per ``estimate_jaccard`` call (bounds the (pairs, num_perm) temporaries)
_VERIFY_CHUNK = 65_536


# --------------------------------------------------------------------------- validation
def _rows(mask_or_idx: np.ndarray) -> str:
    idx = np.flatnonzero(mask_or_idx) if mask_or_idx.dtype == bool else np.asarray(mask_or_idx)
    more = f", first {MAX_ROWS_NAMED} shown" if len(idx) > MAX_ROWS_NAMED else ""
    return f"rows {idx[:MAX_ROWS_NAMED].tolist()} ({len(idx)} in total{more})"


def _check_embeddings(embeddings: Any) -> np.ndarray:
    """-> C-contiguous float32 ``(n, d)``; no copy for a C-contiguous float32 array."""
    try:
        arr = np.asarray(embeddings)
    except (ValueError, TypeError) as err:
        raise ValueError(f"embeddings: could not read as a numeric array ({err}); pass an (n, d) float array") from err
    if arr.ndim != 2:
        raise ValueError(
            f"embeddings must be 2-D (one row of d floats per example), got shape {arr.shape}"
            + ("; reshape a single vector with x[None, :]" if arr.ndim == 1 else "")
        )
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"embeddings must hold real numbers (float32 preferred), got dtype {arr.dtype}")
    if arr.shape[1] == 0:
        raise ValueError(f"embeddings have no columns (shape {arr.shape}); pass at least one feature per row")
    x = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise ValueError(
            f"embeddings: {_rows(~finite)} contain NaN or inf (after conversion to float32); "
            "re-embed these texts or drop the rows"
        )
    return x


def _check_labels(labels: Any, n: int) -> np.ndarray:
    """-> int64 labels, one per row, >= 0."""
    lab = check_label_array(np.asarray(labels), n, rows="there are {n} rows", indices=">= 0")
    neg = lab < 0
    if neg.any():
        raise ValueError(f"labels must be >= 0: {_rows(neg)} have values {lab[neg][:MAX_ROWS_NAMED].tolist()}")
    return lab.astype(np.int64, copy=False)


def _check_k(k: Any, n: int) -> int:
    if n < 2:
        raise ValueError(f"kNN scores need at least 2 rows (each row's neighbours are the other rows); got {n}")
    k = check_int("k", k, 1)
    if k > n - 1:
        raise ValueError(
            f"k={k} is larger than the dataset allows: it has {n} rows, so a row has at most {n - 1} "
            f"other rows as neighbours; pass k <= {n - 1} (e.g. k={min(10, n - 1)})"
        )
    return k


# --------------------------------------------------------------------------- kNN scores
def knn_scores(
    embeddings: Any,
    labels: Any,
    *,
    k: int = 10,
    metric: str = "cosine",
    batch_size: int = DEFAULT_BATCH_SIZE,
    index: str = "exact",
) -> dict[str, np.ndarray]:
    """Per-row ``outlier_score`` (float32), ``knn_label_agreement`` (float32), ``knn_majority_label`` (int32).

    Neighbours are the ``k`` nearest other rows (the row itself is excluded by index, so
    an exact duplicate vector still counts as a neighbour at distance 0). ``metric``:
    ``"cosine"`` (distance ``1 - cos``; a zero vector is at distance 1.0 from every other
    row, itself included among zero vectors, and its neighbours are the ``k`` lowest-index
    other rows, all tied) or ``"euclidean"``. ``index="exact"``: brute force, queried
    ``batch_size`` rows at a time; the ``n x n`` distance matrix is never built.
    ``index="hnsw"``: approximate neighbours from a FAISS HNSW graph (cosine only; needs
    ``faiss-cpu``). See the module docstring.
    """
    x = _check_embeddings(embeddings)
    lab = _check_labels(labels, x.shape[0])
    k = _check_k(k, x.shape[0])
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}; got {metric!r}")
    if index not in INDEXES:
        raise ValueError(f"index must be one of {list(INDEXES)}; got {index!r}")
    if index == "hnsw" and metric != "cosine":
        raise ValueError("index='hnsw' supports metric='cosine' only: use index='exact' for euclidean")
    batch_size = check_int("batch_size", batch_size, 1)
    return _knn_scores(x, lab, k, metric, batch_size, index)


def _knn_scores(x: np.ndarray, lab: np.ndarray, k: int, metric: str, batch_size: int, index: str = "exact") -> dict[str, np.ndarray]:
    dist, idx = knn_hnsw(x, k) if index == "hnsw" else _knn(x, k, metric, batch_size)
    nl = lab[idx]
    return {
        "outlier_score": dist.mean(axis=1, dtype=np.float64).astype(np.float32),
        "knn_label_agreement": (nl == lab[:, None]).mean(axis=1, dtype=np.float64).astype(np.float32),
        "knn_majority_label": _row_mode(nl).astype(np.int32),
    }


def _knn(x: np.ndarray, k: int, metric: str, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, k)`` distances (float64, ascending) and indices (int64) of each row's k nearest other rows.

    Cosine runs as euclidean on unit-normalised rows (``1 - cos = |u - v|^2 / 2``, the
    same ranking), which takes scikit-learn's GEMM-based ``ArgKmin`` path; zero rows are
    kept out of the index and joined as candidates at distance exactly 1.0.
    """
    from sklearn.neighbors import NearestNeighbors

    n = x.shape[0]
    dist = np.empty((n, k), dtype=np.float64)
    idx = np.empty((n, k), dtype=np.int64)
    if metric == "euclidean":
        nn = NearestNeighbors(algorithm="brute", metric="euclidean").fit(x)
        for s in range(0, n, batch_size):
            e = min(s + batch_size, n)
            d, i = _kneighbors_excluding_self(nn, x[s:e], np.arange(s, e), k + 1)
            dist[s:e], idx[s:e] = d, i
        return dist, idx

    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))  # float64: no overflow for huge rows
    nz = np.flatnonzero(norms > 0)
    zero = np.flatnonzero(norms == 0)
    n_zero_cand = min(k, len(zero))
    zero_cand = zero[:n_zero_cand]  # the lowest-index zero rows: every one is at distance 1.0
    if len(nz):
        xn = x[nz] if len(zero) else x.copy()  # one float32 copy, normalised in place
        xn /= norms[nz, None].astype(np.float32)
        nn = NearestNeighbors(algorithm="brute", metric="euclidean").fit(xn)
        m = min(k + 1, len(nz))
        for s in range(0, len(nz), batch_size):
            e = min(s + batch_size, len(nz))
            rows = nz[s:e]
            d, i = _kneighbors_excluding_self(nn, xn[s:e], np.arange(s, e), m)
            d = np.clip(d * d / 2.0, 0.0, 2.0)  # unit vectors: 1 - cos = |u - v|^2 / 2
            i = nz[i]
            if n_zero_cand:
                d = np.concatenate([d, np.ones((len(rows), n_zero_cand))], axis=1)
                i = np.concatenate([i, np.broadcast_to(zero_cand, (len(rows), n_zero_cand))], axis=1)
                o = np.argsort(d, axis=1, kind="stable")[:, :k]
                d, i = np.take_along_axis(d, o, axis=1), np.take_along_axis(i, o, axis=1)
            dist[rows], idx[rows] = d, i
    if len(zero):
        # all other rows tie at distance 1.0: take the k lowest-index ones
        base = np.arange(k + 1)
        cand = np.broadcast_to(base, (len(zero), k + 1))
        keep = cand != zero[:, None]
        keep[keep.all(axis=1), k] = False
        idx[zero] = cand[keep].reshape(len(zero), k)
        dist[zero] = 1.0
    return dist, idx


def knn_hnsw(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Approximate cosine ``_knn``: FAISS ``IndexHNSWFlat`` over unit-normalised rows (inner product).

    A zero row stays a zero vector: its inner product with every row is 0, distance 1.0, as in
    the exact path (which of the tied rows it gets as neighbours may differ).
    """
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - faiss-cpu is a dependency
        raise ValueError("index='hnsw' needs faiss-cpu (pip install faiss-cpu): or use index='exact'") from e
    n, d = x.shape
    xn = np.array(x, dtype=np.float32, copy=True)
    norms = np.sqrt(np.einsum("ij,ij->i", xn, xn, dtype=np.float64))
    xn[norms > 0] /= norms[norms > 0, None].astype(np.float32)
    index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = max(HNSW_EF_SEARCH, k + 1)
    index.add(xn)
    sim, i = index.search(xn, k + 1)
    i = i.astype(np.int64)
    keep = i != np.arange(n)[:, None]
    keep[keep.all(axis=1), k] = False  # the row itself was not returned: drop the farthest
    i = i[keep].reshape(n, k)
    dist = np.clip(1.0 - sim[keep].reshape(n, k).astype(np.float64), 0.0, 2.0)
    missing = i < 0  # fewer than k found (tiny graphs): pad with distance 1.0 to row 0
    if missing.any():
        i[missing], dist[missing] = 0, 1.0
    o = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, o, axis=1), np.take_along_axis(i, o, axis=1)


def _kneighbors_excluding_self(nn, q: np.ndarray, self_pos: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Query ``m`` neighbours and drop the query row itself by index (or, when exact
    duplicates pushed it out of the m, the farthest one): ``m - 1`` columns."""
    d, i = nn.kneighbors(q, n_neighbors=m, return_distance=True)
    keep = i != self_pos[:, None]
    keep[keep.all(axis=1), m - 1] = False
    return d[keep].reshape(len(q), m - 1), i[keep].reshape(len(q), m - 1)


def _row_mode(a: np.ndarray) -> np.ndarray:
    """Most common value per row of a 2-D int array (ties: the smallest value), vectorised."""
    n, k = a.shape
    s = np.sort(a, axis=1)
    start = np.ones((n, k), dtype=bool)
    start[:, 1:] = s[:, 1:] != s[:, :-1]
    starts = np.flatnonzero(start)  # runs never cross rows: column 0 always starts one
    length = np.diff(np.append(starts, n * k))
    row = starts // k
    value = s.reshape(-1)[starts]
    first_run = np.searchsorted(row, np.arange(n))  # every row has at least one run
    best_len = np.maximum.reduceat(length, first_run)
    is_best = np.flatnonzero(length == best_len[row])
    _, first = np.unique(row[is_best], return_index=True)  # runs are in ascending value order per row
    return value[is_best[first]]


def outlier_flags(outlier_score: Any, *, quantile: float = 0.01) -> np.ndarray:
    """Boolean mask of the top ``quantile`` share of rows by ``outlier_score``.

    Exactly ``round(quantile * n)`` rows (Python ``round``: halves to even) are flagged;
    ties are broken by position (the earlier row first), so the result is deterministic.
    """
    s = np.asarray(outlier_score)
    if s.ndim != 1:
        raise ValueError(f"outlier_score must be 1-D (one score per row), got shape {s.shape}")
    if s.dtype.kind not in "fiu":
        raise ValueError(f"outlier_score must hold real numbers, got dtype {s.dtype}")
    bad = ~np.isfinite(s)
    if bad.any():
        raise ValueError(f"outlier_score: {_rows(bad)} are NaN or inf; recompute them with knn_scores")
    if isinstance(quantile, bool) or not isinstance(quantile, numbers.Real) or not 0.0 <= float(quantile) < 0.5:
        raise ValueError(
            f"quantile must be a share of rows in [0, 0.5) (e.g. 0.01 flags the top 1%); got {quantile!r}"
        )
    return _outlier_flags(s, float(quantile))


def _outlier_flags(s: np.ndarray, quantile: float) -> np.ndarray:
    n = len(s)
    m = max(0, round(quantile * n))
    flags = np.zeros(n, dtype=bool)
    order = np.lexsort((np.arange(n), -s.astype(np.float64)))  # highest score first, then position
    flags[order[:m]] = True
    return flags


# --------------------------------------------------------------------------- duplicates
def duplicate_groups(
    texts: Sequence[str | None],
    labels: Any,
    *,
    near_threshold: float | None = 0.9,
    num_perm: int = 64,
    seed: int = 1,
) -> dict[str, np.ndarray]:
    """Exact- and near-duplicate groups: ``dup_group`` (int64), ``dup_group_size`` (int32),
    ``is_conflicting_duplicate`` (bool).

    Exact duplicates are equal after :func:`~hardmine.augment.filters.normalize_text`
    (case, punctuation and whitespace ignored). Near duplicates have a MinHash Jaccard
    estimate (character 4-grams, ``num_perm`` permutations, ``seed``) >= ``near_threshold``,
    found among LSH-bucket candidates (no all-pairs comparison; each member of a bucket is
    checked against at most :data:`MAX_BUCKET_CANDIDATES` earlier members, so a near pair
    hiding in a huge bucket can be missed). ``near_threshold=None``: exact duplicates only.

    Groups are connected components of the duplicate pairs (transitive), numbered
    ``0..G-1`` in order of their first row; a row with no duplicate has ``dup_group == -1``
    and ``dup_group_size == 1``. ``is_conflicting_duplicate`` is True for every row of a
    group whose labels are not all equal. A text that is empty after ``normalize_text``
    (``""``, ``None``, only punctuation or spaces) is never grouped: it carries no content,
    so two empty texts are not duplicates of each other.
    """
    if isinstance(texts, (str, bytes)):
        raise ValueError("texts must be a sequence of strings (one per row), not a single string")
    texts = texts.to_pylist() if hasattr(texts, "to_pylist") else list(texts)  # Arrow arrays too
    bad = np.array([t is not None and not isinstance(t, str) for t in texts], dtype=bool)
    if bad.any():
        first = texts[int(np.flatnonzero(bad)[0])]
        raise ValueError(f"texts must be strings (or None): {_rows(bad)} are not, e.g. {type(first).__name__}")
    lab = _check_labels(labels, len(texts))
    if near_threshold is not None:
        if isinstance(near_threshold, bool) or not isinstance(near_threshold, numbers.Real) or not 0.0 < near_threshold <= 1.0:
            raise ValueError(
                f"near_threshold must be a Jaccard similarity in (0, 1] (e.g. 0.9), or None for exact "
                f"duplicates only; got {near_threshold!r}"
            )
        near_threshold = float(near_threshold)
    num_perm = check_int("num_perm", num_perm, 8)
    seed = check_int("seed", seed, 0)
    return _duplicate_groups(texts, lab, near_threshold, num_perm, seed)


def _duplicate_groups(
    texts: list[str | None], lab: np.ndarray, near_threshold: float | None, num_perm: int, seed: int
) -> dict[str, np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(texts)
    if n == 0:
        return {
            "dup_group": np.zeros(0, dtype=np.int64),
            "dup_group_size": np.zeros(0, dtype=np.int32),
            "is_conflicting_duplicate": np.zeros(0, dtype=bool),
        }
    # exact duplicates: join every row to the first row with the same normalised text
    first_of: dict[str, int] = {}
    head = np.full(n, -1, dtype=np.int64)
    for i, t in enumerate(texts):
        key = normalize_text(t) if t else ""
        if key:
            head[i] = first_of.setdefault(key, i)
    joined = np.flatnonzero((head >= 0) & (head != np.arange(n)))
    pairs = [np.stack([head[joined], joined], axis=1)]
    rep = np.flatnonzero(head == np.arange(n))  # one row per distinct normalised text, in row order
    if near_threshold is not None and len(rep) > 1:
        sig = minhash_signatures([texts[i] for i in rep], num_perm=num_perm, seed=seed)
        cand = _lsh_candidate_pairs(sig, *lsh_params(near_threshold, num_perm), MAX_BUCKET_CANDIDATES)
        ok = np.zeros(len(cand), dtype=bool)
        for s in range(0, len(cand), _VERIFY_CHUNK):
            c = cand[s : s + _VERIFY_CHUNK]
            ok[s : s + _VERIFY_CHUNK] = estimate_jaccard(sig[c[:, 0]], sig[c[:, 1]]) >= near_threshold
        pairs.append(rep[cand[ok]])
    p = np.concatenate(pairs)
    graph = coo_matrix((np.ones(len(p), dtype=np.int32), (p[:, 0], p[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    size = np.bincount(comp, minlength=n)[comp]
    grouped = size > 1
    # number groups 0..G-1 in order of their first row
    comp_ids, first_row = np.unique(comp[grouped], return_index=True)
    gid = np.full(int(comp.max()) + 1, -1, dtype=np.int64)
    gid[comp_ids[np.argsort(first_row, kind="stable")]] = np.arange(len(comp_ids))
    dup_group = np.where(grouped, gid[comp], -1).astype(np.int64)
    g = dup_group[grouped]
    lo = np.full(len(comp_ids), np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(len(comp_ids), -1, dtype=np.int64)
    np.minimum.at(lo, g, lab[grouped])
    np.maximum.at(hi, g, lab[grouped])
    conflicting = np.zeros(n, dtype=bool)
    conflicting[grouped] = lo[g] != hi[g]
    return {
        "dup_group": dup_group,
        "dup_group_size": size.astype(np.int32),
        "is_conflicting_duplicate": conflicting,
    }


def _lsh_candidate_pairs(sig: np.ndarray, bands: int, rows: int, max_candidates: int) -> np.ndarray:
    """Unique ``(i, j)`` pairs, ``i < j``, of rows sharing an LSH bucket in some band
    (:func:`~hardmine.augment.filters.band_keys`). Per bucket, each member is paired with
    the (at most) ``max_candidates`` members before it in the bucket's order, as
    ``NearDupIndex`` does, so the count stays ``O(n * bands * max_candidates)``."""
    n = len(sig)
    keys = band_keys(sig, bands, rows)
    found = []
    for band in range(bands):
        order = np.argsort(keys[:, band], kind="stable")
        kb = keys[order, band]
        new = np.ones(n, dtype=bool)
        new[1:] = kb[1:] != kb[:-1]
        bucket_start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
        offset = np.arange(n) - bucket_start  # position inside the bucket
        for t in range(max_candidates):
            later = np.flatnonzero(offset > t)
            if later.size == 0:
                break
            a, b = order[bucket_start[later] + t], order[later]
            found.append(np.minimum(a, b) * n + np.maximum(a, b))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    code = np.unique(np.concatenate(found))
    return np.stack([code // n, code % n], axis=1)
