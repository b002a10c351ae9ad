"""Augmentation of hard samples: generators, filters and the Ray Data pipeline.

Pure pieces (importable without Ray or vLLM): :mod:`.generators`, :mod:`.filters`,
:mod:`.vllm_gen` (prompt and row functions; vLLM only when a processor is built).
The Ray edge is :func:`hardmine.augment.pipeline.run_augment`.
"""
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
    "run_augment",
]
