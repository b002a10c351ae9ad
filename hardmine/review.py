"""Human review queues: export to CSV / Label Studio, import the corrections back.

Pure functions over Arrow tables and numpy arrays (no Ray). Two queues:

* :func:`label_issue_queue` — confident-learning label issues ranked by ``issue_rank``,
  with the suggested label; or, for a review budget of N rows, the N rows with the lowest
  ``label_quality`` whether cleanlab flagged them or not (column ``flagged``).
* :func:`active_learning_queue` — the most uncertain samples (least confidence, margin
  or entropy), labelled or not.

Both carry an empty ``corrected_label`` column for annotators. :func:`write_csv` and
:func:`write_label_studio` export a queue; :func:`read_corrections` reads the annotated
CSV or a Label Studio JSON export; :func:`apply_corrections` produces the new dataset
version, an audit table and a report (idempotent).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.select import SIGNAL_REASONS

STRATEGIES = ("least_confidence", "margin", "entropy")

#: the correction table read back from annotators.
CORRECTIONS = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("new_label_name", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)

#: one row per label actually changed by :func:`apply_corrections`.
AUDIT = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("old_label", pa.string(), nullable=False),
        pa.field("new_label", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("time", pa.string(), nullable=False),
    ]
)

_MAX_NAMED = 20  # how many offending ids an error message lists


# --------------------------------------------------------------------------- validation


def _as_table(data: Any, what: str) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False)
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    if isinstance(data, dict):
        return pa.table(data)
    raise ValueError(f"{what} must be a pyarrow Table (or pandas DataFrame), got {type(data).__name__}")


def _require_columns(table: pa.Table, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{what} is missing column(s) {missing}; it has {table.column_names}. "
            f"Pass the {what} artifact of the run (see hardmine.schema)."
        )


def _check_label_names(label_names: Sequence[str]) -> list[str]:
    names = list(label_names)
    if not names:
        raise ValueError("label_names is empty: pass the label vocabulary in index order (manifest['labels'])")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError(f"label_names must be non-empty strings; bad entries: {bad!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"label_names has duplicates {dup}: each label name must appear once")
    return names


def _name(ids: Sequence[Any], limit: int = _MAX_NAMED) -> str:
    ids = list(ids)
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" ... ({len(ids)} in all)" if len(ids) > limit else "")


def _unique_ids(ids: Sequence[str], what: str) -> None:
    seen, dup = set(), []
    for i in ids:
        if i in seen:
            dup.append(i)
        seen.add(i)
    if dup:
        raise ValueError(f"{what} has duplicate ids: {_name(sorted(set(dup)))}; ids must be unique")


def _names_of(labels: np.ndarray, label_names: list[str], what: str, ids: Sequence[str]) -> list[str]:
    labels = np.asarray(labels)
    bad = np.flatnonzero((labels < 0) | (labels >= len(label_names)))
    if bad.size:
        raise ValueError(
            f"{what} has label indices outside 0..{len(label_names) - 1} for ids "
            f"{_name([ids[i] for i in bad])}: label_names has {len(label_names)} entries; "
            "pass the run's label vocabulary"
        )
    return [label_names[int(k)] for k in labels]


# --------------------------------------------------------------------------- queues


def label_issue_queue(
    scores: pa.Table,
    dataset: pa.Table,
    label_names: Sequence[str],
    limit: Optional[int] = None,
    *,
    budget: Optional[int] = None,
    rank_by: str = "label_quality",
) -> pa.Table:
    """The label-review queue: cleanlab's label issues, or the ``budget`` least-trusted labels.

    Rows the score stage flagged as conflicting duplicates or outliers join the flagged queue
    after the label issues (duplicates by group, outliers farthest first); ``reason`` names
    why each row is there. ``rank_by="error_risk"`` orders the queue (flagged, or the budget's
    rows) by the dual model's ``error_risk``, highest first, instead.

    Without ``budget``: the rows cleanlab flagged (``is_label_issue``) ordered by
    ``issue_rank`` (1 = most suspicious); ``limit`` keeps the top rows. With ``budget=N``:
    the N rows with the lowest ``label_quality`` (ties by ``id``, string order), flagged or not, so a
    review budget larger than cleanlab's flagged set is filled with the next most
    suspicious rows (all rows when N exceeds them); ``limit`` does not apply.

    Columns: ``id``, ``text``, ``given_label`` and ``suggested_label`` (names), ``score``,
    ``suggested_confidence``, ``flagged`` (cleanlab's verdict, ``is_label_issue``), ``rank``
    (1..n, queue order), ``corrected_label`` (empty). ``score`` is the label-quality score of
    the given label (``label_quality``; without ``budget``, scores lacking it fall back to
    ``self_confidence``, else ``p_true``): in [0, 1], lower = more likely mislabeled.
    ``suggested_label`` is cleanlab's suggestion: another class for flagged rows, the given
    label for unflagged ones; ``suggested_confidence`` is the model's probability of it.
    """
    scores = _as_table(scores, "scores")
    dataset = _as_table(dataset, "dataset")
    names = _check_label_names(label_names)
    _require_columns(scores, ["id", "label", "is_label_issue", "issue_rank", "suggested_label"], "scores")
    if rank_by not in QUEUE_RANK_BY:
        raise ValueError(f"rank_by must be one of {list(QUEUE_RANK_BY)}, got {rank_by!r}")
    if rank_by == "error_risk":
        _require_filled(scores, "error_risk", "score.dual_model is off or the scores predate it: set score.dual_model: gbdt and re-run the score stage")
    _require_columns(dataset, ["id", "text", "label"], "dataset")
    if limit is not None and (isinstance(limit, bool) or limit < 0):
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
            raise ValueError(f"budget must be a whole number of rows >= 1, got {budget!r}")
        if limit is not None:
            raise ValueError("pass budget or limit, not both: budget already sets the queue length")
        picked = _highest_error_risk(scores, int(budget)) if rank_by == "error_risk" else _lowest_label_quality(scores, int(budget))
        score_col = "label_quality"
    else:
        score_col = next((c for c in ("label_quality", "self_confidence", "p_true") if c in scores.column_names), None)
        if score_col is None:
            raise ValueError("scores needs a label_quality, self_confidence or p_true column for the queue's score")
        picked = _flagged_by_issue_rank(scores, None)
        picked = pa.concat_tables([picked, _flagged_by_signals(scores)], promote_options="none")
        if rank_by == "error_risk":
            picked = picked.take(pc.sort_indices(picked, sort_keys=[("error_risk", "descending"), ("id", "ascending")]))
        if limit is not None:
            picked = picked.slice(0, limit)
    return _queue_rows(picked, dataset, names, score_col, "high_error_risk" if rank_by == "error_risk" else "low_label_quality")


#: orders of the review queue: lowest label_quality (cleanlab), or highest error_risk (dual model)
QUEUE_RANK_BY = ("label_quality", "error_risk")


def _require_filled(scores: pa.Table, col: str, fix: str) -> None:
    if col not in scores.column_names or scores[col].null_count == scores.num_rows:
        raise ValueError(f"scores has no {col} values: {fix}")


def _flag(scores: pa.Table, col: str) -> np.ndarray:
    if col not in scores.column_names:
        return np.zeros(scores.num_rows, dtype=bool)
    return pc.fill_null(scores[col].cast(pa.bool_()), False).to_numpy(zero_copy_only=False).astype(bool)


def _flagged_by_signals(scores: pa.Table) -> pa.Table:
    """Rows flagged as conflicting duplicates or outliers and not label issues: duplicates by
    group, then outliers by outlier_score (farthest first)."""
    issue = _flag(scores, "is_label_issue")
    dup = _flag(scores, "is_conflicting_duplicate") & ~issue
    out = _flag(scores, "is_outlier") & ~issue & ~dup
    idx_dup = np.flatnonzero(dup)
    if idx_dup.size:
        g = scores["dup_group"].to_numpy(zero_copy_only=False)[idx_dup]
        idx_dup = idx_dup[np.argsort(g, kind="stable")]
    idx_out = np.flatnonzero(out)
    if idx_out.size:
        o = scores["outlier_score"].to_numpy(zero_copy_only=False)[idx_out]
        idx_out = idx_out[np.argsort(-o, kind="stable")]
    return scores.take(pa.array(np.concatenate([idx_dup, idx_out]).astype(np.int64), pa.int64()))


def _highest_error_risk(scores: pa.Table, budget: int) -> pa.Table:
    order = pc.sort_indices(scores, sort_keys=[("error_risk", "descending"), ("id", "ascending")])
    return scores.take(order[:budget])


def _reasons(picked: pa.Table, default: str) -> list[str]:
    cols = [("label_issue", _flag(picked, "is_label_issue"))] + [(r, _flag(picked, c)) for r, c in SIGNAL_REASONS.items()]
    return [",".join(name for name, f in cols if f[i]) or default for i in range(picked.num_rows)]


def _flagged_by_issue_rank(scores: pa.Table, limit: Optional[int]) -> pa.Table:
    flagged = scores.filter(pc.fill_null(scores["is_label_issue"], False))
    ranks = flagged["issue_rank"].to_numpy(zero_copy_only=False).astype(np.int64)
    fids = flagged["id"].to_pylist()
    unranked = np.flatnonzero(ranks < 1)
    if unranked.size:
        raise ValueError(
            f"scores rows flagged is_label_issue have issue_rank < 1 (ids {_name([fids[i] for i in unranked])}); "
            "issue_rank must be 1.. for label issues and -1 otherwise: re-run the score stage"
        )
    order = np.argsort(ranks, kind="stable")
    if limit is not None:
        order = order[:limit]
    return flagged.take(pa.array(order, type=pa.int64()))


def _lowest_label_quality(scores: pa.Table, budget: int) -> pa.Table:
    if "label_quality" not in scores.column_names:
        raise ValueError(
            "scores has no label_quality column, which a review budget ranks by: re-run the score stage "
            "(older scores.parquet files predate it)"
        )
    lq = scores["label_quality"]
    bad = pc.or_kleene(pc.is_null(lq), pc.is_nan(lq.cast(pa.float64())))
    if pc.any(bad).as_py():
        ids = scores["id"].filter(pc.fill_null(bad, True)).to_pylist()
        raise ValueError(f"scores rows {_name(ids)} have a null/NaN label_quality: re-run the score stage")
    order = pc.sort_indices(scores, sort_keys=[("label_quality", "ascending"), ("id", "ascending")])
    return scores.take(order[:budget])


def _queue_rows(picked: pa.Table, dataset: pa.Table, names: list[str], score_col: str, default_reason: str = "low_label_quality") -> pa.Table:
    ids = picked["id"].to_pylist()
    d_ids = dataset["id"].to_pylist()
    pos = {i: k for k, i in enumerate(d_ids)}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise ValueError(
            f"scores ids {_name(missing)} are not in the dataset: pass the dataset version the scores were computed on"
        )
    rows = np.array([pos[i] for i in ids], dtype=np.int64)
    d_label = dataset["label"].to_numpy(zero_copy_only=False)[rows] if len(rows) else np.zeros(0, np.int64)
    s_label = picked["label"].to_numpy(zero_copy_only=False)
    stale = np.flatnonzero(d_label != s_label)
    if stale.size:
        raise ValueError(
            f"scores and dataset disagree on the label of ids {_name([ids[i] for i in stale])}: "
            "the scores are stale for this dataset version; re-run the score stage"
        )
    texts = dataset["text"].take(pa.array(rows, type=pa.int64()))
    suggested = picked["suggested_label"].to_numpy(zero_copy_only=False)
    n = len(ids)
    if "suggested_confidence" in picked.column_names:
        sconf = picked["suggested_confidence"].cast(pa.float64())
    else:
        sconf = pa.nulls(n, pa.float64())
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "text": texts.cast(pa.string()),
            "given_label": pa.array(_names_of(s_label, names, "scores", ids), pa.string()),
            "suggested_label": pa.array(_names_of(suggested, names, "scores.suggested_label", ids), pa.string()),
            "score": picked[score_col].cast(pa.float64()),
            "suggested_confidence": sconf,
            "flagged": pc.fill_null(picked["is_label_issue"], False).cast(pa.bool_()),
            "reason": pa.array(_reasons(picked, default_reason), pa.string()),
            "error_risk": picked["error_risk"].cast(pa.float64()) if "error_risk" in picked.column_names else pa.nulls(n, pa.float64()),
            "rank": pa.array(np.arange(1, n + 1), pa.int32()),
            "corrected_label": pa.nulls(n, pa.string()),
        }
    )


def uncertainty(probs: np.ndarray, strategy: str = "least_confidence") -> np.ndarray:
    """Per-row uncertainty, higher = more uncertain.

    ``least_confidence``: 1 - max p. ``margin``: 1 - (top1 - top2), so the smallest
    margin ranks first. ``entropy``: -sum p ln p (nats).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    p = np.asarray(probs, dtype=np.float64)
    if strategy == "least_confidence":
        return 1.0 - p.max(axis=1)
    if strategy == "margin":
        if p.shape[1] < 2:
            return np.zeros(len(p))
        top2 = -np.partition(-p, 1, axis=1)[:, :2]
        return 1.0 - (top2[:, 0] - top2[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    return -plogp.sum(axis=1)


def _check_probs(probs: Any, n: int, k: int, ids: Sequence[str]) -> np.ndarray:
    if isinstance(probs, (pa.Array, pa.ChunkedArray)):
        probs = probs.to_pylist()
    p = np.asarray(probs, dtype=np.float64) if not isinstance(probs, np.ndarray) else probs.astype(np.float64)
    if p.ndim != 2 or p.shape != (n, k):
        raise ValueError(
            f"probs must have shape (n_samples={n}, n_classes={k}) to match ids and label_names, got {p.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1) | (np.abs(p.sum(axis=1) - 1) > 1e-3))
    if bad.size:
        raise ValueError(
            f"probs rows for ids {_name([ids[i] for i in bad])} are not probability vectors "
            "(finite, >= 0, summing to 1): pass softmax outputs"
        )
    return p


def active_learning_queue(
    ids: Sequence[str],
    texts: Sequence[str],
    probs: Any,
    label_names: Sequence[str],
    strategy: str = "least_confidence",
    batch_size: int = 100,
    labels: Optional[Sequence[Any]] = None,
) -> pa.Table:
    """The ``batch_size`` most uncertain samples under ``strategy`` (see :func:`uncertainty`).

    Columns: ``id``, ``text``, ``predicted_label`` (name), ``confidence`` (max p),
    ``uncertainty``, ``strategy``, ``rank``, ``given_label`` (only when ``labels`` — indices
    or names — are given; None for an unlabelled pool), ``corrected_label`` (empty).
    Ties keep input order.
    """
    names = _check_label_names(label_names)
    ids = [str(i) for i in (ids.to_pylist() if isinstance(ids, (pa.Array, pa.ChunkedArray)) else ids)]
    texts = texts.to_pylist() if isinstance(texts, (pa.Array, pa.ChunkedArray)) else list(texts)
    if len(texts) != len(ids):
        raise ValueError(f"ids ({len(ids)}) and texts ({len(texts)}) must have the same length")
    _unique_ids(ids, "ids")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    p = _check_probs(probs, len(ids), len(names), ids)

    u = uncertainty(p, strategy)
    order = np.argsort(-u, kind="stable")[:batch_size]
    pred = p.argmax(axis=1)
    cols = {
        "id": pa.array([ids[i] for i in order], pa.string()),
        "text": pa.array([texts[i] for i in order], pa.string()),
        "predicted_label": pa.array([names[pred[i]] for i in order], pa.string()),
        "confidence": pa.array(p.max(axis=1)[order], pa.float64()),
        "uncertainty": pa.array(u[order], pa.float64()),
        "strategy": pa.array([strategy] * len(order), pa.string()),
        "rank": pa.array(np.arange(1, len(order) + 1), pa.int32()),
    }
    if labels is not None:
        labels = labels.to_pylist() if isinstance(labels, (pa.Array, pa.ChunkedArray)) else list(labels)
        if len(labels) != len(ids):
            raise ValueError(f"labels ({len(labels)}) and ids ({len(ids)}) must have the same length")
        given = []
        for i in order:
            lab = labels[i]
            if isinstance(lab, str):
                if lab not in names:
                    raise ValueError(f"label {lab!r} of id {ids[i]!r} is not in label_names {names}")
                given.append(lab)
            else:
                given.append(_names_of(np.array([int(lab)]), names, "labels", [ids[i]])[0])
        cols["given_label"] = pa.array(given, pa.string())
    cols["corrected_label"] = pa.nulls(len(order), pa.string())
    return pa.table(cols)


# --------------------------------------------------------------------------- export


def _atomic_write_text(path: Path, text: str, encoding: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def write_csv(queue: pa.Table, path: str | os.PathLike) -> Path:
    """Write a queue as CSV, UTF-8 with a BOM (Excel opens Korean text correctly).

    Annotators fill the ``corrected_label`` column with a label name; empty = no change.
    """
    queue = _as_table(queue, "queue")
    path = Path(path)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(queue.column_names)
    cols = [queue[c].to_pylist() for c in queue.column_names]
    for row in zip(*cols):
        w.writerow([_cell(v) for v in row])
    _atomic_write_text(path, buf.getvalue(), "utf-8-sig")
    return path


def label_studio_config(label_names: Sequence[str], from_name: str = "label", to_name: str = "text") -> str:
    """Label Studio labeling config: the text and one single-choice ``<Choices>`` per label."""
    names = _check_label_names(label_names)
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

    ``data`` holds ``text``, ``hardmine_id`` (read back by :func:`read_corrections`),
    and ``given_label``/``rank``/``flagged`` when the queue has them. The prediction is the
    ``suggested_label`` (label-issue queue) or ``predicted_label`` (active-learning
    queue); its ``score`` is ``suggested_confidence`` or ``confidence``.
    """
    queue = _as_table(queue, "queue")
    names = _check_label_names(label_names)
    _require_columns(queue, ["id", "text"], "queue")
    pred_col = next((c for c in ("suggested_label", "predicted_label") if c in queue.column_names), None)
    if pred_col is None:
        raise ValueError("queue needs a suggested_label or predicted_label column: build it with label_issue_queue "
                         "or active_learning_queue")
    score_col = next((c for c in ("suggested_confidence", "confidence") if c in queue.column_names), None)
    rows = queue.to_pylist()
    bad = [r["id"] for r in rows if r[pred_col] not in names]
    if bad:
        raise ValueError(f"queue rows {_name(bad)} have a {pred_col} not in label_names {names}")
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
    _atomic_write_text(path, json.dumps(tasks, ensure_ascii=False, indent=1), "utf-8")
    config_path = path.with_name(path.stem + ".label_config.xml")
    _atomic_write_text(config_path, label_studio_config(label_names, from_name, to_name), "utf-8")
    return path, config_path


# --------------------------------------------------------------------------- import


def _corrections_table(rows: list[tuple[str, str, str]], where: str) -> pa.Table:
    by_id: dict[str, tuple[str, str]] = {}
    conflicts = []
    for i, lab, src in rows:
        if i in by_id and by_id[i][0] != lab:
            conflicts.append(i)
        by_id.setdefault(i, (lab, src))
    if conflicts:
        raise ValueError(
            f"{where} gives different corrected labels for ids {_name(sorted(set(conflicts)))}: keep one row per id"
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
    """Read annotators' corrections: table ``id``, ``new_label_name``, ``source``.

    ``path`` is the CSV from :func:`write_csv` with ``corrected_label`` filled (empty cell =
    no change; an optional ``annotator`` column goes into ``source``), or a Label Studio
    export (JSON or JSON_MIN) of tasks from :func:`write_label_studio`: per task the latest
    non-cancelled annotation's choice for ``from_name`` (None = any choices control);
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


def _utc_iso(now: Optional[datetime]) -> str:
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)  # naive times are taken as UTC
    return now.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


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
    dataset = _as_table(dataset, "dataset")
    corrections = _as_table(corrections, "corrections")
    names = _check_label_names(label_names)
    _require_columns(dataset, ["id", "label", "label_name"], "dataset")
    _require_columns(corrections, ["id", "new_label_name"], "corrections")
    if not source_name or not str(source_name).strip():
        raise ValueError("source_name must name where the corrections came from (e.g. the file name)")
    stamp = _utc_iso(now)

    d_ids = dataset["id"].to_pylist()
    _unique_ids(d_ids, "dataset")
    pos = {i: k for k, i in enumerate(d_ids)}
    labels = dataset["label"].to_numpy(zero_copy_only=False).astype(np.int64)
    _names_of(labels, names, "dataset", d_ids)
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
            parts.append(f"ids not in the dataset: {_name(unknown_ids)}")
        if unknown_labels:
            parts.append(f"labels not in label_names {names}: {_name(unknown_labels)}")
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
