"""Selection policies: decide, per sample, what happens to it (pure numpy/pyarrow, no Ray).

``select`` splits a scores table (see :data:`hardmine.schema.SCORES_CORE`) into

- *likely mislabeled* rows (cleanlab label issues) -> review / drop / relabel, by policy;
- *hard but plausibly correct* rows -> ``augment``;
- everything else -> ``none``.

Every row gets exactly one action and the ``rule`` that chose it, so each decision
can be traced back to a parameter.

Two policies say which rows are hard (:data:`POLICIES`): ``hardness`` (the top
``hardness_quantile`` by ``1 - p_true`` and/or ``p_true <= p_true_max``) and ``ambiguous``,
the *ambiguous region* of the data map (Swayamdipta et al., 2020, "Dataset Cartography"):
the top ``ambiguous_quantile`` of rows by ``dyn_variability``, the std of ``p_true`` over
the OOF epochs. Every row also gets its data-map ``region`` (:func:`data_map_regions`).
A class-aware budget (:data:`CLASS_BUDGETS`) then redistributes the policy's number of
augmentation sources across classes (:func:`class_weights`, :func:`allocate`).
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
        # data-map region: easy / ambiguous / hard; null when the scores carry no training dynamics
        pa.field("region", pa.string()),
    ]
)

ISSUE_ACTIONS = ("review", "drop", "relabel", "keep")

#: which rows count as hard: by hardness (1 - p_true) or by the data map's ambiguous region
POLICIES = ("hardness", "ambiguous")
#: how the augmentation sources are spread over classes (``uniform``: as the policy chose them)
CLASS_BUDGETS = ("uniform", "hard_share", "low_f1")
#: data-map regions, one per row (Swayamdipta et al., 2020)
REGIONS = ("easy", "ambiguous", "hard")
#: share of rows in the ambiguous region (highest ``dyn_variability``) and in the hard-to-learn
#: candidates (lowest ``dyn_confidence``): the paper's terciles ("top 33%")
DATA_MAP_QUANTILE = 1.0 / 3.0

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


def _check_choice(name: str, value, valid: tuple) -> None:
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(repr(v) for v in valid)}; got {value!r}")


def _check_params(
    hardness_quantile, p_true_max, max_confidence, min_length, classes, max_per_class,
    issue_action, relabel_min_confidence, seed, policy="hardness", ambiguous_quantile=None,
    class_budget="uniform",
) -> None:
    _check_choice("policy", policy, POLICIES)
    _check_choice("class_budget", class_budget, CLASS_BUDGETS)
    if ambiguous_quantile is not None:
        _check_fraction("ambiguous_quantile", ambiguous_quantile, low_open=True)
    if policy == "ambiguous":
        if p_true_max is not None:
            raise ValueError(
                "p_true_max belongs to policy 'hardness'; policy 'ambiguous' takes the top "
                "ambiguous_quantile of rows by variability: set p_true_max to None (or use policy 'hardness')"
            )
        if ambiguous_quantile is None and hardness_quantile is None:
            raise ValueError(
                "policy 'ambiguous' needs ambiguous_quantile (e.g. 0.2; None = the same share as hardness_quantile, "
                "which is None too)"
            )
    elif hardness_quantile is None and p_true_max is None:
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


def dynamics(scores: pa.Table) -> tuple[np.ndarray, np.ndarray] | None:
    """``(dyn_confidence, dyn_variability)`` of the scores table as float64, or None when the
    scores carry no training dynamics (columns absent, or null in every row: no ``epoch_probs``)."""
    names = ("dyn_confidence", "dyn_variability")
    if not set(names) <= set(scores.column_names):
        return None
    if all(scores.column(c).null_count == scores.num_rows for c in names) and scores.num_rows:
        return None
    fix = "recompute the scores (hardmine.scoring.score_table with epoch_probs)"
    return tuple(_floats(scores, c, "scores", fix) for c in names)  # type: ignore[return-value]


def _refuse_without_dynamics(dyn) -> None:
    """The ambiguous policy needs variability across >= 2 epochs; say why there is none."""
    if dyn is None:
        raise ValueError(
            "select policy 'ambiguous' needs training dynamics, but the scores have no dyn_variability "
            "(the OOF stage recorded no per-epoch probabilities, e.g. an external backbone): "
            "use select.policy: hardness"
        )
    if dyn[1].size and not (dyn[1] > 0).any():
        raise ValueError(
            "select policy 'ambiguous' needs p_true to vary across OOF epochs, but dyn_variability is 0 "
            "in every row (one epoch: oof.epochs=1, or snapshots that never moved); set oof.epochs >= 2 (for the tfidf and logreg heads the "
            "epochs are snapshots along the solver's path) or use select.policy: hardness"
        )


# --------------------------------------------------------------------------- data map


def data_map_regions(
    confidence, variability, ids=None, *, quantile: float = DATA_MAP_QUANTILE, seed: int = 0
) -> np.ndarray:
    """The data-map region of every row (object array of ``"easy"`` / ``"ambiguous"`` / ``"hard"``).

    ``confidence`` is the mean p_true over epochs and ``variability`` its std (the
    ``dyn_confidence`` / ``dyn_variability`` scores). As in Swayamdipta et al. (2020), regions are
    quantiles over all rows: *ambiguous* = the ``ceil(quantile * n)`` rows of highest variability
    (rows with variability 0 never: they did not move), *hard* (hard-to-learn) = of the other rows,
    those among the ``ceil(quantile * n)`` of lowest confidence, *easy* (easy-to-learn) = the rest.
    Ties are broken by a ``seed``-ed hash of the id, as everywhere in selection.
    """
    _check_fraction("quantile", quantile, low_open=True)
    _check_int("seed", seed, 0)
    conf = np.asarray(confidence, dtype=np.float64)
    var = np.asarray(variability, dtype=np.float64)
    if conf.ndim != 1 or var.shape != conf.shape:
        raise ValueError(f"confidence {conf.shape} and variability {var.shape} must be 1-D, one value per row")
    for name, a in (("confidence", conf), ("variability", var)):
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise ValueError(f"{name} is NaN/inf in rows {_first(bad.tolist())}")
    if (var < 0).any():
        raise ValueError(f"variability must be >= 0 (a std); rows {_first(np.flatnonzero(var < 0).tolist())} are negative")
    if ids is None:
        ids = [f"{i:012d}" for i in range(conf.shape[0])]
    elif len(ids) != conf.shape[0]:
        raise ValueError(f"ids has {len(ids)} entries for {conf.shape[0]} rows")
    return _data_map_regions(conf, var, [str(i) for i in ids], quantile, seed)


def _data_map_regions(conf: np.ndarray, var: np.ndarray, ids, quantile: float, seed: int) -> np.ndarray:
    ambiguous = top_quantile_mask(var, quantile, ids, seed) & (var > 0)
    hard = top_quantile_mask(-conf, quantile, ids, seed) & ~ambiguous
    return np.where(ambiguous, "ambiguous", np.where(hard, "hard", "easy")).astype(object)


# --------------------------------------------------------------------------- class budget


def per_class_f1(label, pred, classes) -> np.ndarray:
    """Out-of-fold F1 of each class in ``classes`` from predicted vs given labels (0 when undefined)."""
    label = np.asarray(label, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    out = np.zeros(len(classes), dtype=np.float64)
    for j, c in enumerate(classes):
        tp = int(((pred == c) & (label == c)).sum())
        denom = int((pred == c).sum() + (label == c).sum())
        out[j] = 2.0 * tp / denom if denom else 0.0
    return out


def class_weights(mode: str, label, hard, pred=None) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, weights)``: each class's share of the augmentation budget, before caps.

    ``hard_share``: the share of the class's rows in the policy's hard set ``hard``
    (hardness or ambiguous region, label issues excluded) -- class size does not count, so a
    small class that is often hard is not outvoted by a large one. ``low_f1``: ``1 - F1`` of the
    class from the out-of-fold ``pred`` vs ``label``. ``uniform``: each class's count in ``hard``
    (what the policy chose, i.e. no change).
    """
    _check_choice("class_budget", mode, CLASS_BUDGETS)
    label = np.asarray(label, dtype=np.int64)
    hard = np.asarray(hard, dtype=bool)
    if hard.shape != label.shape:
        raise ValueError(f"hard {hard.shape} and label {label.shape} must have one entry per row")
    classes = np.unique(label)
    if mode == "low_f1":
        if pred is None:
            raise ValueError("class_budget 'low_f1' needs the predicted labels (scores column 'pred')")
        pred = np.asarray(pred, dtype=np.int64)
        if pred.shape != label.shape:
            raise ValueError(f"pred {pred.shape} and label {label.shape} must have one entry per row")
        return classes, 1.0 - per_class_f1(label, pred, classes)
    n_hard = np.array([(hard & (label == c)).sum() for c in classes], dtype=np.float64)
    if mode == "uniform":
        return classes, n_hard
    size = np.array([(label == c).sum() for c in classes], dtype=np.float64)
    return classes, n_hard / size


def allocate(total: int, weights, caps, keys=None, seed: int = 0) -> np.ndarray:
    """Split ``total`` integer units over groups in proportion to ``weights``, each at most its ``cap``.

    Water-filling: a group whose share exceeds its cap gets the cap and the rest is shared again
    among the others; fractional shares are rounded by largest remainder, ties broken by a
    ``seed``-ed hash of ``keys`` (default: the group positions). Groups of weight 0 get nothing, so
    the result sums to ``min(total, sum of the caps of groups with weight > 0)``.
    """
    _check_int("total", total, 0)
    _check_int("seed", seed, 0)
    w = np.asarray(weights, dtype=np.float64)
    cap = np.asarray(caps)
    if w.ndim != 1 or cap.shape != w.shape:
        raise ValueError(f"weights {w.shape} and caps {cap.shape} must be 1-D, one per group")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be finite and >= 0, got {w.tolist()}")
    if not np.issubdtype(cap.dtype, np.integer) or (cap < 0).any():
        raise ValueError(f"caps must be integers >= 0, got {cap.tolist()}")
    keys = [str(k) for k in (range(len(w)) if keys is None else keys)]
    if len(keys) != len(w):
        raise ValueError(f"keys has {len(keys)} entries for {len(w)} groups")
    return _allocate(int(total), w, cap.astype(np.int64), keys, int(seed))


def _allocate(total: int, w: np.ndarray, cap: np.ndarray, keys: list[str], seed: int) -> np.ndarray:
    live = (w > 0) & (cap > 0)
    target = min(total, int(cap[live].sum()))
    share = np.zeros(len(w), dtype=np.float64)
    fixed = ~live
    while True:  # at most one pass per group
        free = ~fixed
        rest = target - share[fixed].sum()
        if not free.any() or rest <= 0:
            break
        s = rest * w[free] / w[free].sum()
        over = s >= cap[free]
        if not over.any():
            share[free] = s
            break
        idx = np.flatnonzero(free)[over]
        share[idx] = cap[idx]
        fixed[idx] = True
    out = np.minimum(np.floor(share + 1e-9).astype(np.int64), cap)
    left = target - int(out.sum())
    if left > 0:
        frac = share - out
        room = np.flatnonzero((out < cap) & live)
        order = room[np.lexsort((np.asarray(keys, dtype=str)[room], tiebreak_keys([keys[i] for i in room], seed),
                                 -frac[room]))]
        out[order[:left]] += 1
    return out


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
    policy: str = "hardness",
    ambiguous_quantile: float | None = None,
    class_budget: str = "uniform",
) -> tuple[pa.Table, dict]:
    """Choose an action per sample; returns (selection table, JSON-able summary).

    Label issues (``is_label_issue``) are never augmented: they go to ``issue_action``
    (review / drop / relabel; relabel needs ``suggested_confidence >= relabel_min_confidence``,
    else review), or with ``keep`` they are treated as ordinary rows (the rule says so).
    Among the other rows the hard set is, by ``policy``:

    - ``"hardness"``: the top ``hardness_quantile`` fraction by hardness (over all rows)
      and/or ``p_true <= p_true_max``;
    - ``"ambiguous"``: the data map's ambiguous region, the top ``ambiguous_quantile``
      fraction of all rows by ``dyn_variability`` (std of p_true over the OOF epochs; rows
      with variability 0 never count). ``ambiguous_quantile=None`` takes ``hardness_quantile``
      (the same share of rows; the augment counts still differ, since label issues, which
      never augment, are rarer among the ambiguous rows than among the hardest). Scores
      without dynamics, or with one epoch (variability 0 everywhere), are refused with a
      ``ValueError``: no fallback.

    Hard rows are then excluded in order by ``max_confidence`` (confidently predicting
    another class -> review), ``classes``, ``min_length`` (characters) and ``max_per_class``
    (hardest -- or most variable -- N kept; ties broken by a ``seed``-ed hash of the id).
    What remains is ``augment``; everything else ``none``.

    ``class_budget`` other than ``"uniform"`` keeps that number of augment rows but spreads
    it over classes in proportion to :func:`class_weights` (``"hard_share"``: the class's share
    of rows in the hard set; ``"low_f1"``: 1 - its out-of-fold F1), capped by
    ``max_per_class`` and by the rows the class can give (:func:`allocate`); each class
    gives its hardest (most variable) eligible rows, which may lie beyond the global
    quantile but never break ``p_true_max``, ``classes``, ``min_length``, ``max_confidence``
    or the label-issue rule. If every weight is 0 the policy's choice stands (``fallback``
    in the summary says so).

    Every row gets its data-map ``region`` (:func:`data_map_regions` at
    :data:`DATA_MAP_QUANTILE`), null when the scores have no dynamics.

    Summary keys: ``n``, ``policy``, ``n_label_issues``, ``n_hard`` (hard-set rows that are
    not label issues, before exclusions: under ``ambiguous`` the ambiguous ones),
    ``hardness_threshold`` / ``variability_threshold`` (lowest hardness / variability in the
    hard set; None for the other policy), ``actions``, ``rules``, ``per_class`` (actions per
    class), ``class_budget`` (``{"mode": "uniform"}``, else ``mode``, ``total``, ``allocated``,
    ``unallocated``, ``fallback`` and ``per_class`` ``{weight, hard_share, f1 (low_f1),
    capacity, uniform_sources, sources}``), ``data_map`` (None without dynamics, else
    ``quantile``, ``rule``, ``ambiguous_min_variability``, ``hard_max_confidence``,
    ``max_variability``, ``regions`` counts and ``per_class`` region counts) and ``params``.
    """
    _check_params(
        hardness_quantile, p_true_max, max_confidence, min_length, classes, max_per_class,
        issue_action, relabel_min_confidence, seed, policy, ambiguous_quantile, class_budget,
    )
    if not isinstance(scores, pa.Table):
        raise ValueError(f"scores must be a pyarrow Table, got {type(scores).__name__}")
    fix = "pass the table written by the score stage (hardmine.scoring)"
    ids = score_ids(scores)
    n = len(ids)
    sid = ids.astype(str)
    label = _ints(scores, "label", "scores", fix)
    hardness = _floats(scores, "hardness", "scores", fix)
    is_issue = _column(scores, "is_label_issue", "scores", fix)
    if not pa.types.is_boolean(is_issue.type):
        raise ValueError(f"scores column 'is_label_issue' must be bool, got {is_issue.type}")
    is_issue = is_issue.to_numpy(zero_copy_only=False).astype(bool)
    dyn = dynamics(scores)
    if policy == "ambiguous":
        _refuse_without_dynamics(dyn)
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

    # 1b. the score stage's other signals: conflicting duplicates and outliers go to review with their
    # own rule, never to augmentation; with issue_action keep (no cleaning) they stay, still not augmented
    signal_flags = _signal_flags(scores)
    for reason, flagged in signal_flags.items():
        m = flagged & eligible
        if issue_action != "keep":
            action[m] = "review"
            rule[m] = f"{reason}->review"
        else:
            rule[m] = f"{reason}->keep(not_augmented)"
        eligible = eligible & ~m

    # 2. the hard set (quantiles computed over all rows); `order_by`: larger = chosen first
    hard = np.ones(n, dtype=bool)
    allowed = np.ones(n, dtype=bool)  # hard constraints the class budget must keep too
    parts = []
    threshold = var_threshold = None
    amb_q = None
    if policy == "hardness":
        order_by = hardness
        if hardness_quantile is not None:
            q_mask = top_quantile_mask(hardness, hardness_quantile, sid, seed)
            hard &= q_mask
            parts.append(f"hardness_quantile={hardness_quantile:g}")
            threshold = float(hardness[q_mask].min()) if q_mask.any() else None
        if p_true_max is not None:
            p_true = _floats(scores, "p_true", "scores", fix)
            hard &= p_true <= p_true_max
            allowed &= p_true <= p_true_max
            parts.append(f"p_true<={p_true_max:g}")
    else:
        order_by = dyn[1]
        amb_q = hardness_quantile if ambiguous_quantile is None else ambiguous_quantile
        q_mask = top_quantile_mask(order_by, amb_q, sid, seed) & (order_by > 0)
        hard &= q_mask
        allowed &= order_by > 0
        parts.append(f"ambiguous_quantile={amb_q:g}")
        var_threshold = float(order_by[q_mask].min()) if q_mask.any() else None
    hard_rule = "hard:" + "&".join(parts)
    prefix = np.where(is_issue, "label_issue->keep;", "") if issue_action == "keep" else np.full(n, "")

    rule[eligible & ~hard] = (prefix + "not_hard")[eligible & ~hard]
    cand = eligible & hard
    hard_set = cand.copy()
    n_hard = int(cand.sum())

    # 3. exclusions, in order
    if max_confidence is not None:
        pred = _ints(scores, "pred", "scores", fix)
        top = max_prob(scores)
        confident_other = (top > max_confidence) & (pred != label)
        allowed &= ~confident_other
        m = cand & confident_other
        action[m] = "review"
        rule[m] = (prefix + "excluded:max_confidence->review")[m]
        cand &= ~m
    if classes is not None:
        in_classes = np.isin(label, np.asarray(list(classes), dtype=np.int64))
        allowed &= in_classes
        m = cand & ~in_classes
        rule[m] = (prefix + "excluded:classes")[m]
        cand &= ~m
    if min_length > 0:
        lengths = np.fromiter((len(t) for t in text), dtype=np.int64, count=n)
        allowed &= lengths >= min_length
        m = cand & (lengths < min_length)
        rule[m] = (prefix + "excluded:min_length")[m]
        cand &= ~m
    order = hardest_order(order_by, sid, seed)
    if max_per_class is not None:
        rank = _class_rank(order, cand, label)
        m = cand & (rank > max_per_class)
        rule[m] = (prefix + "excluded:max_per_class")[m]
        cand &= ~m
    action[cand] = "augment"
    rule[cand] = (prefix + hard_rule)[cand]

    # 4. class-aware budget: the same number of sources, spread over classes by weight
    budget_info: dict = {"mode": class_budget}
    if class_budget != "uniform":
        budget_info = _class_budget(
            class_budget, cand, hard_set, eligible & allowed, label,
            _ints(scores, "pred", "scores", fix) if class_budget == "low_f1" else None,
            order, max_per_class, seed,
        )
        chosen = budget_info.pop("_chosen")
        if chosen is not None:
            drop = cand & ~chosen
            rule[drop] = (prefix + "excluded:class_budget")[drop]
            action[drop] = "none"
            add = chosen & ~cand
            action[add] = "augment"
            rule[add] = (prefix + f"class_budget:{class_budget}")[add]
            keep = chosen & cand
            rule[keep] = (prefix + f"{hard_rule};class_budget:{class_budget}")[keep]
            cand = chosen

    # 5. data-map regions (descriptive: every row, whatever the policy)
    region = None
    data_map = None
    if dyn is not None:
        region = _data_map_regions(dyn[0], dyn[1], sid, DATA_MAP_QUANTILE, seed)
        data_map = _data_map_summary(region, dyn, label)

    table = pa.table(
        {
            "id": pa.array(sid.tolist(), pa.string()),
            "label": pa.array(label, pa.int32()),
            "action": pa.array(action.tolist(), pa.string()),
            "rule": pa.array(rule.tolist(), pa.string()),
            "new_label": pa.array(new_label, pa.int32()),
            "hardness": pa.array(hardness, pa.float64()),
            "region": pa.nulls(n, pa.string()) if region is None else pa.array(region.tolist(), pa.string()),
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
        "policy": policy,
        "n_label_issues": int(is_issue.sum()),
        # rows the score stage flagged (whatever else they are): kept out of augmentation
        "n_conflicting_duplicates": int(signal_flags["conflicting_duplicate"].sum()) if "conflicting_duplicate" in signal_flags else 0,
        "n_outliers": int(signal_flags["outlier"].sum()) if "outlier" in signal_flags else 0,
        "n_hard": n_hard,
        # the hard set before label issues leave it (what issue_action: keep would call hard)
        "n_hard_with_issues": int(hard.sum()),
        "hardness_threshold": threshold,
        "variability_threshold": var_threshold,
        "actions": {a: int(acts.get(a, 0)) for a in ACTIONS},
        "rules": dict(sorted(Counter(_family(r) for r in rule.tolist()).items())),
        "per_class": per_class,
        "class_budget": budget_info,
        "data_map": data_map,
        "params": {
            "policy": policy,
            "hardness_quantile": hardness_quantile,
            "ambiguous_quantile": amb_q if policy == "ambiguous" else ambiguous_quantile,
            "p_true_max": p_true_max,
            "max_confidence": max_confidence,
            "min_length": int(min_length),
            "classes": None if classes is None else [int(c) for c in classes],
            "max_per_class": max_per_class,
            "issue_action": issue_action,
            "relabel_min_confidence": relabel_min_confidence,
            "class_budget": class_budget,
            "seed": int(seed),
        },
    }
    return table, summary


#: scores columns that send a row to review with its own reason (rule ``<reason>->review``), in order
SIGNAL_REASONS = {"conflicting_duplicate": "is_conflicting_duplicate", "outlier": "is_outlier"}


def _signal_flags(scores: pa.Table) -> dict[str, np.ndarray]:
    """reason -> bool mask of the :data:`SIGNAL_REASONS` columns present (null = not flagged)."""
    out = {}
    for reason, col in SIGNAL_REASONS.items():
        if col in scores.column_names:
            c = scores.column(col)
            if not pa.types.is_boolean(c.type) and not pa.types.is_null(c.type):
                raise ValueError(f"scores column {col!r} must be bool, got {c.type}: pass the table written by the score stage")
            out[reason] = pc.fill_null(c.cast(pa.bool_()), False).to_numpy(zero_copy_only=False).astype(bool)
    return out


def _class_rank(order: np.ndarray, mask: np.ndarray, label: np.ndarray) -> np.ndarray:
    """1-based rank of each ``mask`` row within its class, in ``order`` (0 outside ``mask``)."""
    rank = np.zeros(len(label), dtype=np.int64)
    seen: Counter = Counter()
    for i in order[mask[order]]:
        seen[label[i]] += 1
        rank[i] = seen[label[i]]
    return rank


def _class_budget(mode, cand, hard_set, pool, label, pred, order, max_per_class, seed) -> dict:
    """Re-spread ``cand.sum()`` sources over classes; ``_chosen`` is the new augment mask (None: unchanged)."""
    total = int(cand.sum())
    classes, w = class_weights(mode, label, hard_set, pred)
    _, hard_share = class_weights("hard_share", label, hard_set)
    cap = np.array([(pool & (label == c)).sum() for c in classes], dtype=np.int64)
    if max_per_class is not None:
        cap = np.minimum(cap, int(max_per_class))
    before = np.array([(cand & (label == c)).sum() for c in classes], dtype=np.int64)
    info: dict = {"mode": mode, "total": total, "fallback": None}
    if total and not (w[cap > 0] > 0).any():
        what = "F1 = 1 (no out-of-fold error)" if mode == "low_f1" else "no hard row"
        info["fallback"] = f"every class that can give sources has {what}: the policy's choice stands (as class_budget uniform)"
        alloc, chosen = before, None
    else:
        alloc = _allocate(total, w, cap, [str(int(c)) for c in classes], seed)
        rank = _class_rank(order, pool, label)
        quota = np.zeros(int(label.max()) + 1 if len(label) else 0, dtype=np.int64)
        quota[classes] = alloc
        chosen = pool & (rank >= 1) & (rank <= quota[label])
    info["allocated"] = int(alloc.sum())
    info["unallocated"] = total - int(alloc.sum())
    f1 = per_class_f1(label, pred, classes) if pred is not None else None
    info["per_class"] = {
        str(int(c)): {
            "weight": float(w[j]),
            "hard_share": float(hard_share[j]),
            **({"f1": float(f1[j])} if f1 is not None else {}),
            "capacity": int(cap[j]),
            "uniform_sources": int(before[j]),
            "sources": int(alloc[j]),
        }
        for j, c in enumerate(classes)
    }
    info["_chosen"] = chosen
    return info


def _data_map_summary(region: np.ndarray, dyn, label: np.ndarray) -> dict:
    conf, var = dyn
    amb, hard = region == "ambiguous", region == "hard"
    per_class = {}
    for c in np.unique(label):
        r = Counter(region[label == c].tolist())
        per_class[str(int(c))] = {k: int(r.get(k, 0)) for k in REGIONS}
    r = Counter(region.tolist())
    return {
        "quantile": DATA_MAP_QUANTILE,
        "rule": "ambiguous: top third of rows by dyn_variability (> 0); hard: of the rest, among the bottom "
                "third by dyn_confidence; easy: the rest",
        "ambiguous_min_variability": float(var[amb].min()) if amb.any() else None,
        "hard_max_confidence": float(conf[hard].max()) if hard.any() else None,
        "max_variability": float(var.max()) if var.size else None,
        "regions": {k: int(r.get(k, 0)) for k in REGIONS},
        "per_class": per_class,
    }
