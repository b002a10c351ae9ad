"""Ray Tune sweep: hardness threshold x augmentation ratio x label-issue action, chosen on validation, confirmed on test.

**Cells.** A cell is one (threshold, aug_ratio, issue_action). Its trial re-selects the hard set
with the cell's threshold and issue action (:func:`hardmine.select.select` on ``scores.parquet``),
takes the augmented variants of *its* augment set from a pool generated once at the largest budget
(``sweep/pool.parquet``; trials subsample it, they never regenerate), and retrains with the OOF
backbone (in the trial's process, with the trial's resources) over ``sweep.seeds`` seeds: seed
``s`` of every cell shares the initialisation and the augmentation sample (``seed * 1000 + s``).

How a cell treats label issues (``issue_action``): ``drop`` removes them, ``relabel`` relabels the
confident ones (the rest go to review), ``review`` leaves them in training untouched (no human has
reviewed yet) but never augments them, ``keep`` treats them as ordinary rows (they may be augmented).

**Baseline (no action).** ``aug_ratio 0`` with ``issue_action keep``: the training rows exactly as
they are, whatever the threshold (the evaluate stage's ``baseline`` arm). It always runs, over the
same seeds, whether or not the grid holds it. A grid cell whose training set is identical to the
baseline's or to another cell's (``aug_ratio 0`` with ``review`` or ``keep``; ``drop`` at any
threshold) is not retrained: it shares that cell's runs (``same_as`` in the results).

**Choosing on validation.** Before any training, ``sweep.validation_size`` of the training rows
(stratified per class, seeded by ``seed``) are set aside as the validation split; a class left with
fewer than :data:`MIN_VALIDATION_PER_CLASS` validation rows (or no training row) is a data error.
Trials train on the other training rows only, and never on a variant of a validation row (the pool
rows whose ``source_id`` is a validation row are left out of every trial: a paraphrase of a
validation row, with its label, would leak it). Every cell is scored on the validation rows, and
its difference to the baseline gets a paired-bootstrap interval over those rows (the same resampled
rows for every cell, seeds averaged within a resample; :func:`hardmine.evaluate.compare`). The
cell chosen is the one whose interval of the difference in ``sweep.metric`` has the **highest lower
bound above zero**; when no cell's interval lies above zero, the choice is the baseline (no
action). Nothing in this phase reads the test split, its labels or anything derived from it
(``best.json: selection.reads`` lists what it read).

**Confirming on test, once.** After the choice is fixed the chosen cell and the baseline are
retrained on the *full* training split (validation rows included, and the pool's variants of them,
as a user would apply the chosen configuration), over the same seeds, and scored on the test split:
held-out metrics with paired-bootstrap intervals, the difference to the baseline and an exact McNemar
test, against the given test labels and, when the prepare stage recorded the injected truth, the
true ones. This is the only place the sweep reads ``test.parquet`` / ``test_truth.parquet``.

Caveat: hardness and label issues come from the OOF stage over all training rows, so validation
rows took part in the fold models that scored the other rows; their own labels and variants never
reach a trial's training set.

Resume: the experiment lives at ``<run>/sweep/tune/sweep-<fingerprint>``; re-running with the same
inputs restores it with ``Tuner.restore`` and runs only the cells that had not finished; the
baseline's runs and the confirmation are kept beside it, so a complete sweep never reads the test
split twice. An incomplete sweep (interrupted or failed cells) records its validation choice so
far but does not confirm it.

Modules: :mod:`~hardmine.sweep.space` (cells, the grid, Tune's param space), :mod:`~hardmine.sweep.validation`
(the validation split), :mod:`~hardmine.sweep.trials` (a cell's training set and retrains, in a Tune trial or
a Ray task), :mod:`~hardmine.sweep.results` (the results table), :mod:`~hardmine.sweep.choice` (the choice
and ``best.json``), :mod:`~hardmine.sweep.format` (console tables) and :mod:`~hardmine.sweep.stage`
(:func:`run_sweep`, the confirmation on test).
"""

from hardmine.sweep.choice import CHOICE_RULE, choose, confirmation_record, summarize, sweep_best
from hardmine.sweep.format import format_results
from hardmine.sweep.results import RESULTS, pack_runs, results_table, unpack_runs
from hardmine.sweep.space import BASELINE, NO_ACTION, cell_key, grid_cells
from hardmine.sweep.stage import CONFIRMATION, VALIDATION, confirm_on_test, run_sweep
from hardmine.sweep.trials import run_cell, shared_cells, trial_training_set
from hardmine.sweep.validation import MIN_VALIDATION_PER_CLASS, validation_split

__all__ = [
    "BASELINE", "CHOICE_RULE", "CONFIRMATION", "MIN_VALIDATION_PER_CLASS", "NO_ACTION", "RESULTS", "VALIDATION", "cell_key",
    "choose", "confirm_on_test", "confirmation_record", "format_results", "grid_cells", "pack_runs", "results_table",
    "run_cell", "run_sweep", "shared_cells", "summarize", "sweep_best", "trial_training_set", "unpack_runs",
    "validation_split",
]
