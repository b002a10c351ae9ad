"""Write a review queue for annotators: CSV (Excel-safe UTF-8), or Label Studio tasks and labeling config."""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence
from xml.sax.saxutils import quoteattr

import pyarrow as pa

from hardmine.checks import first, require_columns
from hardmine.review.inputs import as_table, check_label_names
from hardmine.store import atomic_file


def _write_text(path: Path, text: str, encoding: str) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", encoding=encoding, newline="") as f:
        f.write(text)


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def write_csv(queue: pa.Table, path: str | os.PathLike) -> Path:
    """Write a queue as CSV, UTF-8 with a BOM (Excel opens Korean text correctly).

    Annotators fill the ``corrected_label`` column with a label name; empty = no change.
    """
    queue = as_table(queue, "queue")
    path = Path(path)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(queue.column_names)
    cols = [queue[c].to_pylist() for c in queue.column_names]
    for row in zip(*cols):
        w.writerow([_cell(v) for v in row])
    _write_text(path, buf.getvalue(), "utf-8-sig")
    return path


def label_studio_config(label_names: Sequence[str], from_name: str = "label", to_name: str = "text") -> str:
    """Label Studio labeling config: the text and one single-choice ``<Choices>`` per label."""
    names = check_label_names(label_names)
    choices = "\n".join(f"    <Choice value={quoteattr(n)}/>" for n in names)
    return (
        "<View>\n"
        f"  <Text name={quoteattr(to_name)} value=\"$text\"/>\n"
        f"  <Choices name={quoteattr(from_name)} toName={quoteattr(to_name)} "
        "choice=\"single-radio\" showInLine=\"true\">\n"
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def to_label_studio_tasks(
    queue: pa.Table,
    label_names: Sequence[str],
    from_name: str = "label",
    to_name: str = "text",
    model_version: str = "hardmine",
) -> list[dict]:
    """Label Studio import tasks, one per queue row, pre-annotated with the model's choice.

    ``data`` holds ``text``, ``hardmine_id`` (read back by :func:`hardmine.review.read_corrections`),
    and ``given_label``/``rank``/``flagged`` when the queue has them. The prediction is the
    ``suggested_label`` (label-issue queue) or ``predicted_label`` (active-learning
    queue); its ``score`` is ``suggested_confidence`` or ``confidence``.
    """
    queue = as_table(queue, "queue")
    names = check_label_names(label_names)
    require_columns(queue, ["id", "text"], "queue", "build it with label_issue_queue or active_learning_queue")
    pred_col = next((c for c in ("suggested_label", "predicted_label") if c in queue.column_names), None)
    if pred_col is None:
        raise ValueError("queue needs a suggested_label or predicted_label column: build it with label_issue_queue "
                         "or active_learning_queue")
    score_col = next((c for c in ("suggested_confidence", "confidence") if c in queue.column_names), None)
    rows = queue.to_pylist()
    bad = [r["id"] for r in rows if r[pred_col] not in names]
    if bad:
        raise ValueError(f"queue rows {first(bad)} have a {pred_col} not in label_names {names}")
    tasks = []
    for r in rows:
        data = {"text": r["text"], "hardmine_id": r["id"]}
        for extra in ("given_label", "rank", "flagged"):
            if r.get(extra) is not None:
                data[extra] = r[extra]
        pred: dict[str, Any] = {
            "model_version": model_version,
            "result": [
                {
                    "from_name": from_name,
                    "to_name": to_name,
                    "type": "choices",
                    "value": {"choices": [r[pred_col]]},
                }
            ],
        }
        if score_col is not None and r[score_col] is not None:
            pred["score"] = float(r[score_col])
        tasks.append({"data": data, "predictions": [pred]})
    return tasks


def write_label_studio(
    queue: pa.Table,
    label_names: Sequence[str],
    path: str | os.PathLike,
    from_name: str = "label",
    to_name: str = "text",
    model_version: str = "hardmine",
) -> tuple[Path, Path]:
    """Write the tasks JSON to ``path`` and the labeling config beside it (``<stem>.label_config.xml``).

    Returns (tasks path, config path). Import the JSON into a project created with the config.
    """
    path = Path(path)
    tasks = to_label_studio_tasks(queue, label_names, from_name, to_name, model_version)
    _write_text(path, json.dumps(tasks, ensure_ascii=False, indent=1), "utf-8")
    config_path = path.with_name(path.stem + ".label_config.xml")
    _write_text(config_path, label_studio_config(label_names, from_name, to_name), "utf-8")
    return path, config_path
