""":func:`hardmine.select.select`'s parameters: their checks, and the keyword arguments the run's config gives."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from hardmine.checks import check_choice, check_fraction, check_int
from hardmine.vocab import CLASS_BUDGETS, ISSUE_ACTIONS, POLICIES

if TYPE_CHECKING:
    from hardmine.config import Config


def check_params(
    *,
    hardness_quantile: float | None,
    p_true_max: float | None,
    max_confidence: float | None,
    min_length: int,
    classes: Sequence[int] | None,
    max_per_class: int | None,
    issue_action: str,
    relabel_min_confidence: float,
    seed: int,
    policy: str,
    ambiguous_quantile: float | None,
    class_budget: str,
) -> None:
    """Refuse a parameter of :func:`hardmine.select.select` that is out of range or contradicts another."""
    check_choice("policy", policy, POLICIES)
    check_choice("class_budget", class_budget, CLASS_BUDGETS)
    if ambiguous_quantile is not None:
        check_fraction("ambiguous_quantile", ambiguous_quantile, low_open=True)
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
        check_fraction("hardness_quantile", hardness_quantile, low_open=True)
    if p_true_max is not None:
        check_fraction("p_true_max", p_true_max)
    if max_confidence is not None:
        check_fraction("max_confidence", max_confidence, low_open=True)
    check_int("min_length", min_length, 0)
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
        check_int("max_per_class", max_per_class, 1)
    check_choice("issue_action", issue_action, ISSUE_ACTIONS)
    check_fraction("relabel_min_confidence", relabel_min_confidence)
    check_int("seed", seed, 0)


def select_kwargs(cfg: Config, label_names: Sequence[str]) -> dict[str, Any]:
    """:func:`hardmine.select.select`'s keyword arguments from the run's config (``label_names``: the class
    names, index = label id) other than the hardness rule and the issue action, which the sweep varies, and
    the policy keys (``policy``, ``ambiguous_quantile``, ``class_budget``), which the select stage adds.

    ``select.classes`` (class names) becomes label ids; an unknown name raises ``ValueError``.
    """
    s = cfg.select
    names = list(label_names)
    classes = None
    if s.classes is not None:
        unknown = [c for c in s.classes if c not in names]
        if unknown:
            raise ValueError(f"select.classes has unknown class names {unknown}: choose from {names}")
        classes = [names.index(c) for c in s.classes]
    return {
        "max_confidence": s.max_confidence, "min_length": s.min_length, "classes": classes,
        "max_per_class": s.max_per_class, "relabel_min_confidence": s.relabel_min_confidence, "seed": cfg.seed,
    }
