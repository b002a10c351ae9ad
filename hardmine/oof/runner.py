"""Ray edge of the OOF stage: K concurrent fold trainings (the frozen member's embeddings come from
:mod:`hardmine.embeddings`, the runs' sizing from :mod:`hardmine.oof.resources`).

Each ``finetune`` fold is its own ``TorchTrainer`` run (checkpoint every epoch,
``FailureConfig`` restarts). The runs' ``fit()`` calls are made from driver threads, as many
at once as the cluster's nodes hold (``oof.max_concurrent``; Ray 2.60 runs independent
trainings as concurrent ``fit()`` calls). ``frozen`` folds train a small head on embeddings
computed once; by default in a plain Ray task (``max_retries`` + run-store checkpoints give
the same resume-after-crash behaviour with less overhead), or as TorchTrainer runs with
``oof.frozen_runner: trainer``. On CPU, a run's torch threads grow onto node CPUs that no Ray
work holds (:class:`ElasticThreads`).
"""
from __future__ import annotations

import functools
import json
import os
import time
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from hardmine.config import Config
from hardmine.embed import embeddings_table
from hardmine.embeddings import cached_embeddings
from hardmine.oof.folds import make_folds
from hardmine.oof.loop import MODEL_DIR, DirCheckpoints, TrainCheckpoints, read_checkpoint, train_fold
from hardmine.oof.resources import ElasticThreads, check_resources, concurrent_runs, fold_cpus, fold_threads, in_threads
from hardmine.oof.settings import train_settings
from hardmine.schema import OOF
from hardmine.store import RunStore


# ----------------------------------------------------------------------------- fold workers


def fold_data(shared: dict, train_idx: np.ndarray, val_idx: np.ndarray) -> dict:
    x = shared["x"]
    take = (lambda idx: [x[i] for i in idx]) if isinstance(x, list) else (lambda idx: x[idx])
    return {
        "train_x": take(train_idx),
        "train_y": shared["y"][train_idx],
        "val_x": take(val_idx),
        "val_y": shared["y"][val_idx],
        "test_x": shared.get("test_x"),
    }


def _trainer_loop(config: dict) -> None:
    """``train_loop_per_worker`` of a fold's TorchTrainer."""
    cfg = dict(config)
    shared = ray.get(cfg.pop("shared_ref"))
    cfg["data"] = fold_data(shared, cfg.pop("train_idx"), cfg.pop("val_idx"))
    train_fold(cfg, TrainCheckpoints(), threads=ElasticThreads.from_config(cfg))


def _copy_model(src_dir: str, store_uri: str, dest: str) -> None:
    import pyarrow.fs as pafs

    from hardmine.store import RunStore

    store = RunStore(store_uri)
    store.delete(dest)
    store.fs.create_dir(store.path(dest), recursive=True)
    pafs.copy_files(src_dir, store.path(dest), source_filesystem=pafs.LocalFileSystem(), destination_filesystem=store.fs)


def fit_trainer(loop, loop_config: dict, *, storage_path: str, run_name: str, cpus: float, gpus: float, max_failures: int, num_to_keep: int = 2):
    """One single-worker ``TorchTrainer`` run (blocks until it ends); returns its ``Result``.

    Call it from threads of the driver to run several at once: ``fit()`` only waits on the run's
    controller actor, so a thread costs nothing, where a ``num_cpus=0`` task per run costs one
    more worker process importing torch and Ray Train (about 5 CPU-seconds each, measured)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": cpus}
    if gpus:
        resources["GPU"] = gpus
    trainer = TorchTrainer(
        loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=1, use_gpu=gpus > 0, resources_per_worker=resources),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=num_to_keep),
        ),
    )
    from hardmine.console import captured

    with captured("ray train"):
        return trainer.fit()


def _fit_fold_trainer(cfg: dict, storage_path: str, run_name: str, cpus: float, gpus: float, max_failures: int, store_uri: str, dest: str) -> dict:
    """Run one fold as its own TorchTrainer and return its held-out arrays (called in a driver thread)."""
    launched = time.time()
    result = fit_trainer(
        _trainer_loop, cfg, storage_path=storage_path, run_name=run_name, cpus=cpus, gpus=gpus, max_failures=max_failures
    )
    fitted = time.time()
    with result.checkpoint.as_directory() as d:
        out = read_checkpoint(d)
        _copy_model(os.path.join(d, MODEL_DIR), store_uri, dest)
    out["meta"]["spans"] = {"launched": launched, "fit_returned": fitted, "returned": time.time()}
    return out


@ray.remote
def _fit_fold_task(cfg: dict, shared: dict, ckpt_uri: str, store_uri: str, dest: str) -> dict:
    """Run one (frozen) fold in a plain task; retried from its last checkpoint if the worker dies."""
    import torch

    torch.set_num_threads(max(1, int(cfg.get("threads") or 1)))
    cfg = dict(cfg)
    cfg.pop("shared_ref", None)
    cfg["data"] = fold_data(shared, cfg.pop("train_idx"), cfg.pop("val_idx"))
    ckpts = DirCheckpoints(ckpt_uri)
    train_fold(cfg, ckpts, threads=ElasticThreads.from_config(cfg))
    latest = ckpts.latest()
    out = read_checkpoint(latest)
    _copy_model(os.path.join(latest, MODEL_DIR), store_uri, dest)
    return out


# ----------------------------------------------------------------------------- the stage


def member_fingerprint(cfg: Config, member: str, base: str, max_length: int | None = None) -> str:
    """Fingerprint of one ensemble member: the data (``base``), folds, seed and the settings it trains with.

    Adding a member, or changing another member's or the combination's settings, leaves it valid."""
    from hardmine.store import fingerprint_bytes, fingerprint_path

    o = cfg.oof.model_dump(mode="json")
    keys = {
        "tfidf": ["tfidf", "epochs"],
        "frozen": ["model", "max_length", "head", "head_C", "head_max_iter", "head_lr", "head_hidden", "head_batch_size",
                   "epochs", "warmup_ratio", "weight_decay"],
        "finetune": ["model", "max_length", "lr", "batch_size", "epochs", "warmup_ratio", "weight_decay", "mixed_precision"],
        "external": ["probs_path"],
    }[member]
    extra = fingerprint_path(cfg.oof.probs_path) if member == "external" else str(max_length) if member in ("frozen", "finetune") else ""
    from hardmine.oof.settings import fold_training_key

    training = fold_training_key(cfg, member) if member != "external" else ""  # train.* (ohem, fgm) that reaches this member
    return fingerprint_bytes(base, member, str(cfg.seed), str(cfg.oof.folds), json.dumps({k: o[k] for k in keys}, sort_keys=True), extra,
                             *filter(None, [training]))


def resolve_max_length(cfg: Config, texts: list[str], log=print) -> dict[str, Any]:
    """``oof.max_length`` for the members that tokenize (frozen, finetune): the configured number, or
    with ``auto`` the data's 95th-percentile token length capped at the model's limit."""
    o = cfg.oof
    if not any(b in ("frozen", "finetune") for b in o.backbones):
        return {"max_length": None}
    if isinstance(o.max_length, int):
        return {"max_length": o.max_length, "auto": False}
    from hardmine.embed import auto_max_length

    info = dict(auto_max_length(texts, o.model))
    if info.get("max_length") is None:  # an encoder without a token limit of ours (the numpy USE)
        return {**info, "max_length": 128, "auto": True}
    log(
        f"max_length auto: {info['max_length']} tokens (95th percentile of the data, model limit {info['model_limit']}); "
        f"{100 * info['truncated_share']:.1f}% of texts are longer"
        + (" (frozen: embedded in chunks and mean-pooled" + ("; finetune: truncated)" if "finetune" in o.backbones else ")")
           if "frozen" in o.backbones else " (finetune: truncated)")
    )
    return {**info, "auto": True}


def _train_member(cfg: Config, store: RunStore, member: str, ids: list[str], texts: list[str], y: np.ndarray, fold: np.ndarray,
                  num_labels: int, fingerprint: str, max_length: int | None, cpus: float, at_once: int, log=print) -> dict[str, Any]:
    """K concurrent fold trainings of one trainable member; its OOF arrays, fold details and timings."""
    o = cfg.oof
    t0 = time.time()
    if member == "frozen":
        x = cached_embeddings(cfg, texts, max_length=max_length, log=log)
        store.write_table("embeddings.parquet", embeddings_table(ids, x))
    else:
        x = texts
    embed_s = time.time() - t0
    shared_ref = ray.put({"x": x, "y": y, "test_x": None})
    base = dict(
        train_settings(cfg, num_labels, threads=fold_threads(cpus), backbone=member, max_length=max_length),
        cpus=cpus,
        gpus=o.gpus_per_fold if member != "tfidf" else 0.0,
        fault=o.fault_injection.model_dump() if o.fault_injection else None,
    )
    use_trainer = member == "finetune" or (member == "frozen" and o.frozen_runner == "trainer" and o.head != "logreg")
    gpus = base["gpus"]
    fit_task = _fit_fold_task.options(num_cpus=cpus, num_gpus=gpus or None, max_retries=o.max_failures)

    def fit(k: int, fcfg: dict) -> dict:
        dest = f"models/{member}/fold-{k}"
        if use_trainer:  # its own TorchTrainer run, fit() called in this driver thread
            return _fit_fold_trainer(fcfg, store.uri_of("_train"), f"oof-{fingerprint}-{member}-fold-{k}", cpus, gpus, o.max_failures, store.uri, dest)
        return ray.get(fit_task.remote(fcfg, shared_ref, store.uri_of(f"_checkpoints/oof-{fingerprint}/{member}/fold-{k}"), store.uri, dest))

    calls = []
    for k in range(o.folds):
        fcfg = dict(
            base,
            fold=k,
            train_idx=np.flatnonzero(fold != k),
            val_idx=np.flatnonzero(fold == k),
            fault_marker=os.path.join(store.path("_faults"), f"fold-{k}") if o.fault_injection else None,
            shared_ref=shared_ref,
        )
        calls.append(functools.partial(fit, k, fcfg))
    results = in_threads(calls, at_once, progress=f"oof {member} folds")
    train_s = time.time() - t0 - embed_s

    n, K = len(ids), num_labels
    epochs = np.asarray(results[0]["epoch_probs"]).shape[0]
    probs = np.zeros((n, K), dtype=np.float32)
    epoch_probs = np.zeros((n, epochs, K), dtype=np.float32)
    folds_info = []
    for k, r in enumerate(results):
        idx = np.flatnonzero(fold == k)
        ep = np.asarray(r["epoch_probs"], dtype=np.float32)  # (E, n_k, K)
        epoch_probs[idx] = ep.transpose(1, 0, 2)
        probs[idx] = ep[-1]
        acc = float((ep[-1].argmax(1) == y[idx]).mean())
        resumed = list(r["meta"].get("resumed_after_epochs", []))
        if resumed:
            log(f"{member} fold {k}: recovered from {len(resumed)} failure(s), resumed from its checkpoint after epoch(s) {resumed}")
        folds_info.append(
            {
                "fold": k,
                "rows": int(len(idx)),
                "accuracy": acc,
                "started": r["meta"]["started"],
                "finished": r["meta"]["finished"],
                # Ray's share of the fold's time: launch -> model loaded, checkpoint -> result back
                **r["meta"].get("spans", {}),
                "loaded": r["meta"].get("loaded"),
                "resumed_after_epochs": resumed,
            }
        )
    return {
        "probs": probs, "epoch_probs": epoch_probs, "folds": folds_info, "embed_seconds": embed_s, "train_seconds": train_s,
        "runner": "TorchTrainer" if use_trainer else "ray task",
    }


def _oof_table(ids: list[str], fold: np.ndarray, probs: np.ndarray, epoch_probs: np.ndarray, extra: dict | None = None) -> pa.Table:
    cols = {
        "id": pa.array(ids, pa.string()),
        "fold": pa.array(fold, pa.int32()),
        "probs": pa.array(list(probs), pa.list_(pa.float32())),
        "epoch_probs": pa.array([list(e) for e in epoch_probs], pa.list_(pa.list_(pa.float32()))),
    }
    schema = OOF
    for name, p in (extra or {}).items():
        cols[name] = pa.array(list(np.asarray(p, dtype=np.float32)), pa.list_(pa.float32()))
        schema = schema.append(pa.field(name, pa.list_(pa.float32()), nullable=False))
    return pa.table(cols, schema=schema)


def member_file(member: str) -> str:
    return f"oof/{member}.parquet"


def run_oof(cfg: Config, store: RunStore, train: pa.Table, num_labels: int, fingerprint: str, log=print,
            data_fingerprint: str | None = None) -> dict[str, Any]:
    """Every member of ``oof.backbones`` on the same K folds (each member's folds concurrently), then
    their combination: oof.parquet (+ oof/<member>.parquet, embeddings.parquet for frozen); a summary.

    A member whose settings and data are unchanged is read back from its file instead of retrained.
    ``fingerprint`` names the stage's Ray Train runs and checkpoints; ``data_fingerprint`` (the
    prepare stage's) keys the members' resume. The held-out split is never read here (see the
    ``holdout`` stage)."""
    from hardmine.oof import combine as C
    from hardmine.runtime import sizing_nodes

    o = cfg.oof
    ids = train.column("id").to_pylist()
    texts = train.column("text").to_pylist()
    y = train.column("label").to_numpy().astype(np.int64)
    fold = make_folds(y, o.folds, cfg.seed)
    labels = store.manifest().get("labels")
    length = resolve_max_length(cfg, texts, log)
    fold_gpus = o.gpus_per_fold if any(b in ("frozen", "finetune") for b in o.trainable) else 0.0
    cpus = fold_cpus(o.cpus_per_fold, o.folds, fold_gpus) if o.trainable else 0.0
    if o.trainable:
        check_resources(cpus, fold_gpus, log=log)
    base = data_fingerprint or fingerprint
    members: dict[str, dict[str, Any]] = {}
    member_probs, member_epochs = {}, {}
    for member in o.backbones:
        mfp = member_fingerprint(cfg, member, base, length.get("max_length"))
        out = member_file(member)
        # its fold models are outputs too: a deleted models/<member>/ retrains the member
        mouts = [out] + ([f"models/{member}/fold-{k}" for k in range(o.folds)] if member in o.trainable else [])
        if store.is_done(f"oof:{member}", mfp, mouts):
            t = store.read_table(out)
            member_probs[member] = np.asarray(t.column("probs").to_pylist(), dtype=np.float32)
            member_epochs[member] = np.asarray(t.column("epoch_probs").to_pylist(), dtype=np.float32)
            members[member] = dict(store.manifest()["stages"][f"oof:{member}"].get("summary", {}), resumed=True)
            log(f"[oof] member {member}: up to date, read from {out}")
            continue
        store.mark(f"oof:{member}", "running", fingerprint=mfp, started=time.time())
        t0 = time.time()
        if member == "external":
            from hardmine.probs import load_external_probs

            p = load_external_probs(o.probs_path, ids, labels)
            res = {"probs": p, "epoch_probs": p[:, None, :], "runner": "read", "folds": []}
            log(f"[oof] member external: {len(ids)} rows of probabilities from {o.probs_path}")
        else:
            gpus = o.gpus_per_fold if member != "tfidf" else 0.0
            at_once = min(o.folds, o.max_concurrent or concurrent_runs(cpus, gpus, sizing_nodes(o.folds, gpus)))
            log(f"[oof] member {member}: {o.folds} folds with {cpus:g} CPU(s){f' and {gpus:g} GPU(s)' if gpus else ''} each, {at_once} at a time")
            res = _train_member(cfg, store, member, ids, texts, y, fold, num_labels, fingerprint, length.get("max_length"), cpus, at_once, log)
        store.write_table(out, _oof_table(ids, fold, res["probs"], res["epoch_probs"]))
        m = C.member_metrics(res["probs"], y)
        summary = {
            **m, "seconds": time.time() - t0, "runner": res["runner"], "folds": res["folds"],
            **({k: res[k] for k in ("embed_seconds", "train_seconds") if k in res}),
        }
        store.mark(f"oof:{member}", "done", fingerprint=mfp, outputs=mouts, summary=summary)
        member_probs[member], member_epochs[member] = res["probs"], res["epoch_probs"]
        members[member] = summary

    names = list(o.backbones)
    weights = C.fit_weights([member_probs[b] for b in names], y, o.combine)
    probs = C.combine([member_probs[b] for b in names], weights)
    n_epochs = max(member_epochs[b].shape[1] for b in names)
    # a member with fewer recorded epochs (external: its final probabilities only) holds its last state
    ep_aligned = [np.concatenate([e, np.repeat(e[:, -1:], n_epochs - e.shape[1], axis=1)], axis=1) for e in (member_epochs[b] for b in names)]
    epoch_probs = C.combine(ep_aligned, weights)
    combined = C.member_metrics(probs, y)
    calibration: dict[str, Any] = {"method": o.calibration, "ece_before": combined["ece"], "log_loss_before": combined["log_loss"]}
    if o.calibration == "temperature":
        probs, temps = C.cross_fit_temperature(probs, y, fold)
        # the same per-fold temperature on every recorded epoch: the dynamics end where probs is
        for k, t in zip(np.unique(fold), temps["per_fold"]):
            rows = fold == k
            epoch_probs[rows] = C.apply_temperature(epoch_probs[rows], t)
        after = C.member_metrics(probs, y)
        calibration.update(temperature=temps["all"], per_fold=temps["per_fold"], ece_after=after["ece"], log_loss_after=after["log_loss"])
        combined = after
    for b, w in zip(names, weights):
        members[b]["weight"] = float(w)
    extra = {f"probs_{b}": member_probs[b] for b in names} if len(names) > 1 else None
    store.write_table("oof.parquet", _oof_table(ids, fold, probs, epoch_probs, extra))
    outputs = ["oof.parquet"] + [member_file(b) for b in names] + (["embeddings.parquet"] if "frozen" in names else [])
    return {
        "accuracy": combined["accuracy"],
        "log_loss": combined["log_loss"],
        "ece": combined["ece"],
        "backbones": names,
        "members": members,
        "weights": {b: float(w) for b, w in zip(names, weights)},
        "combine": o.combine,
        "calibration": calibration,
        "max_length": length.get("max_length"),
        "max_length_info": {k: v for k, v in length.items() if k != "max_length"},
        # the first trainable member's fold details (kept for the report and the benchmarks)
        "folds": next((members[b]["folds"] for b in names if members[b].get("folds")), []),
        "runner": next((members[b]["runner"] for b in names if b != "external"), "read"),
        "outputs": outputs,
    }
