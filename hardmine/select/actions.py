"""Actions that take rows out of augmentation: label issues (:data:`hardmine.vocab.ISSUE_ACTIONS`),
the score stage's review signals, and the exclusions of hard rows. Each step writes the ``action``
and ``rule`` of the rows it decides, in place, and returns the rows still open."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa

from hardmine.checks import float_column, int_column
from hardmine.select.inputs import FIX, max_prob


@dataclass
class Decisions:
    """Per-row ``action``, ``rule`` and ``new_label`` (object / object / int64 arrays), filled in step by step."""

    action: np.ndarray
    rule: np.ndarray
    new_label: np.ndarray

    @classmethod
    def start(cls, label: np.ndarray) -> Decisions:
        """Every row ``none`` by rule ``not_hard``, its label unchanged."""
        n = len(label)
        return cls(np.full(n, "none", dtype=object), np.full(n, "not_hard", dtype=object), label.copy())


def label_issue_actions(
    decisions: Decisions, scores: pa.Table, is_issue: np.ndarray, label: np.ndarray, issue_action: str,
    relabel_min_confidence: float,
) -> np.ndarray:
    """Send label issues to ``issue_action`` (relabel needs ``suggested_confidence >=
    relabel_min_confidence`` and a suggestion other than the label, else review); returns the rows
    still eligible for augmentation (all rows with ``keep``)."""
    if issue_action == "keep":
        return np.ones(len(label), dtype=bool)
    action, rule = decisions.action, decisions.rule
    idx = np.flatnonzero(is_issue)
    if issue_action in ("review", "drop"):
        action[idx] = issue_action
        rule[idx] = f"label_issue->{issue_action}"
    else:
        sugg = int_column(scores, "suggested_label", "scores", FIX)
        conf = float_column(scores, "suggested_confidence", "scores", FIX)
        for i in idx:
            if sugg[i] < 0:
                action[i], rule[i] = "review", "label_issue->review(no_suggested_label)"
            elif sugg[i] == label[i]:
                action[i], rule[i] = "review", "label_issue->review(suggested_label=label)"
            elif conf[i] >= relabel_min_confidence:
                action[i], rule[i] = "relabel", f"label_issue->relabel(conf={conf[i]:.2f})"
                decisions.new_label[i] = sugg[i]
            else:
                action[i] = "review"
                rule[i] = f"label_issue->review(conf={conf[i]:.3f}<{relabel_min_confidence:g})"
    return ~is_issue


def signal_actions(decisions: Decisions, flags: dict[str, np.ndarray], eligible: np.ndarray, issue_action: str) -> np.ndarray:
    """Conflicting duplicates and outliers (``flags``: reason -> mask) go to review with their own rule,
    never to augmentation; with ``issue_action`` keep (no cleaning) they stay, still not augmented.
    Returns the rows still eligible."""
    for reason, flagged in flags.items():
        m = flagged & eligible
        if issue_action != "keep":
            decisions.action[m] = "review"
            decisions.rule[m] = f"{reason}->review"
        else:
            decisions.rule[m] = f"{reason}->keep(not_augmented)"
        eligible = eligible & ~m
    return eligible


def exclusions(
    decisions: Decisions, scores: pa.Table, cand: np.ndarray, allowed: np.ndarray, prefix: np.ndarray,
    label: np.ndarray, text: np.ndarray, *, max_confidence: float | None, classes: Sequence[int] | None,
    min_length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Exclude hard rows, in order: ``max_confidence`` (confidently predicting another class -> review),
    ``classes``, ``min_length`` (characters). Returns ``(cand, allowed)``: the hard rows left, and
    ``allowed`` narrowed by the same constraints (the class budget must keep them too)."""
    action, rule = decisions.action, decisions.rule
    if max_confidence is not None:
        pred = int_column(scores, "pred", "scores", FIX)
        confident_other = (max_prob(scores) > max_confidence) & (pred != label)
        allowed = allowed & ~confident_other
        m = cand & confident_other
        action[m] = "review"
        rule[m] = (prefix + "excluded:max_confidence->review")[m]
        cand = cand & ~m
    if classes is not None:
        in_classes = np.isin(label, np.asarray(list(classes), dtype=np.int64))
        allowed = allowed & in_classes
        m = cand & ~in_classes
        rule[m] = (prefix + "excluded:classes")[m]
        cand = cand & ~m
    if min_length > 0:
        lengths = np.fromiter((len(t) for t in text), dtype=np.int64, count=len(text))
        allowed = allowed & (lengths >= min_length)
        m = cand & (lengths < min_length)
        rule[m] = (prefix + "excluded:min_length")[m]
        cand = cand & ~m
    return cand, allowed


def rule_family(rule: str) -> str:
    """Rule name without its parenthesised details (``label_issue->relabel(conf=0.91)`` -> ``label_issue->relabel``)."""
    return re.sub(r"\([^)]*\)", "", rule)
