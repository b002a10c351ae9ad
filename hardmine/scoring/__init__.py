"""Per-sample hardness and label-quality scores from out-of-fold probabilities.

A functional core in the style of cleanlab: numpy arrays in, numpy arrays (or one Arrow
table) out, no Ray. Public functions validate their inputs with :mod:`hardmine.probs`;
their ``*_unchecked`` twins (used across these modules) and ``_``-prefixed versions assume
valid inputs (float32 ``(n, K)`` probs, int labels).

Conventions: ``probs[i, k]`` is the out-of-fold probability that row ``i`` is class
``k``; ``labels[i]`` is the given (possibly wrong) class index.

Modules: :mod:`~hardmine.scoring.samples` (per-row scores: :func:`sample_scores`),
:mod:`~hardmine.scoring.confident` (confident learning with cleanlab: :func:`label_quality`,
:func:`label_issues`, :func:`noise_summary`, :data:`DEFAULT_RANK_BY`),
:mod:`~hardmine.scoring.dynamics` (:func:`training_dynamics`), :mod:`~hardmine.scoring.table`
(the scores table :data:`SCORES_SCHEMA`: :func:`score_table`, :func:`with_signals`) and
:mod:`~hardmine.scoring.detection` (:func:`detection_metrics` against known-wrong labels).
"""
from hardmine.scoring.confident import DEFAULT_RANK_BY, label_issues, label_quality, noise_summary
from hardmine.scoring.detection import detection_metrics
from hardmine.scoring.dynamics import training_dynamics
from hardmine.scoring.samples import sample_scores
from hardmine.scoring.table import (
    DYNAMICS_COLUMNS,
    SCORE_COLUMNS,
    SCORES_SCHEMA,
    SIGNAL_COLUMNS,
    score_table,
    with_signals,
)
from hardmine.vocab import FILTERS, RANK_BY  # the vocabularies of label_issues' filter_by and rank_by

__all__ = [
    "DEFAULT_RANK_BY", "DYNAMICS_COLUMNS", "FILTERS", "RANK_BY", "SCORES_SCHEMA", "SCORE_COLUMNS", "SIGNAL_COLUMNS",
    "detection_metrics", "label_issues", "label_quality", "noise_summary", "sample_scores", "score_table",
    "training_dynamics", "with_signals",
]
