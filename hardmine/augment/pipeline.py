"""The augmentation stage on Ray Data: selected sources -> generators -> filters -> ``augmented.parquet``.

Data flow (streaming; the driver never holds the dataset):

1. the ids of ``action == "augment"`` rows are read from ``selected`` (ids only) and
   put in the object store; the dataset streams from Parquet and is semi-joined
   against them (a broadcast ``is_in``), then cut into small blocks;
2. each non-vLLM generator is one actor-pool stage that generates the variants of
   a batch of sources *and* runs the per-row filters in the same process (length,
   identical, script, semantic similarity, label consistency), so models load once
   per actor and no variant travels between stages before it is filtered; vLLM
   generators are ``ray.data.llm`` processors followed by a filter stage;
3. the generator streams are unioned and pass one single-actor stage that removes
   near-duplicates (MinHash LSH against the training texts and earlier variants);
4. the driver iterates the result batch by batch into a Parquet file written to a
   temporary name and renamed (atomic), tallying the summary on the way.

Per-row failures (a generator or model filter raising on a row) are recorded in
``error`` with ``reject_reason = "error"``; they never stop the run.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hardmine.augment import filters as F
from hardmine.augment import language as L
from hardmine.augment.generators import (
    GENERATOR_TYPES,
    build_vocab,
    make_generator,
    method_name,
    plan_budget,
    variant_counts,
    variant_id,
)
from hardmine.schema import ACTIONS, AUGMENTED

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


# --------------------------------------------------------------------------- inputs


def _table_or_path(obj, what: str):
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        p = Path(obj)
        if not p.exists():
            raise ValueError(f"{what} not found: {str(p)!r}")
        return str(p)
    raise ValueError(f"{what} must be a pyarrow Table or a Parquet path; got {type(obj).__name__}")


def _require(names, need: list[str], what: str) -> None:
    missing = [c for c in need if c not in names]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing} (has {list(names)}); it needs {need}")


def augment_ids(selected) -> pa.Array:
    """Ids of the rows with ``action == "augment"`` (streamed; only those ids are kept)."""
    import pyarrow.dataset as pads

    src = _table_or_path(selected, "selected")
    if isinstance(src, pa.Table):
        _require(src.column_names, ["id", "action"], "selected")
        batches = src.select(["id", "action"]).to_batches()
    else:
        d = pads.dataset(src, format="parquet")
        _require(d.schema.names, ["id", "action"], f"selected ({src})")
        batches = d.to_batches(columns=["id", "action"])
    parts = []
    for b in batches:
        act = b.column(1)
        bad = pc.invert(pc.is_in(act, value_set=pa.array(ACTIONS))).fill_null(True)
        if pc.any(bad).as_py():
            rows = pc.filter(b.column(0), bad).to_pylist()[:5]
            vals = sorted({str(v) for v in pc.filter(act, bad).to_pylist()})[:5]
            raise ValueError(f"selected has unknown action(s) {vals} (ids {rows}): allowed actions are {list(ACTIONS)}")
        parts.append(pc.filter(b.column(0), pc.equal(act, "augment")).cast(pa.string()))
    ids = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
    if ids.null_count:
        raise ValueError("selected has augment rows with a null id: every row needs its dataset id")
    if len(pc.unique(ids)) != len(ids):
        counts = pc.value_counts(ids)
        dup = [d["values"] for d in counts.to_pylist() if d["counts"] > 1][:5]
        raise ValueError(f"selected lists ids more than once (e.g. {dup}): one row per sample")
    return ids


def _dataset_batches(dataset, columns: list[str], batch_rows: int = 65_536):
    import pyarrow.dataset as pads

    if isinstance(dataset, pa.Table):
        yield from dataset.select(columns).to_batches(max_chunksize=batch_rows)
    else:
        yield from pads.dataset(dataset, format="parquet").to_batches(columns=columns, batch_size=batch_rows)


def dataset_info(dataset) -> dict:
    """Validate the dataset columns and count its rows without reading its texts."""
    import pyarrow.dataset as pads

    src = _table_or_path(dataset, "dataset")
    if isinstance(src, pa.Table):
        _require(src.column_names, ["id", "text", "label"], "dataset")
        return {"source": src, "n_train": src.num_rows}
    d = pads.dataset(src, format="parquet")
    _require(d.schema.names, ["id", "text", "label"], f"dataset ({src})")
    return {"source": src, "n_train": d.count_rows()}


def sample_texts(dataset, ids: pa.Array, sample: int = 256, dataset_sample: int = 512, n_rows: int | None = None) -> tuple[list[str], list[str]]:
    """Check every augment id is in the dataset exactly once (streaming over the id and
    text columns); returns up to ``sample`` source texts and up to ``dataset_sample``
    training texts spread evenly over the dataset (for language detection), in one pass."""
    found = 0
    texts: list[str] = []
    train: list[str] = []
    step = max(1, (n_rows or 0) // max(1, dataset_sample))
    pos = 0
    for b in _dataset_batches(dataset, ["id", "text"]):
        m = pc.is_in(b.column(0).cast(pa.string()), value_set=ids)
        k = pc.sum(m).as_py() or 0
        found += k
        if k and len(texts) < sample:
            texts.extend(t for t in pc.filter(b.column(1), m).to_pylist()[: sample - len(texts)] if t)
        if len(train) < dataset_sample and b.num_rows:
            first = (-pos) % step
            take = b.column(1).take(pa.array(np.arange(first, b.num_rows, step)))
            train.extend(t for t in take.to_pylist()[: dataset_sample - len(train)] if t)
        pos += b.num_rows
    if found != len(ids):
        seen: set = set()
        for b in _dataset_batches(dataset, ["id"]):
            col = b.column(0).cast(pa.string())
            seen.update(pc.filter(col, pc.is_in(col, value_set=ids)).to_pylist())
        missing = [i for i in ids.to_pylist() if i not in seen]
        if missing:
            raise ValueError(
                f"{len(missing)} augment id(s) of selected are not in the dataset (e.g. {missing[:5]}): "
                "run the selection on this same dataset"
            )
        raise ValueError("the dataset has duplicate ids among the augment sources: ids must be unique")
    return texts, train


def check_sources(dataset, ids: pa.Array, sample: int = 256) -> list[str]:
    """Check every augment id is in the dataset exactly once; returns up to ``sample`` source texts."""
    return sample_texts(dataset, ids, sample=sample, dataset_sample=0)[0]


def detect_language(texts: list[str]) -> str:
    """The language of a sample of texts by script: ``ko``, ``en``, ``ja``, ... (see
    :func:`hardmine.augment.language.detect_language`)."""
    return L.detect_language(texts)


def resolve_language(language: str, source_texts: list[str], train_texts: list[str] | None = None) -> dict:
    """The run's language and how it was decided: ``{"language", "from", "texts", "scripts", ...}``.

    ``language`` other than ``auto`` is taken as configured. Otherwise it is detected
    from the source texts, or, when fewer than :data:`~hardmine.augment.language.MIN_SOURCE_TEXTS`
    of them have text (few or no rows selected), from the sources plus a sample of the
    training set, so a Korean corpus is Korean even when nothing is selected.
    """
    if str(language).lower() != "auto":
        return {"language": L.normalize_language(language), "from": "config"}
    src = [t for t in source_texts if t]
    if len(src) >= L.MIN_SOURCE_TEXTS or not train_texts:
        texts, where = src, "sources"
    else:
        texts, where = src + [t for t in train_texts if t], ("sources+dataset" if src else "dataset")
    return {**L.detect_language_details(texts), "from": where}


def resolve_generators(generators, language: str) -> tuple[list[dict], str]:
    """``"auto"`` -> :func:`~hardmine.augment.language.default_generators` for ``language``;
    a list is taken as given. Returns (specs, ``"auto"`` or ``"config"``)."""
    if isinstance(generators, str):
        if generators.strip().lower() != "auto":
            raise ValueError(f"generators must be 'auto' or a list of generator specs; got {generators!r}")
        return L.default_generators(language), "auto"
    return [dict(g) for g in generators], "config"


def preflight(selected, dataset, generators="auto", language: str = "auto") -> dict:
    """Everything decided before any work starts: the augment ids (validated against the
    dataset), the language, the generators resolved for it and checked against it.

    Raises ``ValueError`` when a generator cannot handle the language (e.g. offline-bt on
    Korean), naming the generator, the language and what to use instead.
    """
    ids = augment_ids(selected)
    info = dataset_info(dataset)
    src, train = sample_texts(info["source"], ids, n_rows=info["n_train"])
    det = resolve_language(language, src, train)
    lang = det["language"]
    specs, how = resolve_generators(generators, lang)
    gens = check_generators(specs)
    L.check_language_support(specs, lang, L.describe_detection(det))
    return {
        "ids": ids, "info": info, "language": lang, "language_detection": det,
        "generators": gens, "generator_specs": specs, "generators_from": how,
        "warnings": L.language_warnings(specs, lang),
    }


def _vocab_from_path(path: str, max_size: int, min_count: int) -> list[str]:
    def texts():
        for b in _dataset_batches(path, ["text"]):
            yield from b.column(0).to_pylist()

    return build_vocab(texts(), max_size=max_size, min_count=min_count)


# --------------------------------------------------------------------------- Ray stages


def _select_sources(batch: pa.Table, ids_ref: list) -> pa.Table:
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
            self.encoder = load_encoder(F.resolve_similarity_model(cfg["model"], language), max_length=int(cfg["max_length"]))
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
        if self.crash_once_marker and not os.path.exists(self.crash_once_marker):
            with open(self.crash_once_marker, "w") as f:
                f.write(f"augment actor {os.getpid()} crashed on purpose\n")
            os._exit(1)
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
        self.variants = F.NearDupIndex(t, k)
        self.train = None
        if cfg.get("against_train", True) and train is not None:
            import ray

            if isinstance(train, list):  # [ObjectRef of a pa.Table]
                train = ray.get(train[0])
            self.train = F.NearDupIndex(t, k)
            for b in _dataset_batches(train, ["text"], batch_rows=20_000):
                self.train.add(F.minhash_signatures(b.column(0).to_pylist(), num_perm=k, ngram=int(cfg["ngram"]), seed=int(cfg["seed"])))

    def __call__(self, batch: pa.Table) -> pa.Table:
        k = int(self.cfg["num_perm"])
        kept = batch["kept"].to_numpy(zero_copy_only=False).astype(bool)
        sig = np.zeros((batch.num_rows, k), dtype=np.uint32)
        if kept.any():
            flat = batch["_minhash"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
            sig[kept] = flat.reshape(-1, k)
        reasons = F.near_duplicate_reasons(sig, kept, self.train, self.variants)
        hit = reasons != None  # noqa: E711
        old = np.asarray(batch["reject_reason"].to_pylist(), dtype=object)
        old[hit] = reasons[hit]
        out = batch.drop_columns(["_minhash"])
        out = out.set_column(out.column_names.index("kept"), "kept", pa.array(kept & ~hit))
        return out.set_column(out.column_names.index("reject_reason"), "reject_reason", pa.array(old.tolist(), pa.string()))


# --------------------------------------------------------------------------- planning


def check_generators(generators: list[dict]) -> list[dict]:
    """Validate generator specs; returns them with ``method`` filled in."""
    if not generators:
        raise ValueError("generators is empty: give at least one, e.g. [{'type': 'eda'}]")
    out, seen = [], set()
    for i, g in enumerate(generators):
        if not isinstance(g, dict) or g.get("type") not in GENERATOR_TYPES:
            raise ValueError(f"generators[{i}] needs type in {list(GENERATOR_TYPES)}; got {g!r}")
        m = method_name(g)
        if m in seen:
            raise ValueError(f"two generators are both named {m!r}: give one of them a distinct 'name'")
        if "~" in m:
            raise ValueError(f"generator name {m!r} must not contain '~' (it separates variant id parts)")
        seen.add(m)
        if g["type"] == "offline-bt" and L.normalize_language(g.get("source_lang", "en")) not in ("en", "pt"):
            raise ValueError(
                f"generators[{i}] offline-bt translates English or Portuguese only (source_lang en or pt); got "
                f"source_lang={g.get('source_lang')!r}: for other languages use eda, or hf/vllm with a multilingual model"
            )
        if g["type"] == "vllm":
            from hardmine.augment.vllm_gen import check_spec

            check_spec(g)
        else:
            from hardmine.augment.generators import check_options

            check_options(g)
        out.append({**g, "method": m})
    return out


def plan_resources(generators: list[dict], cpus: float, gpus: float) -> dict[str, dict]:
    """Actor-pool sizes and per-actor CPUs/GPUs per generator stage.

    By default the CPU stages share ``cpus - 1.1`` logical CPUs (at least 0.05 each):
    the reserve lets one read -> select -> re-block task (Ray Data gives it a whole
    CPU) and the near-duplicate actor run next to the actor pools; logical CPUs only
    gate scheduling, the OS shares the cores. ``hf`` stages take one GPU per worker
    when the cluster has GPUs.

    A ``vllm`` generator's entry sizes its filter stage like a CPU stage, and adds its
    processors' own actors to the reserve: ``engine_workers`` engines (``workers``, default 1)
    holding ``engine_gpus`` GPUs (the spec's ``num_gpus`` share, else tensor x pipeline parallel
    size) and one CPU each (Ray Data's default for an actor), and per processor (two for back-translation) a chat-template and a
    tokenizer pool of up to ``stage_workers`` actors of ``stage_cpus`` CPUs
    (:data:`~hardmine.augment.vllm_gen.VLLM_STAGE_CPUS`).
    """
    from hardmine.augment.vllm_gen import VLLM_STAGE_CPUS, engine_gpus

    reserve = 1.1
    vllm_extra: dict[str, dict] = {}
    for g in generators:
        if g["type"] == "vllm":
            engines = int(g.get("workers") or 1)
            procs = 2 if g.get("task") == "back_translation" else 1
            vllm_extra[g["method"]] = {
                "engine_workers": engines,
                "engine_gpus": float(g["num_gpus"]) if g.get("num_gpus") is not None else float(engine_gpus(g)),
                "stage_cpus": VLLM_STAGE_CPUS, "stage_workers": engines,
            }
            reserve += procs * engines * (1.0 + 2 * VLLM_STAGE_CPUS)
    stages = [g for g in generators]
    n_cpu = max(1, len(stages))
    plan: dict[str, dict] = {}
    for g in stages:
        on_gpu = g["type"] == "hf" and gpus >= 1 and g.get("num_gpus", 1) > 0
        if on_gpu:
            workers = int(g.get("workers") or max(1, int(gpus // max(1, sum(1 for s in stages if s["type"] == "hf")))))
            plan[g["method"]] = {"workers": workers, "num_cpus": float(g.get("num_cpus", 1)), "num_gpus": float(g.get("num_gpus", 1))}
        elif g["type"] == "vllm":  # `workers` counts the engines; the filter stage after them is sized here
            plan[g["method"]] = {"workers": max(1, int(cpus // n_cpu)), "num_gpus": 0.0, **vllm_extra[g["method"]]}
        else:
            workers = int(g.get("workers") or max(1, int(cpus // n_cpu)))
            plan[g["method"]] = {"workers": workers, "num_gpus": 0.0}
    cpu_workers = sum(p["workers"] for p in plan.values() if "num_cpus" not in p)
    for g in stages:
        p = plan[g["method"]]
        if "num_cpus" not in p:
            p["num_cpus"] = float(g.get("num_cpus") or max(0.05, (cpus - reserve) / max(1, cpu_workers)))
        p["threads"] = max(1, int(round(p["num_cpus"])))
    plan["_io"] = {"num_cpus": 0.05}
    return plan


def _write_summary_counts(t: pa.Table, acc: dict) -> None:
    acc["rows"] += t.num_rows
    for d in pc.value_counts(t["method"]).to_pylist():
        m = acc["by_method"].setdefault(d["values"], {"generated": 0, "kept": 0, "errors": 0})
        m["generated"] += d["counts"]
    kept = t.filter(t["kept"])
    acc["kept"] += kept.num_rows
    for d in pc.value_counts(kept["method"]).to_pylist():
        acc["by_method"][d["values"]]["kept"] += d["counts"]
    errs = t.filter(pc.is_valid(t["error"]))
    acc["errors"] += errs.num_rows
    for d in pc.value_counts(errs["method"]).to_pylist():
        acc["by_method"][d["values"]]["errors"] += d["counts"]
    for d in pc.value_counts(t.filter(pc.is_valid(t["reject_reason"]))["reject_reason"]).to_pylist():
        acc["reject_reasons"][d["values"]] = acc["reject_reasons"].get(d["values"], 0) + d["counts"]


# --------------------------------------------------------------------------- entry point


def run_augment(
    selected,
    dataset,
    out_path,
    *,
    generators: list[dict] | str = "auto",
    filters: dict,
    budget: dict,
    predictor_factory: PredictorFactory | None = None,
    seed: int = 0,
    language: str = "auto",
    batch_size: int = 64,
    vocab: list[str] | None = None,
    vocab_size: int = 5000,
    preserve_order: bool = True,
    progress: bool = True,
    log: Callable[[str], Any] | None = print,
    decided: dict | None = None,
) -> dict:
    """Augment the ``action == "augment"`` rows of ``selected`` and write ``out_path``.

    ``decided``: an earlier :func:`preflight` whose language and generators are passed here
    resolved; its ``language_detection`` and ``generators_from`` say how they were decided.

    ``selected`` / ``dataset``: Parquet paths (streamed) or pyarrow Tables.
    ``generators``: ``"auto"`` (picked for the language: English -> offline-bt + eda,
    Portuguese -> offline-bt (source_lang pt) + eda, any other language -> eda; see
    :func:`hardmine.augment.language.default_generators`) or specs such as
    ``{"type": "offline-bt"}``, ``{"type": "eda", "alpha": 0.1}``,
    ``{"type": "hf", "task": "back_translation", "model": ..., "pivot_lang": ...}``,
    ``{"type": "vllm", "task": "paraphrase", "model": ...}``; optional ``name``,
    ``weight`` (share of the budget), ``workers``, ``num_cpus``, ``num_gpus``, ``batch_size``.
    ``filters``: see :func:`hardmine.augment.filters.normalize_filter_config`.
    ``budget``: ``{"aug_ratio": r}`` or ``{"per_sample": k}`` (+ ``max_per_sample``).
    ``predictor_factory``: zero-argument factory, called once per actor, returning
    ``texts -> (n, K) probabilities`` (needed by the consistency filter).
    ``language``: ``auto`` (detected from the sources' script, or from the training set
    when there are few sources; see :func:`resolve_language`), ``en``, ``ko``, ... (picks
    the generators and the similarity model when they are ``auto``).

    Everything is checked before Ray starts: a generator that cannot handle the language
    (offline-bt on Korean) raises ``ValueError``. With no sources (or a zero budget) the
    output is an empty file with the contract schema and Ray is not used; otherwise it
    needs Ray initialised (or starts a local one). Returns a summary dict; the file
    appears atomically.
    """
    t0 = time.time()
    pre = preflight(selected, dataset, generators, language)
    if decided is not None:  # how they were decided, not "as passed"
        pre.update(language_detection=decided["language_detection"], generators_from=decided["generators_from"])
    gens, lang, ids, info = pre["generators"], pre["language"], pre["ids"], pre["info"]
    fcfg = F.normalize_filter_config(filters)
    if "consistency" in fcfg and predictor_factory is None:
        raise ValueError(
            "filters.consistency needs predictor_factory (a zero-argument callable returning texts -> (n, K) probabilities)"
        )
    plan = plan_budget(info["n_train"], len(ids), budget, {g["method"]: float(g.get("weight", 1.0)) for g in gens})
    methods = [g["method"] for g in gens]
    if log:
        log(
            f"augment: language {L.describe_detection(pre['language_detection'])}; generators {methods} "
            f"({'auto for ' + lang if pre['generators_from'] == 'auto' else 'as configured'})"
        )
        for w in pre["warnings"]:
            log(f"augment: warning: {w}")
    idle = len(ids) == 0 or all(r <= 0 for r in plan["rates"].values())
    rplan: dict = {}
    if not idle:
        import ray

        if not ray.is_initialized():
            ray.init()
        if any(g["type"] == "eda" for g in gens) and vocab is None:
            src = info["source"]
            if isinstance(src, pa.Table):
                vocab = build_vocab(src["text"].to_pylist(), max_size=vocab_size)
            else:  # count tokens off the driver
                vocab = ray.get(ray.remote(num_cpus=0.25)(_vocab_from_path).remote(src, vocab_size, 2))
        from hardmine.runtime import planning_resources

        # alive CPUs; alive GPUs, or on an autoscaling cluster without GPUs yet those of the worker type it adds
        res = planning_resources()
        rplan = plan_resources(gens, float(res.get("CPU", 1)) or 1.0, float(res.get("GPU", 0)))
        blocks = max(1, -(-len(ids) // max(1, int(batch_size))))
        for g in gens:  # no idle actors for small inputs: at most one per block of sources
            if not g.get("workers") or g["type"] == "vllm":
                rplan[g["method"]]["workers"] = min(rplan[g["method"]]["workers"], blocks)
    if log:
        log(
            f"augment: {len(ids)} sources of {info['n_train']} rows, "
            f"expected variants/source {({m: round(r, 3) for m, r in plan['rates'].items()})}, "
            f"filters {list(fcfg)}" + (" (nothing to generate: Ray not used)" if idle else "")
        )

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex[:8]}.tmp")
    acc: dict = {"rows": 0, "kept": 0, "errors": 0, "by_method": {}, "reject_reasons": {}}
    ctx = saved = None
    try:
        ds = None
        if not idle:
            import ray

            ctx = ray.data.DataContext.get_current()
            saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
            ctx.execution_options.preserve_order = bool(preserve_order)
            ctx.enable_progress_bars = bool(progress)
            ds = _build(ray, info["source"], ids, gens, fcfg, plan, rplan, predictor_factory, seed, lang, vocab or [], batch_size, log)
        schema = AUGMENTED
        with pq.ParquetWriter(tmp, schema) as w:
            if ds is not None:
                for b in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                    if b.num_rows == 0:
                        continue
                    t = pa.table({f.name: b[f.name].cast(f.type) for f in schema}, schema=schema)
                    w.write_table(t)
                    _write_summary_counts(t, acc)
        os.replace(tmp, out_path)
    finally:
        if ctx is not None:
            ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
        if tmp.exists():
            tmp.unlink()
    dt = time.time() - t0
    summary = {
        "out_path": str(out_path),
        "sources": len(ids),
        "n_train": info["n_train"],
        "language": lang,
        "language_detection": pre["language_detection"],
        "generators": methods,
        "generators_from": pre["generators_from"],
        "warnings": pre["warnings"],
        "rows": acc["rows"],
        "kept": acc["kept"],
        "errors": acc["errors"],
        "by_method": acc["by_method"],
        "reject_reasons": dict(sorted(acc["reject_reasons"].items())),
        "budget": {**plan, "requested": budget},
        "resources": rplan,
        "seconds": round(dt, 3),
        "sources_per_s": round(len(ids) / dt, 3) if dt else None,
        "rows_per_s": round(acc["rows"] / dt, 3) if dt else None,
    }
    if log:
        log(
            f"augment: {acc['rows']} variants, {acc['kept']} kept, {acc['errors']} errors in {dt:.1f}s "
            f"-> {out_path}; rejected {summary['reject_reasons']}"
        )
    return summary


def _build(ray, source, ids, gens, fcfg, plan, rplan, predictor_factory, seed, lang, vocab, batch_size, log=None):
    """The lazy Ray Dataset of filtered variant rows (None when there is nothing to do)."""
    if len(ids) == 0 or all(r <= 0 for r in plan["rates"].values()):
        return None
    io_cpus = rplan["_io"]["num_cpus"]
    ids_ref = ray.put(ids)
    if isinstance(source, pa.Table):
        t = source.select(["id", "text", "label"])
        step = max(1, batch_size * 4)
        ds = ray.data.from_arrow([t.slice(i, step) for i in range(0, t.num_rows, step)] or [t])
    else:
        ds = ray.data.read_parquet(source).select_columns(["id", "text", "label"])
    # default resources on purpose: read -> select -> re-block fuse into one task
    sources = ds.map_batches(
        _select_sources, fn_kwargs={"ids_ref": [ids_ref]}, batch_format="pyarrow", batch_size=None
    ).repartition(target_num_rows_per_block=batch_size)
    streams = []
    for g in gens:
        m, rate, rp = g["method"], plan["rates"][g["method"]], rplan[g["method"]]
        if rate <= 0:
            continue
        common = dict(filters=fcfg, method=m, rate=rate, seed=seed, language=lang,
                      predictor_factory=predictor_factory, threads=rp["threads"])
        pool = ray.data.ActorPoolStrategy(size=rp["workers"])
        bs = int(g.get("batch_size") or batch_size)
        if g["type"] == "vllm":
            from hardmine.augment.vllm_gen import vllm_variants

            with_n = sources.map_batches(
                _add_counts, fn_kwargs={"rate": rate, "seed": seed, "method": m}, batch_format="pyarrow", num_cpus=io_cpus
            )
            spec = {k: v for k, v in g.items() if k != "method"}
            var = vllm_variants(with_n, spec, seed=seed, method=m, resources=rp, log=log)
            s = var.map_batches(
                AugmentWorker, fn_constructor_kwargs={"mode": "filter", **common}, batch_format="pyarrow",
                batch_size=bs, compute=pool, num_cpus=rp["num_cpus"],
            )
        else:
            spec = {k: v for k, v in g.items() if k != "method"}
            s = sources.map_batches(
                AugmentWorker,
                fn_constructor_kwargs={"mode": "generate", "spec": spec, "vocab": vocab if g["type"] == "eda" else None, **common},
                batch_format="pyarrow", batch_size=bs, compute=pool,
                num_cpus=rp["num_cpus"], num_gpus=rp["num_gpus"] or None,
            )
        streams.append(s)
    if not streams:
        return None
    out = streams[0].union(*streams[1:]) if len(streams) > 1 else streams[0]
    if "near_duplicate" in fcfg:
        train = None
        if fcfg["near_duplicate"]["against_train"]:
            train = [ray.put(source.select(["text"]))] if isinstance(source, pa.Table) else source
        out = out.map_batches(
            NearDupWorker, fn_constructor_kwargs={"cfg": fcfg["near_duplicate"], "train": train},
            batch_format="pyarrow", batch_size=None, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=io_cpus,
        )
    return out


def _add_counts(batch: pa.Table, rate: float, seed: int, method: str) -> pa.Table:
    n = variant_counts(batch["source_id"].to_pylist(), rate, seed, method)
    return batch.append_column("n", pa.array(n, pa.int64()))
