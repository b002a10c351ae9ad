"""The training set of each arm of the evaluate stage (:func:`arm_training_set`), what it records
(:func:`training_set_info`) and the ``train.*`` each arm trains with (:func:`arm_train_settings`).

Pure numpy / pyarrow, no Ray. The opt-in arms built from other sources (self_training, reviewed)
are in :mod:`hardmine.evaluate.opt_in`.
"""
from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.checks import first, require_columns, require_unique_ids
from hardmine.config import Config
from hardmine.vocab import ARMS, HARD_ARM_MODES, REVIEW_AS

#: rows of a training set: the originals (possibly relabelled; origin ``original``) then the augmented
#: variants (origin ``augmented``).
TRAINING = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),
    ]
)
#: the schema metadata key of what :func:`arm_training_set` recorded
INFO_KEY = b"hardmine.training_set"


# ============================================================================ rows, ids and pools


def table_ids(table: pa.Table, what: str) -> list[str]:
    """The ``id`` column of ``table`` as strings; every id must be unique."""
    ids = table.column("id").cast(pa.string()).to_pylist()
    require_unique_ids(ids, what)
    return ids


def with_info(table: pa.Table, info: dict[str, Any]) -> pa.Table:
    """``table`` carrying ``info`` as its training-set record (read it with :func:`training_set_info`)."""
    return table.replace_schema_metadata({INFO_KEY: json.dumps(info).encode()})


def training_set_info(table: pa.Table) -> dict:
    """What :func:`arm_training_set` recorded: requested vs added rows, drops, relabels."""
    meta = table.schema.metadata or {}
    if INFO_KEY not in meta:
        raise ValueError("this table carries no training-set info: build it with arm_training_set")
    return json.loads(meta[INFO_KEY])


def kept_pool(pool: pa.Table | None, what: str) -> pa.Table:
    """Rows of an augmented pool (AUGMENTED schema) with ``kept == True`` and a text."""
    fix = "pass the table written by the augment stage (hardmine.schema.AUGMENTED)"
    if pool is None:
        raise ValueError(f"the {what} pool is missing; {fix}")
    require_columns(pool, ["id", "source_id", "label"], f"{what} pool", fix, no_nulls=True)
    require_columns(pool, ["text", "kept"], f"{what} pool", fix)
    kept = pc.fill_null(pool.column("kept"), False)
    kept = pc.and_(kept, pc.is_valid(pool.column("text")))
    out = pool.filter(kept).select(["id", "source_id", "text", "label", "kept"])
    return out.cast(
        pa.schema([("id", pa.string()), ("source_id", pa.string()), ("text", pa.string()), ("label", pa.int32()), ("kept", pa.bool_())])
    )


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def spread_order(source_ids: Sequence[str], seed: int, stream: int) -> np.ndarray:
    """A seeded order of pool rows that covers every source once before any source twice."""
    n = len(source_ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, stream])
    key_in, _ = rng.random(n), rng.random(n)  # the second draw is unused; it keeps the seeded orders as they were
    _, src = np.unique(np.asarray(source_ids, dtype=object).astype(str), return_inverse=True)
    by_src = np.lexsort((key_in, src))  # grouped by source, random within
    sorted_src = src[by_src]
    starts = np.flatnonzero(np.r_[True, sorted_src[1:] != sorted_src[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[by_src] = np.arange(n) - group_start
    # round r takes the r-th variant of every source; the order inside a round is random too
    src_key = rng.random(int(src.max()) + 1)
    return np.lexsort((src_key[src], rank))


def _sample(pool: pa.Table, n: int, seed: int, stream: int) -> pa.Table:
    if n <= 0 or pool.num_rows == 0:
        return pool.slice(0, 0)
    order = spread_order(pool.column("source_id").to_pylist(), seed, stream)[:n]
    return pool.take(pa.array(np.sort(order)))


# ============================================================================ training sets


def arm_training_set(
    dataset: pa.Table,
    selected: pa.Table | None,
    pool: pa.Table | None,
    random_pool: pa.Table | None,
    arm: str,
    *,
    aug_ratio: float,
    review_as: str = "drop",
    seed: int = 0,
    scores: pa.Table | None = None,
    hard_weighting: str = "upweight",
    hard_weight_cap: float = 3.0,
) -> pa.Table:
    """The training set of one arm: columns id, text, label, origin (``original`` / ``augmented``).

    - clean arms apply the selection's actions: ``drop`` rows are removed, ``relabel`` rows take
      ``new_label``; ``review`` rows are dropped, kept, or relabelled to the scores'
      ``suggested_label`` per ``review_as`` (``relabel`` needs ``scores``; a review row without a
      different suggested label stays as it is);
    - targeted arms add ``round(aug_ratio * len(dataset))`` kept rows of ``pool`` whose source the
      selection sent to ``augment``, sampled with ``seed`` so every source is used once before any
      is used twice; fewer if the pool is smaller;
    - ``random`` adds as many kept rows of ``random_pool`` as the targeted arm would (same budget);
    - ``hard_weighted``: the baseline rows with ``hard_weighting`` (see :func:`hard_weighted_mode`)
      from ``scores``' ``hardness`` / ``is_label_issue``: ``upweight`` adds a ``weight`` column
      (:func:`hardmine.oof.settings.hardness_weights` with ``hard_weight_cap``: label issues 1),
      ``oversample`` repeats rows (:func:`hardmine.oof.settings.oversample_counts`, seeded),
      ``ohem`` adds an ``exempt`` column (the label issues, which OHEM never picks) when ``scores``
      is given; the training loop does the rest;
    - ``adversarial``: the baseline rows (the loop adds FGM, see :func:`arm_train_settings`).

    What was requested and what was possible is recorded in the schema metadata:
    read it with :func:`training_set_info`.
    """
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}: choose from {list(ARMS)}")
    if arm == "hard_weighted" and hard_weighting not in HARD_ARM_MODES:
        raise ValueError(f"the hard_weighted arm's hard_weighting must be one of {list(HARD_ARM_MODES)}, got {hard_weighting!r}")
    if review_as not in REVIEW_AS:
        raise ValueError(f"review_as must be one of {list(REVIEW_AS)}, got {review_as!r}")
    if isinstance(aug_ratio, bool) or not isinstance(aug_ratio, (int, float)) or not math.isfinite(aug_ratio) or aug_ratio < 0:
        raise ValueError(f"aug_ratio must be a number >= 0 (share of the training size), got {aug_ratio!r}")
    require_columns(dataset, ["id", "text", "label"], "dataset", "pass dataset.parquet (id, text, label, label_name)", no_nulls=True)
    ids = table_ids(dataset, "dataset")
    texts = dataset.column("text").to_pylist()
    labels = dataset.column("label").to_numpy().astype(np.int64)
    n_train = len(ids)
    keep = np.ones(n_train, dtype=bool)
    clean = arm in ("clean", "clean+targeted")
    targeted = arm in ("targeted", "clean+targeted")
    info: dict[str, Any] = {
        "arm": arm, "seed": int(seed), "n_train": n_train, "aug_ratio": float(aug_ratio), "review_as": review_as,
        "n_dropped": 0, "n_relabelled": 0, "n_review": 0, "requested_augmented": 0, "available_augmented": 0,
        "n_augmented": 0,
    }

    action = new_label = None
    if clean:
        action, new_label = _selection_for(selected, ids)
        drop = action == "drop"
        relabel = (action == "relabel") & (new_label != labels)
        review = action == "review"
        info["n_review"] = int(review.sum())
        if review_as == "drop":
            drop = drop | review
        elif review_as == "relabel" and review.any():
            sugg = _suggested_for(scores, ids)
            usable = review & (sugg >= 0) & (sugg != labels)
            new_label = np.where(usable, sugg, new_label)
            relabel = relabel | usable
        keep &= ~drop
        labels = np.where(relabel & keep, new_label, labels)
        info["n_dropped"] = int(drop.sum())
        info["n_relabelled"] = int((relabel & keep).sum())

    rows = np.flatnonzero(keep)
    extra: dict[str, pa.Array] = {}
    if arm == "hard_weighted":
        rows, extra = _hard_weighting(scores, ids, hard_weighting, hard_weight_cap, seed, info)
    originals = pa.table(
        {
            "id": pa.array([ids[i] for i in rows], pa.string()),
            "text": pa.array([texts[i] for i in rows], pa.string()),
            "label": pa.array(labels[rows], pa.int32()),
            "origin": pa.array(["original"] * len(rows), pa.string()),
        },
        schema=TRAINING,
    )
    for name, col in extra.items():  # weight / exempt: only the hard_weighted arm has them (no augmented rows)
        originals = originals.append_column(name, col)
    parts = [originals]
    if targeted or arm == "random":
        requested = round_half_up(aug_ratio * n_train)
        info["requested_augmented"] = requested
        if requested > 0:
            tpool = kept_pool(pool, "targeted")
            known = set(ids)
            stray = [s for s in tpool.column("source_id").to_pylist() if s not in known]
            if stray:
                raise ValueError(
                    f"{len(stray)} pool rows have a source_id that is not in the dataset (e.g. {first(sorted(set(stray)))}); "
                    "the augmented pool must come from this run's training split"
                )
            if action is None:
                action, _ = _selection_for(selected, ids)
            augment_ids = pa.array([i for i, a in zip(ids, action) if a == "augment"], pa.string())
            tpool = tpool.filter(pc.is_in(tpool.column("source_id"), value_set=augment_ids))
            budget = min(requested, tpool.num_rows)
            if targeted:
                info["available_augmented"] = tpool.num_rows
                chosen = _sample(tpool, budget, seed, stream=1)
            else:
                rpool = kept_pool(random_pool, "random")
                info["available_augmented"] = rpool.num_rows
                info["targeted_budget"] = budget
                chosen = _sample(rpool, min(budget, rpool.num_rows), seed, stream=2)
            info["n_augmented"] = chosen.num_rows
            parts.append(
                pa.table(
                    {
                        "id": chosen.column("id"),
                        "text": chosen.column("text"),
                        "label": chosen.column("label"),
                        "origin": pa.array(["augmented"] * chosen.num_rows, pa.string()),
                    },
                    schema=TRAINING,
                )
            )
    info["shortfall"] = int(info["requested_augmented"] - info["n_augmented"]) if info["requested_augmented"] else 0
    out = pa.concat_tables(parts)
    info["train_rows"] = out.num_rows
    return with_info(out, info)


def hard_weighted_mode(cfg: Config) -> str:
    """The ``hard_weighted`` arm's weighting: ``train.hard_weighting``, or ``upweight`` when that is ``none``."""
    return "upweight" if cfg.train.hard_weighting == "none" else cfg.train.hard_weighting


def arm_train_settings(cfg: Config, arm: str) -> dict[str, Any]:
    """The ``train.*`` keys of one arm's retrains (they override :func:`hardmine.oof.settings.train_settings`' fold recipe).

    ``hard_weighted`` trains with :func:`hard_weighted_mode` (``oversample`` is done by the training
    set, the loop then trains plainly), ``adversarial`` with FGM at ``train.fgm_epsilon`` (whatever
    ``train.adversarial`` says); every other arm without emphasis or FGM, so that it differs from
    ``baseline`` only in its training rows."""
    t = cfg.train
    out: dict[str, Any] = {"hard_weighting": "none", "hard_weight_cap": t.hard_weight_cap, "ohem_keep": t.ohem_keep,
                           "adversarial": "none", "fgm_epsilon": t.fgm_epsilon}
    if arm == "hard_weighted":
        out["hard_weighting"] = hard_weighted_mode(cfg)
    elif arm == "adversarial":
        out["adversarial"] = "fgm"
    return out


def training_notes(cfg: Config, arms: Sequence[str], infos: dict[str, dict]) -> list[str]:
    """One line per arm that trains with ``train.*`` (what it does), for the log."""
    out = []
    if "hard_weighted" in arms:
        i, t = infos["hard_weighted"], cfg.train
        mode = i.get("hard_weighting", hard_weighted_mode(cfg))
        what = {
            "upweight": f"loss weights 1 + {t.hard_weight_cap - 1:g} x hardness on {i.get('n_upweighted', 0)} rows (mean {i.get('mean_weight', 1.0):.2f})",
            "oversample": f"{i.get('n_repeated', 0)} repeats of hard rows (weights 1 + {t.hard_weight_cap - 1:g} x hardness)",
            "ohem": f"OHEM, the {t.ohem_keep:g} highest-loss share of each batch",
        }[mode]
        default = " (train.hard_weighting is none: the arm uses upweight)" if t.hard_weighting == "none" else ""
        out.append(f"arm hard_weighted: {what}; {i.get('n_label_issues', 0)} label issues kept at weight 1{default}")
    if "adversarial" in arms:
        out.append(f"arm adversarial: FGM on the word embeddings, epsilon {cfg.train.fgm_epsilon:g}")
    return out


def _hard_weighting(scores: pa.Table | None, ids: list[str], mode: str, cap: float, seed: int,
                    info: dict[str, Any]) -> tuple[np.ndarray, dict[str, pa.Array]]:
    """The ``hard_weighted`` arm's rows (positions in ``ids``, repeated under ``oversample``) and extra columns."""
    from hardmine.oof.settings import hardness_weights, oversample_counts

    n = len(ids)
    info.update(hard_weighting=mode, hard_weight_cap=float(cap))
    if scores is None:
        if mode == "ohem":  # OHEM needs no scores: without them no label issue is known (none exempt)
            info.update(n_label_issues=0, n_repeated=0)
            return np.arange(n), {}
        raise ValueError(
            f"the hard_weighted arm ({mode}) needs the hardness of every row: pass scores.parquet (hardness, is_label_issue) "
            "written by the score stage"
        )
    hardness, issue = hardness_for(scores, ids)
    info["n_label_issues"] = int(issue.sum())
    if mode == "ohem":
        info["n_repeated"] = 0
        return np.arange(n), {"exempt": pa.array(issue, pa.bool_())}
    w = hardness_weights(hardness, issue, cap)
    info.update(mean_weight=float(w.mean()) if n else 1.0, max_weight=float(w.max()) if n else 1.0,
                n_upweighted=int((w > 1.0).sum()))
    if mode == "upweight":
        info["n_repeated"] = 0
        return np.arange(n), {"weight": pa.array(w.astype(np.float32), pa.float32())}
    counts = oversample_counts(w, seed)
    info["n_repeated"] = int(counts.sum() - n)
    return np.repeat(np.arange(n), counts), {}


def _positions(table: pa.Table, what: str, ids: list[str], missing_says: str, fix: str) -> np.ndarray:
    """Row positions of ``ids`` in ``table`` (by its unique ``id`` column); every id must be there."""
    pos = {i: n for n, i in enumerate(table_ids(table, what))}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise ValueError(f"{len(missing)} dataset ids {missing_says} (e.g. {first(missing)}); {fix}")
    return np.fromiter((pos[i] for i in ids), dtype=np.int64, count=len(ids))


def hardness_for(scores: pa.Table, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hardness, is_label_issue) of ``ids`` from scores.parquet."""
    fix = "pass scores.parquet written by the score stage for this dataset"
    require_columns(scores, ["id", "hardness", "is_label_issue"], "scores", fix, no_nulls=True)
    idx = _positions(scores, "scores", ids, "are not scored", fix)
    hardness = scores.column("hardness").to_numpy().astype(np.float64)[idx]
    issue = np.asarray(scores.column("is_label_issue").to_pylist(), dtype=bool)[idx]
    return hardness, issue


def _selection_for(selected: pa.Table | None, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(action, new_label) aligned with ``ids``."""
    fix = "pass selected.parquet written by the select stage for this dataset"
    if selected is None:
        raise ValueError(f"clean and targeted arms need the selection; {fix}")
    require_columns(selected, ["id", "action", "new_label"], "selected", fix, no_nulls=True)
    idx = _positions(selected, "selected", ids, "have no row in the selection", fix)
    action = np.asarray(selected.column("action").to_pylist(), dtype=object)[idx]
    new_label = selected.column("new_label").to_numpy().astype(np.int64)[idx]
    return action, new_label


def _suggested_for(scores: pa.Table | None, ids: list[str]) -> np.ndarray:
    fix = "pass scores.parquet (it holds suggested_label), or use review_as='drop' / 'keep'"
    if scores is None:
        raise ValueError(f"review_as='relabel' needs the suggested labels; {fix}")
    require_columns(scores, ["id", "suggested_label"], "scores", fix, no_nulls=True)
    return scores.column("suggested_label").to_numpy().astype(np.int64)[_positions(scores, "scores", ids, "are not scored", fix)]


