"""The Ray Data stages of the augmentation: the semi-join of the dataset against the augment ids,
the per-source variant counts (before a vLLM processor), the generate-and-filter actor and the
near-duplicate actor. The pipeline that wires them is :func:`hardmine.augment.pipeline.run_augment`.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.augment import filters as F
from hardmine.augment.generators import make_generator
from hardmine.augment.neardup import NearDupIndex, minhash_signatures, near_duplicate_reasons
from hardmine.augment.semantic import resolve_similarity_model
from hardmine.augment.sources import dataset_batches
from hardmine.augment.variants import variant_counts, variant_id
from hardmine.faults import crash_once

#: columns of a variant row between stages (``source_text`` is dropped at write time).
VARIANT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source_id", pa.string()),
        pa.field("source_text", pa.string()),
        pa.field("text", pa.string()),
        pa.field("label", pa.int32()),
        pa.field("method", pa.string()),
        pa.field("variant", pa.int32()),
        pa.field("error", pa.string()),
    ]
)

PredictorFactory = Callable[[], Callable[[list[str]], np.ndarray]]


def select_sources(batch: pa.Table, ids_ref: list) -> pa.Table:
    """Semi-join a dataset batch against the augment ids (broadcast from the object store)."""
    import ray

    ids = ray.get(ids_ref[0])
    t = batch.filter(pc.is_in(batch["id"].cast(pa.string()), value_set=ids))
    return pa.table(
        {
            "source_id": t["id"].cast(pa.string()),
            "source_text": t["text"].cast(pa.string()),
            "label": t["label"].cast(pa.int32()),
        }
    )


def variants_table(source_ids, texts, labels, counts, results, method: str) -> pa.Table:
    """Generator results (one list of ``(text, error)`` per source) -> a variant table."""
    cols: dict[str, list] = {k: [] for k in VARIANT_SCHEMA.names}
    for sid, src, lab, res in zip(source_ids, texts, labels, results):
        for v, (text, error) in enumerate(res):
            cols["id"].append(variant_id(sid, method, v))
            cols["source_id"].append(sid)
            cols["source_text"].append(src)
            cols["text"].append(text)
            cols["label"].append(int(lab))
            cols["method"].append(method)
            cols["variant"].append(v)
            cols["error"].append(error)
    return pa.table(cols, schema=VARIANT_SCHEMA)


class AugmentWorker:
    """Actor: generate variants for a batch of sources (``mode="generate"``) or take
    variant rows (``mode="filter"``), then apply the per-row filters."""

    def __init__(
        self,
        *,
        mode: str,
        filters: dict,
        spec: dict | None = None,
        method: str = "",
        rate: float = 0.0,
        seed: int = 0,
        language: str = "en",
        predictor_factory: PredictorFactory | None = None,
        vocab: list[str] | None = None,
        threads: int = 1,
    ):
        if "similarity" in filters or (spec or {}).get("type") == "hf":  # torch only where a model runs
            import torch

            torch.set_num_threads(max(1, int(threads)))
        self.mode, self.filters, self.method, self.rate, self.seed = mode, filters, method, float(rate), int(seed)
        spec = dict(spec or {})
        # test only: kill this actor's process once (the marker file makes it once per run); Ray Data
        # restarts the actor and retries its batch (max_restarts / max_task_retries = -1)
        self.crash_once_marker = spec.pop("crash_once_marker", None)
        self.generator = make_generator(spec, vocab=vocab or [], seed=seed) if mode == "generate" else None
        self.encoder = None
        if "similarity" in filters:
            from hardmine.embed import load_encoder

            cfg = filters["similarity"]
            self.encoder = load_encoder(resolve_similarity_model(cfg["model"], language), max_length=int(cfg["max_length"]))
        self.predict = predictor_factory() if "consistency" in filters else None

    def _generate(self, batch: pa.Table) -> pa.Table:
        ids = batch["source_id"].to_pylist()
        counts = variant_counts(ids, self.rate, self.seed, self.method)
        live = np.flatnonzero(counts > 0)
        ids = [ids[i] for i in live]
        all_texts = batch["source_text"].to_pylist()
        texts = [all_texts[i] for i in live]
        labels = batch["label"].to_numpy(zero_copy_only=False)[live]
        counts = counts[live]
        try:
            res = self.generator.generate(texts, counts.tolist(), ids)
        except Exception:  # a generator bug on one row must not lose the batch
            res = []
            for t, k, s in zip(texts, counts.tolist(), ids):
                try:
                    res.extend(self.generator.generate([t], [k], [s]))
                except Exception as e:  # noqa: BLE001 - recorded per row
                    res.append([(None, f"{type(e).__name__}: {str(e)[:300]}")] * k)
        return variants_table(ids, texts, labels, counts, res, self.method)

    def __call__(self, batch: pa.Table) -> pa.Table:
        crash_once(self.crash_once_marker, f"augment actor {os.getpid()} crashed on purpose", code=1)  # test-only hook
        if self.mode == "generate":
            variants = self._generate(batch)
        else:
            variants = pa.table({f.name: batch[f.name].cast(f.type) for f in VARIANT_SCHEMA}, schema=VARIANT_SCHEMA)
        return F.apply_filters(variants, self.filters, encoder=self.encoder, predict=self.predict)


class NearDupWorker:
    """Single actor: near-duplicate removal against the training texts and earlier variants."""

    def __init__(self, *, cfg: dict, train: Any = None):
        self.cfg = cfg
        k, t = int(cfg["num_perm"]), float(cfg["threshold"])
        self.variants = NearDupIndex(t, k)
        self.train = None
        if cfg.get("against_train", True) and train is not None:
            import ray

            if isinstance(train, list):  # [ObjectRef of a pa.Table]
                train = ray.get(train[0])
            self.train = NearDupIndex(t, k)
            for b in dataset_batches(train, ["text"], batch_rows=20_000):
                self.train.add(minhash_signatures(b.column(0).to_pylist(), num_perm=k, ngram=int(cfg["ngram"]), seed=int(cfg["seed"])))

    def __call__(self, batch: pa.Table) -> pa.Table:
        k = int(self.cfg["num_perm"])
        kept = batch["kept"].to_numpy(zero_copy_only=False).astype(bool)
        sig = np.zeros((batch.num_rows, k), dtype=np.uint32)
        if kept.any():
            flat = batch["_minhash"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
            sig[kept] = flat.reshape(-1, k)
        reasons = near_duplicate_reasons(sig, kept, self.train, self.variants)
        hit = reasons != None  # noqa: E711
        old = np.asarray(batch["reject_reason"].to_pylist(), dtype=object)
        old[hit] = reasons[hit]
        out = batch.drop_columns(["_minhash"])
        out = out.set_column(out.column_names.index("kept"), "kept", pa.array(kept & ~hit))
        return out.set_column(out.column_names.index("reject_reason"), "reject_reason", pa.array(old.tolist(), pa.string()))


def add_counts(batch: pa.Table, rate: float, seed: int, method: str) -> pa.Table:
    """The sources with ``n``, their variant count (the input of a vLLM processor)."""
    n = variant_counts(batch["source_id"].to_pylist(), rate, seed, method)
    return batch.append_column("n", pa.array(n, pa.int64()))
