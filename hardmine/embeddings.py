"""Frozen-backbone embeddings on Ray: the Ray Data actor pool that encodes texts (:func:`embed_texts`)
and the one embeddings cache every stage reads through (:func:`cached_embeddings`).

The cache is keyed by text: ``<run_root>/_cache/text_embeddings/<model, max_length>/`` holds
immutable shards (text, emb), each named by the hash of the texts it holds. A call embeds only
the texts no shard has and writes them as one new shard, so the OOF stage, evaluate's retrains,
the sweep and the outlier signal share every text they have in common, across runs (label
corrections from review, injected-noise studies, re-runs with another head) and within one
(augmented variants embedded once). Shards are written whole and never rewritten: two processes
embedding the same texts write the same shard, and a reader never sees half of one.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from hardmine.config import Config


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
    import ray

    from hardmine.runtime import planning_resources

    res = planning_resources() if gpus > 0 else ray.cluster_resources()
    if gpus > 0:
        return max(1, int(res.get("GPU", 0) / gpus))
    return max(1, min(16, int(res.get("CPU", 1))))


def embed_texts(ids: list[str], texts: list[str], model: str, *, max_length: int, batch_size: int, actors: int | None, gpus: float = 0.0) -> np.ndarray:
    """Sentence embeddings for ``texts`` with a Ray Data actor pool; rows in input order."""
    import ray

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


def cache_store(cfg: Config):
    """The run store of the shared caches, ``<run_root>/_cache``."""
    from hardmine.store import RunStore

    return RunStore(cfg.run_root.rstrip("/") + "/_cache")


def resolved_max_length(cfg: Config, max_length: int | None) -> int:
    """Tokens per chunk: ``max_length`` (what the OOF stage resolved), else ``oof.max_length``, 128 under ``auto``."""
    o = cfg.oof
    return max_length or (o.max_length if isinstance(o.max_length, int) else 128)


def cache_folder(cfg: Config, max_length: int | None = None) -> str:
    """The folder of one encoder's shards (``oof.model`` at :func:`resolved_max_length`) in :func:`cache_store`."""
    from hardmine.store import fingerprint_bytes

    return f"text_embeddings/{fingerprint_bytes(cfg.oof.model, str(resolved_max_length(cfg, max_length)))}"


def read_cache(cache, folder: str) -> tuple[dict[str, int], np.ndarray]:
    """Every shard of ``folder``: text -> row, and the rows' embeddings."""
    import pyarrow.fs as pafs

    from hardmine.embed import embeddings_from_table

    infos = cache.fs.get_file_info(pafs.FileSelector(cache.path(folder), allow_not_found=True))
    names = sorted(i.base_name for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".parquet"))
    known: dict[str, int] = {}
    parts: list[np.ndarray] = []
    for name in names:
        t = cache.read_table(f"{folder}/{name}")
        emb = embeddings_from_table(t)
        base = sum(len(p) for p in parts)
        for n, text in enumerate(t.column("text").to_pylist()):
            known.setdefault(text, base + n)
        parts.append(emb)
    return known, (np.concatenate(parts) if parts else np.zeros((0, 0), np.float32))


def cached_embeddings(cfg: Config, texts: Sequence[str], *, max_length: int | None = None,
                      log: Callable[[str], None] = print) -> np.ndarray:
    """Frozen-backbone (``oof.model``) embeddings of ``texts``, rows in input order; each distinct
    text is embedded once (with Ray Data, :func:`embed_texts`) and kept in the shared cache.

    ``max_length``: the tokens per chunk the OOF stage resolved (``oof.max_length``, 128 when it
    is ``auto`` and none was resolved)."""
    from hardmine.store import fingerprint_bytes

    o = cfg.oof
    max_length = resolved_max_length(cfg, max_length)
    texts = [str(t) for t in texts]
    cache, folder = cache_store(cfg), cache_folder(cfg, max_length)
    known, emb = read_cache(cache, folder)
    missing = [t for t in dict.fromkeys(texts) if t not in known]
    if missing:
        t0 = time.time()
        new = embed_texts([f"t{i}" for i in range(len(missing))], missing, o.model, max_length=max_length,
                          batch_size=o.embed_batch_size, actors=o.embed_actors, gpus=min(o.gpus_per_fold, 1.0))
        col = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(new, np.float32).reshape(-1)), new.shape[1])
        cache.write_table(f"{folder}/{fingerprint_bytes(*missing)}.parquet", pa.table({"text": pa.array(missing, pa.string()), "emb": col}))
        base = len(emb)
        for n, t in enumerate(missing):
            known[t] = base + n
        emb = new if emb.size == 0 else np.concatenate([emb, new])
        log(f"embedded {len(missing)} texts with {o.model} in {time.time() - t0:.1f}s "
            f"(dim {new.shape[1]}; {len(set(texts)) - len(missing)} from the cache)")
    elif texts:
        log(f"embeddings of {len(texts)} texts with {o.model}: from the cache ({cache.uri_of(folder)})")
    if not texts:
        return np.zeros((0, emb.shape[1] if emb.ndim == 2 else 0), dtype=np.float32)
    return emb[np.fromiter((known[t] for t in texts), dtype=np.int64, count=len(texts))]
