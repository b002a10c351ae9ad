"""Ray edge of the OOF stage: embeddings with Ray Data, K concurrent fold trainings.

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
import math
import os
import time
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from hardmine.config import Config
from hardmine.embed import embeddings_table
from hardmine.oof.folds import make_folds
from hardmine.oof.loop import MODEL_DIR, DirCheckpoints, TrainCheckpoints, read_checkpoint, train_fold
from hardmine.oof.settings import train_settings
from hardmine.schema import OOF
from hardmine.store import RunStore


class ResourceError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- embeddings


class _EmbedActor:
    def __init__(self, model: str, max_length: int, batch_size: int):
        import torch

        from hardmine.embed import load_encoder

        torch.set_num_threads(1)
        self.encoder = load_encoder(model, max_length=max_length, chunk=True)
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        emb = self.encoder.encode(list(batch["text"]), batch_size=self.batch_size)
        return {"id": batch["id"], "emb": emb}


def default_embed_actors(gpus: float = 0.0) -> int:
    """One embedding actor per cluster CPU (at most 16), or one per GPU share when actors take GPUs
    (on an autoscaling cluster without GPUs yet: per GPU share of the worker nodes it may add)."""
    from hardmine.runtime import planning_resources

    res = planning_resources() if gpus > 0 else ray.cluster_resources()
    if gpus > 0:
        return max(1, int(res.get("GPU", 0) / gpus))
    return max(1, min(16, int(res.get("CPU", 1))))


def embed_texts(ids: list[str], texts: list[str], model: str, *, max_length: int, batch_size: int, actors: int | None, gpus: float = 0.0) -> np.ndarray:
    """Sentence embeddings for ``texts`` with a Ray Data actor pool; rows in input order."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    actors = actors or default_embed_actors(gpus)
    # One Arrow table is one block, and one block goes to one actor: split the rows so every
    # actor has work. Rows are sorted by length and dealt round-robin, so every block holds the
    # same mix of lengths (equal work per block, no straggler) and is itself sorted (each batch
    # pads little: about 2x faster than input order on short texts).
    order = np.argsort([len(t) for t in texts], kind="stable")
    table = pa.table({"id": ids, "text": texts})
    n_blocks = max(1, min(len(texts) // max(batch_size, 1), max(actors * 2, -(-len(texts) // 8192))))
    actors = min(actors, n_blocks)  # an actor with no block to process would only load a model
    ds = ray.data.from_arrow([table.take(order[b::n_blocks]) for b in range(n_blocks)])
    ds = ds.map_batches(
        _EmbedActor,
        fn_constructor_kwargs={"model": model, "max_length": max_length, "batch_size": batch_size},
        batch_size=max(batch_size, 256),
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
        num_gpus=gpus or None,
    )
    pos = {i: n for n, i in enumerate(ids)}
    out: np.ndarray | None = None
    for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
        emb = np.asarray(batch["emb"], dtype=np.float32)
        if out is None:
            out = np.zeros((len(ids), emb.shape[1]), dtype=np.float32)
        out[[pos[i] for i in batch["id"]]] = emb
    assert out is not None
    return out


def cached_embeddings(cfg: Config, ids: list[str], texts: list[str], log=print, max_length: int | None = None) -> np.ndarray:
    """Frozen-backbone embeddings, cached under ``<run_root>/_cache`` by (model, max_length, texts).

    Runs that share texts (label corrections from review, injected-noise studies, re-runs with
    another head) reuse them instead of re-encoding.
    """
    from hardmine.embed import embeddings_from_table
    from hardmine.store import RunStore, fingerprint_bytes

    o = cfg.oof
    max_length = max_length or (o.max_length if isinstance(o.max_length, int) else 128)
    key = fingerprint_bytes(o.model, str(max_length), *texts)
    cache = RunStore(cfg.run_root.rstrip("/") + "/_cache")
    name = f"embeddings-{key}.parquet"
    if cache.exists(name):
        log(f"embeddings of {len(texts)} texts with {o.model}: from the cache ({cache.uri_of(name)})")
        return embeddings_from_table(cache.read_table(name))
    t0 = time.time()
    x = embed_texts(ids, texts, o.model, max_length=max_length, batch_size=o.embed_batch_size,
                    actors=o.embed_actors, gpus=min(o.gpus_per_fold, 1.0))
    cache.write_table(name, embeddings_table(list(range(len(texts))), x))
    log(f"embedded {len(ids)} texts with {o.model} in {time.time() - t0:.1f}s (dim {x.shape[1]})")
    return x


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


def in_threads(calls: list, limit: int | None = None, progress: str | None = None) -> list:
    """Run the zero-argument ``calls`` in daemon threads, at most ``limit`` at a time (the next
    starts when one ends); their results in order. ``progress``: a progress bar's label (shown
    on a terminal, :func:`hardmine.console.progress`).

    Fails fast: the first exception is raised as soon as it happens (the other runs are left
    to Ray, exactly as with abandoned task refs; daemon threads never hold the process open)."""
    import queue
    import threading

    done: queue.Queue = queue.Queue()

    def run(i, call):
        try:
            done.put((i, call(), None))
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            done.put((i, None, e))

    def start(i):
        threading.Thread(target=run, args=(i, calls[i]), name=f"hardmine-run-{i}", daemon=True).start()

    limit = max(1, limit or len(calls))
    for i in range(min(limit, len(calls))):
        start(i)
    results: list = [None] * len(calls)
    from hardmine.console import progress as bar

    with bar(len(calls) if progress else 0, progress or "", unit="run") as b:
        for n in range(len(calls)):
            i, value, error = done.get()
            if error is not None:
                raise error
            results[i] = value
            b.update(1)
            if n + limit < len(calls):
                start(n + limit)
    return results


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


def fold_cpus(requested: float | None, runs: int, gpus: float = 0.0, nodes: list[dict] | None = None) -> float:
    """CPUs per training run: ``requested``, or the largest whole-CPU share that runs as many
    of the ``runs`` at once as the cluster allows.

    The share is the largest c = node_cpus / m (m a whole number, c >= 1) such that the nodes
    hold ``runs`` of them together, else 1 CPU: 5 folds on three 16-CPU nodes get 8 CPUs each
    (two per node), on one 2-CPU node 1 CPU each (two at a time). Fractional shares
    are never chosen automatically: 5 single-threaded folds time-sliced on 2 cores measured
    1.5x slower than the sequential loop (see README, OOF benchmark); set the value yourself
    to pack more folds per CPU or GPU.

    With ``gpus`` > 0 only nodes holding that many GPUs count, and the target is as many runs
    as their GPUs hold at once: 5 folds at 0.2 GPU on one 8-CPU, 1-GPU node get 1.6 CPUs each;
    at 1 GPU, one at a time, 8 CPUs each. ``nodes`` (``[{"CPU", "GPU"}]``) default to
    :func:`hardmine.runtime.sizing_nodes`: the alive nodes plus, on an autoscaling cluster, the
    worker nodes of the type the autoscaler adds (``ray.worker_resources``)."""
    if requested:
        return float(requested)
    from hardmine.runtime import node_fits, sizing_nodes

    nodes = sizing_nodes(runs, gpus) if nodes is None else nodes
    usable = [n for n in nodes if n.get("CPU", 0) > 0 and (gpus <= 0 or n.get("GPU", 0) >= gpus)]
    target = runs if gpus <= 0 else max(1, min(runs, sum(node_fits(n, 1.0, gpus) for n in usable)))
    best = 1.0
    for c in {float(n["CPU"]) / m for n in usable for m in range(1, runs + 1)}:
        if c > best and sum(node_fits(n, c, gpus) for n in usable) >= target:
            best = c
    return math.floor(best * 1e4) / 1e4


def concurrent_runs(cpus: float, gpus: float = 0.0, nodes: list[dict] | None = None) -> int:
    """How many runs holding ``cpus`` CPUs (and ``gpus`` GPUs) the cluster's nodes hold at once (at
    least 1); ``nodes`` as in :func:`fold_cpus` (on an autoscaling cluster the worker nodes it may
    add count, so every run is launched and the autoscaler sees all of them)."""
    from hardmine.runtime import node_fits, sizing_nodes

    nodes = sizing_nodes(None, gpus) if nodes is None else nodes
    return max(1, sum(node_fits(n, cpus, gpus) for n in nodes))


def fold_threads(cpus: float) -> int:
    """Torch intra-op threads for a run holding ``cpus`` CPUs: its whole CPUs, at least one."""
    return max(1, int(cpus))


class ElasticThreads:
    """Torch threads for a run that holds ``cpus`` CPUs and may borrow its node's idle ones.

    Ray reserves CPUs, it does not pin them: when fewer runs than CPUs are left (the last of 5
    folds on 2 CPUs trains alone), the CPUs nobody holds would idle. Every ``every_s`` seconds
    the run reads its node's free CPUs from Ray's scheduler and uses its own whole CPUs plus
    its share of the free ones (in proportion to what it holds among the node's held CPUs),
    never more than the node has. A run that Ray schedules onto them takes them back at the
    next check. ``oof.elastic_threads: false`` keeps the threads at the run's own CPUs.
    """

    def __init__(self, cpus: float, every_s: float = 2.0):
        self.own = float(cpus)
        self.base = fold_threads(cpus)
        self.every_s = every_s
        self.node = ray.get_runtime_context().get_node_id()
        self.n = self.base
        self._checked = float("-inf")

    @classmethod
    def from_config(cls, cfg: dict) -> "ElasticThreads | None":
        """For a ``train_fold`` config: None when elastic threads are off or the run has a GPU."""
        if not cfg.get("elastic_threads") or cfg.get("gpus"):
            return None
        return cls(cfg.get("cpus") or cfg["threads"])

    def free_cpus(self) -> tuple[float, float]:
        """(total, unreserved) CPUs of this run's node, as Ray's scheduler sees them now."""
        # DeveloperAPI (Ray 2.60 has no public per-node view; ray.available_resources() sums the cluster)
        from ray._private.state import available_resources_per_node, total_resources_per_node

        total = total_resources_per_node().get(self.node, {}).get("CPU", 0.0)
        free = available_resources_per_node().get(self.node, {}).get("CPU", 0.0)
        return float(total), float(free)

    def __call__(self) -> int:
        now = time.monotonic()
        if now - self._checked < self.every_s:
            return self.n
        self._checked = now
        try:
            total, free = self.free_cpus()
        except Exception:  # noqa: BLE001 - the scheduler's view is an optimisation; keep the base
            return self.n
        held = max(total - free, self.own)
        extra = math.floor(free * self.own / held + 1e-9) if free >= 1 else 0
        self.n = int(max(self.base, min(total, self.base + extra)))
        return self.n


def check_resources(cpus: float, gpus: float, log=print, nodes: list[dict] | None = None, info: dict | None = None) -> str:
    """Refuse a fold no node can ever hold; on an autoscaling cluster whose nodes cannot hold one
    yet, log what it waits for instead (``"waiting"``). See :func:`hardmine.runtime.require_fit`."""
    from hardmine.runtime import require_fit

    if gpus > 0:
        fix = "set oof.gpus_per_fold: 0 to train on CPU, or run on a cluster with GPUs"
    else:
        fix = "lower oof.cpus_per_fold"
    return require_fit(
        cpus, gpus, what=f"a fold (oof.cpus_per_fold={cpus:g}, oof.gpus_per_fold={gpus:g})", fix=fix,
        error=ResourceError, log=log, alive=nodes, info=info,
    )


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
        x = cached_embeddings(cfg, ids, texts, log, max_length=max_length)
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
