"""The augment stage: variants of the hard-but-correct samples (and, as a control, of random rows), filtered;
and :func:`augment_to_store`, the Ray Data augmentation pipeline on a run's selection (the sweep's pool uses it too)."""
from __future__ import annotations

from typing import Any

from hardmine.augment.control import random_control
from hardmine.augment.explain import no_sources_reason
from hardmine.augment.format import format_funnel, format_funnel_short
from hardmine.augment.language import describe_detection
from hardmine.config import Config
from hardmine.console import detail
from hardmine.pipeline.run import Context, run_declared


def pool_ratio(cfg: Config) -> float | None:
    """The budget the augmentation pool covers: the largest evaluate may ask for, so arms subsample instead of regenerating."""
    a = cfg.augment
    return None if a.aug_ratio is None else max(a.aug_ratio, cfg.evaluate.aug_ratio)


def fingerprint_parts(ctx: Context) -> list[str]:
    return [repr(pool_ratio(ctx.cfg))]


def augment(ctx: Context) -> dict[str, Any]:
    """Variants of the hard-but-correct samples (and, as a control, of random rows), filtered.

    The language, the generators for it and their fit are decided first (a generator that
    cannot handle the language is refused before Ray starts); with no rows to augment the
    stage completes with empty outputs and says why (from the select stage's summary).
    """
    return run_declared(ctx, "augment", lambda fp: _augment(ctx))


def _augment(ctx: Context) -> dict[str, Any]:
    from hardmine.augment.pipeline import preflight
    from hardmine.runtime import connect

    cfg, store = ctx.cfg, ctx.store
    a = cfg.augment
    local = store.is_local_fs()

    def src(name):
        return store.uri_of(name) if local else store.read_table(name)

    generators = a.generators if isinstance(a.generators, str) else [dict(g) for g in a.generators]
    pre = preflight(src("selected.parquet"), src("dataset.parquet"), generators, a.language)
    n_src = len(pre["ids"])
    reason = None
    if n_src == 0:
        sel_summary = (store.manifest().get("stages", {}).get("select") or {}).get("summary") or {}
        reason = (sel_summary.get("no_augment_reason") or no_sources_reason(sel_summary)
                  or "0 rows to augment: selected.parquet has no row with action augment")
        ctx.log(f"augment: {reason}")
    else:  # nothing to generate needs no cluster
        connect(cfg, ctx.log)
    budget = a.budget(pool_ratio(cfg))
    targeted = augment_to_store(ctx, "selected.parquet", "augmented.parquet", budget, cfg.seed, pre)
    summary = {"language": pre["language"], "generators": targeted["generators"], "targeted": targeted}
    if reason:
        targeted["no_sources_reason"] = summary["no_sources_reason"] = reason
    if targeted.get("language"):
        det = targeted.get("language_detection") or {}
        how = f"auto for {targeted['language']}" if targeted.get("generators_from") == "auto" else "as configured"
        ctx.log(f"augment: language {describe_detection(det) if det else targeted['language']}; generators {targeted.get('generators')} ({how})")
    ctx.log(format_funnel_short(targeted, "targeted: hard samples"))
    detail("augmentation funnel (targeted: hard samples):\n" + format_funnel(targeted))
    if a.random_control:
        sel = store.read_table("selected.parquet", columns=["id", "label", "action"])
        store.write_table("selected_random.parquet", random_control(sel, n_src, cfg.seed + 7))
        # same language and generators as the targeted run (random rows may differ in script)
        summary["random"] = augment_to_store(ctx, "selected_random.parquet", "augmented_random.parquet", budget, cfg.seed + 1, pre)
        if reason:
            summary["random"]["no_sources_reason"] = reason
        ctx.log(format_funnel_short(summary["random"], "random control, same number of sources"))
        detail("augmentation funnel (random control: same number of random sources):\n" + format_funnel(summary["random"]))
    return summary


def augment_to_store(ctx: Context, selected: str, out: str, budget: dict, seed: int, pre: dict | None = None) -> dict:
    """Run the Ray Data augmentation pipeline on the run's ``selected`` into the run's ``out`` Parquet.

    ``pre``: a :func:`hardmine.augment.pipeline.preflight` result whose language and
    generators are used as decided (else the config's, ``auto`` resolved by ``run_augment``).
    """
    import os
    import tempfile

    from hardmine.augment.filters import normalize_filter_config
    from hardmine.augment.pipeline import run_augment
    from hardmine.oof.predict import fold_predictor_factory

    cfg, store = ctx.cfg, ctx.store
    a = cfg.augment
    factory = fold_predictor_factory(store.uri) if "consistency" in normalize_filter_config(a.filters) else None
    local = store.is_local_fs()
    tmpdir = None if local else tempfile.mkdtemp(prefix="hardmine-aug-")
    out_path = store.path(out) if local else os.path.join(tmpdir, out)
    if pre is not None:
        generators, language = [dict(g) for g in pre["generator_specs"]], pre["language"]
    else:
        generators = a.generators if isinstance(a.generators, str) else [dict(g) for g in a.generators]
        language = a.language
    summary = run_augment(
        store.uri_of(selected) if local else store.read_table(selected),
        store.uri_of("dataset.parquet") if local else store.read_table("dataset.parquet"),
        out_path, generators=generators, filters=dict(a.filters), budget=budget,
        predictor_factory=factory, seed=seed, language=language, batch_size=a.batch_size, log=detail, decided=pre,
    )
    if pre is not None:  # how the language and generators were decided, not "as passed"
        summary.update(language_detection=pre["language_detection"], generators_from=pre["generators_from"])
    if not local:
        store.put_file(out_path, out)
    return summary
