"""Class-aware budgets (:data:`hardmine.vocab.CLASS_BUDGETS`): the same number of augmentation
sources, spread over classes by weight (:func:`class_weights`) and capped (:func:`allocate`)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hardmine.select.order import class_rank, tiebreak_keys
from hardmine.checks import check_choice, check_int
from hardmine.vocab import CLASS_BUDGETS


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
    check_choice("class_budget", mode, CLASS_BUDGETS)
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


def allocate(total: int, weights, caps, keys: Sequence | None = None, seed: int = 0) -> np.ndarray:
    """Split ``total`` integer units over groups in proportion to ``weights``, each at most its ``cap``.

    Water-filling: a group whose share exceeds its cap gets the cap and the rest is shared again
    among the others; fractional shares are rounded by largest remainder, ties broken by a
    ``seed``-ed hash of ``keys`` (default: the group positions). Groups of weight 0 get nothing, so
    the result sums to ``min(total, sum of the caps of groups with weight > 0)``.
    """
    check_int("total", total, 0)
    check_int("seed", seed, 0)
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


def spread_budget(
    mode: str,
    cand: np.ndarray,
    hard_set: np.ndarray,
    pool: np.ndarray,
    label: np.ndarray,
    pred: np.ndarray | None,
    order: np.ndarray,
    max_per_class: int | None,
    seed: int,
) -> tuple[dict, np.ndarray | None]:
    """Re-spread the ``cand.sum()`` augment rows over classes by the ``mode`` weights.

    Each class gives its first rows of ``pool`` (the rows that keep every hard constraint) in
    ``order``. Returns the summary's ``class_budget`` entry and the new augment mask (None: the
    policy's choice stands, every class that can give sources has weight 0).
    """
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
        rank = class_rank(order, pool, label)
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
    return info, chosen
