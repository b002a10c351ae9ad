""":func:`select`: the action of every row and the rule that chose it, in steps -- label issues, review
signals, the policy's hard set, exclusions, ``max_per_class``, the class budget, data-map regions."""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np
import pyarrow as pa

from hardmine.checks import column, float_column, int_column
from hardmine.select.actions import Decisions, exclusions, label_issue_actions, rule_family, signal_actions
from hardmine.select.budget import spread_budget
from hardmine.select.data_map import DATA_MAP_QUANTILE, data_map_regions, data_map_summary
from hardmine.select.inputs import FIX, dynamics, score_ids, signal_flags, text_for_ids
from hardmine.select.order import class_rank, hardest_order
from hardmine.select.params import check_params
from hardmine.select.policies import ambiguous_policy, hardness_policy, refuse_without_dynamics
from hardmine.select.table import selection_table
from hardmine.vocab import ACTIONS


def select(
    scores: pa.Table,
    texts: pa.Table,
    *,
    hardness_quantile: float | None = 0.2,
    p_true_max: float | None = None,
    max_confidence: float | None = None,
    min_length: int = 0,
    classes: Sequence[int] | None = None,
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
    :data:`DATA_MAP_QUANTILE`), null when the scores have no dynamics, and ``hard``: whether it
    is in the policy's hard set (label issues included; :func:`hard_mask` reads it back).

    Summary keys: ``n``, ``policy``, ``n_label_issues``, ``n_hard`` (hard-set rows that are
    not label issues, before exclusions: under ``ambiguous`` the ambiguous ones),
    ``n_hard_with_issues`` (the whole hard set: the rows with ``hard`` true), ``hard_rule``
    (the policy's rule, e.g. ``hardness_quantile=0.2``),
    ``hardness_threshold`` / ``variability_threshold`` (lowest hardness / variability in the
    hard set; None for the other policy), ``actions``, ``rules``, ``per_class`` (actions per
    class), ``class_budget`` (``{"mode": "uniform"}``, else ``mode``, ``total``, ``allocated``,
    ``unallocated``, ``fallback`` and ``per_class`` ``{weight, hard_share, f1 (low_f1),
    capacity, uniform_sources, sources}``), ``data_map`` (None without dynamics, else
    ``quantile``, ``rule``, ``ambiguous_min_variability``, ``hard_max_confidence``,
    ``max_variability``, ``regions`` counts and ``per_class`` region counts) and ``params``.
    """
    check_params(
        hardness_quantile=hardness_quantile, p_true_max=p_true_max, max_confidence=max_confidence,
        min_length=min_length, classes=classes, max_per_class=max_per_class, issue_action=issue_action,
        relabel_min_confidence=relabel_min_confidence, seed=seed, policy=policy,
        ambiguous_quantile=ambiguous_quantile, class_budget=class_budget,
    )
    if not isinstance(scores, pa.Table):
        raise ValueError(f"scores must be a pyarrow Table, got {type(scores).__name__}")
    ids = score_ids(scores)
    n = len(ids)
    sid = ids.astype(str)
    label = int_column(scores, "label", "scores", FIX)
    hardness = float_column(scores, "hardness", "scores", FIX)
    is_issue = column(scores, "is_label_issue", "scores", FIX)
    if not pa.types.is_boolean(is_issue.type):
        raise ValueError(f"scores column 'is_label_issue' must be bool, got {is_issue.type}")
    is_issue = is_issue.to_numpy(zero_copy_only=False).astype(bool)
    dyn = dynamics(scores)
    if policy == "ambiguous":
        refuse_without_dynamics(dyn)
    text = text_for_ids(ids, texts)

    # 1. label issues -> review / drop / relabel (never augment); 1b. the score stage's other signals
    d = Decisions.start(label)
    eligible = label_issue_actions(d, scores, is_issue, label, issue_action, relabel_min_confidence)
    flags = signal_flags(scores)
    eligible = signal_actions(d, flags, eligible, issue_action)

    # 2. the hard set (quantiles computed over all rows)
    amb_q = None
    if policy == "hardness":
        hs = hardness_policy(scores, hardness, sid, hardness_quantile, p_true_max, seed)
    else:
        amb_q = hardness_quantile if ambiguous_quantile is None else ambiguous_quantile
        hs = ambiguous_policy(dyn[1], sid, amb_q, seed)
    hard_rule = "hard:" + hs.rule
    prefix = np.where(is_issue, "label_issue->keep;", "") if issue_action == "keep" else np.full(n, "")
    d.rule[eligible & ~hs.hard] = (prefix + "not_hard")[eligible & ~hs.hard]
    cand = eligible & hs.hard
    hard_set = cand.copy()

    # 3. exclusions, in order
    cand, allowed = exclusions(d, scores, cand, hs.allowed, prefix, label, text, max_confidence=max_confidence,
                               classes=classes, min_length=min_length)
    order = hardest_order(hs.order_by, sid, seed)
    if max_per_class is not None:
        m = cand & (class_rank(order, cand, label) > max_per_class)
        d.rule[m] = (prefix + "excluded:max_per_class")[m]
        cand &= ~m
    d.action[cand] = "augment"
    d.rule[cand] = (prefix + hard_rule)[cand]

    # 4. class-aware budget: the same number of sources, spread over classes by weight
    budget_info: dict = {"mode": class_budget}
    if class_budget != "uniform":
        pred = int_column(scores, "pred", "scores", FIX) if class_budget == "low_f1" else None
        budget_info, chosen = spread_budget(class_budget, cand, hard_set, eligible & allowed, label, pred, order,
                                            max_per_class, seed)
        if chosen is not None:
            drop = cand & ~chosen
            d.rule[drop] = (prefix + "excluded:class_budget")[drop]
            d.action[drop] = "none"
            add = chosen & ~cand
            d.action[add] = "augment"
            d.rule[add] = (prefix + f"class_budget:{class_budget}")[add]
            keep = chosen & cand
            d.rule[keep] = (prefix + f"{hard_rule};class_budget:{class_budget}")[keep]

    # 5. data-map regions (descriptive: every row, whatever the policy)
    region = data_map = None
    if dyn is not None:
        region = data_map_regions(dyn[0], dyn[1], sid, quantile=DATA_MAP_QUANTILE, seed=seed)
        data_map = data_map_summary(region, dyn[0], dyn[1], label)

    table = selection_table(sid, label, d.action, d.rule, d.new_label, hardness, hs.hard, region)
    per_class: dict[str, dict[str, int]] = {}
    for c in np.unique(label):
        acts = Counter(d.action[label == c].tolist())
        per_class[str(int(c))] = {a: int(acts.get(a, 0)) for a in ACTIONS}
    acts = Counter(d.action.tolist())
    summary = {
        "n": int(n),
        "policy": policy,
        "n_label_issues": int(is_issue.sum()),
        # rows the score stage flagged (whatever else they are): kept out of augmentation
        "n_conflicting_duplicates": int(flags["conflicting_duplicate"].sum()) if "conflicting_duplicate" in flags else 0,
        "n_outliers": int(flags["outlier"].sum()) if "outlier" in flags else 0,
        "n_hard": int(hard_set.sum()),
        # the hard set before label issues leave it (what issue_action: keep would call hard)
        "n_hard_with_issues": int(hs.hard.sum()),
        "hard_rule": hs.rule,
        "hardness_threshold": hs.hardness_threshold,
        "variability_threshold": hs.variability_threshold,
        "actions": {a: int(acts.get(a, 0)) for a in ACTIONS},
        "rules": dict(sorted(Counter(rule_family(r) for r in d.rule.tolist()).items())),
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
