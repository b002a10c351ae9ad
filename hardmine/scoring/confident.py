"""Confident learning with cleanlab: label-quality scores, ranked label issues with suggested
labels, and the dataset-level noise summary.
"""
from __future__ import annotations

import warnings as _warnings
from typing import Any, Sequence

import numpy as np

from hardmine.scoring.samples import CHUNK, check_inputs, max_other_class
from hardmine.vocab import FILTERS, RANK_BY

# FILTERS: cleanlab's in-memory filters; RANK_BY: label-quality methods, the chosen one fills
# ``label_quality`` and orders ``issue_rank`` and the review budget (vocabularies: hardmine.vocab)
#: THE default label-quality method (library calls and ``score.rank_by`` in the config, whose
#: default a test keeps equal to this). To be set from the detection benchmark; change it here.
DEFAULT_RANK_BY = "self_confidence"


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
    p, lab, _ = check_inputs(probs, labels)
    _check_rank_by(method, "method")
    return _label_quality(p, lab, method)


def _label_quality(p: np.ndarray, lab: np.ndarray, method: str, chunk: int = CHUNK) -> np.ndarray:
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
    p, lab, _ = check_inputs(probs, labels)
    return label_issues_unchecked(
        p,
        lab,
        filter_by=filter_by,
        rank_by=rank_by,
        low_memory_threshold=low_memory_threshold,
        batch_size=batch_size,
        n_jobs=n_jobs,
        estimation_method=estimation_method,
    )


def label_issues_unchecked(
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
    """:func:`label_issues` on valid inputs (float32 ``(n, K)`` probs, int labels; not checked)."""
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
    other_idx, _ = max_other_class(p, lab)
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
    p, lab, _ = check_inputs(probs, labels)
    if is_label_issue is None:
        is_label_issue = label_issues_unchecked(p, lab, **label_issue_kwargs)["is_label_issue"]
    return noise_summary_unchecked(p, lab, label_names, np.asarray(is_label_issue, dtype=bool))


def noise_summary_unchecked(
    p: np.ndarray, lab: np.ndarray, label_names: Sequence[str] | None, flagged: np.ndarray
) -> dict[str, Any]:
    """:func:`noise_summary` on valid inputs, with the rows ``flagged`` by :func:`label_issues`."""
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
