"""Arrow schemas of the artifacts every stage reads and writes (the data contracts).

Stages are plain functions over these tables; runners put them on Ray.
"""
from __future__ import annotations

import pyarrow as pa

#: canonical dataset: one row per labelled sample. The label vocabulary
#: (index -> name) lives in the run manifest (``manifest["labels"]``).
DATASET = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("label_name", pa.string(), nullable=False),
    ]
)

#: out-of-fold probabilities: every training id exactly once.
OOF = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("fold", pa.int32(), nullable=False),
        pa.field("probs", pa.list_(pa.float32()), nullable=False),
        pa.field("epoch_probs", pa.list_(pa.list_(pa.float32())), nullable=False),
    ]
)

#: per-sample scores (see hardmine.scoring); dynamics columns are appended.
SCORES_CORE = [
    "id",
    "label",
    "pred",
    "p_true",
    "hardness",
    "margin",
    "entropy",
    "self_confidence",
    "is_label_issue",
    "issue_rank",
    "suggested_label",
    "suggested_confidence",
    "label_quality",
]

#: augmented variants.
AUGMENTED = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("source_id", pa.string()),
        pa.field("text", pa.string()),
        pa.field("label", pa.int32()),
        pa.field("method", pa.string()),
        pa.field("variant", pa.int32()),
        pa.field("similarity", pa.float32()),
        pa.field("consistent", pa.bool_()),
        pa.field("kept", pa.bool_()),
        pa.field("reject_reason", pa.string()),
        pa.field("error", pa.string()),
    ]
)
