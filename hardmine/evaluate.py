"""Retrain on acted-on training sets and evaluate on the held-out split.

Arms (the training sets compared; every arm is scored on the same held-out rows):

- ``baseline``        the training split as loaded;
- ``clean``           after the selection's issue actions (drop / relabel; ``review`` rows per ``review_as``);
- ``targeted``        baseline + augmented variants of the hard samples (``augmented.parquet``);
- ``clean+targeted``  both;
- ``random``          control: baseline + the same number of variants made from randomly chosen
                      training rows (``augmented_random.parquet``), i.e. the same budget untargeted.
- ``hard_weighted``   (opt-in) the baseline rows trained with ``train.hard_weighting`` (``upweight``
                      when that is ``none``): per-row loss weights from ``scores.parquet``'s
                      hardness, rows repeated (``oversample``), or OHEM; label issues never up-weighted;
- ``adversarial``     (opt-in) the baseline rows trained with FGM on the word embeddings
                      (``train.fgm_epsilon``; finetune only).
- ``self_training``   (opt-in) baseline + the pool rows (``data.unlabelled_path``) the fold models
                      pseudo-label under ``pseudo.*`` (:mod:`hardmine.pseudo`); pool ids on the
                      training or held-out split are refused, pool texts equal to a held-out text left out;
- ``reviewed``        (opt-in) the rows as prepared (version 0) with the labels of the newest reviewed
                      dataset version, trained beside ``before_review`` (the same rows, version 0's
                      labels); the pair ``reviewed - before_review`` is the review's effect.

Only ``hard_weighted`` and ``adversarial`` train with ``train.*``; every other arm trains without
it (:func:`arm_train_settings`), so each arm differs from ``baseline`` in one thing.

Each arm runs over several seeds (seed ``s`` of every arm shares the initialisation and
shuffling seed). Intervals come from a paired bootstrap over the held-out rows
(:mod:`hardmine.stats`): every arm is scored on the same resampled rows, its seeds averaged
within a resample, so an interval covers the test set's sampling noise and the seeds' (a
converged model gives the same predictions for every seed: an interval over seeds alone would
have zero width). A difference to ``baseline`` counts only when its interval excludes zero;
otherwise it is reported as "not distinguishable". An exact McNemar test per arm against
``baseline`` goes with it. When the held-out rows' true labels are known (injected noise:
``test_truth.parquet``, written by the prepare stage for the demo and benchmarks), every
number is also reported against the true labels, labelled as such.

Pure part (numpy / pyarrow, no Ray): :func:`arm_training_set`, :func:`metrics`,
:func:`interval`, :func:`compare`, :func:`format_summary`. Ray part: :func:`retrain_many`,
:func:`run_evaluate` (trainings run concurrently, reusing the OOF runner's idioms and the one
training loop :func:`hardmine.oof.loop.train_fold`, whose "val" split is the held-out split;
nothing in the loop selects on it). The summary's contract is
:class:`hardmine.summaries.EvaluationSummary`.
"""
from __future__ import annotations

import functools
import json
import math
import time
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.config import ARMS, Config
from hardmine.oof.settings import oof_max_length, train_settings  # noqa: F401 - also imported from here by sweep
from hardmine.stats import METRICS, MCNEMAR_POOLING, bootstrap_metrics, interval, mcnemar, paired_difference, percentile_interval
from hardmine.summaries import ArmSummary, Comparison, EvaluationSummary, LabelScores, Pair

#: rows of a training set: the originals (possibly relabelled) then the augmented variants.
TRAINING = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),
    ]
)
ORIGINS = ("original", "augmented")
REVIEW_AS = ("drop", "relabel", "keep")
#: what the ``hard_weighted`` arm may train with (``train.hard_weighting``, ``none`` meaning upweight)
HARD_ARM_MODES = ("upweight", "oversample", "ohem")
_META_KEY = b"hardmine.training_set"

#: one row per (arm, seed) retrain, written to ``evaluation/runs.parquet``.
RUNS = pa.schema(
    [
        pa.field("arm", pa.string()),
        pa.field("seed", pa.int32()),
        pa.field("train_rows", pa.int64()),
        pa.field("n_augmented", pa.int64()),
        pa.field("requested_augmented", pa.int64()),
        pa.field("n_dropped", pa.int64()),
        pa.field("n_relabelled", pa.int64()),
        pa.field("accuracy", pa.float64()),
        pa.field("macro_f1", pa.float64()),
        pa.field("ece", pa.float64()),
        pa.field("per_class_f1", pa.list_(pa.float64())),
        pa.field("seconds", pa.float64()),
        # per held-out row (test.parquet order): the predicted class and its probability
        pa.field("pred", pa.list_(pa.int32())),
        pa.field("confidence", pa.list_(pa.float32())),
    ]
)
#: the held-out rows once, in the order of ``runs.pred``: ``evaluation/heldout.parquet``.
#: ``true_label`` is null where no true label is known.
HELDOUT = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("true_label", pa.int32()),
    ]
)
#: differences between arms reported beside those to baseline
PAIRS = (("targeted", "random"), ("clean+targeted", "clean"))


# ============================================================================ validation helpers


def _first(values, k: int = 5) -> str:
    values = list(values)
    more = f" (and {len(values) - k} more)" if len(values) > k else ""
    return ", ".join(repr(v) for v in values[:k]) + more


def _need(table, cols: Sequence[str], what: str, fix: str) -> None:
    if not isinstance(table, pa.Table):
        raise ValueError(f"{what} must be a pyarrow Table, got {type(table).__name__}; {fix}")
    missing = [c for c in cols if c not in table.column_names]
    if missing:
        raise ValueError(f"{what} lacks columns {missing} (has {table.column_names}); {fix}")
    for c in cols:
        if table.column(c).null_count:
            rows = np.flatnonzero(pc.is_null(table.column(c)).to_numpy(zero_copy_only=False))
            raise ValueError(f"{what} column {c!r} is null in rows {_first(rows.tolist())}; fill or drop those rows")


def _ids(table: pa.Table, what: str) -> list[str]:
    ids = table.column("id").cast(pa.string()).to_pylist()
    if len(set(ids)) != len(ids):
        seen, dup = set(), []
        for i in ids:
            if i in seen:
                dup.append(i)
            seen.add(i)
        raise ValueError(f"{what} has duplicate ids {_first(sorted(set(dup)))}; ids must be unique")
    return ids


def _kept_pool(pool: pa.Table | None, what: str) -> pa.Table:
    """Rows of an augmented pool (AUGMENTED schema) with ``kept == True`` and a text."""
    fix = "pass the table written by the augment stage (hardmine.schema.AUGMENTED)"
    if pool is None:
        raise ValueError(f"the {what} pool is missing; {fix}")
    _need(pool, ["id", "source_id", "label"], f"{what} pool", fix)
    for c in ("text", "kept"):
        if c not in pool.column_names:
            raise ValueError(f"{what} pool lacks column {c!r} (has {pool.column_names}); {fix}")
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
    key_in, key_out = rng.random(n), rng.random(n)
    _, src = np.unique(np.asarray(source_ids, dtype=object).astype(str), return_inverse=True)
    by_src = np.lexsort((key_in, src))  # grouped by source, random within
    sorted_src = src[by_src]
    starts = np.flatnonzero(np.r_[True, sorted_src[1:] != sorted_src[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[by_src] = np.arange(n) - first
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
    _need(dataset, ["id", "text", "label"], "dataset", "pass dataset.parquet (id, text, label, label_name)")
    ids = _ids(dataset, "dataset")
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
            tpool = _kept_pool(pool, "targeted")
            known = set(ids)
            stray = [s for s in tpool.column("source_id").to_pylist() if s not in known]
            if stray:
                raise ValueError(
                    f"{len(stray)} pool rows have a source_id that is not in the dataset (e.g. {_first(sorted(set(stray)))}); "
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
                rpool = _kept_pool(random_pool, "random")
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
    return out.replace_schema_metadata({_META_KEY: json.dumps(info).encode()})


def hard_weighted_mode(cfg: Config) -> str:
    """The ``hard_weighted`` arm's weighting: ``train.hard_weighting``, or ``upweight`` when that is ``none``."""
    return "upweight" if cfg.train.hard_weighting == "none" else cfg.train.hard_weighting


def arm_train_settings(cfg: Config, arm: str) -> dict[str, Any]:
    """The ``train.*`` keys of one arm's retrains (they override :func:`train_settings`' fold recipe).

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


def _training_notes(cfg: Config, arms: Sequence[str], infos: dict[str, dict]) -> list[str]:
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
    hardness, issue = _hardness_for(scores, ids)
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
    pos = {i: n for n, i in enumerate(_ids(table, what))}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise ValueError(f"{len(missing)} dataset ids {missing_says} (e.g. {_first(missing)}); {fix}")
    return np.fromiter((pos[i] for i in ids), dtype=np.int64, count=len(ids))


def _hardness_for(scores: pa.Table, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hardness, is_label_issue) of ``ids`` from scores.parquet."""
    fix = "pass scores.parquet written by the score stage for this dataset"
    _need(scores, ["id", "hardness", "is_label_issue"], "scores", fix)
    idx = _positions(scores, "scores", ids, "are not scored", fix)
    hardness = scores.column("hardness").to_numpy().astype(np.float64)[idx]
    issue = np.asarray(scores.column("is_label_issue").to_pylist(), dtype=bool)[idx]
    return hardness, issue


def training_set_info(table: pa.Table) -> dict:
    """What :func:`arm_training_set` recorded: requested vs added rows, drops, relabels."""
    meta = table.schema.metadata or {}
    if _META_KEY not in meta:
        raise ValueError("this table carries no training-set info: build it with arm_training_set")
    return json.loads(meta[_META_KEY])


def _selection_for(selected: pa.Table | None, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(action, new_label) aligned with ``ids``."""
    fix = "pass selected.parquet written by the select stage for this dataset"
    if selected is None:
        raise ValueError(f"clean and targeted arms need the selection; {fix}")
    _need(selected, ["id", "action", "new_label"], "selected", fix)
    idx = _positions(selected, "selected", ids, "have no row in the selection", fix)
    action = np.asarray(selected.column("action").to_pylist(), dtype=object)[idx]
    new_label = selected.column("new_label").to_numpy().astype(np.int64)[idx]
    return action, new_label


def _suggested_for(scores: pa.Table | None, ids: list[str]) -> np.ndarray:
    fix = "pass scores.parquet (it holds suggested_label), or use review_as='drop' / 'keep'"
    if scores is None:
        raise ValueError(f"review_as='relabel' needs the suggested labels; {fix}")
    _need(scores, ["id", "suggested_label"], "scores", fix)
    return scores.column("suggested_label").to_numpy().astype(np.int64)[_positions(scores, "scores", ids, "are not scored", fix)]


# ---------------------------------------------------------------------------- the self_training and reviewed arms

#: the reviewed arm's partner: the same rows with the labels before review (version 0), trained and reported beside it
BEFORE_REVIEW = "before_review"


def _baseline_rows(dataset: pa.Table, arm: str, seed: int, info_update: dict) -> pa.Table:
    """The baseline training set of ``dataset`` recorded as ``arm``."""
    base = arm_training_set(dataset, None, None, None, "baseline", aug_ratio=0.0, seed=seed)
    info = {**training_set_info(base), "arm": arm, **info_update}
    return base.replace_schema_metadata({_META_KEY: json.dumps(info).encode()})


def self_training_set(dataset: pa.Table, pseudo: pa.Table, *, seed: int = 0, report: dict | None = None) -> pa.Table:
    """The ``self_training`` arm: the baseline rows plus pseudo-labelled pool rows (id, text, label).

    The pool rows are new ids: they travel as extra rows (origin ``augmented``, so the retrain
    looks their inputs up by text) and count in ``n_pseudo``, not in ``n_augmented``.
    """
    _need(pseudo, ["id", "text", "label"], "pseudo-labelled rows", "pass hardmine.pseudo.self_training_rows' table")
    clash = sorted(set(_ids(pseudo, "pseudo-labelled rows")) & set(_ids(dataset, "dataset")))
    if clash:
        raise ValueError(f"pseudo-labelled rows {_first(clash)} are already training rows: the pool must hold new rows only")
    base = _baseline_rows(dataset, "self_training", seed, {})
    add = pa.table({
        "id": pseudo.column("id").cast(pa.string()), "text": pseudo.column("text").cast(pa.string()),
        "label": pseudo.column("label").cast(pa.int32()), "origin": pa.array(["augmented"] * pseudo.num_rows, pa.string()),
    }, schema=TRAINING)
    info = training_set_info(base)
    info.update(n_pseudo=pseudo.num_rows, train_rows=base.num_rows + pseudo.num_rows,
                pseudo={k: v for k, v in (report or {}).items() if k != "per_class"})
    out = pa.concat_tables([base.replace_schema_metadata(None), add])
    return out.replace_schema_metadata({_META_KEY: json.dumps(info).encode()})


def relabelled_set(dataset: pa.Table, labels_by_id: dict[str, int], arm: str, *, seed: int = 0, version: int = 0) -> pa.Table:
    """The rows of ``dataset`` named in ``labels_by_id``, with those labels (the ``reviewed`` arm and its partner)."""
    ids = _ids(dataset, "dataset")
    missing = sorted(set(labels_by_id) - set(ids))
    if missing:
        raise ValueError(f"dataset version {version} has ids the training rows lack (e.g. {_first(missing)}): re-run the prepare stage")
    keep = np.array([i in labels_by_id for i in ids], dtype=bool)
    old = dataset.column("label").to_numpy().astype(np.int64)[keep]
    sub = dataset.filter(pa.array(keep))
    new = np.array([labels_by_id[i] for i in sub.column("id").to_pylist()], dtype=np.int64)
    sub = sub.set_column(sub.schema.get_field_index("label"), "label", pa.array(new, pa.int32()))
    return _baseline_rows(sub, arm, seed, {"version": int(version), "n_relabelled": int((new != old).sum()),
                                           "n_dropped": int((~keep).sum())})


def _same_training_rows(a: pa.Table, b: pa.Table) -> bool:
    return a.num_rows == b.num_rows and a.select(["id", "text", "label", "origin"]).equals(b.select(["id", "text", "label", "origin"]))


def opt_in_sets(cfg: Config, store, dataset: pa.Table, test: pa.Table, arms: Sequence[str], seeds: int,
                log: Callable[[str], None] = print) -> dict[tuple[str, int], pa.Table]:
    """Training sets of the self_training and reviewed arms (reviewed brings :data:`BEFORE_REVIEW`)."""
    from hardmine.data import DataError

    out: dict[tuple[str, int], pa.Table] = {}
    if "self_training" in arms:
        from hardmine.pseudo import self_training_rows

        rows, report = self_training_rows(cfg, store, dataset, test, log)
        for s in range(seeds):
            out[("self_training", s)] = self_training_set(dataset, rows, seed=cfg.seed * 1000 + s, report=report)
    if "reviewed" in arms:
        from hardmine.review_cmd import newest_version, version_table

        newest = newest_version(store)
        if not newest:
            raise DataError("evaluate.arms has reviewed, but the run has no reviewed dataset version: import corrections "
                            "(`hardmine review import`) first, or remove reviewed from evaluate.arms")
        v0, vl = version_table(store, 0), version_table(store, newest)
        before = dict(zip(v0.column("id").to_pylist(), v0.column("label").to_numpy().astype(np.int64).tolist()))
        latest = dict(zip(vl.column("id").to_pylist(), vl.column("label").to_numpy().astype(np.int64).tolist()))
        after = {i: latest.get(i, lab) for i, lab in before.items()}  # the rows as prepared; pseudo-labelled rows left out
        changed = sum(before[i] != after[i] for i in before)
        log(f"reviewed arm: the labels of dataset version {newest} ({changed} of {len(before)} differ from version 0) against "
            f"those before review, on the same {len(before)} rows")
        for s in range(seeds):
            out[("reviewed", s)] = relabelled_set(dataset, after, "reviewed", seed=cfg.seed * 1000 + s, version=newest)
            out[(BEFORE_REVIEW, s)] = relabelled_set(dataset, before, BEFORE_REVIEW, seed=cfg.seed * 1000 + s, version=0)
    return out


# ============================================================================ metrics


def metrics(y_true, probs, num_labels: int, ece_bins: int = 15) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class F1 and expected calibration error of predicted probabilities.

    Per-class F1 is NaN for a class absent from both truth and predictions; macro-F1 averages the
    others (sklearn's default label set). ECE uses ``ece_bins`` equal-width confidence bins.
    """
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)) or num_labels < 1:
        raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}")
    if isinstance(ece_bins, bool) or not isinstance(ece_bins, (int, np.integer)) or ece_bins < 1:
        raise ValueError(f"ece_bins must be a positive integer, got {ece_bins!r}")
    if p.ndim != 2 or p.shape[1] != num_labels:
        raise ValueError(f"probs must have shape (n, {num_labels}), got {p.shape}")
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise ValueError(f"y_true must have one label per row of probs ({p.shape[0]}), got shape {y.shape}")
    if y.shape[0] == 0:
        raise ValueError("no rows to evaluate: the held-out split is empty")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y_true must hold integer labels, got {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= num_labels))
    if bad.size:
        raise ValueError(f"y_true has labels outside [0, {num_labels}) in rows {_first(bad.tolist())}")
    bad = np.flatnonzero(~np.isfinite(p).all(axis=1))
    if bad.size:
        raise ValueError(f"probs is NaN/inf in rows {_first(bad.tolist())}")
    y = y.astype(np.int64)
    pred = p.argmax(axis=1)
    correct = pred == y
    k = num_labels
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)  # 2tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
    conf = p.max(axis=1)
    bins = np.clip(np.ceil(conf * ece_bins).astype(np.int64) - 1, 0, ece_bins - 1)
    n_b = np.bincount(bins, minlength=ece_bins)
    acc_b = np.bincount(bins, weights=correct.astype(np.float64), minlength=ece_bins)
    conf_b = np.bincount(bins, weights=conf, minlength=ece_bins)
    ece = float(np.abs(acc_b - conf_b).sum() / len(y))
    return {
        "accuracy": float(correct.mean()),
        "macro_f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else 0.0,
        "per_class_f1": [float(v) for v in f1],
        "ece": ece,
        "n": int(len(y)),
    }


def _stack_runs(runs: pa.Table, n: int) -> tuple[list[str], dict[str, list[int]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(arms in display order, seeds per arm, preds (seeds, n) per arm, confidences per arm)."""
    from collections import Counter

    arms_col = runs.column("arm").to_pylist()
    seeds = [int(x) for x in runs.column("seed").to_pylist()]
    dup = {k for k, c in Counter(zip(arms_col, seeds)).items() if c > 1}
    if dup:
        raise ValueError(f"runs has several rows for (arm, seed) {_first(sorted(dup))}; keep one per arm and seed")
    order = [a for a in ARMS if a in arms_col] + sorted({a for a in arms_col if a not in ARMS})
    pred, conf = runs.column("pred").to_pylist(), runs.column("confidence").to_pylist()
    bad = [f"{a}/seed {s} ({len(p)})" for a, s, p, c in zip(arms_col, seeds, pred, conf) if len(p) != n or len(c) != n]
    if bad:
        raise ValueError(
            f"runs rows {_first(bad)} do not have one prediction per held-out row ({n}): "
            "runs and the held-out labels must come from the same evaluation"
        )
    by_seed: dict[str, dict[int, int]] = {a: {} for a in order}
    for i, (a, s) in enumerate(zip(arms_col, seeds)):
        by_seed[a][s] = i
    seeds_of = {a: sorted(by_seed[a]) for a in order}
    P = {a: np.asarray([pred[by_seed[a][s]] for s in seeds_of[a]], dtype=np.int64).reshape(len(seeds_of[a]), n) for a in order}
    C = {a: np.asarray([conf[by_seed[a][s]] for s in seeds_of[a]], dtype=np.float64).reshape(len(seeds_of[a]), n) for a in order}
    return order, seeds_of, P, C


def _comparison(boot: dict, a: str, b: str, y: np.ndarray, P: dict[str, np.ndarray], confidence: float) -> Comparison:
    out: dict[str, Any] = {
        m: paired_difference(boot["resampled"][a][m], boot["resampled"][b][m], boot["point"][a][m], boot["point"][b][m], confidence)
        for m in METRICS
    }
    out["mcnemar"] = mcnemar(P[a] == y, P[b] == y)
    return out  # type: ignore[return-value]


def compare(
    runs: pa.Table,
    y: Sequence[int] | np.ndarray,
    *,
    y_true: Sequence[int] | np.ndarray | None = None,
    num_labels: int | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    ece_bins: int = 15,
    pairs: Sequence[tuple[str, str]] = PAIRS,
) -> EvaluationSummary:
    """Per arm: held-out metrics with paired-bootstrap intervals, the difference to ``baseline``, McNemar.

    ``runs``: one row per (arm, seed) with ``pred`` and ``confidence`` (each a list with one entry
    per held-out row, as ``evaluation/runs.parquet``); ``y``: the held-out rows' given labels in the
    same order; ``y_true``: their true labels when known (injected noise), reported under each
    arm's ``true_labels``. ``resamples`` bootstrap resamples of the held-out rows are drawn once
    (with ``seed``) and shared by every arm; within a resample an arm's metric is the mean over
    its seeds. ``pairs`` adds other paired differences (e.g. targeted vs the random control).
    Returns :class:`hardmine.summaries.EvaluationSummary` (without run_evaluate's context keys).
    """
    _need(runs, ["arm", "seed", "pred", "confidence"], "runs",
          "pass evaluation/runs.parquet (arm, seed, pred, confidence: one row per retrain)")
    if runs.num_rows == 0:
        raise ValueError("runs is empty: nothing to compare")
    yg = np.asarray(y)
    if yg.ndim != 1 or yg.size == 0:
        raise ValueError(f"y must hold one given label per held-out row, got shape {yg.shape}")
    order, seeds_of, P, C = _stack_runs(runs, yg.size)
    if num_labels is None:
        num_labels = int(max(int(yg.max()), *(int(p.max()) for p in P.values()), int(np.max(y_true)) if y_true is not None else 0)) + 1
    label_sets: dict[str, np.ndarray] = {"given": yg}
    if y_true is not None:
        yt = np.asarray(y_true)
        if yt.shape != yg.shape:
            raise ValueError(f"y_true must have one true label per held-out row ({yg.size}), got shape {yt.shape}")
        label_sets["true"] = yt
    scores: dict[str, dict[str, LabelScores]] = {}
    pair_out: dict[str, dict[str, Comparison]] = {}
    for ls, yy in label_sets.items():
        boot = bootstrap_metrics(yy, P, C, num_labels=num_labels, resamples=resamples, seed=seed, ece_bins=ece_bins)
        yy = yy.astype(np.int64)
        scores[ls] = {}
        for a in order:
            rec: dict[str, Any] = {
                m: percentile_interval(boot["resampled"][a][m], boot["point"][a][m], confidence) for m in METRICS
            }
            rec["seed_spread"] = {m: interval(boot["per_seed"][a][m], confidence) for m in METRICS}
            if a != "baseline" and "baseline" in P:
                rec["vs_baseline"] = _comparison(boot, a, "baseline", yy, P, confidence)
            scores[ls][a] = rec  # type: ignore[assignment]
        for x, z in pairs:
            if x in P and z in P:
                pair_out.setdefault(f"{x} - {z}", {})[ls] = _comparison(boot, x, z, yy, P, confidence)

    arms: dict[str, ArmSummary] = {}
    extra_cols = [c for c in ("train_rows", "n_augmented") if c in runs.column_names]
    arm_col = runs.column("arm").to_pylist()
    for a in order:
        rec = dict(scores["given"][a])
        rec.update({"seeds": seeds_of[a], "n_seeds": len(seeds_of[a])})
        for c in extra_cols:
            rec[c] = float(np.mean([v for x, v in zip(arm_col, runs.column(c).to_pylist()) if x == a]))
        if "true" in scores:
            rec["true_labels"] = scores["true"][a]
        arms[a] = rec  # type: ignore[assignment]
    pairs_typed: dict[str, Pair] = {}
    for name, by_ls in pair_out.items():
        p: dict[str, Any] = dict(by_ls["given"])
        if "true" in by_ls:
            p["true_labels"] = by_ls["true"]
        pairs_typed[name] = p  # type: ignore[assignment]

    notes: list[str] = []
    if "baseline" not in P:
        notes.append("no 'baseline' runs: differences to it are not reported")
    if len({tuple(v) for v in seeds_of.values()}) > 1:
        notes.append("arms ran different seeds: each arm's metric is the mean over its own seeds")
    if any(len(v) < 2 for v in seeds_of.values()):
        notes.append("arms with one seed: intervals cover the held-out rows, not seed-to-seed variation (evaluate.seeds >= 2)")
    elif all((p == p[0]).all() for p in P.values()):
        notes.append("every seed gave the same predictions (a deterministic retrain): the intervals are the held-out rows' alone")
    flipped = int((label_sets["true"] != yg).sum()) if "true" in label_sets else 0
    truth = {
        "available": "true" in label_sets,
        "rows": int(yg.size) if "true" in label_sets else 0,
        "flipped": flipped,
        "note": (f"true labels known for all {yg.size} held-out rows; {flipped} given labels differ from them"
                 if "true" in label_sets else "no true labels for the held-out rows: metrics are against the given labels"),
    }
    return {
        "reference": "baseline",
        "metrics": list(METRICS),
        "label_sets": list(label_sets),
        "bootstrap": {
            "resamples": int(resamples), "confidence": float(confidence), "seed": int(seed), "rows": int(yg.size),
            "method": "paired percentile bootstrap over held-out rows; the same resampled rows for every arm, "
                      "seeds averaged within a resample",
        },
        "mcnemar_pooling": MCNEMAR_POOLING,
        "truth": truth,  # type: ignore[typeddict-item]
        "arms": arms,
        "pairs": pairs_typed,
        "notes": notes,
    }


LABEL_SET_TITLE = {
    "given": "against the given held-out labels",
    "true": "against the true held-out labels (injected truth)",
}


def _fmt_iv(iv: dict | None) -> str:
    if iv is None:
        return "-"
    return f"{100 * iv['mean']:.2f} [{100 * iv['lo']:.2f}, {100 * iv['hi']:.2f}]"


def _fmt_diff(d: dict | None) -> str:
    """A difference in points with its interval and what it means: higher / lower / not distinguishable."""
    if d is None:
        return "-"
    return f"{100 * d['mean']:+.2f} [{100 * d['lo']:+.2f}, {100 * d['hi']:+.2f}] {d['verdict']}"


def format_summary(summary: EvaluationSummary) -> str:
    """Fixed-width tables of :func:`compare`'s output, one per label set (given, and true when known).

    Percentages; a difference is followed by ``higher`` / ``lower`` when its interval excludes
    zero, else ``not distinguishable``.
    """
    b = summary["bootstrap"]
    pct = f"{100 * b['confidence']:g}%"
    lines: list[str] = []
    for ls in summary["label_sets"]:
        tag = f"({ls} labels)"
        title = LABEL_SET_TITLE[ls]
        if ls == "true":
            title += f": {summary['truth']['flipped']} of {summary['truth']['rows']} given labels differ"
        lines.append(f"held-out metrics {title}")
        lines.append(
            f"{'arm':<15} {'seeds':>5} {'train':>7} {'aug':>6}  {'accuracy % ' + tag:<26} {'Δ accuracy vs baseline (points)':<44} "
            f"{'McNemar p':>9}  {'macro-F1 % ' + tag:<26} {'Δ macro-F1 vs baseline':<44} {'ECE %':>6}"
        )
        for a, r in summary["arms"].items():
            rec = r if ls == "given" else r.get("true_labels")
            if rec is None:
                continue
            d = rec.get("vs_baseline")
            p = f"{d['mcnemar']['p_value']:.3g}" if d else "-"
            lines.append(
                f"{a:<15} {r['n_seeds']:>5} {r.get('train_rows', float('nan')):>7.0f} {r.get('n_augmented', float('nan')):>6.0f}  "
                f"{_fmt_iv(rec['accuracy']):<26} {_fmt_diff(d['accuracy'] if d else None):<44} {p:>9}  "
                f"{_fmt_iv(rec['macro_f1']):<26} {_fmt_diff(d['macro_f1'] if d else None):<44} {100 * rec['ece']['mean']:>6.2f}"
            )
        for name, pr in summary.get("pairs", {}).items():
            prec = pr if ls == "given" else pr.get("true_labels")
            if prec is not None:
                lines.append(
                    f"{name} {tag}: accuracy {_fmt_diff(prec['accuracy'])}  macro-F1 {_fmt_diff(prec['macro_f1'])}  "
                    f"McNemar p {prec['mcnemar']['p_value']:.3g}"
                )
        lines.append("")
    lines.append(
        f"[{pct} interval]: paired bootstrap over the {b['rows']} held-out rows ({b['resamples']} resamples, seeds averaged "
        f"within each); a difference is real only when its interval excludes zero (higher / lower), else not distinguishable. "
        f"McNemar: exact test on per-row correctness, seeds pooled by majority."
    )
    if not summary["truth"]["available"]:
        lines.append("true labels of the held-out rows are not known: metrics are against the given labels")
    lines.extend(f"note: {n}" for n in summary.get("notes", []))
    return "\n".join(lines)


# ============================================================================ Ray part


def embed_cached(cfg: Config, store, texts: Sequence[str], log: Callable[[str], None] = print) -> np.ndarray:
    """Frozen-backbone embeddings of ``texts``, each distinct text embedded once per run.

    The cache is ``cache/text_embeddings-<model>.parquet`` (text, emb) in the run directory,
    shared by evaluate and sweep; missing texts are embedded with Ray Data (``embed_texts``).
    """
    from hardmine.embed import embeddings_from_table
    from hardmine.store import fingerprint_bytes

    o = cfg.oof
    max_length = oof_max_length(store) or (o.max_length if isinstance(o.max_length, int) else 128)
    name = f"cache/text_embeddings-{fingerprint_bytes(o.model, str(max_length))}.parquet"
    texts = [str(t) for t in texts]
    uniq = list(dict.fromkeys(texts))
    known: dict[str, int] = {}
    emb = np.zeros((0, 0), dtype=np.float32)
    if store.exists(name):
        cached = store.read_table(name)
        emb = embeddings_from_table(cached)
        known = {t: i for i, t in enumerate(cached.column("text").to_pylist())}
    missing = [t for t in uniq if t not in known]
    if missing:
        from hardmine.oof.runner import embed_texts

        t0 = time.time()
        new = embed_texts(
            [f"t{i}" for i in range(len(missing))], missing, o.model, max_length=max_length,
            batch_size=o.embed_batch_size, actors=o.embed_actors, gpus=min(o.gpus_per_fold, 1.0),
        )
        log(f"embedded {len(missing)} new texts in {time.time() - t0:.1f}s ({len(uniq) - len(missing)} cached)")
        emb = new if emb.size == 0 else np.concatenate([emb, new])
        for t in missing:
            known[t] = len(known)
        all_texts = [None] * len(known)
        for t, i in known.items():
            all_texts[i] = t
        col = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(emb, np.float32).reshape(-1)), emb.shape[1])
        store.write_table(name, pa.table({"text": pa.array(all_texts, pa.string()), "emb": col}))
    if not texts:
        return np.zeros((0, emb.shape[1] if emb.ndim == 2 else 0), dtype=np.float32)
    return emb[np.fromiter((known[t] for t in texts), dtype=np.int64, count=len(texts))]


def _embeddings_by_id(store, name: str, ids: list[str], what: str) -> np.ndarray:
    from hardmine.embed import embeddings_from_table

    t = store.read_table(name)
    pos = {i: n for n, i in enumerate(t.column("id").to_pylist())}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise ValueError(f"{name} lacks the {what} ids {_first(missing)}: re-run the stage that writes it")
    return embeddings_from_table(t)[np.fromiter((pos[i] for i in ids), dtype=np.int64, count=len(ids))]


def augmented_texts(sets: Sequence[pa.Table]) -> list[str]:
    """Distinct texts of the augmented rows of some training sets, in first-seen order."""
    return list(
        dict.fromkeys(t for s in sets for t, o in zip(s.column("text").to_pylist(), s.column("origin").to_pylist()) if o == "augmented")
    )


def build_features(cfg: Config, store, dataset: pa.Table, test: pa.Table, aug_texts: Sequence[str], log=print) -> dict[str, Any]:
    """Shared model inputs: originals by id, augmented rows by text, held-out rows.

    Frozen: embeddings (embeddings.parquet, test_embeddings.parquet, cached augmented texts);
    finetune and tfidf: the texts themselves.
    """
    ids = dataset.column("id").to_pylist()
    aug_texts = list(dict.fromkeys(str(t) for t in aug_texts))
    test_ids = test.column("id").to_pylist()
    if cfg.retrain_backbone == "frozen":
        if store.exists("embeddings.parquet"):  # written by the OOF stage's frozen member
            orig_x = _embeddings_by_id(store, "embeddings.parquet", ids, "training")
        else:
            orig_x = embed_cached(cfg, store, dataset.column("text").to_pylist(), log)
        if store.exists("test_embeddings.parquet"):
            test_x = _embeddings_by_id(store, "test_embeddings.parquet", test_ids, "held-out")
        else:
            test_x = embed_cached(cfg, store, test.column("text").to_pylist(), log)
        aug_x = embed_cached(cfg, store, aug_texts, log) if aug_texts else np.zeros((0, orig_x.shape[1]), np.float32)
    else:
        orig_x, test_x, aug_x = dataset.column("text").to_pylist(), test.column("text").to_pylist(), aug_texts
    return {
        "orig_pos": {i: n for n, i in enumerate(ids)},
        "aug_pos": {t: n for n, t in enumerate(aug_texts)},
        "shared": {"orig_x": orig_x, "aug_x": aug_x, "test_x": test_x, "test_y": test.column("label").to_numpy().astype(np.int64)},
    }


def set_indices(table: pa.Table, features: dict) -> dict[str, np.ndarray]:
    """Row positions of a training set in the shared inputs (originals by id, augmented by text)."""
    origin = np.asarray(table.column("origin").to_pylist(), dtype=object)
    ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
    is_aug = origin == "augmented"
    out = {
        "orig_idx": np.asarray([features["orig_pos"][i] for i, a in zip(ids, is_aug) if not a], np.int64),
        "aug_idx": np.asarray([features["aug_pos"][t] for t, a in zip(texts, is_aug) if a], np.int64),
        "y": np.concatenate([table.column("label").to_numpy()[~is_aug], table.column("label").to_numpy()[is_aug]]).astype(np.int64),
    }
    # the hard_weighted arm's per-row loss weights / OHEM exemptions, in the same order (originals first)
    if "weight" in table.column_names:
        w = np.asarray(table.column("weight").to_pylist(), dtype=np.float32)
        out["w"] = np.concatenate([w[~is_aug], w[is_aug]])
    if "exempt" in table.column_names:
        e = np.asarray(table.column("exempt").to_pylist(), dtype=bool)
        out["exempt"] = np.concatenate([e[~is_aug], e[is_aug]])
    return out


def assemble(shared: dict, run: dict) -> dict:
    """``train_fold``'s data: the run's training rows, the held-out split as "val"."""
    ox, ax = shared["orig_x"], shared["aug_x"]
    if isinstance(ox, list):
        train_x = [ox[i] for i in run["orig_idx"]] + [ax[i] for i in run["aug_idx"]]
    else:
        train_x = np.concatenate([ox[run["orig_idx"]], np.asarray(ax).reshape(-1, ox.shape[1])[run["aug_idx"]]])
    data = {"train_x": train_x, "train_y": run["y"], "val_x": shared["test_x"], "val_y": shared["test_y"], "test_x": None}
    if run.get("w") is not None:
        data["train_w"] = run["w"]
    if run.get("exempt") is not None:
        data["train_exempt"] = run["exempt"]
    return data


class MemoryCheckpoints:
    """No persistence: a retrain that dies starts over (used inside Tune trials)."""

    def latest(self) -> str | None:
        return None

    def save(self, local_dir: str, metrics: dict) -> None:
        pass


def _retrain_loop(config: dict) -> None:
    """``train_loop_per_worker`` of a retrain's TorchTrainer."""
    import ray

    from hardmine.oof.loop import TrainCheckpoints, train_fold
    from hardmine.oof.runner import ElasticThreads

    cfg = dict(config)
    shared = ray.get(cfg.pop("shared_ref"))
    cfg["data"] = assemble(shared, cfg.pop("run"))
    train_fold(cfg, TrainCheckpoints(), log=lambda s: None, threads=ElasticThreads.from_config(cfg))


def _fit_retrain_trainer(cfg: dict, storage_path: str, run_name: str, cpus: float, gpus: float, max_failures: int) -> tuple[np.ndarray, float]:
    """One retrain as its own TorchTrainer run (called in a driver thread): (test probs, seconds)."""
    from hardmine.oof.loop import read_checkpoint
    from hardmine.oof.runner import fit_trainer

    started = time.time()
    result = fit_trainer(
        _retrain_loop, cfg, storage_path=storage_path, run_name=run_name, cpus=cpus, gpus=gpus,
        max_failures=max_failures, num_to_keep=1,
    )
    with result.checkpoint.as_directory() as d:
        return np.asarray(read_checkpoint(d)["epoch_probs"][-1]), time.time() - started


def _fit_task_fn():
    import ray

    @ray.remote
    def fit_task(cfg: dict, shared: dict, ckpt_uri: str) -> np.ndarray:
        import torch

        from hardmine.oof.loop import DirCheckpoints, train_fold
        from hardmine.oof.runner import ElasticThreads

        torch.set_num_threads(max(1, int(cfg.get("threads") or 1)))
        cfg = dict(cfg)
        cfg.pop("shared_ref", None)
        cfg["data"] = assemble(shared, cfg.pop("run"))
        ckpts = DirCheckpoints(ckpt_uri)
        return np.asarray(train_fold(cfg, ckpts, log=lambda s: None, threads=ElasticThreads.from_config(cfg))["val_probs"])

    return fit_task


def retrain_many(
    cfg: Config,
    store,
    training_sets: dict[tuple[str, int], pa.Table],
    dataset: pa.Table,
    test: pa.Table,
    num_labels: int,
    *,
    fingerprint: str,
    log: Callable[[str], None] = print,
) -> pa.Table:
    """Train one model per ``(arm, seed) -> training set`` concurrently; score each on ``test``.

    Frozen heads run as plain Ray tasks (or TorchTrainer runs with ``oof.frozen_runner: trainer``),
    finetune models as TorchTrainer runs launched from driver threads (as many at once as the
    cluster holds, or ``evaluate.max_concurrent``), all with the OOF folds' resources. Returns the runs table (:data:`RUNS`),
    which keeps each run's held-out predictions (``pred``, ``confidence``) for :func:`compare`.
    """
    import ray

    from hardmine.oof.runner import check_resources, concurrent_runs, fold_cpus, fold_threads, in_threads
    from hardmine.runtime import connect

    o, e = cfg.oof, cfg.evaluate
    connect(cfg, log)
    cpus = fold_cpus(o.cpus_per_fold, o.folds)  # each run gets an OOF fold's share
    backbone = cfg.retrain_backbone
    gpus = o.gpus_per_fold if backbone != "tfidf" else 0.0
    check_resources(cpus, gpus)
    keys = list(training_sets)
    features = build_features(cfg, store, dataset, test, augmented_texts([training_sets[k] for k in keys]), log)
    shared_ref = ray.put(features["shared"])
    base = dict(
        train_settings(cfg, num_labels, threads=fold_threads(cpus), epochs=e.epochs, max_length=oof_max_length(store)), cpus=cpus, gpus=gpus
    )
    use_trainer = backbone == "finetune" or (backbone == "frozen" and o.frozen_runner == "trainer" and o.head != "logreg")

    def run_config(key: tuple) -> tuple[str, dict]:
        arm, seed = key
        slug = f"{arm.replace('+', '-')}-seed{seed}"
        return slug, dict(base, **arm_train_settings(cfg, arm), seed=int(seed), run=set_indices(training_sets[key], features),
                          shared_ref=shared_ref)

    if use_trainer:  # TorchTrainer runs from driver threads (see hardmine.oof.runner.fit_trainer)
        def fit(slug: str, rcfg: dict) -> tuple[np.ndarray, float]:
            return _fit_retrain_trainer(rcfg, store.uri_of("_train"), f"eval-{fingerprint}-{slug}", cpus, gpus, o.max_failures)

        limit = e.max_concurrent or concurrent_runs(cpus, gpus)
    else:
        fit_task = _fit_task_fn().options(num_cpus=cpus, num_gpus=gpus or None, max_retries=o.max_failures)

        def fit(slug: str, rcfg: dict) -> tuple[np.ndarray, float]:
            started = time.time()
            probs = ray.get(fit_task.remote(rcfg, shared_ref, store.uri_of(f"_checkpoints/eval-{fingerprint}/{slug}")))
            return probs, time.time() - started

        limit = e.max_concurrent or len(keys)  # Ray's scheduler queues the tasks beyond what fits
    done = dict(zip(keys, in_threads([functools.partial(fit, *run_config(key)) for key in keys], limit, progress="evaluate retrains")))
    y_test = features["shared"]["test_y"]
    rows = []
    for key in keys:
        probs, seconds = done[key]
        info = training_set_info(training_sets[key])
        m = metrics(y_test, probs, num_labels, e.ece_bins)
        rows.append(
            {
                "arm": key[0], "seed": int(key[1]), "train_rows": training_sets[key].num_rows,
                "n_augmented": info["n_augmented"], "requested_augmented": info["requested_augmented"],
                "n_dropped": info["n_dropped"], "n_relabelled": info["n_relabelled"],
                "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "ece": m["ece"],
                "per_class_f1": m["per_class_f1"], "seconds": seconds,
                "pred": np.asarray(probs).argmax(1).astype(np.int32), "confidence": np.asarray(probs).max(1).astype(np.float32),
            }
        )
    return pa.Table.from_pylist(rows, schema=RUNS)


def evaluation_fingerprint(cfg: Config, store) -> str:
    """Config of the retrains plus the fingerprints of the stages whose outputs they read."""
    from hardmine.store import fingerprint_bytes

    stages = store.manifest().get("stages", {})
    upstream = sorted((k, v.get("fingerprint")) for k, v in stages.items() if k in ("prepare", "oof", "holdout", "select", "augment"))
    return fingerprint_bytes(cfg.section_hash("evaluate", "oof", "train", "seed"), repr(upstream))


def heldout_labels(test: pa.Table, test_truth: pa.Table | None) -> tuple[pa.Table, str | None]:
    """The held-out rows' given labels and, where ``test_truth`` covers them, true labels (:data:`HELDOUT`).

    Returns (table, note): ``true_label`` is filled only when the truth covers *every* held-out
    row (else it is all null and ``note`` says why); a partial truth is not used.
    """
    ids = test.column("id").cast(pa.string()).to_pylist()
    given = test.column("label").cast(pa.int32())
    true = pa.nulls(len(ids), pa.int32())
    note = None
    if test_truth is not None:
        _need(test_truth, ["id", "true_label"], "test_truth", "pass test_truth.parquet written by the prepare stage")
        pos = dict(zip(test_truth.column("id").cast(pa.string()).to_pylist(), test_truth.column("true_label").to_pylist()))
        covered = sum(1 for i in ids if i in pos)
        if covered == len(ids):
            true = pa.array([pos[i] for i in ids], pa.int32())
        elif covered:
            note = (f"the injected truth covers {covered} of {len(ids)} held-out rows: metrics are against the given "
                    "labels only (give a true label for every held-out row to score against the truth)")
    return pa.table({"id": pa.array(ids, pa.string()), "label": given, "true_label": true}, schema=HELDOUT), note


def run_evaluate(cfg: Config, store, log: Callable[[str], None] = print, *, fingerprint: str | None = None) -> EvaluationSummary:
    """Retrain every arm x seed, score on the held-out split; write evaluation/runs.parquet, heldout.parquet, summary.json.

    Reads dataset.parquet, test.parquet, selected.parquet (clean / targeted arms),
    augmented.parquet (targeted arms), augmented_random.parquet (``random``), scores.parquet
    (``review_as: relabel``), embeddings.parquet / test_embeddings.parquet (frozen), and
    test_truth.parquet when the prepare stage wrote one (the held-out rows' injected truth: only
    this stage reads it). ``runs.parquet`` keeps every run's held-out predictions,
    ``heldout.parquet`` the held-out labels once (given, and true when known), so the summary can
    be recomputed with :func:`compare`.
    """
    from hardmine.runtime import connect

    e = cfg.evaluate
    if not store.exists("test.parquet"):
        raise ValueError(
            "evaluation needs a held-out split that mining never touched: set data.test_path, or data.test_size (e.g. 0.2)"
        )
    connect(cfg, log)
    fingerprint = fingerprint or evaluation_fingerprint(cfg, store)
    arms = list(dict.fromkeys(e.arms))
    dataset = store.read_table("dataset.parquet")
    test = store.read_table("test.parquet")
    heldout, truth_note = heldout_labels(test, store.read_table("test_truth.parquet") if store.exists("test_truth.parquet") else None)
    if truth_note:
        log(f"warning: {truth_note}")
    num_labels = len(store.manifest()["labels"])
    need_sel = any(a != "baseline" for a in arms)
    selected = store.read_table("selected.parquet") if need_sel else None
    pool = None
    if any(a in ("targeted", "clean+targeted", "random") for a in arms) and e.aug_ratio > 0:
        if not store.exists("augmented.parquet"):
            raise ValueError("the targeted and random arms need augmented.parquet: run the augment stage, or remove them from evaluate.arms")
        pool = store.read_table("augmented.parquet")
    random_pool = None
    if "random" in arms and e.aug_ratio > 0:
        if not store.exists("augmented_random.parquet"):
            raise ValueError(
                "the 'random' control arm needs augmented_random.parquet (variants of randomly chosen rows): "
                "run the augment stage with the random control, or remove 'random' from evaluate.arms"
            )
        random_pool = store.read_table("augmented_random.parquet")
    scores = store.read_table("scores.parquet") if (e.review_as == "relabel" and any(a.startswith("clean") for a in arms)) else None
    if "hard_weighted" in arms and scores is None:  # hardness and label issues (ohem without them: no exemptions)
        if store.exists("scores.parquet"):
            scores = store.read_table("scores.parquet")
        elif hard_weighted_mode(cfg) != "ohem":
            raise ValueError(f"the hard_weighted arm ({hard_weighted_mode(cfg)}) needs scores.parquet (hardness): run the score "
                             "stage first, or remove hard_weighted from evaluate.arms")

    sets: dict[tuple[str, int], pa.Table] = opt_in_sets(cfg, store, dataset, test, arms, e.seeds, log)
    if "reviewed" in arms:
        arms.insert(arms.index("reviewed") + 1, BEFORE_REVIEW)
    for arm in arms:
        if arm in ("self_training", "reviewed", BEFORE_REVIEW):
            continue
        for s in range(e.seeds):
            sets[(arm, s)] = arm_training_set(
                dataset, selected, pool, random_pool, arm, aug_ratio=e.aug_ratio, review_as=e.review_as,
                seed=cfg.seed * 1000 + s, scores=scores, hard_weighting=hard_weighted_mode(cfg),
                hard_weight_cap=cfg.train.hard_weight_cap,
            )
    for arm in arms:
        info = training_set_info(sets[(arm, 0)])
        if arm == "random" and info["shortfall"] > 0:
            short = info["n_augmented"] < info["targeted_budget"]
            log(
                f"{'warning: ' if short else ''}arm random: {info['n_augmented']} augmented rows, matching the targeted "
                f"arm's {info['targeted_budget']}" + (f" only partly (the random pool has {info['available_augmented']})" if short else "")
            )
        elif info["shortfall"] > 0:
            log(
                f"warning: arm {arm}: asked for {info['requested_augmented']} augmented rows "
                f"(aug_ratio {e.aug_ratio:g} x {info['n_train']}), the pool has {info['available_augmented']}: "
                f"added {info['n_augmented']}"
            )
    for line in _training_notes(cfg, arms, {a: training_set_info(sets[(a, 0)]) for a in arms}):
        log(line)
    t0 = time.time()
    # a reviewed / before_review set equal to the baseline's (the run is on that version) reuses the baseline's retrains
    same = {k for k in sets if k[0] in ("reviewed", BEFORE_REVIEW) and ("baseline", k[1]) in sets
            and _same_training_rows(sets[k], sets[("baseline", k[1])])}
    log(f"retraining {len(sets) - len(same)} models ({len(arms)} arms x {e.seeds} seeds, backbone {cfg.retrain_backbone})"
        + (f"; {', '.join(sorted({a for a, _ in same}))} = baseline's training set: its retrains reused" if same else ""))
    runs = retrain_many(cfg, store, {k: v for k, v in sets.items() if k not in same}, dataset, test, num_labels,
                        fingerprint=fingerprint, log=log)
    if same:
        rows = runs.to_pylist()
        base = {(r["arm"], int(r["seed"])): r for r in rows}
        runs = pa.Table.from_pylist(rows + [{**base[("baseline", s)], "arm": a} for a, s in sorted(same)], schema=runs.schema)
    true_col = heldout.column("true_label")
    summary = compare(
        runs, heldout.column("label").to_numpy(),
        y_true=true_col.to_numpy(zero_copy_only=False) if true_col.null_count == 0 else None,
        num_labels=num_labels, resamples=e.bootstrap, confidence=e.confidence, seed=cfg.seed, ece_bins=e.ece_bins,
        pairs=PAIRS + ((("reviewed", BEFORE_REVIEW),) if "reviewed" in arms else ()),
    )
    if truth_note:
        summary["truth"]["note"] = truth_note
    summary["seconds"] = time.time() - t0
    summary["test_rows"] = test.num_rows
    summary["aug_ratio"] = e.aug_ratio
    summary["review_as"] = e.review_as
    summary["backbone"] = cfg.retrain_backbone
    summary["training_sets"] = {
        a: {**training_set_info(sets[(a, 0)]), **({"train": arm_train_settings(cfg, a)} if a in ("hard_weighted", "adversarial") else {})}
        for a in arms
    }
    store.write_table("evaluation/runs.parquet", runs)
    store.write_table("evaluation/heldout.parquet", heldout)
    store.write_json("evaluation/summary.json", summary)
    log(f"held-out evaluation on {test.num_rows} rows:\n" + format_summary(summary))
    return summary
