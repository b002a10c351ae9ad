"""The sweep's results table (:data:`RESULTS`): one row per (cell, seed) scored on the validation split,
built from Tune's ResultGrid and the baseline's runs; the runs' prediction arrays packed for Tune
metrics and JSON caches (:func:`pack_runs`).
"""
from __future__ import annotations

import base64
import json
from typing import Sequence

import numpy as np
import pyarrow as pa

from hardmine.sweep.space import BASELINE, NO_ACTION, cell_key, cell_of, is_no_action

#: one row per (cell, seed) scored on the validation split: ``sweep/results.parquet`` (and
#: ``results.csv`` without the per-row ``pred`` / ``confidence`` lists).
RESULTS = pa.schema(
    [
        pa.field("threshold_kind", pa.string()),
        pa.field("threshold", pa.float64()),  # null: the baseline (no action)
        pa.field("aug_ratio", pa.float64()),
        pa.field("issue_action", pa.string()),
        pa.field("no_action", pa.bool_()),
        pa.field("same_as", pa.string()),  # the cell whose runs this cell shares (identical training set), else null
        pa.field("repeat", pa.int32()),  # seed index
        pa.field("seed", pa.int64()),
        pa.field("accuracy", pa.float64()),
        pa.field("macro_f1", pa.float64()),
        pa.field("ece", pa.float64()),
        pa.field("train_rows", pa.int64()),
        pa.field("n_augmented", pa.int64()),
        pa.field("requested_augmented", pa.int64()),
        pa.field("n_augment_sources", pa.int64()),
        pa.field("n_dropped", pa.int64()),
        pa.field("n_relabelled", pa.int64()),
        pa.field("started", pa.float64()),
        pa.field("seconds", pa.float64()),
        pa.field("trial_id", pa.string()),
        pa.field("status", pa.string()),
        pa.field("error", pa.string()),
        # per validation row (sweep/validation.parquet order): the predicted class and its probability
        pa.field("pred", pa.list_(pa.int32())),
        pa.field("confidence", pa.list_(pa.float32())),
    ]
)
_RESULT_COLS = ("accuracy", "macro_f1", "ece", "train_rows", "n_augmented", "requested_augmented", "n_augment_sources",
                "n_dropped", "n_relabelled", "started", "seconds")


def _pack(a: np.ndarray, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def _unpack(s: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype=dtype)


def pack_runs(runs: list[dict]) -> list[dict]:
    """Per-seed runs with the prediction arrays as base64 strings (Tune metrics, JSON caches)."""
    return [{**r, "pred": _pack(r["pred"], "<i4"), "confidence": _pack(r["confidence"], "<f4")} for r in runs]


def unpack_runs(runs: list[dict]) -> list[dict]:
    """:func:`pack_runs` undone: the prediction arrays back as numpy arrays."""
    return [{**r, "pred": _unpack(r["pred"], "<i4"), "confidence": _unpack(r["confidence"], "<f4")} for r in runs]


def _rows(cell: dict, threshold_kind: str, runs: list[dict] | None, seeds: Sequence[int], *, trial_id, status, error, same_as=None):
    out = []
    for i, seed in enumerate(seeds):
        r = runs[i] if runs is not None and i < len(runs) else None
        row = {
            "threshold_kind": threshold_kind, "threshold": cell["threshold"], "aug_ratio": cell["aug_ratio"],
            "issue_action": cell["issue_action"], "no_action": is_no_action(cell), "same_as": same_as, "repeat": i,
            "seed": int(seed), "trial_id": trial_id, "status": status if r is not None or status != "done" else "incomplete",
            "error": error, "pred": None, "confidence": None,
        }
        for c in _RESULT_COLS:
            row[c] = r.get(c) if r is not None else None
        if r is not None:
            row["pred"], row["confidence"] = np.asarray(r["pred"], np.int32), np.asarray(r["confidence"], np.float32)
        out.append(row)
    return out


def results_table(
    grid,
    threshold_kind: str,
    seeds: Sequence[int],
    *,
    baseline: tuple[list[dict] | None, str | None] = (None, "not run"),
    cells: Sequence[dict] | None = None,
    same_as: dict[str, str] | None = None,
) -> pa.Table:
    """One row per (cell, seed): the Tune ResultGrid's cells (finished, failed or not finished), the
    baseline's runs (``baseline`` = (runs, error)) and the cells of ``cells`` that share another
    cell's runs (``same_as``)."""
    same_as = same_as or {}
    rows = []
    base_runs, base_error = baseline
    rows += _rows(NO_ACTION, threshold_kind, base_runs, seeds, trial_id=BASELINE,
                  status="done" if base_runs is not None else "error", error=None if base_runs is not None else base_error)
    for r in grid:
        c, m = r.config or {}, r.metrics or {}
        if not isinstance(c.get("cell"), dict) and "threshold" not in c:
            continue  # a trial that never started has no config: its cell is listed below, not finished
        status = "error" if r.error is not None else ("done" if "runs" in m else "incomplete")
        trial_id = m.get("trial_id") or (str(r.path).rstrip("/").rsplit("/", 1)[-1] if r.path else None)
        err = None if r.error is None else f"{type(r.error).__name__}: {r.error}"[:2000]
        runs = unpack_runs(json.loads(m["runs"]) if isinstance(m["runs"], str) else m["runs"]) if status == "done" else None
        rows += _rows(cell_of(c), threshold_kind, runs, seeds, trial_id=trial_id, status=status, error=err)
    by_key: dict[str, list[dict]] = {}
    for row in rows:
        by_key.setdefault(cell_key(row, threshold_kind), []).append(row)
    for cell in cells or []:  # grid cells without a trial result: not finished
        key = cell_key(cell, threshold_kind)
        if key not in same_as and key not in by_key:
            by_key[key] = _rows(cell, threshold_kind, None, seeds, trial_id=None, status="incomplete", error=None)
            rows += by_key[key]
    for cell in cells or []:
        key = cell_key(cell, threshold_kind)
        src = same_as.get(key)
        if src is None:
            continue
        src_rows = by_key.get(src) or _rows(cell, threshold_kind, None, seeds, trial_id=None, status="incomplete", error=None)
        for sr in src_rows:
            rows.append({**sr, **cell, "no_action": False, "same_as": src})
    rows.sort(key=lambda r: (not r["no_action"], r["threshold"] if r["threshold"] is not None else -1.0, r["aug_ratio"],
                             r["issue_action"] or "", r["repeat"]))
    return pa.Table.from_pylist(rows, schema=RESULTS)
