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

This module decides (:func:`preflight`) and wires the stages (:func:`run_augment`); the inputs
are read in :mod:`.sources`, the actor pools planned in :mod:`.plan`, the stages themselves
are :mod:`.actors`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hardmine.augment import filters as F
from hardmine.augment import language as L
from hardmine.augment.actors import AugmentWorker, NearDupWorker, PredictorFactory, add_counts, select_sources
from hardmine.augment.eda import build_vocab
from hardmine.augment.variants import plan_budget
from hardmine.augment.plan import check_generators, plan_resources
from hardmine.augment.sources import augment_ids, dataset_info, sample_texts, vocab_from_path
from hardmine.schema import AUGMENTED
from hardmine.store import atomic_file


# --------------------------------------------------------------------------- preflight


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


# --------------------------------------------------------------------------- entry point


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
        from hardmine.runtime import ensure_ray

        ray = ensure_ray()
        if any(g["type"] == "eda" for g in gens) and vocab is None:
            src = info["source"]
            if isinstance(src, pa.Table):
                vocab = build_vocab(src["text"].to_pylist(), max_size=vocab_size)
            else:  # count tokens off the driver
                vocab = ray.get(ray.remote(num_cpus=0.25)(vocab_from_path).remote(src, vocab_size, 2))
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
        with atomic_file(out_path) as tmp, pq.ParquetWriter(tmp, schema) as w:
            if ds is not None:
                for b in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                    if b.num_rows == 0:
                        continue
                    t = pa.table({f.name: b[f.name].cast(f.type) for f in schema}, schema=schema)
                    w.write_table(t)
                    _write_summary_counts(t, acc)
    finally:
        if ctx is not None:
            ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
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
        select_sources, fn_kwargs={"ids_ref": [ids_ref]}, batch_format="pyarrow", batch_size=None
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
                add_counts, fn_kwargs={"rate": rate, "seed": seed, "method": m}, batch_format="pyarrow", num_cpus=io_cpus
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
