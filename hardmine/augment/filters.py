"""Filters for augmented variants: pure, vectorised functions over arrays of texts.

Each filter returns a boolean ``reject`` mask (or scores plus a mask); the pipeline
records the first failing filter as ``reject_reason`` and skips later, costlier
filters for rows already rejected (cheap filters run first).

Reasons (``REASONS``): ``error``, ``too_short``, ``too_long``, ``identical``,
``script_mismatch``, ``low_similarity``, ``label_inconsistent``,
``near_duplicate_train``, ``near_duplicate_variant``.

Here: the ``filters`` config (:func:`normalize_filter_config`), the cheap checks (length,
identical, script) and :func:`apply_filters`, which runs a batch through them all. The other
kinds live beside it and are re-exported here: Unicode scripts in :mod:`.scripts`, semantic
similarity and label consistency in :mod:`.semantic`, near-duplicates (MinHash over character
n-grams with LSH banding, vectorised in numpy, no all-pairs comparison) in :mod:`.neardup`.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable, Sequence

import numpy as np

from hardmine.augment.neardup import (  # noqa: F401 - re-exported
    NearDupIndex,
    band_keys,
    estimate_jaccard,
    lsh_params,
    minhash_signatures,
    near_duplicate_reasons,
    shingle_text,
)
from hardmine.augment.scripts import SCRIPTS, dominant_script, script_counts  # noqa: F401 - re-exported
from hardmine.augment.semantic import (  # noqa: F401 - re-exported
    label_consistency,
    predict_in_batches,
    resolve_similarity_model,
    similarity_reject,
    similarity_scores,
)

#: the old private name of :func:`hardmine.augment.neardup.shingle_text` (tests use it)
_shingle_text = shingle_text

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

def script_reject(sources: Sequence[str], variants: Sequence[str | None]) -> np.ndarray:
    """True where the source has a letter script and the variant's dominant script differs
    (a Hangul source must yield a Hangul variant)."""
    src = dominant_script(sources)
    var = dominant_script(variants)
    return (src != "none") & (src != var)


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
