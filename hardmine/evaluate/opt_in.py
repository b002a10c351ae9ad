"""The training sets of the opt-in arms built from other sources than the selection: ``self_training``
(baseline + pseudo-labelled pool rows, :mod:`hardmine.review.pseudo`) and ``reviewed`` with its partner
:data:`hardmine.vocab.BEFORE_REVIEW` (the rows as prepared, with the labels after and before review).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from hardmine.checks import first, require_columns
from hardmine.config import Config
from hardmine.evaluate.arms import TRAINING, arm_training_set, table_ids, training_set_info, with_info
from hardmine.vocab import BEFORE_REVIEW


def _baseline_rows(dataset: pa.Table, arm: str, seed: int, info_update: dict) -> pa.Table:
    """The baseline training set of ``dataset`` recorded as ``arm``."""
    base = arm_training_set(dataset, None, None, None, "baseline", aug_ratio=0.0, seed=seed)
    return with_info(base, {**training_set_info(base), "arm": arm, **info_update})


def self_training_set(dataset: pa.Table, pseudo: pa.Table, *, seed: int = 0, report: dict | None = None) -> pa.Table:
    """The ``self_training`` arm: the baseline rows plus pseudo-labelled pool rows (id, text, label).

    The pool rows are new ids: they travel as extra rows (origin ``augmented``, so the retrain
    looks their inputs up by text) and count in ``n_pseudo``, not in ``n_augmented``.
    """
    require_columns(pseudo, ["id", "text", "label"], "pseudo-labelled rows", "pass hardmine.review.pseudo.self_training_rows' table",
                    no_nulls=True)
    clash = sorted(set(table_ids(pseudo, "pseudo-labelled rows")) & set(table_ids(dataset, "dataset")))
    if clash:
        raise ValueError(f"pseudo-labelled rows {first(clash)} are already training rows: the pool must hold new rows only")
    base = _baseline_rows(dataset, "self_training", seed, {})
    add = pa.table({
        "id": pseudo.column("id").cast(pa.string()), "text": pseudo.column("text").cast(pa.string()),
        "label": pseudo.column("label").cast(pa.int32()), "origin": pa.array(["augmented"] * pseudo.num_rows, pa.string()),
    }, schema=TRAINING)
    info = training_set_info(base)
    info.update(n_pseudo=pseudo.num_rows, train_rows=base.num_rows + pseudo.num_rows,
                pseudo={k: v for k, v in (report or {}).items() if k != "per_class"})
    return with_info(pa.concat_tables([base.replace_schema_metadata(None), add]), info)


def relabelled_set(dataset: pa.Table, labels_by_id: dict[str, int], arm: str, *, seed: int = 0, version: int = 0) -> pa.Table:
    """The rows of ``dataset`` named in ``labels_by_id``, with those labels (the ``reviewed`` arm and its partner)."""
    ids = table_ids(dataset, "dataset")
    missing = sorted(set(labels_by_id) - set(ids))
    if missing:
        raise ValueError(f"dataset version {version} has ids the training rows lack (e.g. {first(missing)}): re-run the prepare stage")
    keep = np.array([i in labels_by_id for i in ids], dtype=bool)
    old = dataset.column("label").to_numpy().astype(np.int64)[keep]
    sub = dataset.filter(pa.array(keep))
    new = np.array([labels_by_id[i] for i in sub.column("id").to_pylist()], dtype=np.int64)
    sub = sub.set_column(sub.schema.get_field_index("label"), "label", pa.array(new, pa.int32()))
    return _baseline_rows(sub, arm, seed, {"version": int(version), "n_relabelled": int((new != old).sum()),
                                           "n_dropped": int((~keep).sum())})


def opt_in_sets(cfg: Config, store, dataset: pa.Table, test: pa.Table, arms: Sequence[str], seeds: int,
                log: Callable[[str], None] = print) -> dict[tuple[str, int], pa.Table]:
    """Training sets of the self_training and reviewed arms (reviewed brings :data:`BEFORE_REVIEW`)."""
    from hardmine.data import DataError

    out: dict[tuple[str, int], pa.Table] = {}
    if "self_training" in arms:
        from hardmine.review.pseudo import self_training_rows

        rows, report = self_training_rows(cfg, store, dataset, test, log)
        for s in range(seeds):
            out[("self_training", s)] = self_training_set(dataset, rows, seed=cfg.seed * 1000 + s, report=report)
    if "reviewed" in arms:
        from hardmine.review.versions import newest_version, version_table

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
