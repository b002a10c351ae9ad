"""Retrain on acted-on training sets and evaluate on the held-out split.

Arms (the training sets compared; every arm is scored on the same held-out rows):

- ``baseline``        the training split as loaded;
- ``clean``           after the selection's issue actions (drop / relabel; ``review`` rows per ``review_as``);
- ``targeted``        baseline + augmented variants of the hard samples (``augmented.parquet``);
- ``clean+targeted``  both;
- ``random``          control: baseline + the same number of variants made from randomly chosen
                      training rows (``augmented_random.parquet``), i.e. the same budget untargeted.

Each arm runs over several seeds; results are a mean with a t-based 95% interval, and the
seed-paired difference to ``baseline`` (seed ``s`` of every arm shares the initialisation and
shuffling seed, so pairing removes most run-to-run noise).

Pure part (numpy / pyarrow, no Ray): :func:`arm_training_set`, :func:`metrics`,
:func:`interval`, :func:`compare`, :func:`format_summary`. Ray part: :func:`retrain_many`,
:func:`run_evaluate` (trainings run concurrently, reusing the OOF runner's idioms and the one
training loop :func:`hardmine.oof.loop.train_fold`, whose "val" split is the held-out split;
nothing in the loop selects on it).
"""
from __future__ import annotations

import functools
import json
import math
import time
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.config import ARMS, Config
from hardmine.oof.settings import oof_max_length, train_settings  # noqa: F401 - also imported from here by sweep

#: rows of a training set: the originals (possibly relabelled) then the augmented variants.
TRAINING = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),
    ]
)
ORIGINS = ("original", "augmented")
REVIEW_AS = ("drop", "relabel", "keep")
_META_KEY = b"hardmine.training_set"

#: one row per (arm, seed) retrain, written to ``evaluation/runs.parquet``.
RUNS = pa.schema(
    [
        pa.field("arm", pa.string()),
        pa.field("seed", pa.int32()),
        pa.field("train_rows", pa.int64()),
        pa.field("n_augmented", pa.int64()),
        pa.field("requested_augmented", pa.int64()),
        pa.field("n_dropped", pa.int64()),
        pa.field("n_relabelled", pa.int64()),
        pa.field("accuracy", pa.float64()),
        pa.field("macro_f1", pa.float64()),
        pa.field("ece", pa.float64()),
        pa.field("per_class_f1", pa.list_(pa.float64())),
        pa.field("seconds", pa.float64()),
    ]
)


# ============================================================================ validation helpers


def _first(values, k: int = 5) -> str:
    values = list(values)
    more = f" (and {len(values) - k} more)" if len(values) > k else ""
    return ", ".join(repr(v) for v in values[:k]) + more


def _need(table, cols: Sequence[str], what: str, fix: str) -> None:
    if not isinstance(table, pa.Table):
        raise ValueError(f"{what} must be a pyarrow Table, got {type(table).__name__}; {fix}")
    missing = [c for c in cols if c not in table.column_names]
    if missing:
        raise ValueError(f"{what} lacks columns {missing} (has {table.column_names}); {fix}")
    for c in cols:
        if table.column(c).null_count:
            rows = np.flatnonzero(pc.is_null(table.column(c)).to_numpy(zero_copy_only=False))
            raise ValueError(f"{what} column {c!r} is null in rows {_first(rows.tolist())}; fill or drop those rows")


def _ids(table: pa.Table, what: str) -> list[str]:
    ids = table.column("id").cast(pa.string()).to_pylist()
    if len(set(ids)) != len(ids):
        seen, dup = set(), []
        for i in ids:
            if i in seen:
                dup.append(i)
            seen.add(i)
        raise ValueError(f"{what} has duplicate ids {_first(sorted(set(dup)))}; ids must be unique")
    return ids


def _kept_pool(pool: pa.Table | None, what: str) -> pa.Table:
    """Rows of an augmented pool (AUGMENTED schema) with ``kept == True`` and a text."""
    fix = "pass the table written by the augment stage (hardmine.schema.AUGMENTED)"
    if pool is None:
        raise ValueError(f"the {what} pool is missing; {fix}")
    _need(pool, ["id", "source_id", "label"], f"{what} pool", fix)
    for c in ("text", "kept"):
        if c not in pool.column_names:
            raise ValueError(f"{what} pool lacks column {c!r} (has {pool.column_names}); {fix}")
    kept = pc.fill_null(pool.column("kept"), False)
    kept = pc.and_(kept, pc.is_valid(pool.column("text")))
    out = pool.filter(kept).select(["id", "source_id", "text", "label", "kept"])
    return out.cast(
        pa.schema([("id", pa.string()), ("source_id", pa.string()), ("text", pa.string()), ("label", pa.int32()), ("kept", pa.bool_())])
    )


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def spread_order(source_ids: Sequence[str], seed: int, stream: int) -> np.ndarray:
    """A seeded order of pool rows that covers every source once before any source twice."""
    n = len(source_ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, stream])
    key_in, key_out = rng.random(n), rng.random(n)
    _, src = np.unique(np.asarray(source_ids, dtype=object).astype(str), return_inverse=True)
    by_src = np.lexsort((key_in, src))  # grouped by source, random within
    sorted_src = src[by_src]
    starts = np.flatnonzero(np.r_[True, sorted_src[1:] != sorted_src[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[by_src] = np.arange(n) - first
    # round r takes the r-th variant of every source; the order inside a round is random too
    src_key = rng.random(int(src.max()) + 1)
    return np.lexsort((src_key[src], rank))


def _sample(pool: pa.Table, n: int, seed: int, stream: int) -> pa.Table:
    if n <= 0 or pool.num_rows == 0:
        return pool.slice(0, 0)
    order = spread_order(pool.column("source_id").to_pylist(), seed, stream)[:n]
    return pool.take(pa.array(np.sort(order)))


# ============================================================================ training sets


def arm_training_set(
    dataset: pa.Table,
    selected: pa.Table | None,
    pool: pa.Table | None,
    random_pool: pa.Table | None,
    arm: str,
    *,
    aug_ratio: float,
    review_as: str = "drop",
    seed: int = 0,
    scores: pa.Table | None = None,
) -> pa.Table:
    """The training set of one arm: columns id, text, label, origin (``original`` / ``augmented``).

    - clean arms apply the selection's actions: ``drop`` rows are removed, ``relabel`` rows take
      ``new_label``; ``review`` rows are dropped, kept, or relabelled to the scores'
      ``suggested_label`` per ``review_as`` (``relabel`` needs ``scores``; a review row without a
      different suggested label stays as it is);
    - targeted arms add ``round(aug_ratio * len(dataset))`` kept rows of ``pool`` whose source the
      selection sent to ``augment``, sampled with ``seed`` so every source is used once before any
      is used twice; fewer if the pool is smaller;
    - ``random`` adds as many kept rows of ``random_pool`` as the targeted arm would (same budget).

    What was requested and what was possible is recorded in the schema metadata:
    read it with :func:`training_set_info`.
    """
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}: choose from {list(ARMS)}")
    if review_as not in REVIEW_AS:
        raise ValueError(f"review_as must be one of {list(REVIEW_AS)}, got {review_as!r}")
    if isinstance(aug_ratio, bool) or not isinstance(aug_ratio, (int, float)) or not math.isfinite(aug_ratio) or aug_ratio < 0:
        raise ValueError(f"aug_ratio must be a number >= 0 (share of the training size), got {aug_ratio!r}")
    _need(dataset, ["id", "text", "label"], "dataset", "pass dataset.parquet (id, text, label, label_name)")
    ids = _ids(dataset, "dataset")
    texts = dataset.column("text").to_pylist()
    labels = dataset.column("label").to_numpy().astype(np.int64)
    n_train = len(ids)
    keep = np.ones(n_train, dtype=bool)
    clean = arm in ("clean", "clean+targeted")
    targeted = arm in ("targeted", "clean+targeted")
    info: dict[str, Any] = {
        "arm": arm, "seed": int(seed), "n_train": n_train, "aug_ratio": float(aug_ratio), "review_as": review_as,
        "n_dropped": 0, "n_relabelled": 0, "n_review": 0, "requested_augmented": 0, "available_augmented": 0,
        "n_augmented": 0,
    }

    action = new_label = None
    if clean:
        action, new_label = _selection_for(selected, ids)
        drop = action == "drop"
        relabel = (action == "relabel") & (new_label != labels)
        review = action == "review"
        info["n_review"] = int(review.sum())
        if review_as == "drop":
            drop = drop | review
        elif review_as == "relabel" and review.any():
            sugg = _suggested_for(scores, ids)
            usable = review & (sugg >= 0) & (sugg != labels)
            new_label = np.where(usable, sugg, new_label)
            relabel = relabel | usable
        keep &= ~drop
        labels = np.where(relabel & keep, new_label, labels)
        info["n_dropped"] = int(drop.sum())
        info["n_relabelled"] = int((relabel & keep).sum())

    parts = [
        pa.table(
            {
                "id": pa.array([i for i, k in zip(ids, keep) if k], pa.string()),
                "text": pa.array([t for t, k in zip(texts, keep) if k], pa.string()),
                "label": pa.array(labels[keep], pa.int32()),
                "origin": pa.array(["original"] * int(keep.sum()), pa.string()),
            },
            schema=TRAINING,
        )
    ]
    if targeted or arm == "random":
        requested = round_half_up(aug_ratio * n_train)
        info["requested_augmented"] = requested
        if requested > 0:
            tpool = _kept_pool(pool, "targeted")
            known = set(ids)
            stray = [s for s in tpool.column("source_id").to_pylist() if s not in known]
            if stray:
                raise ValueError(
                    f"{len(stray)} pool rows have a source_id that is not in the dataset (e.g. {_first(sorted(set(stray)))}); "
                    "the augmented pool must come from this run's training split"
                )
            if action is None:
                action, _ = _selection_for(selected, ids)
            augment_ids = pa.array([i for i, a in zip(ids, action) if a == "augment"], pa.string())
            tpool = tpool.filter(pc.is_in(tpool.column("source_id"), value_set=augment_ids))
            budget = min(requested, tpool.num_rows)
            if targeted:
                info["available_augmented"] = tpool.num_rows
                chosen = _sample(tpool, budget, seed, stream=1)
            else:
                rpool = _kept_pool(random_pool, "random")
                info["available_augmented"] = rpool.num_rows
                info["targeted_budget"] = budget
                chosen = _sample(rpool, min(budget, rpool.num_rows), seed, stream=2)
            info["n_augmented"] = chosen.num_rows
            parts.append(
                pa.table(
                    {
                        "id": chosen.column("id"),
                        "text": chosen.column("text"),
                        "label": chosen.column("label"),
                        "origin": pa.array(["augmented"] * chosen.num_rows, pa.string()),
                    },
                    schema=TRAINING,
                )
            )
    info["shortfall"] = int(info["requested_augmented"] - info["n_augmented"]) if info["requested_augmented"] else 0
    out = pa.concat_tables(parts)
    info["train_rows"] = out.num_rows
    return out.replace_schema_metadata({_META_KEY: json.dumps(info).encode()})


def training_set_info(table: pa.Table) -> dict:
    """What :func:`arm_training_set` recorded: requested vs added rows, drops, relabels."""
    meta = table.schema.metadata or {}
    if _META_KEY not in meta:
        raise ValueError("this table carries no training-set info: build it with arm_training_set")
    return json.loads(meta[_META_KEY])


def _selection_for(selected: pa.Table | None, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(action, new_label) aligned with ``ids``."""
    fix = "pass selected.parquet written by the select stage for this dataset"
    if selected is None:
        raise ValueError(f"clean and targeted arms need the selection; {fix}")
    _need(selected, ["id", "action", "new_label"], "selected", fix)
    pos = {i: n for n, i in enumerate(_ids(selected, "selected"))}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise ValueError(f"{len(missing)} dataset ids have no row in the selection (e.g. {_first(missing)}); {fix}")
    idx = np.fromiter((pos[i] for i in ids), dtype=np.int64, count=len(ids))
    action = np.asarray(selected.column("action").to_pylist(), dtype=object)[idx]
    new_label = selected.column("new_label").to_numpy().astype(np.int64)[idx]
    return action, new_label


def _suggested_for(scores: pa.Table | None, ids: list[str]) -> np.ndarray:
    fix = "pass scores.parquet (it holds suggested_label), or use review_as='drop' / 'keep'"
    if scores is None:
        raise ValueError(f"review_as='relabel' needs the suggested labels; {fix}")
    _need(scores, ["id", "suggested_label"], "scores", fix)
    pos = {i: n for n, i in enumerate(_ids(scores, "scores"))}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise ValueError(f"{len(missing)} dataset ids are not scored (e.g. {_first(missing)}); {fix}")
    sugg = scores.column("suggested_label").to_numpy().astype(np.int64)
    return sugg[np.fromiter((pos[i] for i in ids), dtype=np.int64, count=len(ids))]


# ============================================================================ metrics


def metrics(y_true, probs, num_labels: int, ece_bins: int = 15) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class F1 and expected calibration error of predicted probabilities.

    Per-class F1 is NaN for a class absent from both truth and predictions; macro-F1 averages the
    others (sklearn's default label set). ECE uses ``ece_bins`` equal-width confidence bins.
    """
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)) or num_labels < 1:
        raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}")
    if isinstance(ece_bins, bool) or not isinstance(ece_bins, (int, np.integer)) or ece_bins < 1:
        raise ValueError(f"ece_bins must be a positive integer, got {ece_bins!r}")
    if p.ndim != 2 or p.shape[1] != num_labels:
        raise ValueError(f"probs must have shape (n, {num_labels}), got {p.shape}")
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise ValueError(f"y_true must have one label per row of probs ({p.shape[0]}), got shape {y.shape}")
    if y.shape[0] == 0:
        raise ValueError("no rows to evaluate: the held-out split is empty")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y_true must hold integer labels, got {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= num_labels))
    if bad.size:
        raise ValueError(f"y_true has labels outside [0, {num_labels}) in rows {_first(bad.tolist())}")
    bad = np.flatnonzero(~np.isfinite(p).all(axis=1))
    if bad.size:
        raise ValueError(f"probs is NaN/inf in rows {_first(bad.tolist())}")
    y = y.astype(np.int64)
    pred = p.argmax(axis=1)
    correct = pred == y
    k = num_labels
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)  # 2tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
    conf = p.max(axis=1)
    bins = np.clip(np.ceil(conf * ece_bins).astype(np.int64) - 1, 0, ece_bins - 1)
    n_b = np.bincount(bins, minlength=ece_bins)
    acc_b = np.bincount(bins, weights=correct.astype(np.float64), minlength=ece_bins)
    conf_b = np.bincount(bins, weights=conf, minlength=ece_bins)
    ece = float(np.abs(acc_b - conf_b).sum() / len(y))
    return {
        "accuracy": float(correct.mean()),
        "macro_f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else 0.0,
        "per_class_f1": [float(v) for v in f1],
        "ece": ece,
        "n": int(len(y)),
    }


def interval(values, confidence: float = 0.95) -> dict[str, Any]:
    """Mean and t-based ``confidence`` interval over seeds; with one value lo = hi = mean (noted)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError("interval needs at least one value")
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise ValueError(f"interval got NaN/inf at positions {_first(bad.tolist())}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    mean = float(v.mean())
    if v.size == 1:
        return {"mean": mean, "lo": mean, "hi": mean, "n": 1, "sd": 0.0, "note": "one seed: no interval (run more seeds)"}
    from scipy import stats

    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * sd / math.sqrt(v.size))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": int(v.size), "sd": sd}


def _paired(a: dict[int, float], b: dict[int, float]) -> dict[str, Any] | None:
    common = sorted(set(a) & set(b))
    if not common:
        return None
    d = interval([a[s] - b[s] for s in common])
    d["excludes_zero"] = bool(d["n"] >= 2 and (d["lo"] > 0 or d["hi"] < 0))
    d["seeds"] = common
    return d


def compare(
    runs: pa.Table,
    *,
    metric_names: Sequence[str] = ("accuracy", "macro_f1", "ece"),
    reference: str = "baseline",
    pairs: Sequence[tuple[str, str]] = (("targeted", "random"), ("clean+targeted", "clean")),
) -> dict[str, Any]:
    """Per arm mean / 95% interval of each metric and the seed-paired difference to ``reference``.

    ``runs`` has columns arm, seed and the metrics (as ``evaluation/runs.parquet``). A difference's
    ``excludes_zero`` is true when its interval lies entirely above or below zero (needs 2+ seeds).
    ``pairs`` adds other paired differences, e.g. targeted vs the random control.
    """
    _need(runs, ["arm", "seed", *metric_names], "runs", "pass evaluation/runs.parquet (arm, seed, metrics)")
    if runs.num_rows == 0:
        raise ValueError("runs is empty: nothing to compare")
    arms_col = runs.column("arm").to_pylist()
    seeds = runs.column("seed").to_pylist()
    from collections import Counter

    dup = {k for k, c in Counter(zip(arms_col, seeds)).items() if c > 1}
    if dup:
        raise ValueError(f"runs has several rows for (arm, seed) {_first(sorted(dup))}; keep one per arm and seed")
    order = [a for a in ARMS if a in arms_col] + sorted({a for a in arms_col if a not in ARMS})
    by: dict[str, dict[str, dict[int, float]]] = {a: {m: {} for m in metric_names} for a in order}
    extra: dict[str, dict[str, list]] = {a: {} for a in order}
    cols = {m: runs.column(m).to_pylist() for m in metric_names}
    for c in ("train_rows", "n_augmented"):
        if c in runs.column_names:
            for a, v in zip(arms_col, runs.column(c).to_pylist()):
                extra[a].setdefault(c, []).append(v)
    for i, (a, s) in enumerate(zip(arms_col, seeds)):
        for m in metric_names:
            by[a][m][int(s)] = float(cols[m][i])
    out: dict[str, Any] = {"reference": reference, "metrics": list(metric_names), "arms": {}, "pairs": {}, "notes": []}
    for a in order:
        rec: dict[str, Any] = {"seeds": sorted(by[a][metric_names[0]])}
        rec["n_seeds"] = len(rec["seeds"])
        for c, vals in extra[a].items():
            rec[c] = float(np.mean(vals))
        for m in metric_names:
            rec[m] = interval(list(by[a][m].values()))
        if a != reference and reference in by:
            rec["vs_" + reference] = {m: _paired(by[a][m], by[reference][m]) for m in metric_names}
        out["arms"][a] = rec
    for x, y in pairs:
        if x in by and y in by:
            out["pairs"][f"{x} - {y}"] = {m: _paired(by[x][m], by[y][m]) for m in metric_names}
    if reference not in by:
        out["notes"].append(f"no {reference!r} runs: differences to it are not reported")
    if any(out["arms"][a]["n_seeds"] < 2 for a in order):
        out["notes"].append("arms with one seed have no interval: set evaluate.seeds >= 2")
    return out


def _fmt_iv(iv: dict | None, pct: bool = True, signed: bool = False) -> str:
    if iv is None:
        return "-"
    s = 100.0 if pct else 1.0
    sign = "+" if signed else ""
    mark = "*" if iv.get("excludes_zero") else " "
    return f"{s * iv['mean']:{sign}.2f} [{s * iv['lo']:{sign}.2f}, {s * iv['hi']:{sign}.2f}]{mark if signed else ''}"


def format_summary(summary: dict) -> str:
    """A fixed-width table of :func:`compare`'s output (percentages; * = interval excludes zero)."""
    ref = summary["reference"]
    lines = [
        f"{'arm':<15} {'seeds':>5} {'train':>7} {'aug':>6}  {'accuracy % [95% CI]':<24} {'vs ' + ref:<26} "
        f"{'macro-F1 % [95% CI]':<24} {'vs ' + ref:<26} {'ECE %':>6}"
    ]
    for a, r in summary["arms"].items():
        d = r.get("vs_" + ref) or {}
        lines.append(
            f"{a:<15} {r['n_seeds']:>5} {r.get('train_rows', float('nan')):>7.0f} {r.get('n_augmented', float('nan')):>6.0f}  "
            f"{_fmt_iv(r['accuracy']):<24} {_fmt_iv(d.get('accuracy'), signed=True):<26} "
            f"{_fmt_iv(r['macro_f1']):<24} {_fmt_iv(d.get('macro_f1'), signed=True):<26} {100 * r['ece']['mean']:>6.2f}"
        )
    for name, p in summary.get("pairs", {}).items():
        lines.append(f"{name}: accuracy {_fmt_iv(p['accuracy'], signed=True)}  macro-F1 {_fmt_iv(p['macro_f1'], signed=True)}")
    lines.append("* = the seed-paired 95% interval excludes zero")
    lines.extend(f"note: {n}" for n in summary.get("notes", []))
    return "\n".join(lines)


# ============================================================================ Ray part


def embed_cached(cfg: Config, store, texts: Sequence[str], log: Callable[[str], None] = print) -> np.ndarray:
    """Frozen-backbone embeddings of ``texts``, each distinct text embedded once per run.

    The cache is ``cache/text_embeddings-<model>.parquet`` (text, emb) in the run directory,
    shared by evaluate and sweep; missing texts are embedded with Ray Data (``embed_texts``).
    """
    from hardmine.embed import embeddings_from_table
    from hardmine.store import fingerprint_bytes

    o = cfg.oof
    max_length = oof_max_length(store) or (o.max_length if isinstance(o.max_length, int) else 128)
    name = f"cache/text_embeddings-{fingerprint_bytes(o.model, str(max_length))}.parquet"
    texts = [str(t) for t in texts]
    uniq = list(dict.fromkeys(texts))
    known: dict[str, int] = {}
    emb = np.zeros((0, 0), dtype=np.float32)
    if store.exists(name):
        cached = store.read_table(name)
        emb = embeddings_from_table(cached)
        known = {t: i for i, t in enumerate(cached.column("text").to_pylist())}
    missing = [t for t in uniq if t not in known]
    if missing:
        from hardmine.oof.runner import embed_texts

        t0 = time.time()
        new = embed_texts(
            [f"t{i}" for i in range(len(missing))], missing, o.model, max_length=max_length,
            batch_size=o.embed_batch_size, actors=o.embed_actors, gpus=min(o.gpus_per_fold, 1.0),
        )
        log(f"embedded {len(missing)} new augmented texts in {time.time() - t0:.1f}s ({len(uniq) - len(missing)} cached)")
        emb = new if emb.size == 0 else np.concatenate([emb, new])
        for t in missing:
            known[t] = len(known)
        all_texts = [None] * len(known)
        for t, i in known.items():
            all_texts[i] = t
        col = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(emb, np.float32).reshape(-1)), emb.shape[1])
        store.write_table(name, pa.table({"text": pa.array(all_texts, pa.string()), "emb": col}))
    if not texts:
        return np.zeros((0, emb.shape[1] if emb.ndim == 2 else 0), dtype=np.float32)
    return emb[np.fromiter((known[t] for t in texts), dtype=np.int64, count=len(texts))]


def _embeddings_by_id(store, name: str, ids: list[str], what: str) -> np.ndarray:
    from hardmine.embed import embeddings_from_table

    t = store.read_table(name)
    pos = {i: n for n, i in enumerate(t.column("id").to_pylist())}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise ValueError(f"{name} lacks the {what} ids {_first(missing)}: re-run the stage that writes it")
    return embeddings_from_table(t)[np.fromiter((pos[i] for i in ids), dtype=np.int64, count=len(ids))]


def augmented_texts(sets: Sequence[pa.Table]) -> list[str]:
    """Distinct texts of the augmented rows of some training sets, in first-seen order."""
    return list(
        dict.fromkeys(t for s in sets for t, o in zip(s.column("text").to_pylist(), s.column("origin").to_pylist()) if o == "augmented")
    )


def build_features(cfg: Config, store, dataset: pa.Table, test: pa.Table, aug_texts: Sequence[str], log=print) -> dict[str, Any]:
    """Shared model inputs: originals by id, augmented rows by text, held-out rows.

    Frozen: embeddings (embeddings.parquet, test_embeddings.parquet, cached augmented texts);
    finetune and tfidf: the texts themselves.
    """
    ids = dataset.column("id").to_pylist()
    aug_texts = list(dict.fromkeys(str(t) for t in aug_texts))
    test_ids = test.column("id").to_pylist()
    if cfg.retrain_backbone == "frozen":
        if store.exists("embeddings.parquet"):  # written by the OOF stage's frozen member
            orig_x = _embeddings_by_id(store, "embeddings.parquet", ids, "training")
        else:
            orig_x = embed_cached(cfg, store, dataset.column("text").to_pylist(), log)
        if store.exists("test_embeddings.parquet"):
            test_x = _embeddings_by_id(store, "test_embeddings.parquet", test_ids, "held-out")
        else:
            test_x = embed_cached(cfg, store, test.column("text").to_pylist(), log)
        aug_x = embed_cached(cfg, store, aug_texts, log) if aug_texts else np.zeros((0, orig_x.shape[1]), np.float32)
    else:
        orig_x, test_x, aug_x = dataset.column("text").to_pylist(), test.column("text").to_pylist(), aug_texts
    return {
        "orig_pos": {i: n for n, i in enumerate(ids)},
        "aug_pos": {t: n for n, t in enumerate(aug_texts)},
        "shared": {"orig_x": orig_x, "aug_x": aug_x, "test_x": test_x, "test_y": test.column("label").to_numpy().astype(np.int64)},
    }


def set_indices(table: pa.Table, features: dict) -> dict[str, np.ndarray]:
    """Row positions of a training set in the shared inputs (originals by id, augmented by text)."""
    origin = np.asarray(table.column("origin").to_pylist(), dtype=object)
    ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
    is_aug = origin == "augmented"
    return {
        "orig_idx": np.asarray([features["orig_pos"][i] for i, a in zip(ids, is_aug) if not a], np.int64),
        "aug_idx": np.asarray([features["aug_pos"][t] for t, a in zip(texts, is_aug) if a], np.int64),
        "y": np.concatenate([table.column("label").to_numpy()[~is_aug], table.column("label").to_numpy()[is_aug]]).astype(np.int64),
    }


def assemble(shared: dict, run: dict) -> dict:
    """``train_fold``'s data: the run's training rows, the held-out split as "val"."""
    ox, ax = shared["orig_x"], shared["aug_x"]
    if isinstance(ox, list):
        train_x = [ox[i] for i in run["orig_idx"]] + [ax[i] for i in run["aug_idx"]]
    else:
        train_x = np.concatenate([ox[run["orig_idx"]], np.asarray(ax).reshape(-1, ox.shape[1])[run["aug_idx"]]])
    return {"train_x": train_x, "train_y": run["y"], "val_x": shared["test_x"], "val_y": shared["test_y"], "test_x": None}


class MemoryCheckpoints:
    """No persistence: a retrain that dies starts over (used inside Tune trials)."""

    def latest(self) -> str | None:
        return None

    def save(self, local_dir: str, metrics: dict) -> None:
        pass


def _retrain_loop(config: dict) -> None:
    """``train_loop_per_worker`` of a retrain's TorchTrainer."""
    import ray

    from hardmine.oof.loop import TrainCheckpoints, train_fold
    from hardmine.oof.runner import ElasticThreads

    cfg = dict(config)
    shared = ray.get(cfg.pop("shared_ref"))
    cfg["data"] = assemble(shared, cfg.pop("run"))
    train_fold(cfg, TrainCheckpoints(), log=lambda s: None, threads=ElasticThreads.from_config(cfg))


def _fit_retrain_trainer(cfg: dict, storage_path: str, run_name: str, cpus: float, gpus: float, max_failures: int) -> tuple[np.ndarray, float]:
    """One retrain as its own TorchTrainer run (called in a driver thread): (test probs, seconds)."""
    from hardmine.oof.loop import read_checkpoint
    from hardmine.oof.runner import fit_trainer

    started = time.time()
    result = fit_trainer(
        _retrain_loop, cfg, storage_path=storage_path, run_name=run_name, cpus=cpus, gpus=gpus,
        max_failures=max_failures, num_to_keep=1,
    )
    with result.checkpoint.as_directory() as d:
        return np.asarray(read_checkpoint(d)["epoch_probs"][-1]), time.time() - started


def _fit_task_fn():
    import ray

    @ray.remote
    def fit_task(cfg: dict, shared: dict, ckpt_uri: str) -> np.ndarray:
        import torch

        from hardmine.oof.loop import DirCheckpoints, train_fold
        from hardmine.oof.runner import ElasticThreads

        torch.set_num_threads(max(1, int(cfg.get("threads") or 1)))
        cfg = dict(cfg)
        cfg.pop("shared_ref", None)
        cfg["data"] = assemble(shared, cfg.pop("run"))
        ckpts = DirCheckpoints(ckpt_uri)
        return np.asarray(train_fold(cfg, ckpts, log=lambda s: None, threads=ElasticThreads.from_config(cfg))["val_probs"])

    return fit_task


def retrain_many(
    cfg: Config,
    store,
    training_sets: dict[tuple[str, int], pa.Table],
    dataset: pa.Table,
    test: pa.Table,
    num_labels: int,
    *,
    fingerprint: str,
    log: Callable[[str], None] = print,
) -> pa.Table:
    """Train one model per ``(arm, seed) -> training set`` concurrently; score each on ``test``.

    Frozen heads run as plain Ray tasks (or TorchTrainer runs with ``oof.frozen_runner: trainer``),
    finetune models as TorchTrainer runs launched from driver threads (as many at once as the
    cluster holds, or ``evaluate.max_concurrent``), all with the OOF folds' resources. Returns the runs table (:data:`RUNS`).
    """
    import ray

    from hardmine.oof.runner import check_resources, concurrent_runs, fold_cpus, fold_threads, in_threads
    from hardmine.runtime import connect

    o, e = cfg.oof, cfg.evaluate
    connect(cfg, log)
    cpus = fold_cpus(o.cpus_per_fold, o.folds)  # each run gets an OOF fold's share
    backbone = cfg.retrain_backbone
    gpus = o.gpus_per_fold if backbone != "tfidf" else 0.0
    check_resources(cpus, gpus)
    keys = list(training_sets)
    features = build_features(cfg, store, dataset, test, augmented_texts([training_sets[k] for k in keys]), log)
    shared_ref = ray.put(features["shared"])
    base = dict(
        train_settings(cfg, num_labels, threads=fold_threads(cpus), epochs=e.epochs, max_length=oof_max_length(store)), cpus=cpus, gpus=gpus
    )
    use_trainer = backbone == "finetune" or (backbone == "frozen" and o.frozen_runner == "trainer" and o.head != "logreg")

    def run_config(key: tuple) -> tuple[str, dict]:
        arm, seed = key
        slug = f"{arm.replace('+', '-')}-seed{seed}"
        return slug, dict(base, seed=int(seed), run=set_indices(training_sets[key], features), shared_ref=shared_ref)

    if use_trainer:  # TorchTrainer runs from driver threads (see hardmine.oof.runner.fit_trainer)
        def fit(slug: str, rcfg: dict) -> tuple[np.ndarray, float]:
            return _fit_retrain_trainer(rcfg, store.uri_of("_train"), f"eval-{fingerprint}-{slug}", cpus, gpus, o.max_failures)

        limit = e.max_concurrent or concurrent_runs(cpus, gpus)
    else:
        fit_task = _fit_task_fn().options(num_cpus=cpus, num_gpus=gpus or None, max_retries=o.max_failures)

        def fit(slug: str, rcfg: dict) -> tuple[np.ndarray, float]:
            started = time.time()
            probs = ray.get(fit_task.remote(rcfg, shared_ref, store.uri_of(f"_checkpoints/eval-{fingerprint}/{slug}")))
            return probs, time.time() - started

        limit = e.max_concurrent or len(keys)  # Ray's scheduler queues the tasks beyond what fits
    done = dict(zip(keys, in_threads([functools.partial(fit, *run_config(key)) for key in keys], limit)))
    y_test = features["shared"]["test_y"]
    rows = []
    for key in keys:
        probs, seconds = done[key]
        info = training_set_info(training_sets[key])
        m = metrics(y_test, probs, num_labels, e.ece_bins)
        rows.append(
            {
                "arm": key[0], "seed": int(key[1]), "train_rows": training_sets[key].num_rows,
                "n_augmented": info["n_augmented"], "requested_augmented": info["requested_augmented"],
                "n_dropped": info["n_dropped"], "n_relabelled": info["n_relabelled"],
                "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "ece": m["ece"],
                "per_class_f1": m["per_class_f1"], "seconds": seconds,
            }
        )
    return pa.Table.from_pylist(rows, schema=RUNS)


def evaluation_fingerprint(cfg: Config, store) -> str:
    """Config of the retrains plus the fingerprints of the stages whose outputs they read."""
    from hardmine.store import fingerprint_bytes

    stages = store.manifest().get("stages", {})
    upstream = sorted((k, v.get("fingerprint")) for k, v in stages.items() if k in ("prepare", "oof", "holdout", "select", "augment"))
    return fingerprint_bytes(cfg.section_hash("evaluate", "oof", "seed"), repr(upstream))


def run_evaluate(cfg: Config, store, log: Callable[[str], None] = print, *, fingerprint: str | None = None) -> dict[str, Any]:
    """Retrain every arm x seed, score on the held-out split; write evaluation/runs.parquet + summary.json.

    Reads dataset.parquet, test.parquet, selected.parquet (clean / targeted arms),
    augmented.parquet (targeted arms), augmented_random.parquet (``random``), scores.parquet
    (``review_as: relabel``), and embeddings.parquet / test_embeddings.parquet (frozen).
    """
    from hardmine.runtime import connect

    e = cfg.evaluate
    if not store.exists("test.parquet"):
        raise ValueError(
            "evaluation needs a held-out split that mining never touched: set data.test_path, or data.test_size (e.g. 0.2)"
        )
    connect(cfg, log)
    fingerprint = fingerprint or evaluation_fingerprint(cfg, store)
    arms = list(dict.fromkeys(e.arms))
    dataset = store.read_table("dataset.parquet")
    test = store.read_table("test.parquet")
    num_labels = len(store.manifest()["labels"])
    need_sel = any(a != "baseline" for a in arms)
    selected = store.read_table("selected.parquet") if need_sel else None
    pool = None
    if any(a in ("targeted", "clean+targeted", "random") for a in arms) and e.aug_ratio > 0:
        if not store.exists("augmented.parquet"):
            raise ValueError("the targeted and random arms need augmented.parquet: run the augment stage, or remove them from evaluate.arms")
        pool = store.read_table("augmented.parquet")
    random_pool = None
    if "random" in arms and e.aug_ratio > 0:
        if not store.exists("augmented_random.parquet"):
            raise ValueError(
                "the 'random' control arm needs augmented_random.parquet (variants of randomly chosen rows): "
                "run the augment stage with the random control, or remove 'random' from evaluate.arms"
            )
        random_pool = store.read_table("augmented_random.parquet")
    scores = store.read_table("scores.parquet") if (e.review_as == "relabel" and any(a.startswith("clean") for a in arms)) else None

    sets: dict[tuple[str, int], pa.Table] = {}
    for arm in arms:
        for s in range(e.seeds):
            sets[(arm, s)] = arm_training_set(
                dataset, selected, pool, random_pool, arm, aug_ratio=e.aug_ratio, review_as=e.review_as,
                seed=cfg.seed * 1000 + s, scores=scores,
            )
    for arm in arms:
        info = training_set_info(sets[(arm, 0)])
        if arm == "random" and info["shortfall"] > 0:
            short = info["n_augmented"] < info["targeted_budget"]
            log(
                f"{'warning: ' if short else ''}arm random: {info['n_augmented']} augmented rows, matching the targeted "
                f"arm's {info['targeted_budget']}" + (f" only partly (the random pool has {info['available_augmented']})" if short else "")
            )
        elif info["shortfall"] > 0:
            log(
                f"warning: arm {arm}: asked for {info['requested_augmented']} augmented rows "
                f"(aug_ratio {e.aug_ratio:g} x {info['n_train']}), the pool has {info['available_augmented']}: "
                f"added {info['n_augmented']}"
            )
    t0 = time.time()
    log(f"retraining {len(sets)} models ({len(arms)} arms x {e.seeds} seeds, backbone {cfg.retrain_backbone})")
    runs = retrain_many(cfg, store, sets, dataset, test, num_labels, fingerprint=fingerprint, log=log)
    summary = compare(runs)
    summary["seconds"] = time.time() - t0
    summary["test_rows"] = test.num_rows
    summary["aug_ratio"] = e.aug_ratio
    summary["review_as"] = e.review_as
    summary["training_sets"] = {a: training_set_info(sets[(a, 0)]) for a in arms}
    store.write_table("evaluation/runs.parquet", runs)
    store.write_json("evaluation/summary.json", summary)
    log(f"held-out evaluation on {test.num_rows} rows:\n" + format_summary(summary))
    return summary
