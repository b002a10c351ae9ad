"""Benchmark: does acting on hard samples make the model better on data it has never seen?

    python jobs/bench_lift.py --banking77 ../shared/data/banking77 --clinc150 ../shared/data/clinc150 \
        [--out runs/bench/lift.json] [--seeds 3] [--noise 0.2] [--set oof.epochs=10 ...]

For each dataset: 20% uniform label noise is injected into the training split with a fixed
seed (the held-out test split stays clean; the injected truth is kept), the hardmine pipeline
runs with the `frozen` backbone (packaged all-MiniLM-L6-v2 + an MLP head trained 30 epochs,
i.e. to convergence), then:

- every evaluation arm (baseline, clean, targeted, clean+targeted, random) over --seeds seeds,
  held-out accuracy as mean and 95% interval (hardmine.evaluate);
- the same model trained on the *true* labels (the ceiling the noise took away), same seeds;
  ``recovered = (clean - noisy baseline) / (clean-label model - noisy baseline)``, target >= 0.5;
- the sweep (hardmine.sweep) and its best configuration retrained over the same seeds;
- a sensitivity check: baseline / clean / clean-label again with an under-trained head
  (linear, 3 epochs), where early stopping alone already resists much of the noise.

Stages the pipeline does not have yet are run here directly from the library functions
(augmentation as a fallback with rule-based EDA variants; recorded in the JSON as such).
The data paths are arguments; a missing path skips that dataset with a message.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--banking77", help="folder with train.csv and test.csv (text,category)")
parser.add_argument("--clinc150", help="folder with data_full.json (in-scope intents are used)")
parser.add_argument("--out", default="runs/bench/lift.json")
parser.add_argument("--run-root", default="runs/bench")
parser.add_argument("--noise", type=float, default=0.2, help="share of training labels flipped uniformly to another class")
parser.add_argument("--seeds", type=int, default=3)
parser.add_argument("--max-train", type=int, default=0, help="subsample the training split (0: all rows)")
parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
args = parser.parse_args()

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hardmine.config import ARMS, deep_merge, from_dict, parse_overrides  # noqa: E402
from hardmine.evaluate import arm_training_set, evaluation_fingerprint, format_summary, interval, retrain_many, run_evaluate  # noqa: E402
from hardmine.pipeline import STAGES, run_all  # noqa: E402
from hardmine.sweep import run_sweep, select_kwargs  # noqa: E402


# ----------------------------------------------------------------------------- data


def load_banking77(folder: str) -> tuple[list, list]:
    def read(name):
        with open(Path(folder) / name, newline="", encoding="utf-8") as f:
            return [(r["text"], r["category"]) for r in csv.DictReader(f)]

    return read("train.csv"), read("test.csv")


def load_clinc150(folder: str) -> tuple[list, list]:
    d = json.loads((Path(folder) / "data_full.json").read_text())
    return [tuple(r) for r in d["train"]], [tuple(r) for r in d["test"]]


def write_noisy_split(name: str, train: list, test: list, root: Path, rate: float, seed: int, max_train: int) -> dict:
    """train.csv (noisy labels), test.csv (clean), truth.csv (id,true_label,is_noisy)."""
    rng = np.random.default_rng(seed)
    if max_train and len(train) > max_train:  # stratified subsample, at least 6 rows per class
        by: dict = {}
        for i, (_, lab) in enumerate(train):
            by.setdefault(lab, []).append(i)
        frac = max_train / len(train)
        keep = [i for idx in by.values() for i in rng.choice(idx, min(len(idx), max(6, round(frac * len(idx)))), replace=False)]
        train = [train[i] for i in sorted(keep)]
    names = sorted({lab for _, lab in train})
    y = np.array([names.index(lab) for _, lab in train])
    noisy = np.zeros(len(train), dtype=bool)
    noisy[rng.choice(len(train), int(round(rate * len(train))), replace=False)] = True
    shift = rng.integers(1, len(names), len(train))  # uniform over the other classes
    y_noisy = np.where(noisy, (y + shift) % len(names), y)
    d = root / "_data" / name
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "train.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        for i, ((text, _), lab) in enumerate(zip(train, y_noisy)):
            w.writerow([f"tr{i}", text, names[lab]])
    with open(d / "truth.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "true_label", "is_noisy"])
        for i, ((_, lab), n) in enumerate(zip(train, noisy)):
            w.writerow([f"tr{i}", lab, str(bool(n)).lower()])
    test = [(t, lab) for t, lab in test if lab in names]
    with open(d / "test.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        for i, (text, lab) in enumerate(test):
            w.writerow([f"te{i}", text, lab])
    return {"path": str(d / "train.csv"), "test_path": str(d / "test.csv"), "truth_path": str(d / "truth.csv"),
            "labels": names, "n_train": len(train), "n_test": len(test), "n_noisy": int(noisy.sum())}


# ----------------------------------------------------------------------------- fallbacks for stages not in the pipeline yet


def fallback_augment(cfg, store, selected: pa.Table, out_name: str, budget: dict, log) -> dict:
    """Rule-based EDA variants with the cheap filters + semantic similarity (no fold-model consistency)."""
    from hardmine.augment.pipeline import run_augment

    local = store.path(out_name)
    return run_augment(
        selected, store.read_table("dataset.parquet"), local, generators=[{"type": "eda"}],
        filters={"length": True, "identical": True, "similarity": {"model": "packaged:minilm"}, "near_duplicate": True},
        budget=budget, seed=cfg.seed, progress=False, log=log,
    )


def random_selection(selected: pa.Table, seed: int) -> pa.Table:
    """The control: as many randomly chosen training rows as the augment set, marked ``augment``."""
    act = np.asarray(selected.column("action").to_pylist(), dtype=object)
    k = int((act == "augment").sum())
    pick = np.random.default_rng(seed + 7).choice(len(act), k, replace=False)
    new = np.full(len(act), "none", dtype=object)
    new[pick] = "augment"
    return selected.set_column(selected.schema.get_field_index("action"), "action", pa.array(new.tolist(), pa.string()))


def ensure_pools(cfg, store, log) -> dict:
    info = {}
    if not store.exists("augmented.parquet"):
        sel = store.read_table("selected.parquet")
        info["targeted"] = fallback_augment(cfg, store, sel, "augmented.parquet", {"aug_ratio": cfg.evaluate.aug_ratio}, log)
        info["random"] = fallback_augment(cfg, store, random_selection(sel, cfg.seed), "augmented_random.parquet",
                                          {"aug_ratio": cfg.evaluate.aug_ratio}, log)
        info["source"] = "fallback-eda (this script)"
    else:
        info["source"] = "pipeline augment stage"
    return info


def sweep_pool(cfg, store, log) -> pa.Table:
    """The sweep's pool, generated once: the most permissive selection, enough variants per
    source for the smallest threshold at the largest aug_ratio."""
    from hardmine.select import select

    for name in ("sweep_pool.parquet", "augmented_sweep.parquet", "sweep/pool.parquet"):
        if store.exists(name):
            return store.read_table(name)
    s = cfg.sweep
    scores, ds = store.read_table("scores.parquet"), store.read_table("dataset.parquet")
    kw = select_kwargs(cfg, store.manifest()["labels"])
    key = "hardness_quantile" if s.threshold == "hardness_quantile" else "p_true_max"
    other = "p_true_max" if key == "hardness_quantile" else "hardness_quantile"
    sel, summ = select(scores, ds, **{key: max(s.thresholds), other: None}, issue_action="keep", **kw)
    small, _ = select(scores, ds, **{key: min(s.thresholds), other: None}, issue_action="review", **kw)
    n_small = max(1, sum(1 for a in small.column("action").to_pylist() if a == "augment"))
    per_sample = max(1, math.ceil(max(s.aug_ratios) * ds.num_rows / n_small))
    fallback_augment(cfg, store, sel, "sweep_pool.parquet", {"per_sample": per_sample}, log)
    return store.read_table("sweep_pool.parquet")


# ----------------------------------------------------------------------------- one dataset


def bench(name: str, train: list, test: list, log) -> dict:
    t0 = time.time()
    root = Path(args.run_root)
    split = write_noisy_split(name, train, test, root, args.noise, 0, args.max_train)
    base = {
        "name": f"lift-{name}", "run_root": str(root),
        "data": {"path": split["path"], "test_path": split["test_path"], "truth_path": split["truth_path"], "labels": split["labels"]},
    }
    sets = [
        "oof.backbone=frozen", "oof.model=packaged:minilm", "oof.folds=5", "oof.head=mlp", "oof.epochs=30", "oof.cpus_per_fold=1",
        "oof.max_length=64",
        f"evaluate.seeds={args.seeds}", "sweep.cpus_per_trial=1", *args.overrides,
    ]
    cfg = from_dict(deep_merge(base, parse_overrides(sets)))
    log(f"== {name}: {split['n_train']} training rows ({split['n_noisy']} noisy), {split['n_test']} held-out, {len(split['labels'])} classes")
    store = run_all(cfg, log=log)
    stages_run = [s for s in STAGES]
    timings = {"pipeline": time.time() - t0}

    pools = ensure_pools(cfg, store, log) if "augment" not in STAGES else {"source": "pipeline augment stage"}
    t = time.time()
    if "evaluate" in STAGES and store.exists("evaluation/summary.json"):
        summary = store.read_json("evaluation/summary.json")
    else:
        summary = run_evaluate(cfg, store, log)
    timings["evaluate"] = time.time() - t

    # the ceiling: the same model on the true labels, same seeds
    t = time.time()
    ds, test_t = store.read_table("dataset.parquet"), store.read_table("test.parquet")
    truth = store.read_table("truth.parquet")
    true_label = dict(zip(truth.column("id").to_pylist(), truth.column("true_label").to_pylist()))
    ds_true = ds.set_column(ds.schema.get_field_index("label"), "label",
                            pa.array([true_label[i] for i in ds.column("id").to_pylist()], pa.int32()))
    ceiling_sets = {("clean-label", s): arm_training_set(ds_true, None, None, None, "baseline", aug_ratio=0.0, seed=cfg.seed * 1000 + s)
                    for s in range(args.seeds)}
    ceiling_runs = retrain_many(cfg, store, ceiling_sets, ds, test_t, len(split["labels"]), fingerprint=evaluation_fingerprint(cfg, store) + "-ceiling", log=log)
    ceiling = interval(ceiling_runs.column("accuracy").to_pylist())
    timings["clean_label_model"] = time.time() - t

    # sensitivity: the same three training sets with an under-trained head (hardmine's OOF
    # defaults: linear head, 3 epochs) -- early stopping alone resists label noise
    t = time.time()
    cfg_u = cfg.model_copy(deep=True)
    cfg_u.oof.head, cfg_u.evaluate.epochs = "linear", 3
    sel = store.read_table("selected.parquet")
    u_sets = dict(ceiling_sets)
    for s in range(args.seeds):
        u_sets[("baseline", s)] = arm_training_set(ds, sel, None, None, "baseline", aug_ratio=0.0, seed=cfg.seed * 1000 + s)
        u_sets[("clean", s)] = arm_training_set(ds, sel, None, None, "clean", aug_ratio=0.0, review_as=cfg.evaluate.review_as,
                                                seed=cfg.seed * 1000 + s)
    u_runs = retrain_many(cfg_u, store, u_sets, ds, test_t, len(split["labels"]),
                          fingerprint=evaluation_fingerprint(cfg_u, store) + "-undertrained", log=log)
    u = {a: interval([r["accuracy"] for r in u_runs.to_pylist() if r["arm"] == a]) for a in ("baseline", "clean", "clean-label")}
    u_gap = u["clean-label"]["mean"] - u["baseline"]["mean"]
    sensitivity = {
        "setting": "head linear, 3 epochs (hardmine's oof defaults)", "accuracy": u,
        "recovered": (u["clean"]["mean"] - u["baseline"]["mean"]) / u_gap if u_gap > 0 else None,
    }
    timings["sensitivity"] = time.time() - t

    # the sweep, then its best configuration over the same seeds
    t = time.time()
    if "sweep" in STAGES and store.exists("sweep/best.json"):
        best = store.read_json("sweep/best.json")
        pool = None
    else:
        pool = sweep_pool(cfg, store, log)
        run_sweep(cfg, store, pool, log)
        best = store.read_json("sweep/best.json")
    b = best["best"]
    # the sweep confirms its validation choice once on the test split (over evaluate.seeds, bootstrap interval)
    conf = (best.get("confirmation") or {}).get("arms") or {}
    chosen = conf.get("chosen") or conf.get("baseline")
    rerun = chosen["accuracy"] if chosen else None
    timings["sweep"] = time.time() - t

    arms = summary["arms"]
    noisy = arms["baseline"]["accuracy"]["mean"]
    clean = arms.get("clean", {}).get("accuracy", {}).get("mean")
    gap = ceiling["mean"] - noisy
    recovered = (clean - noisy) / gap if (clean is not None and gap > 0) else None
    pair = summary.get("pairs", {}).get("targeted - random", {}).get("accuracy")
    stages = store.manifest()["stages"]
    out = {
        "dataset": name,
        "rows": {"train": split["n_train"], "test": split["n_test"], "classes": len(split["labels"])},
        "noise": {"rate": args.noise, "n_noisy": split["n_noisy"], "kind": "uniform over the other classes", "seed": 0},
        "detection": stages.get("score", {}).get("summary", {}).get("detection"),
        "seeds": args.seeds,
        "arms": {a: {k: r[k] for k in ("accuracy", "macro_f1", "ece", "train_rows", "n_augmented") if k in r}
                 | ({"vs_baseline": r["vs_baseline"]} if "vs_baseline" in r else {}) for a, r in arms.items()},
        "clean_label_model": ceiling,
        "recovered": recovered,
        "recovered_target_met": None if recovered is None else bool(recovered >= 0.5),
        "targeted_minus_random": pair,
        "targeted_beats_random": None if pair is None else ("yes" if pair["excludes_zero"] and pair["mean"] > 0 else
                                                           "no (random better)" if pair["excludes_zero"] else "not distinguishable"),
        "sensitivity_undertrained_head": sensitivity,
        "sweep": {"best": b, "best_rerun_accuracy": rerun, "trials": best["trials"], "note": best["note"]},
        "augmentation": pools,
        "pipeline_stages": stages_run,
        "config": cfg.model_dump(mode="json"),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    log(format_summary(summary))
    return out


def pct(iv):
    return "-" if iv is None else f"{100 * iv['mean']:.2f} [{100 * iv['lo']:.2f}, {100 * iv['hi']:.2f}]"


def main() -> int:
    todo = []
    for name, path, loader in (("banking77", args.banking77, load_banking77), ("clinc150", args.clinc150, load_clinc150)):
        if not path:
            continue
        if not Path(path).exists():
            print(f"skip {name}: {path} does not exist (pass the folder of the dataset)")
            continue
        todo.append((name, path, loader))
    if not todo:
        print("nothing to run: pass --banking77 and/or --clinc150 with the dataset folders", file=sys.stderr)
        return 2
    log = lambda s: print(s, flush=True)  # noqa: E731
    results = {}
    for name, path, loader in todo:
        train, test = loader(path)
        results[name] = bench(name, train, test, log)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"datasets": results}, indent=2, default=float))
    print()
    print(f"{'dataset':<10} {'arm':<16} {'held-out accuracy % [95% CI]':<30} {'vs baseline (paired)':<28}")
    for name, r in results.items():
        for a in sorted(r["arms"], key=lambda a: ARMS.index(a) if a in ARMS else len(ARMS)):
            v = r["arms"][a]
            d = v.get("vs_baseline", {}).get("accuracy") if v.get("vs_baseline") else None
            star = "*" if d and d["excludes_zero"] else ""
            print(f"{name:<10} {a:<16} {pct(v['accuracy']):<30} {pct(d) + star if d else '-':<28}")
        print(f"{name:<10} {'clean-label':<16} {pct(r['clean_label_model']):<30}")
        b = r["sweep"]["best"]
        if b:
            label = "sweep best (baseline)" if b.get("threshold") is None else f"sweep best ({b['threshold']:g}/{b['aug_ratio']:g}/{b['issue_action']})"
            print(f"{name:<10} {label:<16} {pct(r['sweep']['best_rerun_accuracy']):<30}")
        sv = r["sensitivity_undertrained_head"]
        print(f"{name:<10} under-trained head ({sv['setting']}): baseline {pct(sv['accuracy']['baseline'])}, "
              f"clean {pct(sv['accuracy']['clean'])}, clean-label {pct(sv['accuracy']['clean-label'])}, "
              f"recovered {'-' if sv['recovered'] is None else format(sv['recovered'], '.2f')}")
        rec = r["recovered"]
        print(f"{name:<10} recovered = {'-' if rec is None else f'{rec:.2f}'} (target >= 0.5: "
              f"{'met' if r['recovered_target_met'] else 'NOT met'}); targeted vs random at the same budget: "
              f"{r['targeted_beats_random']} ({pct(r['targeted_minus_random'])})")
    print("* = seed-paired 95% interval excludes zero")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
