"""Datasets of the lift and review benchmarks (jobs/bench_lift.py, jobs/bench_review.py): banking77 and clinc150 read
from ../shared/data, N-per-class subsets, and the run's CSVs (training split with optional injected label noise and its
truth, the untouched test split, the unlabelled pool)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np


def load_banking77(folder: str) -> tuple[list, list]:
    def read(name):
        with open(Path(folder) / name, newline="", encoding="utf-8") as f:
            return [(r["text"], r["category"]) for r in csv.DictReader(f)]

    return read("train.csv"), read("test.csv")


def load_clinc150(folder: str) -> tuple[list, list]:
    d = json.loads((Path(folder) / "data_full.json").read_text())
    return [tuple(r) for r in d["train"]], [tuple(r) for r in d["test"]]


def per_class_subset(train: list, k: int, seed: int) -> list:
    """``k`` rows of every class (all of a smaller class), drawn with ``seed``; original order kept."""
    rng = np.random.default_rng(seed)
    by: dict = {}
    for i, (_, lab) in enumerate(train):
        by.setdefault(lab, []).append(i)
    keep = [i for lab in sorted(by) for i in rng.choice(by[lab], min(k, len(by[lab])), replace=False)]
    return [train[i] for i in sorted(keep)]


def write_split(tag: str, train: list, test: list, root: Path, rate: float) -> dict:
    """train.csv (labels as given, or with injected noise), test.csv (untouched), truth.csv when noise > 0."""
    rng = np.random.default_rng(0)
    names = sorted({lab for _, lab in train})
    y = np.array([names.index(lab) for _, lab in train])
    noisy = np.zeros(len(train), dtype=bool)
    if rate > 0:
        noisy[rng.choice(len(train), int(round(rate * len(train))), replace=False)] = True
    y_given = np.where(noisy, (y + rng.integers(1, len(names), len(train))) % len(names), y)
    d = root / "_data" / tag
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "train.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        for i, ((text, _), lab) in enumerate(zip(train, y_given)):
            w.writerow([f"tr{i}", text, names[lab]])
    out = {"path": str(d / "train.csv")}
    if rate > 0:
        with open(d / "truth.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "true_label"])
            for i, (_, lab) in enumerate(train):
                w.writerow([f"tr{i}", lab])
        out["truth_path"] = str(d / "truth.csv")
    test = [(t, lab) for t, lab in test if lab in names]
    with open(d / "test.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        for i, (text, lab) in enumerate(test):
            w.writerow([f"te{i}", text, lab])
    out["test_path"] = str(d / "test.csv")
    return {"data": out | {"labels": names}, "n_train": len(train), "n_test": len(test), "n_noisy": int(noisy.sum())}


def write_pool(tag: str, rest: list, root: Path) -> str:
    """The unlabelled pool of the self_training arm: the training rows not in the N-per-class subset, text only."""
    d = root / "_data" / tag
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "pool.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        for i, (text, _) in enumerate(rest):
            w.writerow([f"pool{i}", text])
    return str(d / "pool.csv")
