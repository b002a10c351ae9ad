"""Augmentation of hard samples: generators, filters and the Ray Data pipeline.

Pure pieces (importable without Ray or vLLM): :mod:`.generators` (with :mod:`.variants`,
:mod:`.eda`, :mod:`.offline_bt`), :mod:`.filters` (with :mod:`.scripts`, :mod:`.semantic`,
:mod:`.neardup`),
:mod:`.language` (language detection, generators per language, refusals),
:mod:`.explain` (why a selection left nothing to augment),
:mod:`.vllm_gen` (prompt and row functions; vLLM only when a processor is built).
The Ray edge is :func:`hardmine.augment.pipeline.run_augment`.
"""
from hardmine.augment.explain import no_sources_reason
from hardmine.augment.filters import (
    FILTER_ORDER,
    REASONS,
    NearDupIndex,
    apply_filters,
    dominant_script,
    minhash_signatures,
    normalize_filter_config,
)
from hardmine.augment.generators import (
    EDAGenerator,
    HFGenerator,
    OfflineBackTranslator,
    build_vocab,
    eda_variants,
    make_generator,
    plan_budget,
    variant_counts,
    variant_id,
)
from hardmine.augment.language import (
    check_language_support,
    default_generators,
    detect_language,
    detect_language_details,
)


def run_augment(*args, **kwargs):
    """See :func:`hardmine.augment.pipeline.run_augment` (imported lazily: it needs Ray)."""
    from hardmine.augment.pipeline import run_augment as _run

    return _run(*args, **kwargs)


__all__ = [
    "FILTER_ORDER",
    "REASONS",
    "NearDupIndex",
    "apply_filters",
    "dominant_script",
    "minhash_signatures",
    "normalize_filter_config",
    "EDAGenerator",
    "HFGenerator",
    "OfflineBackTranslator",
    "build_vocab",
    "eda_variants",
    "make_generator",
    "plan_budget",
    "variant_counts",
    "variant_id",
    "check_language_support",
    "default_generators",
    "detect_language",
    "detect_language_details",
    "no_sources_reason",
    "run_augment",
]
