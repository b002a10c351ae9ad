"""Human review queues: export to CSV / Label Studio, import the corrections back.

Pure functions over Arrow tables and numpy arrays (no Ray). Two queues
(:mod:`hardmine.review.queues`):

* :func:`label_issue_queue` — confident-learning label issues ranked by ``issue_rank``,
  with the suggested label; or, for a review budget of N rows, the N rows with the lowest
  ``label_quality`` whether cleanlab flagged them or not (column ``flagged``).
* :func:`active_learning_queue` — the most uncertain samples (least confidence, margin
  or entropy), labelled or not.

Both carry an empty ``corrected_label`` column for annotators. :func:`write_csv` and
:func:`write_label_studio` export a queue (:mod:`hardmine.review.export`);
:func:`read_corrections` reads the annotated CSV or a Label Studio JSON export and
:func:`apply_corrections` produces the new dataset version, an audit table and a report,
idempotently (:mod:`hardmine.review.corrections`). Every review artifact's path and schema:
:mod:`hardmine.review.schemas`.
"""
from hardmine.review.corrections import apply_corrections, read_corrections
from hardmine.review.export import label_studio_config, to_label_studio_tasks, write_csv, write_label_studio
from hardmine.review.queues import QUEUE_RANK_BY, STRATEGIES, active_learning_queue, label_issue_queue, uncertainty
from hardmine.review.schemas import AUDIT, CORRECTIONS

__all__ = [
    "AUDIT", "CORRECTIONS", "QUEUE_RANK_BY", "STRATEGIES", "active_learning_queue", "apply_corrections", "label_issue_queue",
    "label_studio_config", "read_corrections", "to_label_studio_tasks", "uncertainty", "write_csv",
    "write_label_studio",
]
