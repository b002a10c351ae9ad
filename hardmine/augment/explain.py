"""Why a selection left nothing to augment, and which setting changes it (pure, no Ray).

:func:`no_sources_reason` reads the summary :func:`hardmine.select.select` returns
(``n``, ``n_label_issues``, ``n_hard``, ``actions``, ``rules``, ``params``) and, when no row
got ``action == "augment"``, says where the rows went, in the order ``select`` decides:
label issues first, then the hard-set rule, then the exclusions (max_confidence,
classes, min_length). The number of hard rows that are label issues is not in the
summary; pass ``n_hard_with_issues`` (the ``n_hard`` of the same selection with
``issue_action="keep"``) to have it exact, else it is derived when only
``hardness_quantile`` defines the hard set.
"""
from __future__ import annotations

import math


def _rule_count(rules: dict, name: str) -> int:
    """Rows whose rule family contains ``name`` (``label_issue->keep;`` prefixes included)."""
    return int(sum(v for k, v in (rules or {}).items() if name in k))


def _hard_rule(params: dict) -> str:
    parts = []
    if params.get("hardness_quantile") is not None:
        parts.append(f"select.hardness_quantile={params['hardness_quantile']:g}")
    if params.get("p_true_max") is not None:
        parts.append(f"select.p_true_max={params['p_true_max']:g}")
    return " and ".join(parts) or "the hard-set rule"


def _raise_hint(params: dict) -> str:
    keys = [k for k in ("hardness_quantile", "p_true_max") if params.get(k) is not None]
    return " or ".join(f"raise select.{k}" for k in keys) or "set select.hardness_quantile"


def no_sources_reason(summary: dict, n_hard_with_issues: int | None = None) -> str | None:
    """A one-line reason when the selection has no ``augment`` row (None when it has some).

    >>> no_sources_reason({"n": 10, "n_label_issues": 2, "n_hard": 0, "actions": {"augment": 0},
    ...     "rules": {}, "params": {"hardness_quantile": 0.2, "issue_action": "review"}})
    '0 rows to augment: all 2 hard rows (select.hardness_quantile=0.2) are label issues, sent to review (select.issue_action=review); set select.issue_action: keep to augment them anyway, or raise select.hardness_quantile to reach hard rows that are not label issues'
    """
    acts = summary.get("actions") or {}
    if int(acts.get("augment", 0) or 0) > 0:
        return None
    n = int(summary.get("n", sum(int(v or 0) for v in acts.values())) or 0)
    if n == 0:
        return "0 rows to augment: the selection has no rows (the scores table is empty)"
    p = summary.get("params") or {}
    rules = summary.get("rules") or {}
    issue_action = p.get("issue_action", "review")
    n_hard = int(summary.get("n_hard", 0) or 0)
    n_issues = int(summary.get("n_label_issues", 0) or 0)
    head = "0 rows to augment: "
    if n_hard == 0:
        if issue_action != "keep" and n_issues:
            total = n_hard_with_issues
            if total is None and p.get("p_true_max") is None and p.get("hardness_quantile") is not None:
                total = min(n, math.ceil(float(p["hardness_quantile"]) * n - 1e-9))
            if total is None:
                return (
                    f"{head}no row outside the {n_issues} label issues (sent to {issue_action}, "
                    f"select.issue_action={issue_action}) is hard by {_hard_rule(p)}; {_raise_hint(p)}, "
                    "or set select.issue_action: keep to augment label issues too"
                )
            if total > 0:
                return (
                    f"{head}all {total} hard rows ({_hard_rule(p)}) are label issues, sent to {issue_action} "
                    f"(select.issue_action={issue_action}); set select.issue_action: keep to augment them anyway, "
                    f"or {_raise_hint(p)} to reach hard rows that are not label issues"
                )
        if p.get("p_true_max") is not None:
            return (
                f"{head}no row is hard by {_hard_rule(p)} (no row has p_true <= {p['p_true_max']:g} there); "
                f"{_raise_hint(p)}"
            )
        return f"{head}no row is hard by {_hard_rule(p)}; {_raise_hint(p)}"
    parts, fixes = [], []
    k = _rule_count(rules, "excluded:max_confidence")
    if k:
        parts.append(f"{k} are predicted as another class with confidence above select.max_confidence="
                     f"{p.get('max_confidence')} (sent to review)")
        fixes.append("raise select.max_confidence (or set it to null)")
    k = _rule_count(rules, "excluded:classes")
    if k:
        parts.append(f"{k} are in classes outside select.classes")
        fixes.append("add their classes to select.classes (or set it to null)")
    k = _rule_count(rules, "excluded:min_length")
    if k:
        parts.append(f"{k} are shorter than select.min_length={p.get('min_length')} characters")
        fixes.append("lower select.min_length")
    k = _rule_count(rules, "excluded:max_per_class")
    if k:
        parts.append(f"{k} are beyond select.max_per_class={p.get('max_per_class')}")
        fixes.append("raise select.max_per_class")
    if not parts:
        return f"{head}none of the {n_hard} hard rows was chosen (rules: {rules})"
    return f"{head}of the {n_hard} hard rows, " + "; ".join(parts) + ": " + ", or ".join(fixes)
