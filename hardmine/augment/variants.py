"""What all variant generators share: the variant row, its id, how many per source, per-row errors.

A variant is ``(text, error)``: failures are per row and never raised (:func:`isolate`
retries a failing batch row by row so one bad row does not take its batch down). Its row id
is :func:`variant_id`; :func:`plan_budget` and :func:`variant_counts` decide how many variants
each source gets, by stable hashes (:func:`stable_hash64`) rather than a global index.
"""
from __future__ import annotations

import hashlib
import math
from typing import Callable, Sequence

import numpy as np

#: (text, error): exactly one of them is None.
Variant = tuple[str | None, str | None]


# --------------------------------------------------------------------------- ids, hashing, budget


def stable_hash64(*parts) -> int:
    """A process-independent 64-bit hash of ``parts`` (Python's ``hash`` is salted per process)."""
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8)
    return int.from_bytes(h.digest(), "little")


def variant_id(source_id: str, method: str, variant: int) -> str:
    """The id of a variant row: ``f"{source_id}~{method}~{variant}"``."""
    return f"{source_id}~{method}~{variant}"


def method_name(spec: dict) -> str:
    """``spec["name"]`` or ``type`` (+ ``-task`` for generators with several tasks)."""
    if spec.get("name"):
        return str(spec["name"])
    t = spec.get("type")
    task = spec.get("task")
    return f"{t}-{task}" if t in ("hf", "vllm") and task else str(t)


def plan_budget(n_train: int, n_sources: int, budget: dict | None, weights: dict[str, float]) -> dict:
    """Expected variants per source for each method.

    ``budget``: ``{"aug_ratio": r}`` (total variants = r * training size) or
    ``{"per_sample": k}`` (k variants per source), optionally ``max_per_sample``
    (cap per source and method, default 16). The total is split across methods by
    ``weights``. Returns ``{"rates": {method: float}, "total": float, "capped": bool}``.
    """
    budget = dict(budget or {"per_sample": 1})
    allowed = {"aug_ratio", "per_sample", "max_per_sample"}
    bad = sorted(set(budget) - allowed)
    if bad:
        raise ValueError(f"budget has unknown key(s) {bad}: use aug_ratio or per_sample (and max_per_sample)")
    has_ratio = budget.get("aug_ratio") is not None
    has_per = budget.get("per_sample") is not None
    if has_ratio == has_per:
        raise ValueError(
            "budget needs exactly one of aug_ratio (variants as a fraction of the training size) "
            f"or per_sample (variants per selected sample); got {budget}"
        )
    if not weights:
        raise ValueError("no generators: pass at least one generator spec")
    w = {m: float(v) for m, v in weights.items()}
    neg = {m: v for m, v in w.items() if not (v >= 0 and math.isfinite(v))}
    if neg or sum(w.values()) <= 0:
        raise ValueError(f"generator weights must be finite, >= 0 and not all 0; got {w}")
    cap = float(budget.get("max_per_sample", 16))
    if has_ratio:
        r = float(budget["aug_ratio"])
        if r < 0:
            raise ValueError(f"budget.aug_ratio must be >= 0; got {r}")
        total = r * n_train
    else:
        k = float(budget["per_sample"])
        if k < 0:
            raise ValueError(f"budget.per_sample must be >= 0; got {k}")
        total = k * n_sources
    per_source = total / n_sources if n_sources else 0.0
    sw = sum(w.values())
    rates = {m: per_source * v / sw for m, v in w.items()}
    capped = any(r > cap for r in rates.values())
    rates = {m: min(r, cap) for m, r in rates.items()}
    return {"rates": rates, "total": total, "capped": capped, "max_per_sample": cap}


def variant_counts(source_ids: Sequence[str], rate: float, seed: int, method: str) -> np.ndarray:
    """Variants per source: ``floor(rate)`` plus one more with probability ``frac(rate)``,
    decided by a stable hash of ``(seed, method, source_id)`` (so streaming needs no global index)."""
    base = int(math.floor(rate))
    frac = rate - base
    counts = np.full(len(source_ids), base, dtype=np.int64)
    if frac > 0:
        u = np.fromiter(
            (stable_hash64(seed, method, s) / 2.0**64 for s in source_ids), dtype=np.float64, count=len(source_ids)
        )
        counts += (u < frac).astype(np.int64)
    return counts


def error_text(e: BaseException) -> str:
    """A variant's error: ``"Type: first line of the message"``, at most 500 characters."""
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:500]


def isolate(fn: Callable[[list], list], items: list) -> list:
    """Run ``fn`` on the whole batch; if it raises, run it row by row and turn each
    failing row into ``[(None, error)]`` (its per-row result list)."""
    try:
        return fn(items)
    except Exception:
        out = []
        for it in items:
            try:
                out.extend(fn([it]))
            except Exception as e:  # noqa: BLE001 - recorded per row
                out.append([(None, error_text(e))])
        return out
