"""Model inputs of the retrains: frozen-backbone embeddings (the stage outputs looked up by id
:func:`embeddings_by_id`, else the shared text cache :func:`hardmine.embeddings.cached_embeddings`) or texts, shared once per evaluation or
sweep (:func:`training_features`, :func:`build_features`), and a training set's rows in them
(:func:`set_indices`, :func:`assemble`).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from hardmine.checks import first
from hardmine.config import Config
from hardmine.embeddings import cached_embeddings
from hardmine.oof.settings import oof_max_length


def embeddings_by_id(store, name: str, ids: list[str], what: str) -> np.ndarray:
    """Rows of the embeddings table ``name`` (id, emb) in the order of ``ids``; every id must be there."""
    from hardmine.embed import embeddings_from_table

    t = store.read_table(name)
    pos = {i: n for n, i in enumerate(t.column("id").to_pylist())}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise ValueError(f"{name} lacks the {what} ids {first(missing)}: re-run the stage that writes it")
    return embeddings_from_table(t)[np.fromiter((pos[i] for i in ids), dtype=np.int64, count=len(ids))]


def row_inputs(cfg: Config, store, table: pa.Table, name: str, what: str, log: Callable[[str], None] = print):
    """The retrain's inputs of ``table``'s rows: their texts, or with the frozen backbone their embeddings
    (``name``, e.g. embeddings.parquet written by the OOF stage's frozen member, else embedded and cached)."""
    if cfg.retrain_backbone != "frozen":
        return table.column("text").to_pylist()
    if store.exists(name):
        return embeddings_by_id(store, name, table.column("id").to_pylist(), what)
    return cached_embeddings(cfg, table.column("text").to_pylist(), max_length=oof_max_length(store), log=log)


def heldout_inputs(cfg: Config, store, test: pa.Table, log: Callable[[str], None] = print):
    """:func:`row_inputs` of the held-out rows (test_embeddings.parquet with the frozen backbone)."""
    return row_inputs(cfg, store, test, "test_embeddings.parquet", "held-out", log)


def augmented_texts(sets: Sequence[pa.Table]) -> list[str]:
    """Distinct texts of the augmented rows of some training sets, in first-seen order."""
    return list(
        dict.fromkeys(t for s in sets for t, o in zip(s.column("text").to_pylist(), s.column("origin").to_pylist()) if o == "augmented")
    )


def training_features(cfg: Config, store, dataset: pa.Table, aug_texts: Sequence[str], log=print) -> dict[str, Any]:
    """Model inputs shared by every retrain: the training rows by id, the augmented texts by text; no held-out rows.

    Frozen: embeddings (embeddings.parquet, else embedded; augmented texts cached); finetune and
    tfidf: the texts. Reads no test artifact (held-out rows are added by :func:`with_heldout`).
    """
    ids = dataset.column("id").to_pylist()
    aug_texts = list(dict.fromkeys(str(t) for t in aug_texts))
    orig_x = row_inputs(cfg, store, dataset, "embeddings.parquet", "training", log)
    if cfg.retrain_backbone == "frozen":
        aug_x = cached_embeddings(cfg, aug_texts, max_length=oof_max_length(store), log=log) if aug_texts else np.zeros((0, orig_x.shape[1]), np.float32)
    else:
        aug_x = aug_texts
    return {"orig_pos": {i: n for n, i in enumerate(ids)}, "aug_pos": {t: n for n, t in enumerate(aug_texts)},
            "shared": {"orig_x": orig_x, "aug_x": aug_x}}


def with_heldout(features: dict, x, y) -> dict:
    """``features`` with the rows the retrains are scored on (``test_x`` / ``test_y`` of :func:`assemble`)."""
    return {**features, "shared": {**features["shared"], "test_x": x, "test_y": np.asarray(y, dtype=np.int64)}}


def build_features(cfg: Config, store, dataset: pa.Table, test: pa.Table, aug_texts: Sequence[str], log=print) -> dict[str, Any]:
    """Shared model inputs: originals by id, augmented rows by text, held-out rows (:func:`training_features`
    with :func:`heldout_inputs`)."""
    features = training_features(cfg, store, dataset, aug_texts, log)
    return with_heldout(features, heldout_inputs(cfg, store, test, log), test.column("label").to_numpy())


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
