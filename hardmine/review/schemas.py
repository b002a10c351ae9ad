"""Every review and pseudo-label artifact: its path in the run directory and its Arrow schema.

Writers: :mod:`hardmine.review.queues` (the two queues), :mod:`hardmine.review.corrections`
(:data:`CORRECTIONS`, :data:`AUDIT` rows), :mod:`hardmine.review.versions` (:data:`VERSIONS`,
:data:`AUDIT_FILE`, :data:`REVIEWED`) and :mod:`hardmine.review.pseudo` (:data:`PSEUDO_AUDIT`). Every
``time`` column holds :func:`utc_iso` stamps.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import pyarrow as pa

# --------------------------------------------------------------------------- paths (relative to the run directory)

#: dataset versions: ``v<N>.parquet`` and a CSV copy ``v<N>/dataset.csv`` (v0 = the rows as prepared).
VERSIONS = "review/versions"
#: every label a review import changed (:data:`AUDIT` rows).
AUDIT_FILE = "review/audit.parquet"
#: every row a reviewer gave a label in an import (confirmed or changed): `review next` leaves them out.
REVIEWED = "review/reviewed.parquet"
#: one row per pseudo-labelled row added to a dataset version (:data:`PSEUDO_AUDIT_SCHEMA`).
PSEUDO_AUDIT = "review/pseudo_audit.parquet"
#: the active-learning queue of the unlabelled pool under review/ (the same name as
#: `review export --queue active --strategy margin --unlabelled`).
ACTIVE_QUEUE = "active_margin_unlabelled"

# --------------------------------------------------------------------------- queues (exported to annotators)

#: the label-review queue (:func:`hardmine.review.label_issue_queue`), one row per row to review.
LABEL_ISSUE_QUEUE = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("text", pa.string()),
        pa.field("given_label", pa.string()),
        pa.field("suggested_label", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("suggested_confidence", pa.float64()),
        pa.field("flagged", pa.bool_()),
        pa.field("reason", pa.string()),
        pa.field("error_risk", pa.float64()),
        pa.field("rank", pa.int32()),
        pa.field("corrected_label", pa.string()),
    ]
)

#: the active-learning queue (:func:`hardmine.review.active_learning_queue`); ``given_label``
#: only when the rows have labels.
ACTIVE_LEARNING_QUEUE = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("text", pa.string()),
        pa.field("predicted_label", pa.string()),
        pa.field("confidence", pa.float64()),
        pa.field("uncertainty", pa.float64()),
        pa.field("strategy", pa.string()),
        pa.field("rank", pa.int32()),
        pa.field("given_label", pa.string()),
        pa.field("corrected_label", pa.string()),
    ]
)

# --------------------------------------------------------------------------- read back and recorded

#: the correction table read back from annotators.
CORRECTIONS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("new_label_name", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)

#: one row per label actually changed by :func:`hardmine.review.apply_corrections` (:data:`AUDIT_FILE`).
AUDIT = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("old_label", pa.string(), nullable=False),
        pa.field("new_label", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("time", pa.string(), nullable=False),
    ]
)

#: :data:`REVIEWED`: one row per row labelled in an import; ``round`` counts the imports that labelled rows.
REVIEWED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("changed", pa.bool_(), nullable=False),
        pa.field("round", pa.int32(), nullable=False),
        pa.field("version", pa.int32(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("time", pa.string(), nullable=False),
    ]
)

#: :data:`PSEUDO_AUDIT`: ``version`` is the dataset version the row was added in.
PSEUDO_AUDIT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("predicted_label", pa.string(), nullable=False),
        pa.field("probability", pa.float64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("time", pa.string(), nullable=False),
        pa.field("version", pa.int32(), nullable=False),
    ]
)


def utc_iso(now: Optional[datetime]) -> str:
    """The ``time`` of an audit row: ``now`` (default: the current time) in ISO-8601 UTC, to the second."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)  # naive times are taken as UTC
    return now.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
