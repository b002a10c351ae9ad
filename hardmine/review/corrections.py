"""Read annotators' corrections (the exported CSV, or a Label Studio export) and apply them to a dataset version."""
from __future__ import annotations

import csv
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

from hardmine.checks import first, require_columns, require_unique_ids
from hardmine.review.inputs import DATASET_FIX, as_table, check_label_names, label_names_of
from hardmine.review.schemas import AUDIT, CORRECTIONS, utc_iso

# --------------------------------------------------------------------------- read


def _corrections_table(rows: list[tuple[str, str, str]], where: str) -> pa.Table:
    by_id: dict[str, tuple[str, str]] = {}
    conflicts = []
    for i, lab, src in rows:
        if i in by_id and by_id[i][0] != lab:
            conflicts.append(i)
        by_id.setdefault(i, (lab, src))
    if conflicts:
        raise ValueError(
            f"{where} gives different corrected labels for ids {first(sorted(set(conflicts)))}: keep one row per id"
        )
    return pa.table(
        {
            "id": pa.array(list(by_id), pa.string()),
            "new_label_name": pa.array([v[0] for v in by_id.values()], pa.string()),
            "source": pa.array([v[1] for v in by_id.values()], pa.string()),
        },
        schema=CORRECTIONS,
    )


def _read_csv_corrections(path: Path) -> pa.Table:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            if "id" not in fields or "corrected_label" not in fields:
                raise ValueError(
                    f"{path} needs the columns 'id' and 'corrected_label' (has {fields}): "
                    "fill corrected_label in the CSV that hardmine exported"
                )
            rows = []
            for line, rec in enumerate(reader, start=2):
                new = (rec.get("corrected_label") or "").strip()
                if not new:
                    continue
                rid = (rec.get("id") or "").strip()
                if not rid:
                    raise ValueError(f"{path} line {line}: corrected_label {new!r} has an empty id")
                who = (rec.get("annotator") or "").strip()
                rows.append((rid, new, f"csv:{who}" if who else "csv"))
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path} is not UTF-8 ({e.reason} at byte {e.start}): save it as 'CSV UTF-8' and import again"
        ) from None
    return _corrections_table(rows, str(path))


def _annotation_time(a: dict) -> str:
    return str(a.get("updated_at") or a.get("created_at") or "")


def _choice_of(result: list, from_name: Optional[str], where: str) -> Optional[str]:
    picked = [
        r for r in result or []
        if r.get("type") == "choices" and (from_name is None or r.get("from_name") == from_name)
    ]
    if not picked:
        return None
    choices = [c for r in picked for c in (r.get("value") or {}).get("choices", [])]
    if len(choices) > 1:
        raise ValueError(f"{where} has several choices {choices}: hardmine labels are single-choice")
    return choices[0] if choices else None


def _read_label_studio_corrections(path: Path, from_name: Optional[str]) -> pa.Table:
    with open(path, encoding="utf-8-sig") as f:
        try:
            tasks = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}): export the project as 'JSON' from Label Studio") from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    rows = []
    for n, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise ValueError(f"{path}: item {n} is not a task object: not a Label Studio export "
                             "(export the project as JSON or JSON_MIN)")
        where = f"{path}: task {task.get('id', n)} (Label Studio export)"
        if "annotations" not in task and "data" not in task:
            # JSON_MIN export: flat {"hardmine_id": ..., "<from_name>": "choice", "annotator": ...}
            hid = task.get("hardmine_id")
            val = task.get(from_name or "label")
            if isinstance(val, dict):
                val = _choice_of([{"type": "choices", "value": val}], None, where)
            if hid is None:
                raise ValueError(f"{where} has no hardmine_id: import tasks written by write_label_studio")
            if val:
                who = task.get("annotator")
                rows.append((str(hid), str(val).strip(), f"label_studio:{who}" if who else "label_studio"))
            continue
        hid = (task.get("data") or {}).get("hardmine_id")
        if hid is None:
            raise ValueError(f"{where} has no data.hardmine_id: import tasks written by write_label_studio")
        done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled", False)]
        if not done:
            continue
        # latest annotation: by updated_at/created_at (ISO strings), then by position.
        latest = max(enumerate(done), key=lambda ia: (_annotation_time(ia[1]), ia[0]))[1]
        choice = _choice_of(latest.get("result"), from_name, where)
        if choice is None:
            continue
        who = latest.get("completed_by")
        if isinstance(who, dict):
            who = who.get("email") or who.get("id")
        src = f"label_studio:annotation={latest.get('id')}" + (f",by={who}" if who is not None else "")
        rows.append((str(hid), choice.strip(), src))
    return _corrections_table(rows, str(path))


def read_corrections(path: str | os.PathLike, from_name: Optional[str] = "label") -> pa.Table:
    """Read annotators' corrections: table ``id``, ``new_label_name``, ``source`` (:data:`CORRECTIONS`).

    ``path`` is the CSV from :func:`hardmine.review.write_csv` with ``corrected_label`` filled (empty
    cell = no change; an optional ``annotator`` column goes into ``source``), or a Label Studio
    export (JSON or JSON_MIN) of tasks from :func:`hardmine.review.write_label_studio`: per task the
    latest non-cancelled annotation's choice for ``from_name`` (None = any choices control);
    tasks without one = no change.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist: pass the annotated CSV or the Label Studio JSON export")
    if path.stat().st_size == 0 or not path.read_bytes()[:4096].strip():
        raise ValueError(f"{path} is empty: pass the CSV hardmine exported with corrected_label filled in, "
                         "or a Label Studio JSON export")
    if path.suffix.lower() == ".json":
        return _read_label_studio_corrections(path, from_name)
    if path.suffix.lower() == ".csv":
        return _read_csv_corrections(path)
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        head = f.read(256).lstrip()
    if head.startswith(("[", "{")):
        return _read_label_studio_corrections(path, from_name)
    return _read_csv_corrections(path)


# --------------------------------------------------------------------------- apply


def apply_corrections(
    dataset: pa.Table,
    corrections: pa.Table,
    label_names: Sequence[str],
    *,
    source_name: str,
    now: Optional[datetime] = None,
    strict: bool = True,
) -> tuple[pa.Table, pa.Table, dict]:
    """Apply label corrections; returns (new dataset, audit, report).

    The new dataset keeps row order and every column, with ``label``/``label_name``
    updated. The audit (:data:`AUDIT`) has one row per label that changed, ``time`` in
    ISO-8601 UTC and ``source`` = ``source_name`` plus the correction's own source.
    The report: ``changed``, ``unchanged``, ``unknown_ids`` (not in the dataset) and
    ``unknown_labels`` ((id, name) not in ``label_names``). With ``strict`` unknown ids or
    labels raise ValueError naming them; otherwise those rows are left out and reported.
    Applying the same corrections again changes nothing.
    """
    dataset = as_table(dataset, "dataset")
    corrections = as_table(corrections, "corrections")
    names = check_label_names(label_names)
    require_columns(dataset, ["id", "label", "label_name"], "dataset", DATASET_FIX)
    require_columns(corrections, ["id", "new_label_name"], "corrections",
                    "read the annotated file with read_corrections (columns id, new_label_name, source)")
    if not source_name or not str(source_name).strip():
        raise ValueError("source_name must name where the corrections came from (e.g. the file name)")
    stamp = utc_iso(now)

    d_ids = dataset["id"].to_pylist()
    require_unique_ids(d_ids, "dataset")
    pos = {i: k for k, i in enumerate(d_ids)}
    labels = dataset["label"].to_numpy(zero_copy_only=False).astype(np.int64)
    label_names_of(labels, names, "dataset", d_ids)
    c_ids = [str(i) for i in corrections["id"].to_pylist()]
    c_new = [None if v is None else str(v).strip() for v in corrections["new_label_name"].to_pylist()]
    c_src = corrections["source"].to_pylist() if "source" in corrections.column_names else [None] * len(c_ids)
    # duplicate ids: identical rows collapse, conflicting rows are an error.
    _corrections_table(list(zip(c_ids, [v or "" for v in c_new], [s or "" for s in c_src])), "corrections")

    index = {n: k for k, n in enumerate(names)}
    unknown_ids, unknown_labels, seen = [], [], set()
    changes: dict[int, tuple[int, str]] = {}
    unchanged = 0
    for i, new, src in zip(c_ids, c_new, c_src):
        if i in seen:
            continue
        seen.add(i)
        if i not in pos:
            unknown_ids.append(i)
            continue
        if new is None or new == "":
            continue  # an empty correction means no change
        if new not in index:
            unknown_labels.append((i, new))
            continue
        row, k = pos[i], index[new]
        if labels[row] == k:
            unchanged += 1
        else:
            changes[row] = (k, f"{source_name} [{src}]" if src else str(source_name))
    if strict and (unknown_ids or unknown_labels):
        parts = []
        if unknown_ids:
            parts.append(f"ids not in the dataset: {first(unknown_ids)}")
        if unknown_labels:
            parts.append(f"labels not in label_names {names}: {first(unknown_labels)}")
        raise ValueError(
            "corrections refer to " + "; ".join(parts)
            + ". Fix the corrections file (or pass strict=False to apply the rest and report these)"
        )

    rows = np.array(sorted(changes), dtype=np.int64)
    new_labels = labels.copy()
    if rows.size:
        new_labels[rows] = [changes[r][0] for r in rows]
    label_field = dataset.schema.field("label")
    name_field = dataset.schema.field("label_name")
    out = dataset.set_column(
        dataset.schema.get_field_index("label"), label_field, pa.array(new_labels, label_field.type)
    )
    out = out.set_column(
        out.schema.get_field_index("label_name"),
        name_field,
        pa.array([names[k] for k in new_labels], name_field.type),
    )
    audit = pa.table(
        {
            "id": pa.array([d_ids[r] for r in rows], pa.string()),
            "old_label": pa.array([names[labels[r]] for r in rows], pa.string()),
            "new_label": pa.array([names[new_labels[r]] for r in rows], pa.string()),
            "source": pa.array([changes[r][1] for r in rows], pa.string()),
            "time": pa.array([stamp] * len(rows), pa.string()),
        },
        schema=AUDIT,
    )
    report = {
        "changed": int(rows.size),
        "unchanged": unchanged,
        "unknown_ids": unknown_ids,
        "unknown_labels": unknown_labels,
    }
    return out, audit, report
