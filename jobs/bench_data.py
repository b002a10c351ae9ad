"""Datasets of the lift and review benchmarks (jobs/bench_lift.py, jobs/bench_review.py): banking77 and clinc150 read
from ../shared/data, N-per-class subsets, and the run's CSVs (training split with optional injected label noise and its
truth, the untouched test split, the unlabelled pool)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

FOLDS = 5  # the baselines' folds and the fewest given rows noise leaves a class; hardmine's default oof.folds is 5 too


def load_banking77(folder: str) -> tuple[list, list]:
    def read(name):
        with open(Path(folder) / name, newline="", encoding="utf-8") as f:
            return [(r["text"], r["category"]) for r in csv.DictReader(f)]

    return read("train.csv"), read("test.csv")


def load_clinc150(folder: str) -> tuple[list, list]:
    d = json.loads((Path(folder) / "data_full.json").read_text())
    return [tuple(r) for r in d["train"]], [tuple(r) for r in d["test"]]


def datasets(banking77: str | None, clinc150: str | None) -> list[tuple]:
    """(name, folder, loader) of each dataset given whose folder exists; a missing folder is said and skipped."""
    todo = []
    for name, path, loader in (("banking77", banking77, load_banking77), ("clinc150", clinc150, load_clinc150)):
        if not path:
            continue
        if not Path(path).exists():
            print(f"skip {name}: {path} does not exist (pass the folder of the dataset)")
            continue
        todo.append((name, path, loader))
    return todo


def parse_sizes(spec: str) -> list[str]:
    """The settings of a --sizes list ('full' and/or training examples per class >= 5), the small ones first (they are
    the question, and they are quick); ValueError naming the bad entries."""
    sizes = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [s for s in sizes if s != "full" and not (s.isdigit() and int(s) >= 5)]
    if bad:
        raise ValueError(f"--sizes: {bad} are not 'full' or a count of training examples per class >= 5 (the OOF stage needs 5 folds)")
    return sorted(sizes, key=lambda s: (s == "full", int(s) if s.isdigit() else 0))


def per_class_subset(train: list, k: int, seed: int) -> list:
    """``k`` rows of every class (all of a smaller class), drawn with ``seed``; original order kept."""
    rng = np.random.default_rng(seed)
    by: dict = {}
    for i, (_, lab) in enumerate(train):
        by.setdefault(lab, []).append(i)
    keep = [i for lab in sorted(by) for i in rng.choice(by[lab], min(k, len(by[lab])), replace=False)]
    return [train[i] for i in sorted(keep)]


def write_split(tag: str, train: list, test: list, root: Path, rate: float, kind: str = "uniform") -> dict:
    """train.csv (labels as given, or with injected noise), test.csv (untouched), truth.csv when noise > 0.

    Noise (seeded): ``uniform`` flips a share ``rate`` of the rows to a uniformly drawn other class; ``confusion`` flips
    as many to the class a clean TF-IDF model confuses each row with most (:func:`inject_noise`: people mislabel
    confusable rows), leaving every class at least FOLDS given rows."""
    rng = np.random.default_rng(0)
    names = sorted({lab for _, lab in train})
    y = np.array([names.index(lab) for _, lab in train])
    if kind == "uniform":
        noisy = np.zeros(len(train), dtype=bool)
        if rate > 0:
            noisy[rng.choice(len(train), int(round(rate * len(train))), replace=False)] = True
        y_given = np.where(noisy, (y + rng.integers(1, len(names), len(train))) % len(names), y)
    elif kind == "confusion":
        clean = tfidf_lr_oof([text for text, _ in train], y, korean=False) if rate > 0 else None
        y_given = inject_noise(y, len(names), rate, "confusion", clean, seed=0)[0] if rate > 0 else y
        noisy = y_given != y
    else:
        raise ValueError(f"noise kind {kind!r}: choose uniform or confusion")
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


# ----------------------------------------------------------------------------- noise


def tfidf_lr_oof(texts: list[str], y: np.ndarray, korean: bool) -> np.ndarray:
    """5-fold out-of-fold predict_proba of TF-IDF + LogisticRegression (defaults a practitioner would use)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    if korean:
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2)
    else:
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    model = make_pipeline(vec, LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=0)
    return cross_val_predict(model, np.asarray(texts, dtype=object), y, cv=cv, method="predict_proba")


def inject_noise(y: np.ndarray, k: int, rate: float, kind: str, clean_probs: np.ndarray | None, seed: int) -> tuple[np.ndarray, int]:
    """(noisy labels, rows skipped to keep every class at >= FOLDS given rows).

    Rows are drawn without replacement with weight 1 (uniform) or the clean model's probability of
    the row's most-confused other class (confusion), by Efraimidis-Spirakis keys: sorting
    Exp(1) / weight ascending is weighted sampling without replacement. Uniform noise sends a row
    to a uniformly drawn other class; confusion noise to the most-confused class.
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    if kind == "uniform":
        weight = np.ones(n)
        target = (y + rng.integers(1, k, size=n)) % k
    else:
        other = clean_probs.copy()
        other[np.arange(n), y] = -1.0
        target = other.argmax(axis=1)
        weight = other.max(axis=1)
    with np.errstate(divide="ignore"):
        order = np.argsort(rng.exponential(size=n) / weight, kind="stable")
    n_flip = int(round(rate * n))
    noisy = y.copy()
    counts = np.bincount(y, minlength=k)
    flipped = protected = 0
    for i in order:
        if flipped == n_flip or weight[i] <= 0:
            break
        if counts[y[i]] <= FOLDS:
            protected += 1
            continue
        noisy[i] = target[i]
        counts[y[i]] -= 1
        counts[target[i]] += 1
        flipped += 1
    assert (noisy != y).sum() == flipped
    return noisy, protected
