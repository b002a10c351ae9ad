"""The sweep's search space: a cell is one (threshold, aug_ratio, issue_action); the baseline cell
(:data:`NO_ACTION`) is the training rows as they are. Cells of the grid, their names, and the Tune
param space and search algorithm over them.
"""
from __future__ import annotations

import itertools
from typing import Any, Sequence

CELL_KEYS = ("threshold", "aug_ratio", "issue_action")
#: the baseline cell: no selection, no augmentation: the training rows as they are.
NO_ACTION: dict[str, Any] = {"threshold": None, "aug_ratio": 0.0, "issue_action": "keep"}
BASELINE = "baseline"


def is_no_action(cell: dict) -> bool:
    """The baseline cell: no threshold, so no selection and no augmentation."""
    return cell.get("threshold") is None


def cell_of(config: dict) -> dict[str, Any]:
    """The (threshold, aug_ratio, issue_action) of a Tune trial config (grid: ``config['cell']``)."""
    c = config.get("cell") if isinstance(config.get("cell"), dict) else config
    return {"threshold": None if c.get("threshold") is None else float(c["threshold"]),
            "aug_ratio": float(c.get("aug_ratio", 0.0)), "issue_action": c.get("issue_action")}


def cell_key(cell: dict, threshold_kind: str = "threshold") -> str:
    """A cell's name: ``baseline`` for no action, else ``<threshold_kind>=T aug_ratio=R issue_action=A``."""
    if is_no_action(cell):
        return BASELINE
    return f"{threshold_kind}={cell['threshold']:g} aug_ratio={cell['aug_ratio']:g} issue_action={cell['issue_action']}"


def grid_cells(sweep) -> list[dict[str, Any]]:
    """Every cell of the grid (thresholds x aug_ratios x issue_actions), duplicates removed, in config order."""
    out, seen = [], set()
    for t, r, a in itertools.product(sweep.thresholds, sweep.aug_ratios, sweep.issue_actions):
        key = (float(t), float(r), a)
        if key not in seen:
            seen.add(key)
            out.append({"threshold": float(t), "aug_ratio": float(r), "issue_action": a})
    return out


def cell_name(cell: dict) -> str:
    """A cell record's name for people: ``baseline (no action)``, else its :func:`cell_key`."""
    return "baseline (no action)" if cell["no_action"] else cell_key(cell, cell["threshold_kind"])


def param_space(sweep, cells: Sequence[dict] | None = None) -> tuple[dict, int]:
    """(Tune param_space, num_samples): grid: one trial per cell of ``cells`` (default: the whole grid); else choices."""
    from ray import tune

    if sweep.search == "grid":
        return {"cell": tune.grid_search([dict(c) for c in (grid_cells(sweep) if cells is None else cells)])}, 1
    return (
        {
            "threshold": tune.choice(list(sweep.thresholds)),
            "aug_ratio": tune.choice(list(sweep.aug_ratios)),
            "issue_action": tune.choice(list(sweep.issue_actions)),
        },
        sweep.num_samples,
    )


def search_alg(sweep, seed: int):
    """The Tune search algorithm of ``sweep.search`` (None for the grid: Tune's own grid search)."""
    if sweep.search == "grid":
        return None
    if sweep.search == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed)
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ValueError("sweep.search: optuna needs the optuna package (pip install optuna); or use grid or random") from None
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=seed)

