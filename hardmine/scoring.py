"""Per-sample hardness and label-quality scores from out-of-fold probabilities.

A functional core in the style of cleanlab: numpy arrays in, numpy arrays (or one Arrow
table) out, no Ray. Public functions validate their inputs with :mod:`hardmine.probs`;
the ``_``-prefixed versions assume valid inputs (float32 ``(n, K)`` probs, int labels).

Conventions: ``probs[i, k]`` is the out-of-fold probability that row ``i`` is class
``k``; ``labels[i]`` is the given (possibly wrong) class index.
"""
from __future__ import annotations

import warnings as _warnings
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import entr

from hardmine.probs import (
    MAX_ROWS_NAMED,
    validate_epoch_probs,
    validate_labels,
    validate_probs,
)
from hardmine.schema import SCORES_CORE
from hardmine.vocab import FILTERS, RANK_BY

# FILTERS: cleanlab's in-memory filters; RANK_BY: label-quality methods, the chosen one fills
# ``label_quality`` and orders ``issue_rank`` and the review budget (vocabularies: hardmine.vocab)
#: THE default label-quality method (library calls and ``score.rank_by`` in the config, whose
#: default a test keeps equal to this). To be set from the detection benchmark; change it here.
DEFAULT_RANK_BY = "self_confidence"

DYNAMICS_COLUMNS = ["dyn_confidence", "dyn_variability", "dyn_correctness", "dyn_forgetting", "dyn_aum"]
#: signals beyond the probabilities (issue 16), filled by the score stage and null when not computed:
#: kNN over the frozen embeddings (:mod:`hardmine.neighbors`), duplicate groups whose labels disagree,
#: and the dual model's cross-fitted risk that the OOF prediction is wrong (:mod:`hardmine.dual`)
SIGNAL_COLUMNS = ["outlier_score", "knn_label_agreement", "is_outlier", "dup_group", "is_conflicting_duplicate", "error_risk"]
#: column order of the scores table written by :func:`score_table`
SCORE_COLUMNS = list(SCORES_CORE) + DYNAMICS_COLUMNS + SIGNAL_COLUMNS

#: Arrow schema of the scores table (dyn_* columns are null when no epoch_probs were given)
SCORES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("pred", pa.int32(), nullable=False),
        pa.field("p_true", pa.float32(), nullable=False),
        pa.field("hardness", pa.float32(), nullable=False),
        pa.field("margin", pa.float32(), nullable=False),
        pa.field("entropy", pa.float32(), nullable=False),
        pa.field("self_confidence", pa.float32(), nullable=False),
        pa.field("is_label_issue", pa.bool_(), nullable=False),
        pa.field("issue_rank", pa.int32(), nullable=False),
        pa.field("suggested_label", pa.int32(), nullable=False),
        pa.field("suggested_confidence", pa.float32(), nullable=False),
        # cleanlab label-quality score of the given label (method: rank_by): in [0, 1], low = suspicious
        pa.field("label_quality", pa.float32(), nullable=False),
        pa.field("dyn_confidence", pa.float32()),
        pa.field("dyn_variability", pa.float32()),
        pa.field("dyn_correctness", pa.float32()),
        pa.field("dyn_forgetting", pa.int32()),
        pa.field("dyn_aum", pa.float32()),
        # mean cosine distance to the k nearest training rows (all classes): high = far from all data
        pa.field("outlier_score", pa.float32()),
        # share of those k rows that carry the row's label
        pa.field("knn_label_agreement", pa.float32()),
        # top score.outlier_quantile by outlier_score: sent to review (reason outlier), never augmented
        pa.field("is_outlier", pa.bool_()),
        # exact / near-duplicate group id (-1: no duplicate)
        pa.field("dup_group", pa.int64()),
        # a duplicate group whose labels disagree: sent to review (reason conflicting_duplicate)
        pa.field("is_conflicting_duplicate", pa.bool_()),
        # the dual model's cross-fitted probability that the OOF prediction is wrong
        pa.field("error_risk", pa.float32()),
    ]
)
assert SCORES_SCHEMA.names == SCORE_COLUMNS

#: rows per chunk in the vectorised helpers (bounds temporaries to chunk x K)
_CHUNK = 65_536


def _checked(probs: Any, labels: Any, ids: Any = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    p, warns = validate_probs(probs, labels, ids=ids)
    lab = validate_labels(labels, p.shape[0], p.shape[1], ids=ids)
    return p, lab, warns


def _max_other(p: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (index, value) of the largest probability among classes other than the label."""
    n = len(lab)
    idx = np.empty(n, dtype=np.int64)
    val = np.empty(n, dtype=np.float32)
    for s in range(0, n, _CHUNK):
        blk = np.array(p[s : s + _CHUNK], dtype=np.float32, copy=True)
        rows = np.arange(len(blk))
        blk[rows, lab[s : s + _CHUNK]] = -np.inf
        j = blk.argmax(axis=1)
        idx[s : s + _CHUNK] = j
        val[s : s + _CHUNK] = blk[rows, j]
    return idx, val


# --------------------------------------------------------------------------- sample scores
def sample_scores(probs: Any, labels: Any) -> dict[str, np.ndarray]:
    """Per-row ``pred``, ``p_true``, ``hardness`` (1 - p_true), ``margin``, ``entropy``, ``self_confidence``.

    ``margin`` is p_true minus the largest other-class probability (> 0 iff the label is
    the strict argmax); ``entropy`` uses the natural log.
    """
    p, lab, _ = _checked(probs, labels)
    return _sample_scores(p, lab)


def _sample_scores(p: np.ndarray, lab: np.ndarray) -> dict[str, np.ndarray]:
    n = len(lab)
    p_true = p[np.arange(n), lab].astype(np.float32)
    _, max_other = _max_other(p, lab)
    entropy = np.empty(n, dtype=np.float32)
    for s in range(0, n, _CHUNK):
        entropy[s : s + _CHUNK] = entr(p[s : s + _CHUNK]).sum(axis=1, dtype=np.float64)
    return {
        "pred": p.argmax(axis=1).astype(np.int32),
        "p_true": p_true,
        "hardness": (np.float32(1.0) - p_true).astype(np.float32),
        "margin": (p_true - max_other).astype(np.float32),
        "entropy": entropy,
        "self_confidence": p_true.copy(),
    }


# --------------------------------------------------------------------------- label quality
def _check_rank_by(rank_by: Any, name: str = "rank_by") -> None:
    if rank_by not in RANK_BY:
        raise ValueError(f"{name}={rank_by!r} is not a cleanlab label-quality method; choose one of {RANK_BY}")


def label_quality(probs: Any, labels: Any, *, method: str = DEFAULT_RANK_BY) -> np.ndarray:
    """cleanlab's label-quality score of each given label (float32, in [0, 1], low = likely wrong).

    Equals ``cleanlab.rank.get_label_quality_scores(labels, probs, method=method)`` for a
    ``method`` in :data:`RANK_BY`: ``"self_confidence"`` is p_true, ``"normalized_margin"``
    is (margin + 1) / 2, ``"confidence_weighted_entropy"`` is cleanlab's rescaled normalised
    entropy / p_true (note: cleanlab scores a row with zero entropy, e.g. an exactly one-hot
    prediction, 0 whether or not it agrees with the label).
    """
    p, lab, _ = _checked(probs, labels)
    _check_rank_by(method, "method")
    return _label_quality(p, lab, method)


def _label_quality(p: np.ndarray, lab: np.ndarray, method: str, chunk: int = _CHUNK) -> np.ndarray:
    from cleanlab.rank import get_label_quality_scores

    n = len(lab)
    out = np.empty(n, dtype=np.float32)
    for s in range(0, n, chunk):  # every method is row-wise: chunking gives identical values
        out[s : s + chunk] = get_label_quality_scores(lab[s : s + chunk], p[s : s + chunk], method=method)
    return out


# --------------------------------------------------------------------------- label issues
def label_issues(
    probs: Any,
    labels: Any,
    *,
    filter_by: str = "prune_by_noise_rate",
    rank_by: str = DEFAULT_RANK_BY,
    low_memory_threshold: int = 500_000,
    batch_size: int = 100_000,
    n_jobs: int | None = 1,
    estimation_method: str = "off_diagonal_calibrated",
) -> dict[str, Any]:
    """Confident-learning label issues (cleanlab), ranked, with suggested labels.

    Returns ``is_label_issue`` (bool), ``issue_rank`` (int32, 1 = most likely wrong, -1 for
    non-issues: the issues ordered by ``label_quality``, ties by row order),
    ``label_quality`` (:func:`label_quality` with ``method=rank_by``, for every row),
    ``suggested_label`` (for issues the most likely *other* class, else the given label),
    ``suggested_confidence``, plus ``path`` ("in_memory" or "batched"), ``filter_used`` and
    ``estimation_method`` (batched path only, else None).

    Up to ``low_memory_threshold`` rows this is ``cleanlab.filter.find_label_issues(filter_by=...)``.
    Above it, ``cleanlab.experimental.label_issues_batched.find_label_issues_batched`` runs
    in mini-batches of ``batch_size``: it flags the ``num_label_issues`` rows with the lowest
    ``rank_by`` score (cleanlab's ``LabelInspector``; reported as filter ``"low_<rank_by>"``;
    ``filter_by`` is then not used). The count comes from
    ``estimation_method`` (cleanlab's ``num_issue_kwargs``): the default
    ``"off_diagonal_calibrated"`` flags about as many rows as the in-memory
    ``prune_by_noise_rate`` filter, ``"off_diagonal"`` fewer (higher precision, lower recall);
    the calibrated count always runs in one process (cleanlab 2.9's multi-process calibrated
    count disagrees with its single-process one). ``n_jobs=1`` by default: cleanlab's
    multiprocessing was slower on a 2-core machine. ``n_jobs > 1`` forks a multiprocessing pool:
    not in a process that is connected to Ray (the forked children run Ray's signal handlers on
    the driver's connection; in CI the next Ray call then hung), so the pipeline never does.
    """
    p, lab, _ = _checked(probs, labels)
    return _label_issues(
        p,
        lab,
        filter_by=filter_by,
        rank_by=rank_by,
        low_memory_threshold=low_memory_threshold,
        batch_size=batch_size,
        n_jobs=n_jobs,
        estimation_method=estimation_method,
    )


def _label_issues(
    p: np.ndarray,
    lab: np.ndarray,
    *,
    filter_by: str = "prune_by_noise_rate",
    rank_by: str = DEFAULT_RANK_BY,
    low_memory_threshold: int = 500_000,
    batch_size: int = 100_000,
    n_jobs: int | None = 1,
    estimation_method: str = "off_diagonal_calibrated",
) -> dict[str, Any]:
    if filter_by not in FILTERS:
        raise ValueError(f"filter_by={filter_by!r} is not a cleanlab filter; choose one of {FILTERS}")
    _check_rank_by(rank_by)
    if n_jobs is not None and (not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1):
        raise ValueError(f"n_jobs={n_jobs!r}: pass a positive integer (or None for all physical cores)")
    if estimation_method not in ("off_diagonal", "off_diagonal_calibrated"):
        raise ValueError(
            f"estimation_method={estimation_method!r}: choose 'off_diagonal_calibrated' or 'off_diagonal'"
        )
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: pass a positive integer")
    n = len(lab)
    if n > low_memory_threshold:
        from cleanlab.experimental.label_issues_batched import find_label_issues_batched

        filter_used = f"low_{rank_by}"
        if filter_by not in ("prune_by_noise_rate", filter_used):
            _warnings.warn(
                f"{n} rows > low_memory_threshold={low_memory_threshold}: the low-memory path uses "
                f"filter {filter_used!r}, not filter_by={filter_by!r}; raise low_memory_threshold "
                "to use the in-memory cleanlab filter",
                stacklevel=3,
            )
        mask = find_label_issues_batched(
            labels=lab,
            pred_probs=p,
            batch_size=int(batch_size),
            n_jobs=1 if estimation_method == "off_diagonal_calibrated" else n_jobs,
            verbose=False,
            quality_score_kwargs={"method": rank_by},
            num_issue_kwargs={"estimation_method": estimation_method},
            return_mask=True,
        )
        quality = _label_quality(p, lab, rank_by, chunk=int(batch_size))
        path = "batched"
    else:  # estimation_method is the batched path's; the in-memory filters size themselves
        from cleanlab.filter import find_label_issues

        mask = find_label_issues(lab, p, filter_by=filter_by, n_jobs=n_jobs)
        quality = _label_quality(p, lab, rank_by)
        filter_used, path = filter_by, "in_memory"
    mask = np.asarray(mask, dtype=bool)
    issue_idx = np.flatnonzero(mask)
    # same order as cleanlab.rank.order_label_issues(rank_by=rank_by); ties broken by row order
    order = issue_idx[np.argsort(quality[issue_idx], kind="stable")]
    issue_rank = np.full(n, -1, dtype=np.int32)
    issue_rank[order] = np.arange(1, len(order) + 1, dtype=np.int32)
    other_idx, _ = _max_other(p, lab)
    suggested = np.where(mask, other_idx, lab).astype(np.int32)
    return {
        "is_label_issue": mask,
        "issue_rank": issue_rank,
        "label_quality": quality,
        "suggested_label": suggested,
        "suggested_confidence": p[np.arange(n), suggested].astype(np.float32),
        "path": path,
        "filter_used": filter_used,
        "estimation_method": estimation_method if path == "batched" else None,
    }


# --------------------------------------------------------------------------- noise summary
def noise_summary(
    probs: Any,
    labels: Any,
    label_names: Sequence[str] | None = None,
    *,
    is_label_issue: np.ndarray | None = None,
    **label_issue_kwargs: Any,
) -> dict[str, Any]:
    """Dataset-level answer to "how far can we trust our labels?" (JSON-serialisable).

    Holds cleanlab's calibrated confident joint (rows: given label, columns: estimated true
    label; rows sum to the class counts), each class's estimated noise rate (off-diagonal
    share of its row), the estimated number/fraction of wrong labels (the off-diagonal
    mass, = ``cleanlab.count.num_label_issues(estimation_method="off_diagonal_calibrated")``),
    cleanlab's default ``num_label_issues`` estimate, and the count flagged by
    :func:`label_issues` (computed with ``label_issue_kwargs`` unless ``is_label_issue`` is given).
    """
    p, lab, _ = _checked(probs, labels)
    if is_label_issue is None:
        is_label_issue = _label_issues(p, lab, **label_issue_kwargs)["is_label_issue"]
    return _noise_summary(p, lab, label_names, np.asarray(is_label_issue, dtype=bool))


def _noise_summary(
    p: np.ndarray, lab: np.ndarray, label_names: Sequence[str] | None, flagged: np.ndarray
) -> dict[str, Any]:
    from cleanlab.count import compute_confident_joint, num_label_issues

    n, k = p.shape
    names = [str(x) for x in label_names] if label_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"label_names has {len(names)} names but probs has {k} classes: one name per class")
    if flagged.shape != (n,):
        raise ValueError(f"is_label_issue has shape {flagged.shape}; expected ({n},), one flag per row")
    cj = np.asarray(compute_confident_joint(lab, p, calibrate=True), dtype=np.int64)
    counts = np.bincount(lab, minlength=k)
    row = cj.sum(axis=1)
    off_row = row - np.diag(cj)
    rate = np.where(row > 0, off_row / np.maximum(row, 1), 0.0)
    flagged_per_class = np.bincount(lab[flagged], minlength=k)
    est = int(off_row.sum())
    off = cj.copy()
    np.fill_diagonal(off, 0)
    pairs = np.argsort(-off, axis=None, kind="stable")[: min(10, k * (k - 1))]
    return {
        "n_rows": int(n),
        "n_classes": int(k),
        "label_names": names,
        "class_counts": [int(c) for c in counts],
        "confident_joint": cj.tolist(),
        "per_class": [
            {
                "class": i,
                "name": names[i],
                "count": int(counts[i]),
                "estimated_noise_rate": float(rate[i]),
                "estimated_mislabeled": int(off_row[i]),
                "n_flagged": int(flagged_per_class[i]),
            }
            for i in range(k)
        ],
        "estimated_label_errors": est,
        "estimated_label_error_fraction": est / n,
        "estimated_label_accuracy": 1.0 - est / n,
        "num_label_issues_off_diagonal": int(num_label_issues(lab, p)),
        "n_flagged": int(flagged.sum()),
        "flagged_fraction": float(flagged.sum()) / n,
        "top_confusions": [
            {"given": names[i], "true": names[j], "count": int(off[i, j])}
            for i, j in zip(*np.unravel_index(pairs, off.shape))
            if off[i, j] > 0
        ],
    }


# --------------------------------------------------------------------------- dynamics
def training_dynamics(epoch_probs: Any, labels: Any) -> dict[str, np.ndarray]:
    """Training-dynamics statistics from per-epoch probabilities of shape ``(n, E, K)``.

    ``dyn_confidence`` mean p_true over epochs, ``dyn_variability`` its std (ddof 0),
    ``dyn_correctness`` fraction of epochs with argmax == label, ``dyn_forgetting`` number of
    correct -> incorrect transitions between consecutive epochs, ``dyn_aum`` mean margin
    (p_true - largest other probability; AUM-style). Works for E == 1.
    """
    ep, _ = validate_epoch_probs(epoch_probs, labels)
    lab = validate_labels(labels, ep.shape[0], ep.shape[2])
    return _training_dynamics(ep, lab)


def _training_dynamics(ep: np.ndarray, lab: np.ndarray) -> dict[str, np.ndarray]:
    n, e, _ = ep.shape
    out = {
        "dyn_confidence": np.empty(n, np.float32),
        "dyn_variability": np.empty(n, np.float32),
        "dyn_correctness": np.empty(n, np.float32),
        "dyn_forgetting": np.empty(n, np.int32),
        "dyn_aum": np.empty(n, np.float32),
    }
    chunk = max(1, _CHUNK // e)
    for s in range(0, n, chunk):
        blk = np.array(ep[s : s + chunk], dtype=np.float32, copy=True)
        lb = lab[s : s + chunk]
        pt = np.take_along_axis(blk, lb[:, None, None], axis=2)[:, :, 0]  # (b, E)
        correct = blk.argmax(axis=2) == lb[:, None]
        np.put_along_axis(blk, lb[:, None, None], -np.inf, axis=2)
        margin = pt - blk.max(axis=2)
        sl = slice(s, s + chunk)
        out["dyn_confidence"][sl] = pt.mean(axis=1)
        out["dyn_variability"][sl] = pt.std(axis=1)
        out["dyn_correctness"][sl] = correct.mean(axis=1)
        out["dyn_forgetting"][sl] = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1)
        out["dyn_aum"][sl] = margin.mean(axis=1)
    return out


# --------------------------------------------------------------------------- table
def _check_ids(ids: Any, n: int) -> pa.Array:
    arr = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if not isinstance(arr, pa.Array):
        arr = pa.array(list(arr) if not isinstance(arr, np.ndarray) else arr.tolist())
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise ValueError(f"ids must be strings (got {arr.type}); cast them with str()")
    arr = arr.cast(pa.string())
    if len(arr) != n:
        raise ValueError(f"ids has {len(arr)} entries but probs has {n} rows: one id per row, same order")
    if arr.null_count:
        bad = np.flatnonzero(np.asarray(arr.is_null().to_numpy(zero_copy_only=False)))
        raise ValueError(f"ids: rows {bad[:MAX_ROWS_NAMED].tolist()} have null ids; every row needs an id")
    if pc.count_distinct(arr).as_py() != n:
        vc = pc.value_counts(arr)
        dup = pc.filter(vc.field("values"), pc.greater(vc.field("counts"), 1))
        raise ValueError(
            f"ids are not unique: {dup[:MAX_ROWS_NAMED].to_pylist()} ({len(dup)} duplicated ids) "
            "appear more than once; deduplicate the dataset (or the OOF output) first"
        )
    return arr


def score_table(
    ids: Any,
    labels: Any,
    probs: Any,
    epoch_probs: Any = None,
    *,
    label_names: Sequence[str] | None = None,
    **label_issue_kwargs: Any,
) -> tuple[pa.Table, dict[str, Any]]:
    """All per-sample scores as one Arrow table (``SCORES_SCHEMA``) plus the summary dict.

    ``probs`` may be an ndarray or the ``probs`` column of oof.parquet; ``epoch_probs``
    (optional) an ``(n, E, K)`` array or the ``epoch_probs`` column; without it the dyn_*
    columns are null. ``label_issue_kwargs`` go to :func:`label_issues`; its ``rank_by`` picks the
    ``label_quality`` method (default :data:`DEFAULT_RANK_BY`) and so ``issue_rank``. The summary is
    :func:`noise_summary` plus the validation warnings and how issues were found.
    """
    n_rows = len(probs) if not isinstance(probs, np.ndarray) else probs.shape[0]
    id_arr = _check_ids(ids, n_rows)
    p, lab, warns = _checked(probs, labels, ids=id_arr)
    n, k = p.shape
    scores = _sample_scores(p, lab)
    issues = _label_issues(p, lab, **label_issue_kwargs)
    summary = _noise_summary(p, lab, label_names, issues["is_label_issue"])
    if epoch_probs is not None:
        ep, ep_warns = validate_epoch_probs(epoch_probs, lab, n_classes=k, ids=id_arr)
        warns += ep_warns
        dyn: dict[str, Any] = _training_dynamics(ep, lab)
        n_epochs = int(ep.shape[1])
    else:
        dyn = {c: pa.nulls(n, SCORES_SCHEMA.field(c).type) for c in DYNAMICS_COLUMNS}
        n_epochs = 0
    sig = {c: pa.nulls(n, SCORES_SCHEMA.field(c).type) for c in SIGNAL_COLUMNS}
    cols = {"id": id_arr, "label": lab.astype(np.int32), **scores, **issues, **dyn, **sig}
    table = pa.Table.from_arrays(
        [pa.array(cols[f.name], type=f.type) if not isinstance(cols[f.name], pa.Array) else cols[f.name]
         for f in SCORES_SCHEMA],
        schema=SCORES_SCHEMA,
    )
    summary.update(
        {
            "label_issues": {
                "path": issues["path"],
                "filter_used": issues["filter_used"],
                "estimation_method": issues["estimation_method"],
                "rank_by": label_issue_kwargs.get("rank_by", DEFAULT_RANK_BY),
            },
            "n_epochs": n_epochs,
            "warnings": warns,
        }
    )
    return table, summary


def with_signals(table: pa.Table, signals: dict[str, Any]) -> pa.Table:
    """``table`` (:data:`SCORES_SCHEMA`) with the given :data:`SIGNAL_COLUMNS` filled, one value per row.

    Values are cast to the contract's type; a name outside :data:`SIGNAL_COLUMNS`, a length
    other than the table's, or a NaN in a float signal is a ``ValueError``.
    """
    unknown = sorted(set(signals) - set(SIGNAL_COLUMNS))
    if unknown:
        raise ValueError(f"unknown signal columns {unknown}: the scores contract has {SIGNAL_COLUMNS}")
    for name, values in signals.items():
        field = SCORES_SCHEMA.field(name)
        arr = np.asarray(values)
        if arr.shape != (table.num_rows,):
            raise ValueError(f"signal {name} has shape {arr.shape}, the scores table has {table.num_rows} rows")
        if pa.types.is_floating(field.type) and not np.isfinite(arr.astype(np.float64)).all():
            bad = np.flatnonzero(~np.isfinite(arr.astype(np.float64)))
            raise ValueError(f"signal {name} has NaN/inf at rows {bad[:MAX_ROWS_NAMED].tolist()}")
        table = table.set_column(table.schema.get_field_index(name), field, pa.array(arr, type=field.type))
    return table


# --------------------------------------------------------------------------- evaluation
def detection_metrics(is_flagged: Any, is_noisy: Any) -> dict[str, float | int]:
    """Precision / recall / F1 of flagged rows against known-wrong labels (0.0 when undefined)."""
    f = np.asarray(is_flagged)
    t = np.asarray(is_noisy)
    if f.shape != t.shape or f.ndim != 1:
        raise ValueError(f"is_flagged {f.shape} and is_noisy {t.shape} must be 1-D with one entry per row")
    for name, a in (("is_flagged", f), ("is_noisy", t)):
        if a.dtype != bool and not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got values like {np.unique(a)[:5].tolist()}")
    f, t = f.astype(bool), t.astype(bool)
    tp = int((f & t).sum())
    fp = int((f & ~t).sum())
    fn = int((~f & t).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": int(len(f) - tp - fp - fn),
        "n_flagged": tp + fp,
        "n_noisy": tp + fn,
    }
