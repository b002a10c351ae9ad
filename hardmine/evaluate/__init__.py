"""Retrain on acted-on training sets and evaluate on the held-out split.

Arms (the training sets compared; every arm is scored on the same held-out rows):

- ``baseline``        the training split as loaded;
- ``clean``           after the selection's issue actions (drop / relabel; ``review`` rows per ``review_as``);
- ``targeted``        baseline + augmented variants of the hard samples (``augmented.parquet``);
- ``clean+targeted``  both;
- ``random``          control: baseline + the same number of variants made from randomly chosen
                      training rows (``augmented_random.parquet``), i.e. the same budget untargeted.
- ``hard_weighted``   (opt-in) the baseline rows trained with ``train.hard_weighting`` (``upweight``
                      when that is ``none``): per-row loss weights from ``scores.parquet``'s
                      hardness, rows repeated (``oversample``), or OHEM; label issues never up-weighted;
- ``adversarial``     (opt-in) the baseline rows trained with FGM on the word embeddings
                      (``train.fgm_epsilon``; finetune only).
- ``self_training``   (opt-in) baseline + the pool rows (``data.unlabelled_path``) the fold models
                      pseudo-label under ``pseudo.*`` (:mod:`hardmine.review.pseudo`); pool ids on the
                      training or held-out split are refused, pool texts equal to a held-out text left out;
- ``reviewed``        (opt-in) the rows as prepared (version 0) with the labels of the newest reviewed
                      dataset version, trained beside ``before_review`` (the same rows, version 0's
                      labels); the pair ``reviewed - before_review`` is the review's effect.

Only ``hard_weighted`` and ``adversarial`` train with ``train.*``; every other arm trains without
it (:func:`arm_train_settings`), so each arm differs from ``baseline`` in one thing.

Each arm runs over several seeds (seed ``s`` of every arm shares the initialisation and
shuffling seed). Intervals come from a paired bootstrap over the held-out rows
(:mod:`hardmine.stats`): every arm is scored on the same resampled rows, its seeds averaged
within a resample, so an interval covers the test set's sampling noise and the seeds' (a
converged model gives the same predictions for every seed: an interval over seeds alone would
have zero width). A difference to ``baseline`` counts only when its interval excludes zero;
otherwise it is reported as "not distinguishable". An exact McNemar test per arm against
``baseline`` goes with it. When the held-out rows' true labels are known (injected noise:
``test_truth.parquet``, written by the prepare stage for the demo and benchmarks), every
number is also reported against the true labels, labelled as such.

Modules: :mod:`~hardmine.evaluate.arms` (the training set of each arm), :mod:`~hardmine.evaluate.opt_in`
(the self_training and reviewed arms' sets), :mod:`~hardmine.evaluate.compare` (the runs table and the
comparison: intervals, differences, McNemar), :mod:`~hardmine.evaluate.format` (console tables),
:mod:`~hardmine.evaluate.features` (model inputs and the embedding cache), :mod:`~hardmine.evaluate.retrain`
(the retrains on Ray: :func:`retrain_many`, through the one training loop
:func:`hardmine.oof.loop.train_fold`, whose "val" split is the held-out split; nothing in the loop
selects on it) and :mod:`~hardmine.evaluate.stage` (:func:`run_evaluate`). ``arms``, ``compare`` and
``format`` are pure (numpy / pyarrow, no Ray). The summary's contract is
:class:`hardmine.summaries.EvaluationSummary`.
"""
from hardmine.evaluate.arms import (
    arm_train_settings,
    arm_training_set,
    hard_weighted_mode,
    hardness_for,
    spread_order,
    training_set_info,
)
from hardmine.evaluate.compare import RUNS, compare, heldout_labels
from hardmine.evaluate.features import assemble, embeddings_by_id, set_indices
from hardmine.evaluate.format import format_summary
from hardmine.evaluate.opt_in import opt_in_sets
from hardmine.evaluate.retrain import MemoryCheckpoints, retrain_many
from hardmine.evaluate.stage import evaluation_fingerprint, run_evaluate
from hardmine.stats import interval, metrics
from hardmine.vocab import BEFORE_REVIEW, HARD_ARM_MODES, REVIEW_AS

__all__ = [
    "BEFORE_REVIEW", "HARD_ARM_MODES", "REVIEW_AS", "RUNS", "MemoryCheckpoints", "arm_train_settings", "arm_training_set",
    "assemble", "compare", "embeddings_by_id", "evaluation_fingerprint", "format_summary",
    "hard_weighted_mode", "hardness_for", "heldout_labels", "interval", "metrics", "opt_in_sets", "retrain_many",
    "run_evaluate", "set_indices", "spread_order", "training_set_info",
]
