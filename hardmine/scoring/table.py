"""The scores table: its Arrow contract (:data:`SCORES_SCHEMA`), :func:`score_table` (every
per-sample score in one table, plus the summary) and :func:`with_signals` (the score stage's
other signals filled in).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.probs import MAX_ROWS_NAMED, validate_epoch_probs
from hardmine.schema import SCORES_CORE
from hardmine.scoring.confident import DEFAULT_RANK_BY, label_issues_unchecked, noise_summary_unchecked
from hardmine.scoring.dynamics import training_dynamics_unchecked
from hardmine.scoring.samples import check_inputs, sample_scores_unchecked

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
    columns are null. ``label_issue_kwargs`` go to :func:`~hardmine.scoring.label_issues`; its ``rank_by`` picks the
    ``label_quality`` method (default :data:`DEFAULT_RANK_BY`) and so ``issue_rank``. The summary is
    :func:`~hardmine.scoring.noise_summary` plus the validation warnings and how issues were found.
    """
    n_rows = len(probs) if not isinstance(probs, np.ndarray) else probs.shape[0]
    id_arr = _check_ids(ids, n_rows)
    p, lab, warns = check_inputs(probs, labels, ids=id_arr)
    n, k = p.shape
    scores = sample_scores_unchecked(p, lab)
    issues = label_issues_unchecked(p, lab, **label_issue_kwargs)
    summary = noise_summary_unchecked(p, lab, label_names, issues["is_label_issue"])
    if epoch_probs is not None:
        ep, ep_warns = validate_epoch_probs(epoch_probs, lab, n_classes=k, ids=id_arr)
        warns += ep_warns
        dyn: dict[str, Any] = training_dynamics_unchecked(ep, lab)
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
