"""Selection policies: decide, per sample, what happens to it (pure numpy/pyarrow, no Ray).

:func:`select` splits a scores table (see :data:`hardmine.schema.SCORES_CORE`) into

- *likely mislabeled* rows (cleanlab label issues) -> review / drop / relabel, by policy;
- *hard but plausibly correct* rows -> ``augment``;
- everything else -> ``none``.

Every row gets exactly one action and the ``rule`` that chose it, so each decision
can be traced back to a parameter.

Two policies say which rows are hard (:data:`hardmine.vocab.POLICIES`): ``hardness`` (the top
``hardness_quantile`` by ``1 - p_true`` and/or ``p_true <= p_true_max``) and ``ambiguous``,
the *ambiguous region* of the data map (Swayamdipta et al., 2020, "Dataset Cartography"):
the top ``ambiguous_quantile`` of rows by ``dyn_variability``, the std of ``p_true`` over
the OOF epochs. Every row also gets its data-map ``region`` (:func:`data_map_regions`).
A class-aware budget (:data:`hardmine.vocab.CLASS_BUDGETS`) then redistributes the policy's
number of augmentation sources across classes (:func:`class_weights`, :func:`allocate`).
The selection table says which rows were hard (:func:`hard_mask`): the set the analysis describes.

Modules: :mod:`~hardmine.select.decide` (:func:`select`), :mod:`~hardmine.select.policies`
(the hard set), :mod:`~hardmine.select.actions` (label issues, signals, exclusions),
:mod:`~hardmine.select.budget`, :mod:`~hardmine.select.data_map`, :mod:`~hardmine.select.order`
(tie-breaking), :mod:`~hardmine.select.inputs` (reading the scores), :mod:`~hardmine.select.table`
(selected.parquet) and :mod:`~hardmine.select.params` (checks, :func:`select_kwargs`).
"""
from hardmine.select.budget import allocate, class_weights, per_class_f1
from hardmine.select.data_map import data_map_regions
from hardmine.select.decide import select
from hardmine.select.inputs import SIGNAL_REASONS, dynamics, max_prob, score_ids, text_for_ids
from hardmine.select.order import tiebreak_keys, top_quantile_mask
from hardmine.select.params import select_kwargs
from hardmine.select.table import SELECTION, hard_mask

__all__ = [
    "SELECTION", "SIGNAL_REASONS", "allocate", "class_weights", "data_map_regions", "dynamics", "hard_mask", "max_prob",
    "per_class_f1", "score_ids", "select", "select_kwargs", "text_for_ids", "tiebreak_keys", "top_quantile_mask",
]
