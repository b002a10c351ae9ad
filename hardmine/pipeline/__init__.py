"""The stages in order, each resumable through the run store's manifest.

* :mod:`~hardmine.pipeline.stages`: the stages declared once (order, fingerprint inputs, outputs, code);
  light: no pyarrow, torch or Ray at import time
* :mod:`~hardmine.pipeline.run`: the run's :class:`Context`, a stage's :func:`fingerprint` derived from its
  declaration, :func:`run_stage` (skip when up to date, else run and record) and :func:`run_all`
* one adapter module per stage (:mod:`~hardmine.pipeline.prepare`, :mod:`~hardmine.pipeline.oof` for oof and
  holdout, :mod:`~hardmine.pipeline.score`, :mod:`~hardmine.pipeline.select`, :mod:`~hardmine.pipeline.augment`,
  :mod:`~hardmine.pipeline.evaluate`, :mod:`~hardmine.pipeline.sweep`), imported when its stage runs
"""
from hardmine.pipeline.run import Context, fingerprint, run_all, run_stage
from hardmine.pipeline.stages import STAGES, Stage

__all__ = ["STAGES", "Context", "Stage", "fingerprint", "run_all", "run_stage"]
