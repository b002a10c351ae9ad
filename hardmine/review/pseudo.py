"""Self-training on an unlabelled pool: the fold ensemble labels ``data.unlabelled_path``.

A pool row becomes a pseudo-labelled row when the fold ensemble's highest class probability
is at least ``pseudo.threshold``, within per-class caps (``pseudo.max_per_class`` rows, and
``pseudo.max_class_share`` of the class's human-labelled rows; the pseudo-labelled rows already
in the dataset count), the most probable first. Rows nearest the decision boundary (lowest
margin between the two most probable classes) go to the active-learning queue instead.

``hardmine pseudo-label CONFIG`` (:func:`pseudo_label`) writes the accepted rows as a new
dataset version exactly like a review import: ``review/versions/vN.parquet`` (the current
version + the new rows), one audit row per pseudo-labelled row in
``review/pseudo_audit.parquet`` (id, text, predicted_label, probability, source, time, version)
and the manifest's ``dataset_version``; the next ``hardmine run`` trains on it. Re-running with
the same pool and the same fold models adds nothing (rows already in the dataset are never
pseudo-labelled again and count against the caps), so it writes no new version.

Evaluate's ``self_training`` arm (:func:`self_training_rows`) applies the same rule inside the
evaluate stage, with the run's fold models: its training set is the baseline rows plus the pool
rows the rule accepts. Pool ids that are also training or held-out ids are refused
(:class:`~hardmine.data.DataError`); a pool row whose text repeats a held-out text is left out,
so nothing of the held-out split reaches a training set through the pool.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pyarrow as pa

from hardmine.checks import first, require_unique_ids
from hardmine.data import DataError
from hardmine.review import active_learning_queue
from hardmine.review.schemas import ACTIVE_QUEUE, PSEUDO_AUDIT, utc_iso
from hardmine.review.schemas import PSEUDO_AUDIT_SCHEMA


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


# ----------------------------------------------------------------------------- the pool


def read_pool(path: str, data_cfg) -> tuple[list[str], list[str]]:
    """(ids, texts) of an unlabelled file with the data section's text/id columns (no label column needed).

    Ids come from ``data.id_column`` when the file has it, else ``u0, u1, ...``. Refused with a
    DataError naming the file: a missing file, no text column, no rows, empty texts, repeated ids.
    """
    from hardmine.data import read_raw

    if not path or not os.path.exists(str(path)):
        raise DataError(f"unlabelled pool {path!r} does not exist: check --unlabelled / data.unlabelled_path")
    try:
        raw = read_raw(path, "auto", data_cfg.encoding, getattr(data_cfg, "quoting", "auto"))
    except DataError as e:
        if "no rows" in str(e) or "empty" in str(e).lower():
            raise DataError(f"the unlabelled pool {path} is empty (no rows): give a file with rows to pseudo-label, "
                            "or remove data.unlabelled_path") from None
        raise
    if len(raw) == 0:
        raise DataError(f"the unlabelled pool {path} is empty (no rows): give a file with rows to pseudo-label, or remove data.unlabelled_path")
    if data_cfg.text_column not in raw.columns:
        raise DataError(f"{path}: no column {data_cfg.text_column!r} (has {list(raw.columns)}); set data.text_column")
    texts = ["" if t is None else str(t) for t in raw[data_cfg.text_column].tolist()]
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise DataError(f"{path}: empty text at rows {empty[:10]}: remove them from the unlabelled pool")
    if data_cfg.id_column and data_cfg.id_column in raw.columns:
        ids = [str(i).strip() for i in raw[data_cfg.id_column].tolist()]
    else:
        ids = [f"u{i}" for i in range(len(texts))]
    require_unique_ids(ids, f"the unlabelled pool {path}", error=DataError)
    return ids, texts


def pseudo_ids(store) -> set[str]:
    """Ids of every row a pseudo-label round added (from the pseudo-label audit)."""
    if not store.exists(PSEUDO_AUDIT):
        return set()
    return set(store.read_table(PSEUDO_AUDIT, columns=["id"]).column("id").to_pylist())


def check_pool(path: str, ids: Sequence[str], labelled_ids: Sequence[str], test_ids: Sequence[str]) -> None:
    """Refuse a pool that shares ids with the human-labelled training rows or the held-out split."""
    pool = set(ids)
    on_test = sorted(pool & set(test_ids))
    if on_test:
        raise DataError(
            f"{len(on_test)} ids of the unlabelled pool {path} are held-out rows (e.g. {first(on_test)}): unlabelled rows "
            "must never reach the held-out evaluation. Fix: remove them from the pool (or give the pool its own ids)"
        )
    on_train = sorted(pool & set(labelled_ids))
    if on_train:
        raise DataError(
            f"{len(on_train)} ids of the unlabelled pool {path} are also labelled training rows (e.g. {first(on_train)}): "
            "the pool must hold rows the training data does not. Fix: remove them from the pool (or give the pool its own ids)"
        )


# ----------------------------------------------------------------------------- the rule


def class_caps(num_labels: int, labelled_counts: np.ndarray, existing_counts: np.ndarray, *,
               max_per_class: Optional[int], max_class_share: Optional[float]) -> np.ndarray:
    """Pseudo-labelled rows each class may still take: min(max_per_class, floor(share x labelled rows)) - already there."""
    cap = np.full(num_labels, np.iinfo(np.int64).max, dtype=np.int64)
    if max_per_class is not None:
        cap = np.minimum(cap, int(max_per_class))
    if max_class_share is not None:
        cap = np.minimum(cap, np.floor(float(max_class_share) * np.asarray(labelled_counts, dtype=np.float64) + 1e-9).astype(np.int64))
    return np.maximum(cap - np.asarray(existing_counts, dtype=np.int64), 0)


def select_pseudo(
    probs: np.ndarray,
    *,
    threshold: float,
    labelled_counts: Sequence[int],
    existing_counts: Sequence[int] | None = None,
    max_per_class: Optional[int] = None,
    max_class_share: Optional[float] = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Row positions of ``probs`` (n, K) that become pseudo-labelled rows, in input order, and a report.

    A row qualifies when its highest probability is >= ``threshold``; each class takes at most
    :func:`class_caps` of its qualifying rows, the most probable first (ties: input order).
    The report: per class ``candidates``, ``cap``, ``accepted``; totals ``candidates``,
    ``accepted``, ``capped`` (qualifying rows left out by a cap).
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be (rows, classes), got shape {p.shape}")
    n, k = p.shape
    labelled_counts = np.asarray(labelled_counts, dtype=np.int64)
    existing = np.zeros(k, np.int64) if existing_counts is None else np.asarray(existing_counts, dtype=np.int64)
    if labelled_counts.shape != (k,) or existing.shape != (k,):
        raise ValueError(f"labelled_counts and existing_counts need one count per class ({k})")
    caps = class_caps(k, labelled_counts, existing, max_per_class=max_per_class, max_class_share=max_class_share)
    pred = p.argmax(1) if n else np.zeros(0, np.int64)
    conf = p.max(1) if n else np.zeros(0)
    ok = conf >= threshold
    chosen: list[int] = []
    per_class = []
    for c in range(k):
        rows = np.flatnonzero(ok & (pred == c))
        rows = rows[np.argsort(-conf[rows], kind="stable")]
        take = rows[: int(min(caps[c], rows.size))]
        chosen.extend(take.tolist())
        per_class.append({"class": c, "candidates": int(rows.size), "cap": int(min(caps[c], 1 << 62)),
                          "already": int(existing[c]), "accepted": int(take.size)})
    idx = np.asarray(sorted(chosen), dtype=np.int64)
    report = {
        "rows": int(n), "threshold": float(threshold), "candidates": int(ok.sum()), "accepted": int(idx.size),
        "capped": int(ok.sum() - idx.size), "per_class": per_class,
    }
    return idx, report


# ----------------------------------------------------------------------------- shared by the command and the arm


def pool_predictions(cfg, store, dataset: pa.Table, test_ids: Sequence[str], test_texts: Sequence[str], pool_path: str,
                     *, predict: Callable[[list[str]], np.ndarray] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Read and check the pool against ``dataset`` (the training rows) and the held-out split, predict the new rows.

    Returns ``ids``, ``texts``, ``probs`` of the pool rows that may become pseudo-labelled rows
    (not yet in ``dataset``, text not a held-out text), the accepted positions ``accepted`` with
    ``labels`` (their predicted class), and ``report``. ``predict`` defaults to the run's fold
    ensemble (:class:`hardmine.oof.predict.FoldEnsemble`).
    """
    ids, texts = read_pool(pool_path, cfg.data)
    d_ids = dataset.column("id").to_pylist()
    d_labels = dataset.column("label").to_numpy().astype(np.int64)
    already = pseudo_ids(store)
    is_pseudo = np.array([i in already for i in d_ids], dtype=bool)
    check_pool(pool_path, ids, [i for i, ps in zip(d_ids, is_pseudo) if not ps], test_ids)
    in_dataset = set(d_ids)
    held = {_norm(t) for t in test_texts}
    fresh = [n for n, i in enumerate(ids) if i not in in_dataset]
    leaks = [n for n in fresh if _norm(texts[n]) in held]
    if leaks:
        log(f"self-training: {len(leaks)} pool rows repeat a held-out text (e.g. {first([ids[n] for n in leaks])}): left out")
    fresh = [n for n in fresh if _norm(texts[n]) not in held]
    labels = store.manifest().get("labels") or []
    k = len(labels)
    f_ids, f_texts = [ids[n] for n in fresh], [texts[n] for n in fresh]
    if predict is None:
        from hardmine.oof.predict import FoldEnsemble

        predict = FoldEnsemble(store.uri, batch_size=cfg.oof.embed_batch_size).predict
    probs = np.asarray(predict(f_texts), dtype=np.float64).reshape(len(f_texts), k) if f_texts else np.zeros((0, k))
    p = cfg.pseudo
    labelled_counts = np.bincount(d_labels[~is_pseudo], minlength=k)[:k]
    existing = np.bincount(d_labels[is_pseudo], minlength=k)[:k]
    accepted, report = select_pseudo(probs, threshold=p.threshold, labelled_counts=labelled_counts, existing_counts=existing,
                                     max_per_class=p.max_per_class, max_class_share=p.max_class_share)
    for r in report["per_class"]:
        r["name"] = labels[r["class"]] if r["class"] < len(labels) else str(r["class"])
    report.update(pool_rows=len(ids), already_in_dataset=len(ids) - len(fresh) - len(leaks), heldout_texts_left_out=len(leaks))
    return {"ids": f_ids, "texts": f_texts, "probs": probs, "accepted": accepted,
            "labels": probs.argmax(1)[accepted].astype(np.int64) if len(accepted) else np.zeros(0, np.int64),
            "report": report, "label_names": labels}


def self_training_rows(cfg, store, dataset: pa.Table, test: pa.Table, log: Callable[[str], None] = print) -> tuple[pa.Table, dict]:
    """The pseudo-labelled rows the self_training arm adds to the baseline rows: (id, text, label) and a report."""
    if not cfg.data.unlabelled_path:
        raise DataError("evaluate.arms has self_training but data.unlabelled_path is not set: give the unlabelled pool, "
                        "or remove self_training from evaluate.arms")
    out = pool_predictions(cfg, store, dataset, test.column("id").cast(pa.string()).to_pylist(), test.column("text").to_pylist(),
                           cfg.data.unlabelled_path, log=log)
    acc = out["accepted"]
    rows = pa.table({
        "id": pa.array([out["ids"][i] for i in acc], pa.string()),
        "text": pa.array([out["texts"][i] for i in acc], pa.string()),
        "label": pa.array(out["labels"], pa.int32()),
    })
    rep = out["report"]
    log(f"self_training arm: {rep['accepted']} pseudo-labelled rows from {rep['pool_rows']} pool rows "
        f"({rep['candidates']} at probability >= {rep['threshold']:g}, {rep['capped']} left out by the per-class caps)")
    return rows, rep


# ----------------------------------------------------------------------------- the command


def _source(cfg, store, pool_path: str) -> str:
    oof_fp = (store.manifest().get("stages", {}).get("oof") or {}).get("fingerprint") or "?"
    return f"pseudo-label {os.path.basename(str(pool_path))} (fold models {oof_fp})"


def pseudo_label(cfg, unlabelled: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """`hardmine pseudo-label`: a new dataset version with the accepted pool rows, their audit, the active queue.

    Idempotent: with the same pool and fold models, no row is added and no version is written.
    """
    from hardmine.review.commands import command_errors, write_queue
    from hardmine.review.versions import append_rows, current_dataset, run_labels, write_version
    from hardmine.store import RunStore

    path = unlabelled or cfg.data.unlabelled_path
    if not path:
        raise DataError("pseudo-label needs an unlabelled pool: pass --unlabelled FILE or set data.unlabelled_path")
    store = RunStore(cfg.run_dir)
    with command_errors(store, "hardmine pseudo-label"):
        labels = run_labels(store, cfg)
        dataset, version = current_dataset(store)
        test = store.read_table("test.parquet") if store.exists("test.parquet") else None
        test_ids = test.column("id").cast(pa.string()).to_pylist() if test is not None else []
        test_texts = test.column("text").to_pylist() if test is not None else []
        out = pool_predictions(cfg, store, dataset, test_ids, test_texts, path, log=log)
        rep, acc = out["report"], out["accepted"]
        log(f"pseudo-label: {rep['pool_rows']} pool rows, {len(out['ids'])} new to the dataset; {rep['candidates']} at "
            f"probability >= {rep['threshold']:g}, {rep['accepted']} accepted ({rep['capped']} left out by the per-class caps)")
        # rows near the decision boundary (not pseudo-labelled) go to the annotators
        queue_files: list[str] = []
        if cfg.pseudo.active_batch and len(out["ids"]) > len(acc):
            rest = np.setdiff1d(np.arange(len(out["ids"])), acc)
            q = active_learning_queue([out["ids"][i] for i in rest], [out["texts"][i] for i in rest], out["probs"][rest],
                                      labels, strategy="margin", batch_size=cfg.pseudo.active_batch)
            queue_files = write_queue(store, ACTIVE_QUEUE, q, labels, "both")
            log(f"active-learning queue: {q.num_rows} pool rows nearest the decision boundary (lowest margin): {queue_files[0]}")
        result = {**rep, "version": version, "queue": queue_files}
        if rep["accepted"] == 0:
            log(f"no new pseudo-labelled row: dataset stays at version {version}")
            return result
        new_ids = [out["ids"][i] for i in acc]
        new_texts = [out["texts"][i] for i in acc]
        new_labels = out["labels"]
        cols = {}
        for f in dataset.schema:
            if f.name == "id":
                cols[f.name] = pa.array(new_ids, f.type)
            elif f.name == "text":
                cols[f.name] = pa.array(new_texts, f.type)
            elif f.name == "label":
                cols[f.name] = pa.array(new_labels, f.type)
            elif f.name == "label_name":
                cols[f.name] = pa.array([labels[i] for i in new_labels], f.type)
            else:
                cols[f.name] = pa.nulls(len(new_ids), f.type)
        added = pa.table(cols, schema=dataset.schema.remove_metadata())
        new = pa.concat_tables([dataset.replace_schema_metadata(None), added])
        version += 1
        source, stamp = _source(cfg, store, path), utc_iso(None)
        audit = pa.table({
            "id": pa.array(new_ids, pa.string()), "text": pa.array(new_texts, pa.string()),
            "predicted_label": pa.array([labels[i] for i in new_labels], pa.string()),
            "probability": pa.array(out["probs"][acc].max(1), pa.float64()),
            "source": pa.array([source] * len(new_ids), pa.string()), "time": pa.array([stamp] * len(new_ids), pa.string()),
            "version": pa.array([version] * len(new_ids), pa.int32()),
        }, schema=PSEUDO_AUDIT_SCHEMA)
        uri = write_version(store, version, new)
        append_rows(store, PSEUDO_AUDIT, audit)
        store.update_manifest(dataset_version=version)
        per = ", ".join(f"{r['name']} {r['accepted']}" for r in rep["per_class"] if r["accepted"])
        log(f"{len(new_ids)} pseudo-labelled rows ({per}) -> dataset version {version}: {uri} (the next `hardmine run` "
            f"trains on it); audit: {store.uri_of(PSEUDO_AUDIT)}")
        return {**result, "version": version}


def check_run_inputs(cfg, store, log: Callable[[str], None] = print, *, after_prepare: bool = False) -> None:
    """What the self_training and reviewed arms and the pool need, refused before anything trains.

    ``after_prepare``: also read the pool and check it against the prepared training and
    held-out ids (empty pool, overlapping ids).
    """
    arms = set(cfg.evaluate.arms)
    if "self_training" in arms:
        if not cfg.data.unlabelled_path:
            raise DataError("evaluate.arms has self_training but data.unlabelled_path is not set: give the unlabelled pool "
                            "to pseudo-label, or remove self_training from evaluate.arms")
        if not cfg.oof.trainable:
            raise DataError("evaluate.arms has self_training, which pseudo-labels the pool with the fold models, but "
                            "oof.backbones has no trainable member (external only): add tfidf, frozen or finetune")
    if "reviewed" in arms and not int(store.manifest().get("dataset_version") or 0):
        raise DataError("evaluate.arms has reviewed, which compares the reviewed labels with those before review, but the run "
                        "has no reviewed dataset version yet: import corrections (`hardmine review import`) first, or remove "
                        "reviewed from evaluate.arms")
    if after_prepare and cfg.data.unlabelled_path:
        ids, _ = read_pool(cfg.data.unlabelled_path, cfg.data)
        dataset = store.read_table("dataset.parquet", columns=["id"])
        already = pseudo_ids(store)
        test_ids = store.read_table("test.parquet", columns=["id"]).column("id").cast(pa.string()).to_pylist() if store.exists("test.parquet") else []
        check_pool(cfg.data.unlabelled_path, ids, [i for i in dataset.column("id").to_pylist() if i not in already], test_ids)


__all__ = [
    "ACTIVE_QUEUE", "PSEUDO_AUDIT", "check_pool", "check_run_inputs", "class_caps", "pool_predictions",
    "pseudo_ids", "pseudo_label", "read_pool", "select_pseudo", "self_training_rows",
]
