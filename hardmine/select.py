"""Selection policies: decide, per sample, what happens to it (pure numpy/pyarrow, no Ray).

``select`` splits a scores table (see :data:`hardmine.schema.SCORES_CORE`) into

- *likely mislabeled* rows (cleanlab label issues) -> review / drop / relabel, by policy;
- *hard but plausibly correct* rows -> ``augment``;
- everything else -> ``none``.

Every row gets exactly one action and the ``rule`` that chose it, so each decision
can be traced back to a parameter.
"""
from __future__ import annotations

import hashlib
import math
import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.schema import ACTIONS

#: what ``select`` returns: one row per sample, in the order of the scores table.
SELECTION = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("new_label", pa.int32(), nullable=False),
        pa.field("hardness", pa.float64(), nullable=False),
    ]
)

ISSUE_ACTIONS = ("review", "drop", "relabel", "keep")

#: columns of the scores table that may carry the model's top probability (first found wins).
MAX_PROB_COLUMNS = ("max_prob", "pred_prob", "pred_confidence", "probs")


# --------------------------------------------------------------------------- helpers


def tiebreak_keys(ids, seed: int = 0) -> np.ndarray:
    """Seeded, deterministic per-id hash (uint64) used to break hardness ties."""
    key = str(int(seed)).encode()
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8, key=key).digest(), "big")
            for i in ids
        ),
        dtype=np.uint64,
        count=len(ids),
    )


def hardest_order(hardness: np.ndarray, ids, seed: int = 0) -> np.ndarray:
    """Indices sorted hardest first; ties broken by a seeded hash of the id, then the id."""
    hardness = np.asarray(hardness, dtype=np.float64)
    ids_u = np.asarray([str(i) for i in ids], dtype=str) if len(ids) else np.zeros(0, dtype="U1")
    return np.lexsort((ids_u, tiebreak_keys(ids, seed), -hardness))


def top_quantile_mask(hardness: np.ndarray, quantile: float, ids=None, seed: int = 0) -> np.ndarray:
    """Boolean mask of the ``ceil(quantile * n)`` hardest rows (deterministic tie-break by id)."""
    _check_fraction("hardness_quantile", quantile, low_open=True)
    hardness = np.asarray(hardness, dtype=np.float64)
    n = hardness.shape[0]
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    if ids is None:
        ids = [f"{i:012d}" for i in range(n)]
    k = min(n, math.ceil(quantile * n - 1e-9))
    mask[hardest_order(hardness, ids, seed)[:k]] = True
    return mask


def _check_fraction(name: str, value, *, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (0.0 < v <= 1.0 if low_open else 0.0 <= v <= 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_params(
    hardness_quantile, p_true_max, max_confidence, min_length, classes, max_per_class,
    issue_action, relabel_min_confidence, seed,
) -> None:
    if hardness_quantile is None and p_true_max is None:
        raise ValueError(
            "no hard-set rule: set hardness_quantile (e.g. 0.2) and/or p_true_max (e.g. 0.5)"
        )
    if hardness_quantile is not None:
        _check_fraction("hardness_quantile", hardness_quantile, low_open=True)
    if p_true_max is not None:
        _check_fraction("p_true_max", p_true_max)
    if max_confidence is not None:
        _check_fraction("max_confidence", max_confidence, low_open=True)
    _check_int("min_length", min_length, 0)
    if classes is not None:
        if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
            raise ValueError(f"classes must be a list of label ids, got {classes!r}")
        classes = list(classes)
        bad = [c for c in classes if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0]
        if not classes or bad:
            raise ValueError(
                f"classes must be a non-empty list of label ids (integers >= 0); bad entries: {bad or classes!r}"
            )
    if max_per_class is not None:
        _check_int("max_per_class", max_per_class, 1)
    if issue_action not in ISSUE_ACTIONS:
        raise ValueError(f"issue_action must be one of {ISSUE_ACTIONS}, got {issue_action!r}")
    _check_fraction("relabel_min_confidence", relabel_min_confidence)
    _check_int("seed", seed, 0)


def _first(values, k: int = 5) -> str:
    values = list(values)
    more = f" (and {len(values) - k} more)" if len(values) > k else ""
    return ", ".join(repr(v) for v in values[:k]) + more


def _column(table: pa.Table, name: str, what: str, fix: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise ValueError(f"{what} has no column {name!r} (columns: {table.column_names}); {fix}")
    col = table.column(name)
    if col.null_count:
        rows = np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))
        raise ValueError(f"{what} column {name!r} has nulls in rows {_first(rows.tolist())}; fill or drop them")
    return col


def _ints(table: pa.Table, name: str, what: str, fix: str) -> np.ndarray:
    col = _column(table, name, what, fix)
    if not (pa.types.is_integer(col.type)):
        raise ValueError(f"{what} column {name!r} must hold integers, got {col.type}; cast it to int32")
    return col.to_numpy().astype(np.int64)


def _floats(table: pa.Table, name: str, what: str, fix: str) -> np.ndarray:
    col = _column(table, name, what, fix)
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        raise ValueError(f"{what} column {name!r} must hold numbers, got {col.type}")
    arr = col.to_numpy().astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{what} column {name!r} is NaN/inf in rows {_first(bad.tolist())}; recompute the scores")
    return arr


def score_ids(scores: pa.Table) -> np.ndarray:
    """The ``id`` column as a numpy array of str; raises on nulls or duplicates."""
    ids = _column(scores, "id", "scores", "pass the table written by the score stage")
    ids = np.asarray(ids.cast(pa.string()).to_pylist(), dtype=object)
    uniq, counts = np.unique(ids.astype(str), return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"scores has duplicate ids: {_first(uniq[counts > 1].tolist())}; ids must be unique")
    return ids


def text_for_ids(ids: np.ndarray, texts: pa.Table) -> np.ndarray:
    """The ``text`` of every id (object array aligned with ``ids``); raises on missing ids."""
    if not isinstance(texts, pa.Table):
        raise ValueError(f"texts must be a pyarrow Table with columns id, text (got {type(texts).__name__})")
    t_ids = _column(texts, "id", "texts", "pass the dataset table (id, text, label, label_name)")
    t_txt = _column(texts, "text", "texts", "pass the dataset table (id, text, label, label_name)")
    t_ids = t_ids.cast(pa.string()).to_pylist()
    lookup = dict(zip(t_ids, t_txt.to_pylist()))
    if len(lookup) != len(t_ids):
        dup = [k for k, c in Counter(t_ids).items() if c > 1]
        raise ValueError(f"texts has duplicate ids: {_first(dup)}; ids must be unique")
    missing = [i for i in ids if i not in lookup]
    if missing:
        raise ValueError(
            f"{len(missing)} scored ids have no text: {_first(missing)}; pass the dataset the scores came from"
        )
    return np.asarray([lookup[i] for i in ids], dtype=object)


def max_prob(scores: pa.Table) -> np.ndarray:
    """The model's top probability per row.

    From a ``max_prob``/``pred_prob``/``pred_confidence`` column or a ``probs`` list column when
    present, else from hardmine.scoring's ``p_true`` and ``margin`` (p_true minus the largest
    other-class probability): ``max_prob = p_true + max(0, -margin)``.
    """
    for name in MAX_PROB_COLUMNS:
        if name not in scores.column_names:
            continue
        col = _column(scores, name, "scores", "")
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
            lens = pc.list_value_length(col).to_numpy(zero_copy_only=False)
            if len(lens) and (lens.min() < 1 or lens.min() != lens.max()):
                raise ValueError("scores column 'probs' must hold K probabilities per row (same K everywhere)")
            flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float64)
            return flat.reshape(len(lens), -1).max(axis=1) if len(lens) else np.zeros(0)
        return _floats(scores, name, "scores", "")
    if {"p_true", "margin"} <= set(scores.column_names):
        p_true = _floats(scores, "p_true", "scores", "")
        margin = _floats(scores, "margin", "scores", "")
        return p_true + np.maximum(0.0, -margin)
    raise ValueError(
        "max_confidence needs the model's top probability: scores must have p_true and margin "
        f"(as hardmine.scoring writes them) or one of the columns {MAX_PROB_COLUMNS}; "
        "or leave max_confidence=None"
    )


def _family(rule: str) -> str:
    """Rule name without its parenthesised details (``label_issue->relabel(conf=0.91)`` -> ``label_issue->relabel``)."""
    return re.sub(r"\([^)]*\)", "", rule)


# --------------------------------------------------------------------------- select


def select(
    scores: pa.Table,
    texts: pa.Table,
    *,
    hardness_quantile: float | None = 0.2,
    p_true_max: float | None = None,
    max_confidence: float | None = None,
    min_length: int = 0,
    classes: list[int] | None = None,
    max_per_class: int | None = None,
    issue_action: str = "review",
    relabel_min_confidence: float = 0.7,
    seed: int = 0,
) -> tuple[pa.Table, dict]:
    """Choose an action per sample; returns (selection table, JSON-able summary).

    Label issues (``is_label_issue``) are never augmented: they go to ``issue_action``
    (review / drop / relabel; relabel needs ``suggested_confidence >= relabel_min_confidence``,
    else review), or with ``keep`` they are treated as ordinary rows (the rule says so).
    Among the other rows the hard set is the top ``hardness_quantile`` fraction by hardness
    (over all rows) and/or ``p_true <= p_true_max``; hard rows are then excluded in order by
    ``max_confidence`` (confidently predicting another class -> review), ``classes``,
    ``min_length`` (characters) and ``max_per_class`` (hardest N kept; ties broken by a
    ``seed``-ed hash of the id). What remains is ``augment``; everything else ``none``.
    """
    _check_params(
        hardness_quantile, p_true_max, max_confidence, min_length, classes, max_per_class,
        issue_action, relabel_min_confidence, seed,
    )
    if not isinstance(scores, pa.Table):
        raise ValueError(f"scores must be a pyarrow Table, got {type(scores).__name__}")
    fix = "pass the table written by the score stage (hardmine.scoring)"
    ids = score_ids(scores)
    n = len(ids)
    label = _ints(scores, "label", "scores", fix)
    hardness = _floats(scores, "hardness", "scores", fix)
    is_issue = _column(scores, "is_label_issue", "scores", fix)
    if not pa.types.is_boolean(is_issue.type):
        raise ValueError(f"scores column 'is_label_issue' must be bool, got {is_issue.type}")
    is_issue = is_issue.to_numpy(zero_copy_only=False).astype(bool)
    text = text_for_ids(ids, texts)

    action = np.full(n, "none", dtype=object)
    rule = np.full(n, "not_hard", dtype=object)
    new_label = label.copy()

    # 1. label issues -> review / drop / relabel (never augment)
    if issue_action != "keep":
        idx = np.flatnonzero(is_issue)
        if issue_action in ("review", "drop"):
            action[idx] = issue_action
            rule[idx] = f"label_issue->{issue_action}"
        else:
            sugg = _ints(scores, "suggested_label", "scores", fix)
            conf = _floats(scores, "suggested_confidence", "scores", fix)
            for i in idx:
                if sugg[i] < 0:
                    action[i], rule[i] = "review", "label_issue->review(no_suggested_label)"
                elif sugg[i] == label[i]:
                    action[i], rule[i] = "review", "label_issue->review(suggested_label=label)"
                elif conf[i] >= relabel_min_confidence:
                    action[i], rule[i] = "relabel", f"label_issue->relabel(conf={conf[i]:.2f})"
                    new_label[i] = sugg[i]
                else:
                    action[i] = "review"
                    rule[i] = f"label_issue->review(conf={conf[i]:.3f}<{relabel_min_confidence:g})"
        eligible = ~is_issue
    else:
        eligible = np.ones(n, dtype=bool)

    # 2. the hard set (quantile computed over all rows)
    hard = np.ones(n, dtype=bool)
    parts = []
    threshold = None
    if hardness_quantile is not None:
        q_mask = top_quantile_mask(hardness, hardness_quantile, ids.astype(str), seed)
        hard &= q_mask
        parts.append(f"hardness_quantile={hardness_quantile:g}")
        threshold = float(hardness[q_mask].min()) if q_mask.any() else None
    if p_true_max is not None:
        p_true = _floats(scores, "p_true", "scores", fix)
        hard &= p_true <= p_true_max
        parts.append(f"p_true<={p_true_max:g}")
    hard_rule = "hard:" + "&".join(parts)
    prefix = np.where(is_issue, "label_issue->keep;", "") if issue_action == "keep" else np.full(n, "")

    rule[eligible & ~hard] = (prefix + "not_hard")[eligible & ~hard]
    cand = eligible & hard
    n_hard = int(cand.sum())

    # 3. exclusions, in order
    if max_confidence is not None:
        pred = _ints(scores, "pred", "scores", fix)
        top = max_prob(scores)
        m = cand & (top > max_confidence) & (pred != label)
        action[m] = "review"
        rule[m] = (prefix + "excluded:max_confidence->review")[m]
        cand &= ~m
    if classes is not None:
        m = cand & ~np.isin(label, np.asarray(list(classes), dtype=np.int64))
        rule[m] = (prefix + "excluded:classes")[m]
        cand &= ~m
    if min_length > 0:
        lengths = np.fromiter((len(t) for t in text), dtype=np.int64, count=n)
        m = cand & (lengths < min_length)
        rule[m] = (prefix + "excluded:min_length")[m]
        cand &= ~m
    if max_per_class is not None:
        order = hardest_order(hardness, ids.astype(str), seed)
        order = order[cand[order]]
        rank = np.zeros(n, dtype=np.int64)
        seen: Counter = Counter()
        for i in order:
            seen[label[i]] += 1
            rank[i] = seen[label[i]]
        m = cand & (rank > max_per_class)
        rule[m] = (prefix + "excluded:max_per_class")[m]
        cand &= ~m
    action[cand] = "augment"
    rule[cand] = (prefix + hard_rule)[cand]

    table = pa.table(
        {
            "id": pa.array(ids.astype(str).tolist(), pa.string()),
            "label": pa.array(label, pa.int32()),
            "action": pa.array(action.tolist(), pa.string()),
            "rule": pa.array(rule.tolist(), pa.string()),
            "new_label": pa.array(new_label, pa.int32()),
            "hardness": pa.array(hardness, pa.float64()),
        },
        schema=SELECTION,
    )
    per_class: dict[str, dict[str, int]] = {}
    for c in np.unique(label):
        acts = Counter(action[label == c].tolist())
        per_class[str(int(c))] = {a: int(acts.get(a, 0)) for a in ACTIONS}
    acts = Counter(action.tolist())
    summary = {
        "n": int(n),
        "n_label_issues": int(is_issue.sum()),
        "n_hard": n_hard,
        "hardness_threshold": threshold,
        "actions": {a: int(acts.get(a, 0)) for a in ACTIONS},
        "rules": dict(sorted(Counter(_family(r) for r in rule.tolist()).items())),
        "per_class": per_class,
        "params": {
            "hardness_quantile": hardness_quantile,
            "p_true_max": p_true_max,
            "max_confidence": max_confidence,
            "min_length": int(min_length),
            "classes": None if classes is None else [int(c) for c in classes],
            "max_per_class": max_per_class,
            "issue_action": issue_action,
            "relabel_min_confidence": relabel_min_confidence,
            "seed": int(seed),
        },
    }
    return table, summary
