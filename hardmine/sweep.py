"""Ray Tune sweep: hardness threshold x augmentation ratio x label-issue action, chosen on validation, confirmed on test.

**Cells.** A cell is one (threshold, aug_ratio, issue_action). Its trial re-selects the hard set
with the cell's threshold and issue action (:func:`hardmine.select.select` on ``scores.parquet``),
takes the augmented variants of *its* augment set from a pool generated once at the largest budget
(``sweep/pool.parquet``; trials subsample it, they never regenerate), and retrains with the OOF
backbone (in the trial's process, with the trial's resources) over ``sweep.seeds`` seeds: seed
``s`` of every cell shares the initialisation and the augmentation sample (``seed * 1000 + s``).

How a cell treats label issues (``issue_action``): ``drop`` removes them, ``relabel`` relabels the
confident ones (the rest go to review), ``review`` leaves them in training untouched (no human has
reviewed yet) but never augments them, ``keep`` treats them as ordinary rows (they may be augmented).

**Baseline (no action).** ``aug_ratio 0`` with ``issue_action keep``: the training rows exactly as
they are, whatever the threshold (the evaluate stage's ``baseline`` arm). It always runs, over the
same seeds, whether or not the grid holds it. A grid cell whose training set is identical to the
baseline's or to another cell's (``aug_ratio 0`` with ``review`` or ``keep``; ``drop`` at any
threshold) is not retrained: it shares that cell's runs (``same_as`` in the results).

**Choosing on validation.** Before any training, ``sweep.validation_size`` of the training rows
(stratified per class, seeded by ``seed``) are set aside as the validation split; a class left with
fewer than :data:`MIN_VALIDATION_PER_CLASS` validation rows (or no training row) is a data error.
Trials train on the other training rows only, and never on a variant of a validation row (the pool
rows whose ``source_id`` is a validation row are left out of every trial: a paraphrase of a
validation row, with its label, would leak it). Every cell is scored on the validation rows, and
its difference to the baseline gets a paired-bootstrap interval over those rows (the same resampled
rows for every cell, seeds averaged within a resample; :func:`hardmine.evaluate.compare`). The
cell chosen is the one whose interval of the difference in ``sweep.metric`` has the **highest lower
bound above zero**; when no cell's interval lies above zero, the choice is the baseline (no
action). Nothing in this phase reads the test split, its labels or anything derived from it
(``best.json: selection.reads`` lists what it read).

**Confirming on test, once.** After the choice is fixed the chosen cell and the baseline are
retrained on the *full* training split (validation rows included, and the pool's variants of them,
as a user would apply the chosen configuration), over the same seeds, and scored on the test split:
held-out metrics with paired-bootstrap intervals, the difference to the baseline and an exact McNemar
test, against the given test labels and, when the prepare stage recorded the injected truth, the
true ones. This is the only place the sweep reads ``test.parquet`` / ``test_truth.parquet``.

Caveat: hardness and label issues come from the OOF stage over all training rows, so validation
rows took part in the fold models that scored the other rows; their own labels and variants never
reach a trial's training set.

Resume: the experiment lives at ``<run>/sweep/tune/sweep-<fingerprint>``; re-running with the same
inputs restores it with ``Tuner.restore`` and runs only the cells that had not finished; the
baseline's runs and the confirmation are kept beside it, so a complete sweep never reads the test
split twice. An incomplete sweep (interrupted or failed cells) records its validation choice so
far but does not confirm it.
"""
from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import math
import time
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.config import Config
from hardmine.data import DataError
from hardmine.evaluate import (
    MemoryCheckpoints,
    _kept_pool,
    arm_training_set,
    assemble,
    compare,
    metrics,
    set_indices,
    train_settings,
    training_set_info,
)
from hardmine.oof.settings import oof_max_length
from hardmine.stats import METRICS
from hardmine.summaries import SweepBest, SweepCell, SweepConfirmation

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
#: the confirmation's retrains on the full training split, scored on the test split: ``sweep/confirmation.parquet``.
CONFIRMATION = pa.schema(
    [pa.field("arm", pa.string())] + [RESULTS.field(n) for n in (
        "threshold_kind", "threshold", "aug_ratio", "issue_action", "repeat", "seed", "accuracy", "macro_f1", "ece",
        "train_rows", "n_augmented", "requested_augmented", "n_augment_sources", "n_dropped", "n_relabelled",
        "seconds", "pred", "confidence")]
)
#: the validation rows, in the order of ``results.pred``: ``sweep/validation.parquet``.
VALIDATION = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("label", pa.int32(), nullable=False)])

CELL_KEYS = ("threshold", "aug_ratio", "issue_action")
#: the baseline cell: no selection, no augmentation: the training rows as they are.
NO_ACTION: dict[str, Any] = {"threshold": None, "aug_ratio": 0.0, "issue_action": "keep"}
BASELINE = "baseline"
#: validation rows every class needs (the choice compares cells on them).
MIN_VALIDATION_PER_CLASS = 2
CHOICE_RULE = (
    "the cell whose paired-bootstrap interval of ({metric} - baseline) on the validation split has the highest lower "
    "bound, provided it lies above zero (ties: the larger mean difference, then the smaller aug_ratio, then the smaller "
    "threshold); when no cell's interval lies above zero: the baseline (no action)"
)
_RESULT_COLS = ("accuracy", "macro_f1", "ece", "train_rows", "n_augmented", "requested_augmented", "n_augment_sources",
                "n_dropped", "n_relabelled", "started", "seconds")


# ============================================================================ pure part


def select_kwargs(cfg: Config, labels: Sequence[str]) -> dict[str, Any]:
    """The select stage's settings other than the swept ones (threshold, issue_action)."""
    s = cfg.select
    classes = None
    if s.classes is not None:
        unknown = [c for c in s.classes if c not in labels]
        if unknown:
            raise ValueError(f"select.classes has unknown class names {unknown}: choose from {list(labels)}")
        classes = [list(labels).index(c) for c in s.classes]
    return {
        "max_confidence": s.max_confidence, "min_length": s.min_length, "classes": classes,
        "max_per_class": s.max_per_class, "relabel_min_confidence": s.relabel_min_confidence, "seed": cfg.seed,
    }


def validation_split(dataset: pa.Table, size: float, seed: int, label_names: Sequence[str] | None = None) -> tuple[pa.Table, pa.Table]:
    """(training rows the trials draw from, validation rows), carved from the training split.

    Stratified: ``round(size * count)`` rows of every class (half up), drawn with ``seed``; both
    parts keep the table's row order. Raises :class:`hardmine.data.DataError` naming every class
    that would get fewer than :data:`MIN_VALIDATION_PER_CLASS` validation rows or no training row
    left, and the ``sweep.validation_size`` that would do.
    """
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0.0 < size < 1.0:
        raise ValueError(f"sweep.validation_size must be a share in (0, 1), e.g. 0.2, got {size!r}")
    if "label" not in dataset.column_names or "id" not in dataset.column_names:
        raise ValueError(f"dataset lacks id/label columns (has {dataset.column_names}); pass dataset.parquet")
    y = dataset.column("label").to_numpy().astype(np.int64)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5A11D])
    is_val = np.zeros(len(y), dtype=bool)
    problems: list[str] = []
    floor_size, tiny, too_large = 0.0, False, False

    def name(c: int) -> str:
        return str(label_names[c]) if label_names is not None and 0 <= c < len(label_names) else str(c)

    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = int(math.floor(size * len(idx) + 0.5))
        if k < MIN_VALIDATION_PER_CLASS or k >= len(idx):
            what = f"{k} validation row{'s' if k != 1 else ''}" if k < len(idx) else "no training row left"
            problems.append(f"{name(int(c))!r} ({len(idx)} training rows -> {what})")
            too_large |= k >= len(idx) and len(idx) > MIN_VALIDATION_PER_CLASS
            if len(idx) > MIN_VALIDATION_PER_CLASS:
                floor_size = max(floor_size, (MIN_VALIDATION_PER_CLASS - 0.5) / len(idx))
            else:
                tiny = True
            continue
        is_val[rng.permutation(idx)[:k]] = True
    if problems:
        if tiny:
            fix = (f"classes with {MIN_VALIDATION_PER_CLASS} or fewer training rows cannot be split: merge or remove them, "
                   "or add rows")
        elif too_large:
            fix = "lower sweep.validation_size (e.g. 0.2)"
        else:
            fix = f"set sweep.validation_size to at least {math.ceil(floor_size * 1000) / 1000:g}"
        raise DataError(
            f"sweep.validation_size={size:g} {'is too large' if too_large and not tiny else 'is too small'} for the classes: "
            f"{', '.join(problems)}. The sweep chooses its "
            f"best cell on this validation split (carved from the training rows; the test split is only read to confirm "
            f"the choice) and needs at least {MIN_VALIDATION_PER_CLASS} validation rows of every class and one training "
            f"row left: {fix}"
        )
    return dataset.filter(pa.array(~is_val)), dataset.filter(pa.array(is_val))


def is_no_action(cell: dict) -> bool:
    return cell.get("threshold") is None


def cell_of(config: dict) -> dict[str, Any]:
    """The (threshold, aug_ratio, issue_action) of a Tune trial config (grid: ``config['cell']``)."""
    c = config.get("cell") if isinstance(config.get("cell"), dict) else config
    return {"threshold": None if c.get("threshold") is None else float(c["threshold"]),
            "aug_ratio": float(c.get("aug_ratio", 0.0)), "issue_action": c.get("issue_action")}


def cell_key(cell: dict, threshold_kind: str = "threshold") -> str:
    """A cell's name: ``baseline`` for no action, else ``<threshold_kind>=T aug_ratio=R issue_action=A``."""
    if is_no_action(cell):
        return BASELINE
    return f"{threshold_kind}={cell['threshold']:g} aug_ratio={cell['aug_ratio']:g} issue_action={cell['issue_action']}"


def grid_cells(sweep) -> list[dict[str, Any]]:
    """Every cell of the grid (thresholds x aug_ratios x issue_actions), duplicates removed, in config order."""
    out, seen = [], set()
    for t, r, a in itertools.product(sweep.thresholds, sweep.aug_ratios, sweep.issue_actions):
        key = (float(t), float(r), a)
        if key not in seen:
            seen.add(key)
            out.append({"threshold": float(t), "aug_ratio": float(r), "issue_action": a})
    return out


def trial_training_set(
    dataset: pa.Table,
    scores: pa.Table,
    pool: pa.Table | None,
    params: dict,
    *,
    threshold_kind: str = "hardness_quantile",
    select_kw: dict | None = None,
    seed: int = 0,
) -> tuple[pa.Table, dict]:
    """(training set, selection summary) of one cell's ``threshold`` / ``aug_ratio`` / ``issue_action``.

    The baseline cell (``threshold`` None: no action) is the training rows as they are, with an
    empty selection summary.
    """
    from hardmine.select import select

    if threshold_kind not in ("hardness_quantile", "p_true_max"):
        raise ValueError(f"threshold_kind must be 'hardness_quantile' or 'p_true_max', got {threshold_kind!r}")
    if is_no_action(params):
        return arm_training_set(dataset, None, None, None, "baseline", aug_ratio=0.0, seed=seed), {"actions": {}}
    kw = dict(select_kw or {})
    kw["hardness_quantile"] = params["threshold"] if threshold_kind == "hardness_quantile" else None
    kw["p_true_max"] = params["threshold"] if threshold_kind == "p_true_max" else None
    selected, summary = select(scores, dataset, issue_action=params["issue_action"], **kw)
    table = arm_training_set(
        dataset, selected, pool, None, "clean+targeted", aug_ratio=float(params["aug_ratio"]), review_as="keep", seed=seed
    )
    return table, summary


def _signature(table: pa.Table) -> str:
    h = hashlib.sha256()
    for col in ("id", "label", "text"):
        for v in table.column(col).to_pylist():
            h.update(f"{v}\0".encode())
    return h.hexdigest()


def shared_cells(
    dataset: pa.Table, scores: pa.Table, cells: Sequence[dict], *, threshold_kind: str, select_kw: dict | None, seed: int = 0
) -> dict[str, str]:
    """``{cell key: key of the cell whose runs it can share}`` for cells that need no retrain of their own.

    Only ``aug_ratio 0`` cells are compared (nothing is sampled, so their training set is the same
    for every seed): one whose rows and labels equal the baseline's (``review`` / ``keep``) shares
    the baseline's runs; one equal to an earlier cell (``drop`` at another threshold) shares that one's.
    """
    base, _ = trial_training_set(dataset, scores, None, NO_ACTION, threshold_kind=threshold_kind, seed=seed)
    by_sig = {_signature(base): BASELINE}
    same: dict[str, str] = {}
    for cell in cells:
        if cell["aug_ratio"] != 0:
            continue
        table, _ = trial_training_set(dataset, scores, None, cell, threshold_kind=threshold_kind, select_kw=select_kw, seed=seed)
        sig, key = _signature(table), cell_key(cell, threshold_kind)
        if sig in by_sig:
            same[key] = by_sig[sig]
        else:
            by_sig[sig] = key
    return same


def param_space(sweep, cells: Sequence[dict] | None = None) -> tuple[dict, int]:
    """(Tune param_space, num_samples): grid: one trial per cell of ``cells`` (default: the whole grid); else choices."""
    from ray import tune

    if sweep.search == "grid":
        return {"cell": tune.grid_search([dict(c) for c in (grid_cells(sweep) if cells is None else cells)])}, 1
    return (
        {
            "threshold": tune.choice(list(sweep.thresholds)),
            "aug_ratio": tune.choice(list(sweep.aug_ratios)),
            "issue_action": tune.choice(list(sweep.issue_actions)),
        },
        sweep.num_samples,
    )


def _pack(a: np.ndarray, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def _unpack(s: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype=dtype)


def pack_runs(runs: list[dict]) -> list[dict]:
    """Per-seed runs with the prediction arrays as base64 strings (Tune metrics, JSON caches)."""
    return [{**r, "pred": _pack(r["pred"], "<i4"), "confidence": _pack(r["confidence"], "<f4")} for r in runs]


def unpack_runs(runs: list[dict]) -> list[dict]:
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


def _cell_record(arm: dict, row: dict, key: str) -> SweepCell:
    rec: dict[str, Any] = {
        "key": key, "threshold_kind": row["threshold_kind"], "threshold": row["threshold"], "aug_ratio": row["aug_ratio"],
        "issue_action": row["issue_action"], "no_action": bool(row["no_action"]), "same_as": row["same_as"],
        "seeds": arm["seeds"], "n_seeds": arm["n_seeds"],
        **{m: arm[m] for m in METRICS}, "seed_spread": arm["seed_spread"],
    }
    for c in ("train_rows", "n_augmented"):
        if c in arm:
            rec[c] = arm[c]
    if "vs_baseline" in arm:
        rec["vs_baseline"] = arm["vs_baseline"]
    return rec  # type: ignore[return-value]


def _rank_key(c: dict, metric: str) -> tuple:
    d = c.get("vs_baseline", {}).get(metric) if not c["no_action"] else {"lo": 0.0, "mean": 0.0}
    if d is None:
        return (math.inf, math.inf, c["aug_ratio"], -1.0, "")
    return (-d["lo"], -d["mean"], c["aug_ratio"], c["threshold"] if c["threshold"] is not None else -1.0, c["issue_action"])


def choose(configs: Sequence[SweepCell], metric: str) -> SweepCell | None:
    """The chosen cell (see :data:`CHOICE_RULE`): the highest lower bound above zero, else the baseline; None without a baseline."""
    base = next((c for c in configs if c["no_action"]), None)
    if base is None:
        return None
    better = [c for c in configs if not c["no_action"] and "vs_baseline" in c and c["vs_baseline"][metric]["lo"] > 0]
    return min(better, key=lambda c: _rank_key(c, metric)) if better else base


def summarize(
    results: pa.Table,
    y: Sequence[int] | np.ndarray,
    *,
    metric: str = "accuracy",
    num_labels: int | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    ece_bins: int = 15,
) -> dict[str, Any]:
    """Every finished cell on the validation split: metrics and difference to the baseline with
    paired-bootstrap intervals over the validation rows ``y`` (:func:`hardmine.evaluate.compare`),
    ranked by the lower bound of that difference in ``metric``, and the cell :func:`choose` picks.

    Returns ``configs`` (best first), ``baseline``, ``best`` (None when the baseline did not
    finish), ``bootstrap`` and ``notes``.
    """
    if metric not in ("accuracy", "macro_f1"):
        raise ValueError(f"metric must be 'accuracy' or 'macro_f1', got {metric!r}")
    done = [r for r in results.to_pylist() if r["status"] == "done"]
    if not done:
        return {"configs": [], "baseline": None, "best": None, "bootstrap": None, "notes": ["no cell finished"]}
    tk = done[0]["threshold_kind"]
    first: dict[str, dict] = {}
    for r in done:
        first.setdefault(cell_key(r, tk), r)
    runs = pa.table({
        "arm": [cell_key(r, tk) for r in done], "seed": [int(r["seed"]) for r in done],
        "pred": pa.array([r["pred"] for r in done], pa.list_(pa.int32())),
        "confidence": pa.array([r["confidence"] for r in done], pa.list_(pa.float32())),
        "train_rows": [r["train_rows"] for r in done], "n_augmented": [r["n_augmented"] for r in done],
    })
    s = compare(runs, np.asarray(y), num_labels=num_labels, resamples=resamples, confidence=confidence, seed=seed,
                ece_bins=ece_bins, pairs=())
    configs = [_cell_record(arm, first[key], key) for key, arm in s["arms"].items()]
    configs.sort(key=lambda c: _rank_key(c, metric))
    notes = list(s["notes"])
    base = next((c for c in configs if c["no_action"]), None)
    if base is None:
        notes.append("the baseline (no action) did not finish: no cell can be compared with it, nothing is chosen")
    return {"configs": configs, "baseline": base, "best": choose(configs, metric), "bootstrap": s["bootstrap"], "notes": notes}


def confirmation_record(
    runs: pa.Table,
    y: Sequence[int] | np.ndarray,
    *,
    cell: SweepCell,
    metric: str,
    train_rows: int,
    y_true: Sequence[int] | np.ndarray | None = None,
    num_labels: int | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    ece_bins: int = 15,
) -> SweepConfirmation:
    """The test split's verdict on the chosen cell: ``runs`` (arms ``baseline`` and, unless the
    baseline was chosen, ``chosen``; ``pred`` / ``confidence`` per test row) against the test labels
    ``y`` (and ``y_true`` when the truth is known), through :func:`hardmine.evaluate.compare`."""
    s = compare(runs, np.asarray(y), y_true=y_true, num_labels=num_labels, resamples=resamples, confidence=confidence,
                seed=seed, ece_bins=ece_bins, pairs=())
    rec: dict[str, Any] = {
        "split": "test", "rows": int(len(y)), "train_rows": int(train_rows), "metric": metric,
        "cell": {k: cell[k] for k in ("key", "threshold_kind", "threshold", "aug_ratio", "issue_action", "no_action")},
        "seeds": s["arms"][BASELINE]["seeds"], "arms": s["arms"], "label_sets": s["label_sets"], "truth": s["truth"],
        "bootstrap": s["bootstrap"], "notes": list(s["notes"]),
    }
    chosen = s["arms"].get("chosen")
    if chosen is not None and "vs_baseline" in chosen:
        rec["verdict"] = chosen["vs_baseline"][metric]["verdict"]
        if "true_labels" in chosen and "vs_baseline" in chosen["true_labels"]:
            rec["verdict_true_labels"] = chosen["true_labels"]["vs_baseline"][metric]["verdict"]
    else:
        rec["notes"].append("the baseline (no action) was chosen: the confirmation scores it alone")
    return rec  # type: ignore[return-value]


def sweep_best(
    summary: dict[str, Any],
    *,
    metric: str,
    selection: dict[str, Any],
    confirmation: SweepConfirmation | None,
    trials: dict[str, int],
    extra_notes: Sequence[str] = (),
) -> SweepBest:
    """``sweep/best.json``: the validation choice (:func:`summarize`) and its test confirmation."""
    best = summary["best"]
    if best is None:
        note = "nothing was chosen: " + "; ".join(summary["notes"][-1:] or ["no cell finished"])
    else:
        rows = selection["rows"]
        note = (
            f"chosen on the validation split ({rows} rows carved from the training rows, never the test split) by the "
            f"lower bound of the interval of its {metric} difference to the baseline (no action); its validation "
            f"numbers are optimistic (it was chosen on them). "
            + ("The test split then confirmed it once: see confirmation." if confirmation is not None else
               "Not yet confirmed on the test split (the sweep is incomplete: re-run to resume it).")
        )
    return {  # type: ignore[return-value]
        "metric": metric,
        "reference": BASELINE,
        "baseline": summary["baseline"],
        "best": best,
        "configs": summary["configs"],
        "selection": {**selection, "rule": CHOICE_RULE.format(metric=metric)},
        "bootstrap": summary["bootstrap"],
        "confirmation": confirmation,
        "trials": trials,
        "note": note,
        "notes": list(summary["notes"]) + list(extra_notes),
    }


def _pct_diff(d: dict | None) -> str:
    if d is None:
        return "-"
    return f"{100 * d['mean']:+.2f} [{100 * d['lo']:+.2f}, {100 * d['hi']:+.2f}] {d['verdict']}"


def _name(c: dict) -> str:
    if c["no_action"]:
        return "baseline (no action)"
    return f"{c['threshold_kind']}={c['threshold']:g} aug_ratio={c['aug_ratio']:g} issue_action={c['issue_action']}"


def format_results(best: SweepBest, top: int = 10) -> str:
    """The cells by lower bound (validation), the choice and its confirmation on test, as text (points)."""
    m = best["metric"]
    lines = [f"sweep cells on the validation split ({best['selection']['rows']} rows), by the lower bound of Δ {m} vs baseline:",
             f"{'threshold':>9} {'aug_ratio':>9} {'issue_action':<12} {'seeds':>5} {'train':>7} {'aug':>6}  "
             f"{m + ' %':<24} Δ vs baseline (points) [interval]"]
    for c in best["configs"][:top]:
        iv = c[m]
        thr = "-" if c["threshold"] is None else f"{c['threshold']:g}"
        act = "(none)" if c["no_action"] else c["issue_action"]
        lines.append(
            f"{thr:>9} {c['aug_ratio']:>9g} {act:<12} {c['n_seeds']:>5} {c.get('train_rows', float('nan')):>7.0f} "
            f"{c.get('n_augmented', float('nan')):>6.0f}  {100 * iv['mean']:6.2f} [{100 * iv['lo']:.2f}, {100 * iv['hi']:.2f}]  "
            f"{_pct_diff(c['vs_baseline'][m]) if 'vs_baseline' in c else 'reference' if c['no_action'] else '-'}"
        )
    if len(best["configs"]) > top:
        lines.append(f"... {len(best['configs']) - top} more cells in sweep/best.json")
    t = best["trials"]
    lines.append(f"cells: {t.get('done', 0)} trained, {t.get('shared', 0)} sharing another cell's runs, "
                 f"{t.get('error', 0)} failed, {t.get('incomplete', 0)} not finished")
    b = best["best"]
    if b is None:
        lines.append(best["note"])
        return "\n".join(lines)
    if b["no_action"]:
        lines.append(f"chosen on validation: the baseline (no action): no cell's {m} interval lies above it")
    else:
        lines.append(f"chosen on validation: {_name(b)}: Δ {m} {_pct_diff(b['vs_baseline'][m])}")
    conf = best.get("confirmation")
    if conf is None:
        lines.append("not confirmed on the test split yet (incomplete sweep)")
        return "\n".join(lines)
    for ls in conf["label_sets"]:
        tag = "given test labels" if ls == "given" else "true test labels (injected truth)"
        base = conf["arms"][BASELINE] if ls == "given" else conf["arms"][BASELINE]["true_labels"]
        line = f"confirmed on the test split ({conf['rows']} rows, {tag}): baseline {100 * base[m]['mean']:.2f}%"
        ch = conf["arms"].get("chosen")
        if ch is not None:
            rec = ch if ls == "given" else ch["true_labels"]
            line += f", chosen {100 * rec[m]['mean']:.2f}%, Δ {_pct_diff(rec['vs_baseline'][m])}"
        lines.append(line)
    return "\n".join(lines)


# ============================================================================ a cell's retrains (runs in a Tune trial or a Ray task)


def run_cell(inputs: dict, cell: dict) -> list[dict]:
    """Train ``cell`` over ``inputs['seeds']`` and score each model on the held-out rows of ``inputs['features']``.

    ``inputs``: dataset / scores / pool (the rows the trials may use), features (shared model inputs
    with the held-out rows as ``test_x`` / ``test_y``), threshold_kind, select_kw, seeds, train
    (``train_fold`` settings), num_labels, ece_bins. Returns one dict per seed with the metrics, the
    training-set counts and the per-row ``pred`` / ``confidence``.
    """
    from hardmine.oof.loop import train_fold

    out = []
    feats = inputs["features"]
    y = feats["shared"]["test_y"]
    for i, seed in enumerate(inputs["seeds"]):
        started = time.time()
        table, ssum = trial_training_set(
            inputs["dataset"], inputs["scores"], inputs["pool"], cell,
            threshold_kind=inputs["threshold_kind"], select_kw=inputs["select_kw"], seed=int(seed),
        )
        info = training_set_info(table)
        tcfg = dict(inputs["train"], seed=int(seed), data=assemble(feats["shared"], set_indices(table, feats)))
        probs = np.asarray(train_fold(tcfg, MemoryCheckpoints(), log=lambda s: None)["val_probs"])
        m = metrics(y, probs, inputs["num_labels"], inputs["ece_bins"])
        out.append({
            "repeat": i, "seed": int(seed), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "ece": m["ece"],
            "train_rows": table.num_rows, "n_augmented": info["n_augmented"], "requested_augmented": info["requested_augmented"],
            "n_augment_sources": int(ssum.get("actions", {}).get("augment", 0)), "n_dropped": info["n_dropped"],
            "n_relabelled": info["n_relabelled"], "started": started, "seconds": time.time() - started,
            "pred": probs.argmax(1).astype(np.int32), "confidence": probs.max(1).astype(np.float32),
        })
    return out


def _sweep_trial(config: dict, inputs: dict | None = None) -> None:
    """Function trainable: one cell over every seed, scored on the validation rows."""
    import torch
    from ray import tune

    torch.set_num_threads(max(1, int(inputs["train"]["threads"])))
    runs = run_cell(inputs, cell_of(config))
    tune.report({
        **{m: float(np.mean([r[m] for r in runs])) for m in METRICS},  # what Tune (random / optuna) optimises
        "runs": json.dumps(pack_runs(runs)),  # one string: every Tune logger stores it as it is
    })


def _cell_task_fn():
    import ray

    @ray.remote
    def cell_task(inputs: dict, cell: dict) -> list[dict]:
        import torch

        torch.set_num_threads(max(1, int(inputs["train"]["threads"])))
        return run_cell(inputs, cell)

    return cell_task


# ============================================================================ Ray part


def sweep_fingerprint(cfg: Config, store, pool: pa.Table) -> str:
    """Swept space + training settings + upstream stage fingerprints + the pool's rows."""
    from hardmine.store import fingerprint_bytes

    d = cfg.model_dump(mode="json")
    sweep = {k: v for k, v in d["sweep"].items() if k not in ("enabled",)}
    stages = store.manifest().get("stages", {})
    upstream = sorted((k, v.get("fingerprint")) for k, v in stages.items() if k in ("prepare", "oof", "holdout", "score"))
    h = hashlib.sha256()
    for i, t in zip(pool.column("id").to_pylist(), pool.column("text").to_pylist()):
        h.update(f"{i}\0{t}\0".encode())
    e = d["evaluate"]
    return fingerprint_bytes(
        json.dumps(sweep, sort_keys=True), cfg.section_hash("select", "oof", "train", "seed"),
        json.dumps({k: e[k] for k in ("epochs", "ece_bins", "bootstrap", "confidence", "backbone")}, sort_keys=True),
        repr(upstream), h.hexdigest(),
    )


def _search_alg(sweep, seed: int):
    if sweep.search == "grid":
        return None
    if sweep.search == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed)
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ValueError("sweep.search: optuna needs the optuna package (pip install optuna); or use grid or random") from None
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=seed)


def _take(x, idx: Sequence[int]):
    return [x[i] for i in idx] if isinstance(x, list) else np.asarray(x)[np.asarray(idx, dtype=np.int64)]


def sweep_features(cfg: Config, store, dataset: pa.Table, aug_texts: Sequence[str], log=print) -> dict[str, Any]:
    """Model inputs shared by every retrain: all training rows by id, the pool's texts; no held-out rows.

    Frozen: embeddings (embeddings.parquet, else embedded; augmented texts cached); finetune and
    tfidf: the texts. Reads no test artifact (held-out rows are added by :func:`with_heldout`).
    """
    from hardmine.evaluate import _embeddings_by_id, embed_cached

    ids = dataset.column("id").to_pylist()
    texts = dataset.column("text").to_pylist()
    aug_texts = list(dict.fromkeys(str(t) for t in aug_texts))
    if cfg.retrain_backbone == "frozen":
        if store.exists("embeddings.parquet"):  # written by the OOF stage's frozen member
            orig_x = _embeddings_by_id(store, "embeddings.parquet", ids, "training")
        else:
            orig_x = embed_cached(cfg, store, texts, log)
        aug_x = embed_cached(cfg, store, aug_texts, log) if aug_texts else np.zeros((0, orig_x.shape[1]), np.float32)
    else:
        orig_x, aug_x = texts, aug_texts
    return {"orig_pos": {i: n for n, i in enumerate(ids)}, "aug_pos": {t: n for n, t in enumerate(aug_texts)},
            "shared": {"orig_x": orig_x, "aug_x": aug_x}}


def with_heldout(features: dict, x, y) -> dict:
    """``features`` with the rows the retrains are scored on (``test_x`` / ``test_y`` of :func:`assemble`)."""
    return {**features, "shared": {**features["shared"], "test_x": x, "test_y": np.asarray(y, dtype=np.int64)}}


def _test_inputs_x(cfg: Config, store, test: pa.Table, log):
    if cfg.retrain_backbone != "frozen":
        return test.column("text").to_pylist()
    from hardmine.evaluate import _embeddings_by_id, embed_cached

    if store.exists("test_embeddings.parquet"):
        return _embeddings_by_id(store, "test_embeddings.parquet", test.column("id").to_pylist(), "held-out")
    return embed_cached(cfg, store, test.column("text").to_pylist(), log)


def _runs_table(arm_runs: dict[str, tuple[dict, list[dict]]], threshold_kind: str) -> pa.Table:
    rows = []
    for arm, (cell, runs) in arm_runs.items():
        for r in runs:
            rows.append({"arm": arm, "threshold_kind": threshold_kind, **{k: cell[k] for k in CELL_KEYS},
                         **{k: r.get(k) for k in CONFIRMATION.names if k in r}})
    return pa.Table.from_pylist(rows, schema=CONFIRMATION)


def confirm_on_test(cfg: Config, store, chosen: SweepCell, *, common: dict, features: dict, dataset: pa.Table,
                    scores: pa.Table, pool: pa.Table, log: Callable[[str], None] = print) -> tuple[SweepConfirmation, pa.Table]:
    """Retrain the chosen cell and the baseline on the full training split; score them once on the test split.

    The only reader of ``test.parquet`` and ``test_truth.parquet`` in the sweep; called after the
    choice is fixed. Returns (the confirmation record, the runs: :data:`CONFIRMATION`).
    """
    import ray

    from hardmine.evaluate import heldout_labels

    s = cfg.sweep
    test = store.read_table("test.parquet")
    truth = store.read_table("test_truth.parquet") if store.exists("test_truth.parquet") else None
    heldout, truth_note = heldout_labels(test, truth)
    y = heldout.column("label").to_numpy()
    true_col = heldout.column("true_label")
    y_true = true_col.to_numpy(zero_copy_only=False) if true_col.null_count == 0 else None
    inputs = {**common, "dataset": dataset, "scores": scores, "pool": pool,
              "features": with_heldout(features, _test_inputs_x(cfg, store, test, log), y)}
    cell = {k: chosen[k] for k in CELL_KEYS}
    arms = {BASELINE: NO_ACTION} if chosen["no_action"] else {BASELINE: NO_ACTION, "chosen": cell}
    log(f"[sweep] confirming on the test split ({test.num_rows} rows): "
        f"{' and '.join(_name({**c, 'threshold_kind': cfg.sweep.threshold, 'no_action': is_no_action(c)}) for c in arms.values())} "
        f"retrained on all {dataset.num_rows} training rows over {len(common['seeds'])} seeds")
    task = _cell_task_fn().options(num_cpus=s.cpus_per_trial, num_gpus=s.gpus_per_trial or None, max_retries=cfg.oof.max_failures)
    ref = ray.put(inputs)
    futures = {a: task.remote(ref, c) for a, c in arms.items()}
    got = {a: (arms[a], ray.get(f)) for a, f in futures.items()}
    runs = _runs_table(got, s.threshold)
    e = cfg.evaluate
    rec = confirmation_record(
        runs, y, cell=chosen, metric=s.metric, train_rows=dataset.num_rows, y_true=y_true,
        num_labels=common["num_labels"], resamples=e.bootstrap, confidence=e.confidence, seed=cfg.seed, ece_bins=e.ece_bins,
    )
    if truth_note:
        rec["truth"]["note"] = truth_note
    return rec, runs


def _read_json(fs, path: str):
    import pyarrow.fs as pafs

    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return json.loads(f.read())


def _write_json(fs, path: str, obj) -> None:
    from hardmine.store import _json_default

    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(json.dumps(obj, default=_json_default).encode())


def run_sweep(
    cfg: Config,
    store,
    pool_table: pa.Table,
    log: Callable[[str], None] = print,
    *,
    storage_path: str | None = None,
    resume: bool = True,
    callbacks: list | None = None,
    fingerprint: str | None = None,
    out: str = "sweep",
) -> pa.Table:
    """Run (or resume) the sweep, choose on validation, confirm on test once.

    Writes ``<out>/results.parquet`` (+ ``results.csv``), ``validation.parquet``, ``best.json``
    (:class:`hardmine.summaries.SweepBest`), ``confirmation.parquet`` and ``heatmap.png``.
    ``pool_table`` holds augmented variants (AUGMENTED schema; kept rows are used) generated once
    from the most permissive selection at the largest ``aug_ratio``. ``callbacks`` are Tune
    callbacks of a new experiment (a restored one keeps those it was started with).
    Returns the results table (one row per cell and seed, on the validation split).
    """
    import pyarrow.csv as pacsv
    import ray
    from ray.tune import FailureConfig, RunConfig, TuneConfig, Tuner

    from hardmine.runtime import connect, require_fit
    from hardmine.store import split_uri

    s = cfg.sweep
    if not store.exists("test.parquet"):
        raise ValueError("the sweep confirms its choice on a held-out split: set data.test_path, or data.test_size (e.g. 0.2)")
    t0 = time.time()
    reads_from = len(store.reads)
    labels = store.manifest()["labels"]
    dataset = store.read_table("dataset.parquet").select(["id", "text", "label"])
    train_rows, val_rows = validation_split(dataset, s.validation_size, cfg.seed, labels)  # before Ray, before any training
    connect(cfg, log)
    # one node must hold a trial; on an autoscaling cluster that has no such node yet, wait for it (logged)
    require_fit(s.cpus_per_trial, s.gpus_per_trial, what="a sweep trial",
                fix="lower sweep.cpus_per_trial / sweep.gpus_per_trial", error=ValueError, log=log)
    scores = store.read_table("scores.parquet")
    pool = _kept_pool(pool_table, "sweep")
    fingerprint = fingerprint or sweep_fingerprint(cfg, store, pool)
    val_ids = val_rows.column("id")
    trial_pool = pool.filter(pc.invert(pc.is_in(pool.column("source_id"), value_set=val_ids)))
    trial_scores = scores.filter(pc.invert(pc.is_in(scores.column("id").cast(pa.string()), value_set=val_ids)))
    features = sweep_features(cfg, store, dataset, pool.column("text").to_pylist(), log)
    val_y = val_rows.column("label").to_numpy().astype(np.int64)
    val_x = _take(features["shared"]["orig_x"], [features["orig_pos"][i] for i in val_ids.to_pylist()])
    seeds = [cfg.seed * 1000 + i for i in range(s.seeds)]
    select_kw = select_kwargs(cfg, labels)
    common = {
        "threshold_kind": s.threshold, "select_kw": select_kw, "seeds": seeds, "num_labels": len(labels),
        "ece_bins": cfg.evaluate.ece_bins,
        "train": train_settings(cfg, len(labels), threads=int(s.cpus_per_trial), epochs=cfg.evaluate.epochs, max_length=oof_max_length(store)),
    }
    inputs = {**common, "dataset": train_rows, "scores": trial_scores, "pool": trial_pool,
              "features": with_heldout(features, val_x, val_y)}
    cells, same_as = None, {}
    to_train: list[dict] | None = None
    if s.search == "grid":
        cells = grid_cells(s)
        same_as = shared_cells(train_rows, trial_scores, cells, threshold_kind=s.threshold, select_kw=select_kw, seed=seeds[0])
        to_train = [c for c in cells if cell_key(c, s.threshold) not in same_as]
    per_class = np.bincount(val_y, minlength=len(labels))
    log(f"[sweep] validation split: {val_rows.num_rows} of {dataset.num_rows} training rows "
        f"(sweep.validation_size {s.validation_size:g}, at least {int(per_class[per_class > 0].min())} per class); trials "
        f"train on the other {train_rows.num_rows}, without the {pool.num_rows - trial_pool.num_rows} pool variants of "
        f"validation rows; {len(seeds)} seeds per cell"
        + (f"; {len(same_as)} of {len(cells)} cells share another cell's training set and are not retrained" if same_as else ""))

    storage = storage_path or store.uri_of(f"{out}/tune")
    name = f"sweep-{fingerprint}"
    exp = storage.rstrip("/") + "/" + name
    fs, exp_path = split_uri(exp)
    restoring = resume and Tuner.can_restore(exp)
    if not restoring and fs.get_file_info(exp_path).type.name != "NotFound":
        fs.delete_dir(exp_path)
    baseline_cache, confirm_cache = f"{exp_path}/hardmine-baseline.json", f"{exp_path}/hardmine-confirmation.json"
    cached = _read_json(fs, baseline_cache) if resume else None
    task = _cell_task_fn().options(num_cpus=s.cpus_per_trial, num_gpus=s.gpus_per_trial or None, max_retries=cfg.oof.max_failures)
    base_future = None
    if cached is None:  # the baseline runs beside the Tune trials (it is in no search space)
        base_future = task.remote(ray.put(inputs), NO_ACTION)
    grid: Any = []
    if to_train is None or to_train:
        trainable = tune_trainable(inputs, s)
        if restoring:
            log(f"[sweep] resuming the interrupted sweep at {exp}: only unfinished cells run")
            tuner = Tuner.restore(exp, trainable, resume_errored=True)
        else:
            space, num_samples = param_space(s, to_train)
            tuner = Tuner(
                trainable,
                param_space=space,
                tune_config=TuneConfig(
                    metric=s.metric, mode="max", search_alg=_search_alg(s, cfg.seed), num_samples=num_samples,
                    max_concurrent_trials=s.max_concurrent_trials, reuse_actors=True,
                ),
                run_config=RunConfig(
                    name=name, storage_path=storage, callbacks=callbacks, verbose=0,
                    failure_config=FailureConfig(max_failures=cfg.oof.max_failures),
                ),
            )
        from hardmine.console import captured

        with captured("ray tune"):  # Tune's banner and trial tables: the run's log file
            grid = tuner.fit()
    base_runs, base_error = (unpack_runs(cached), None) if cached is not None else (None, None)
    if base_future is not None:
        try:
            base_runs = ray.get(base_future)
            _write_json(fs, baseline_cache, pack_runs(base_runs))
        except Exception as e:  # noqa: BLE001 - recorded as the baseline's error, like a failed trial
            base_error = f"{type(e).__name__}: {e}"[:2000]
    table = results_table(grid, s.threshold, seeds, baseline=(base_runs, base_error), cells=cells, same_as=same_as)
    e = cfg.evaluate
    summary = summarize(table, val_y, metric=s.metric, num_labels=len(labels), resamples=e.bootstrap,
                        confidence=e.confidence, seed=cfg.seed, ece_bins=e.ece_bins)
    # ---- the choice is fixed: nothing above read the test split (recorded for the leakage audit)
    statuses: dict[str, int] = {"done": 0, "error": 0, "incomplete": 0}
    for r in grid:
        m = r.metrics or {}
        statuses["error" if r.error is not None else "done" if "runs" in m else "incomplete"] += 1
    expected = len(to_train) if to_train is not None else s.num_samples
    trials = {**statuses, "expected": expected, "shared": len(same_as), "baseline_done": int(base_runs is not None)}
    selection = {
        "split": "validation", "rows": val_rows.num_rows, "validation_size": s.validation_size, "seed": cfg.seed,
        "train_rows": train_rows.num_rows, "seeds": seeds,
        "per_class": {labels[c]: int(n) for c, n in enumerate(per_class) if n},
        "pool_rows_excluded": pool.num_rows - trial_pool.num_rows,
        "reads": sorted(set(store.reads[reads_from:])),
    }
    store.write_table(f"{out}/results.parquet", table)
    buf = io.BytesIO()
    pacsv.write_csv(table.drop_columns(["pred", "confidence"]), buf)
    store.write_bytes(f"{out}/results.csv", buf.getvalue())
    store.write_table(f"{out}/validation.parquet", pa.table({"id": val_ids.cast(pa.string()), "label": pa.array(val_y, pa.int32())}, schema=VALIDATION))
    complete = statuses["done"] == expected and base_runs is not None
    confirmation, conf_runs = None, _runs_table({}, s.threshold)
    chosen = summary["best"]
    if chosen is not None and complete:
        cached_conf = _read_json(fs, confirm_cache)
        if cached_conf is not None and cached_conf.get("key") == chosen["key"]:
            log("[sweep] the test split already confirmed this choice: the recorded confirmation is reused")
            confirmation = cached_conf["record"]
            conf_runs = _runs_table({a: ({k: c[k] for k in CELL_KEYS}, unpack_runs(r)) for a, (c, r) in cached_conf["runs"].items()},
                                    s.threshold)
        else:
            confirmation, conf_runs = confirm_on_test(cfg, store, chosen, common=common, features=features, dataset=dataset,
                                                      scores=scores, pool=pool, log=log)
            packed = {}
            for arm in dict.fromkeys(conf_runs.column("arm").to_pylist()):
                rows = [r for r in conf_runs.to_pylist() if r["arm"] == arm]
                packed[arm] = ({k: rows[0][k] for k in CELL_KEYS},
                               pack_runs([{**r, "pred": np.asarray(r["pred"]), "confidence": np.asarray(r["confidence"])} for r in rows]))
            _write_json(fs, confirm_cache, {"key": chosen["key"], "record": confirmation, "runs": packed})
    best = sweep_best(summary, metric=s.metric, selection=selection, confirmation=confirmation, trials=trials)
    best["seconds"] = time.time() - t0
    best["experiment"] = exp
    store.write_json(f"{out}/best.json", best)
    store.write_table(f"{out}/confirmation.parquet", conf_runs)
    if best["configs"]:
        from hardmine.report import sweep_heatmap_png

        store.write_bytes(f"{out}/heatmap.png", sweep_heatmap_png(best))
    log(format_results(best))
    missing = expected - statuses["done"]
    if missing > 0 or base_runs is None:
        what = f"{missing} of {expected} cells" + (" and the baseline" if base_runs is None else "") if missing > 0 else "the baseline"
        log(f"[sweep] {what} did not finish (interrupted or failed): re-run to resume; the choice is confirmed on the "
            "test split once the sweep is complete")
    return table


def tune_trainable(inputs: dict, sweep):
    """The Tune trainable of the sweep's cells, with the trial's resources."""
    from ray import tune

    return tune.with_resources(
        tune.with_parameters(_sweep_trial, inputs=inputs), {"cpu": sweep.cpus_per_trial, "gpu": sweep.gpus_per_trial}
    )


def expected_trials(sweep) -> int:
    """Cells in a complete sweep: the grid's (before cells sharing a training set are merged), or ``num_samples``."""
    if sweep.search == "grid":
        return len(grid_cells(sweep))
    return sweep.num_samples
