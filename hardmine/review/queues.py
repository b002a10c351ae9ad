"""The two review queues: label issues (or the least-trusted labels) and active learning (the most uncertain rows)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.checks import first, require_columns, require_unique_ids
from hardmine.review.inputs import DATASET_FIX, as_table, check_label_names, label_names_of
from hardmine.review.schemas import ACTIVE_LEARNING_QUEUE, LABEL_ISSUE_QUEUE
from hardmine.select import SIGNAL_REASONS

#: uncertainty measures of the active-learning queue (see :func:`uncertainty`)
STRATEGIES = ("least_confidence", "margin", "entropy")
#: orders of the review queue: lowest label_quality (cleanlab), or highest error_risk (dual model)
QUEUE_RANK_BY = ("label_quality", "error_risk")


# --------------------------------------------------------------------------- label issues


def label_issue_queue(
    scores: pa.Table,
    dataset: pa.Table,
    label_names: Sequence[str],
    limit: Optional[int] = None,
    *,
    budget: Optional[int] = None,
    rank_by: str = "label_quality",
) -> pa.Table:
    """The label-review queue: cleanlab's label issues, or the ``budget`` least-trusted labels.

    Rows the score stage flagged as conflicting duplicates or outliers join the flagged queue
    after the label issues (duplicates by group, outliers farthest first); ``reason`` names
    why each row is there. ``rank_by="error_risk"`` orders the queue (flagged, or the budget's
    rows) by the dual model's ``error_risk``, highest first, instead.

    Without ``budget``: the rows cleanlab flagged (``is_label_issue``) ordered by
    ``issue_rank`` (1 = most suspicious); ``limit`` keeps the top rows. With ``budget=N``:
    the N rows with the lowest ``label_quality`` (ties by ``id``, string order), flagged or not, so a
    review budget larger than cleanlab's flagged set is filled with the next most
    suspicious rows (all rows when N exceeds them); ``limit`` does not apply.

    Columns (:data:`~hardmine.review.schemas.LABEL_ISSUE_QUEUE`): ``id``, ``text``, ``given_label``
    and ``suggested_label`` (names), ``score``, ``suggested_confidence``, ``flagged`` (cleanlab's
    verdict, ``is_label_issue``), ``reason``, ``error_risk``, ``rank`` (1..n, queue order),
    ``corrected_label`` (empty). ``score`` is the label-quality score of the given label
    (``label_quality``; without ``budget``, scores lacking it fall back to ``self_confidence``,
    else ``p_true``): in [0, 1], lower = more likely mislabeled. ``suggested_label`` is cleanlab's
    suggestion: another class for flagged rows, the given label for unflagged ones;
    ``suggested_confidence`` is the model's probability of it.
    """
    scores = as_table(scores, "scores")
    dataset = as_table(dataset, "dataset")
    names = check_label_names(label_names)
    require_columns(scores, ["id", "label", "is_label_issue", "issue_rank", "suggested_label"], "scores",
                    "pass the run's scores.parquet (re-run the score stage to write the missing columns)")
    if rank_by not in QUEUE_RANK_BY:
        raise ValueError(f"rank_by must be one of {list(QUEUE_RANK_BY)}, got {rank_by!r}")
    if rank_by == "error_risk":
        _require_filled(scores, "error_risk", "score.dual_model is off or the scores predate it: set score.dual_model: gbdt and re-run the score stage")
    require_columns(dataset, ["id", "text", "label"], "dataset", DATASET_FIX)
    if limit is not None and (isinstance(limit, bool) or limit < 0):
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
            raise ValueError(f"budget must be a whole number of rows >= 1, got {budget!r}")
        if limit is not None:
            raise ValueError("pass budget or limit, not both: budget already sets the queue length")
        picked = _highest_error_risk(scores, int(budget)) if rank_by == "error_risk" else _lowest_label_quality(scores, int(budget))
        score_col = "label_quality"
    else:
        score_col = next((c for c in ("label_quality", "self_confidence", "p_true") if c in scores.column_names), None)
        if score_col is None:
            raise ValueError("scores needs a label_quality, self_confidence or p_true column for the queue's score")
        picked = _flagged_by_issue_rank(scores)
        picked = pa.concat_tables([picked, _flagged_by_signals(scores)], promote_options="none")
        if rank_by == "error_risk":
            picked = picked.take(pc.sort_indices(picked, sort_keys=[("error_risk", "descending"), ("id", "ascending")]))
        if limit is not None:
            picked = picked.slice(0, limit)
    return _queue_rows(picked, dataset, names, score_col, "high_error_risk" if rank_by == "error_risk" else "low_label_quality")


def _require_filled(scores: pa.Table, col: str, fix: str) -> None:
    if col not in scores.column_names or scores[col].null_count == scores.num_rows:
        raise ValueError(f"scores has no {col} values: {fix}")


def _flag(scores: pa.Table, col: str) -> np.ndarray:
    if col not in scores.column_names:
        return np.zeros(scores.num_rows, dtype=bool)
    return pc.fill_null(scores[col].cast(pa.bool_()), False).to_numpy(zero_copy_only=False).astype(bool)


def _flagged_by_signals(scores: pa.Table) -> pa.Table:
    """Rows flagged as conflicting duplicates or outliers and not label issues: duplicates by
    group, then outliers by outlier_score (farthest first)."""
    issue = _flag(scores, "is_label_issue")
    dup = _flag(scores, "is_conflicting_duplicate") & ~issue
    out = _flag(scores, "is_outlier") & ~issue & ~dup
    idx_dup = np.flatnonzero(dup)
    if idx_dup.size:
        g = scores["dup_group"].to_numpy(zero_copy_only=False)[idx_dup]
        idx_dup = idx_dup[np.argsort(g, kind="stable")]
    idx_out = np.flatnonzero(out)
    if idx_out.size:
        o = scores["outlier_score"].to_numpy(zero_copy_only=False)[idx_out]
        idx_out = idx_out[np.argsort(-o, kind="stable")]
    return scores.take(pa.array(np.concatenate([idx_dup, idx_out]).astype(np.int64), pa.int64()))


def _highest_error_risk(scores: pa.Table, budget: int) -> pa.Table:
    order = pc.sort_indices(scores, sort_keys=[("error_risk", "descending"), ("id", "ascending")])
    return scores.take(order[:budget])


def _reasons(picked: pa.Table, default: str) -> list[str]:
    cols = [("label_issue", _flag(picked, "is_label_issue"))] + [(r, _flag(picked, c)) for r, c in SIGNAL_REASONS.items()]
    return [",".join(name for name, f in cols if f[i]) or default for i in range(picked.num_rows)]


def _flagged_by_issue_rank(scores: pa.Table) -> pa.Table:
    flagged = scores.filter(pc.fill_null(scores["is_label_issue"], False))
    ranks = flagged["issue_rank"].to_numpy(zero_copy_only=False).astype(np.int64)
    fids = flagged["id"].to_pylist()
    unranked = np.flatnonzero(ranks < 1)
    if unranked.size:
        raise ValueError(
            f"scores rows flagged is_label_issue have issue_rank < 1 (ids {first([fids[i] for i in unranked])}); "
            "issue_rank must be 1.. for label issues and -1 otherwise: re-run the score stage"
        )
    return flagged.take(pa.array(np.argsort(ranks, kind="stable"), type=pa.int64()))


def _lowest_label_quality(scores: pa.Table, budget: int) -> pa.Table:
    if "label_quality" not in scores.column_names:
        raise ValueError(
            "scores has no label_quality column, which a review budget ranks by: re-run the score stage "
            "(older scores.parquet files predate it)"
        )
    lq = scores["label_quality"]
    bad = pc.or_kleene(pc.is_null(lq), pc.is_nan(lq.cast(pa.float64())))
    if pc.any(bad).as_py():
        ids = scores["id"].filter(pc.fill_null(bad, True)).to_pylist()
        raise ValueError(f"scores rows {first(ids)} have a null/NaN label_quality: re-run the score stage")
    order = pc.sort_indices(scores, sort_keys=[("label_quality", "ascending"), ("id", "ascending")])
    return scores.take(order[:budget])


def _queue_rows(picked: pa.Table, dataset: pa.Table, names: list[str], score_col: str, default_reason: str) -> pa.Table:
    ids = picked["id"].to_pylist()
    d_ids = dataset["id"].to_pylist()
    pos = {i: k for k, i in enumerate(d_ids)}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise ValueError(
            f"scores ids {first(missing)} are not in the dataset: pass the dataset version the scores were computed on"
        )
    rows = np.array([pos[i] for i in ids], dtype=np.int64)
    d_label = dataset["label"].to_numpy(zero_copy_only=False)[rows] if len(rows) else np.zeros(0, np.int64)
    s_label = picked["label"].to_numpy(zero_copy_only=False)
    stale = np.flatnonzero(d_label != s_label)
    if stale.size:
        raise ValueError(
            f"scores and dataset disagree on the label of ids {first([ids[i] for i in stale])}: "
            "the scores are stale for this dataset version; re-run the score stage"
        )
    texts = dataset["text"].take(pa.array(rows, type=pa.int64()))
    suggested = picked["suggested_label"].to_numpy(zero_copy_only=False)
    n = len(ids)
    if "suggested_confidence" in picked.column_names:
        sconf = picked["suggested_confidence"].cast(pa.float64())
    else:
        sconf = pa.nulls(n, pa.float64())
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "text": texts.cast(pa.string()),
            "given_label": pa.array(label_names_of(s_label, names, "scores", ids), pa.string()),
            "suggested_label": pa.array(label_names_of(suggested, names, "scores.suggested_label", ids), pa.string()),
            "score": picked[score_col].cast(pa.float64()),
            "suggested_confidence": sconf,
            "flagged": pc.fill_null(picked["is_label_issue"], False).cast(pa.bool_()),
            "reason": pa.array(_reasons(picked, default_reason), pa.string()),
            "error_risk": picked["error_risk"].cast(pa.float64()) if "error_risk" in picked.column_names else pa.nulls(n, pa.float64()),
            "rank": pa.array(np.arange(1, n + 1), pa.int32()),
            "corrected_label": pa.nulls(n, pa.string()),
        },
        schema=LABEL_ISSUE_QUEUE,
    )


# --------------------------------------------------------------------------- active learning


def uncertainty(probs: np.ndarray, strategy: str = "least_confidence") -> np.ndarray:
    """Per-row uncertainty, higher = more uncertain.

    ``least_confidence``: 1 - max p. ``margin``: 1 - (top1 - top2), so the smallest
    margin ranks first. ``entropy``: -sum p ln p (nats).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    p = np.asarray(probs, dtype=np.float64)
    if strategy == "least_confidence":
        return 1.0 - p.max(axis=1)
    if strategy == "margin":
        if p.shape[1] < 2:
            return np.zeros(len(p))
        top2 = -np.partition(-p, 1, axis=1)[:, :2]
        return 1.0 - (top2[:, 0] - top2[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    return -plogp.sum(axis=1)


def _check_probs(probs: Any, n: int, k: int, ids: Sequence[str]) -> np.ndarray:
    if isinstance(probs, (pa.Array, pa.ChunkedArray)):
        probs = probs.to_pylist()
    p = np.asarray(probs, dtype=np.float64) if not isinstance(probs, np.ndarray) else probs.astype(np.float64)
    if p.ndim != 2 or p.shape != (n, k):
        raise ValueError(
            f"probs must have shape (n_samples={n}, n_classes={k}) to match ids and label_names, got {p.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (np.abs(p.sum(axis=1) - 1) > 1e-3))
    if bad.size:
        raise ValueError(
            f"probs rows for ids {first([ids[i] for i in bad])} are not probability vectors "
            "(finite, >= 0, summing to 1): pass softmax outputs"
        )
    return p


def _given_names(labels: Any, order: np.ndarray, ids: list[str], names: list[str]) -> list[str]:
    """The given label (an index or a name) of each row in ``order``, as a name."""
    labels = labels.to_pylist() if isinstance(labels, (pa.Array, pa.ChunkedArray)) else list(labels)
    if len(labels) != len(ids):
        raise ValueError(f"labels ({len(labels)}) and ids ({len(ids)}) must have the same length")
    given = []
    for i in order:
        lab = labels[i]
        if isinstance(lab, str):
            if lab not in names:
                raise ValueError(f"label {lab!r} of id {ids[i]!r} is not in label_names {names}")
            given.append(lab)
        else:
            given.append(label_names_of(np.array([int(lab)]), names, "labels", [ids[i]])[0])
    return given


def active_learning_queue(
    ids: Sequence[str],
    texts: Sequence[str],
    probs: Any,
    label_names: Sequence[str],
    strategy: str = "least_confidence",
    batch_size: int = 100,
    labels: Optional[Sequence[Any]] = None,
) -> pa.Table:
    """The ``batch_size`` most uncertain samples under ``strategy`` (see :func:`uncertainty`).

    Columns (:data:`~hardmine.review.schemas.ACTIVE_LEARNING_QUEUE`): ``id``, ``text``,
    ``predicted_label`` (name), ``confidence`` (max p), ``uncertainty``, ``strategy``, ``rank``,
    ``given_label`` (only when ``labels`` — indices or names — are given; None for an unlabelled
    pool), ``corrected_label`` (empty). Ties keep input order.
    """
    names = check_label_names(label_names)
    ids = [str(i) for i in (ids.to_pylist() if isinstance(ids, (pa.Array, pa.ChunkedArray)) else ids)]
    texts = texts.to_pylist() if isinstance(texts, (pa.Array, pa.ChunkedArray)) else list(texts)
    if len(texts) != len(ids):
        raise ValueError(f"ids ({len(ids)}) and texts ({len(texts)}) must have the same length")
    require_unique_ids(ids, "ids")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    p = _check_probs(probs, len(ids), len(names), ids)

    u = uncertainty(p, strategy)
    order = np.argsort(-u, kind="stable")[:batch_size]
    pred = p.argmax(axis=1)
    cols = {
        "id": pa.array([ids[i] for i in order], pa.string()),
        "text": pa.array([texts[i] for i in order], pa.string()),
        "predicted_label": pa.array([names[pred[i]] for i in order], pa.string()),
        "confidence": pa.array(p.max(axis=1)[order], pa.float64()),
        "uncertainty": pa.array(u[order], pa.float64()),
        "strategy": pa.array([strategy] * len(order), pa.string()),
        "rank": pa.array(np.arange(1, len(order) + 1), pa.int32()),
    }
    schema = ACTIVE_LEARNING_QUEUE
    if labels is None:
        schema = schema.remove(schema.get_field_index("given_label"))
    else:
        cols["given_label"] = pa.array(_given_names(labels, order, ids, names), pa.string())
    cols["corrected_label"] = pa.nulls(len(order), pa.string())
    return pa.table(cols, schema=schema)
