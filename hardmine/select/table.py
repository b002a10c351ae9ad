"""The selection table (selected.parquet) and the hard set it carries, for the analysis and the plots."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from hardmine.checks import first, require_columns
from hardmine.select.inputs import score_ids

#: what ``select`` returns: one row per sample, in the order of the scores table.
SELECTION = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("new_label", pa.int32(), nullable=False),
        pa.field("hardness", pa.float64(), nullable=False),
        # in the policy's hard set (label issues and flagged rows included), before exclusions and the class budget
        pa.field("hard", pa.bool_(), nullable=False),
        # data-map region: easy / ambiguous / hard; null when the scores carry no training dynamics
        pa.field("region", pa.string()),
    ]
)


def selection_table(
    ids: np.ndarray, label: np.ndarray, action: np.ndarray, rule: np.ndarray, new_label: np.ndarray,
    hardness: np.ndarray, hard: np.ndarray, region: np.ndarray | None,
) -> pa.Table:
    """The :data:`SELECTION` table of the per-row arrays (``region`` None: no training dynamics)."""
    n = len(ids)
    return pa.table(
        {
            "id": pa.array([str(i) for i in ids], pa.string()),
            "label": pa.array(label, pa.int32()),
            "action": pa.array(action.tolist(), pa.string()),
            "rule": pa.array(rule.tolist(), pa.string()),
            "new_label": pa.array(new_label, pa.int32()),
            "hardness": pa.array(hardness, pa.float64()),
            "hard": pa.array(hard, pa.bool_()),
            "region": pa.nulls(n, pa.string()) if region is None else pa.array(region.tolist(), pa.string()),
        },
        schema=SELECTION,
    )


def check_mask(mask, n: int, name: str = "hard_mask") -> np.ndarray:
    """``mask`` as a bool array of shape ``(n,)`` (one entry per scores row); raises otherwise."""
    out = np.asarray(mask)
    if out.shape != (n,) or out.dtype != bool:
        raise ValueError(
            f"{name} must be a bool array of shape ({n},) aligned with scores, got {out.dtype} {out.shape}; "
            "pass hard_mask(selected, scores)"
        )
    return out


def hard_mask(selected: pa.Table, scores: pa.Table) -> np.ndarray:
    """The selection's hard set (``selected``'s ``hard`` column) as a bool mask aligned with the rows of
    ``scores``, matched by id: what the analysis and the plots describe."""
    require_columns(selected, ["id", "hard"], "selected", "pass the table select() returned (selected.parquet)",
                    no_nulls=True)
    hard = dict(zip(selected.column("id").cast(pa.string()).to_pylist(), selected.column("hard").to_pylist()))
    ids = score_ids(scores)
    missing = [i for i in ids if i not in hard]
    if missing:
        raise ValueError(
            f"{len(missing)} scored ids are not in the selection: {first(missing)}; pass the selection made from these scores"
        )
    return np.fromiter((bool(hard[i]) for i in ids), dtype=bool, count=len(ids))
