"""Speed of the `tfidf` backbone on long documents: hardmine's OOF stage vs the ten-line loop.

    python jobs/bench_tfidf.py --banking77 ../shared/data/banking77 [--docs 25000] [--out runs/bench/tfidf.json]

No corpus of long documents ships with the benchmark data, so this one is built from real
sentences: each document strings together `--sentences` banking77 messages (about 1,500
characters, 280 words), all drawn from one of two halves of the 77 intents; the label says
which half. The task is easy; the point is the time. Both sides train 5 folds of
TfidfVectorizer (word 1-2-grams) + LogisticRegression on the same texts:

- hardmine: `run_all(until="oof")` with `oof.backbones: [tfidf]` (one Ray task per fold, the
  fold models saved), Ray's start included;
- the loop: the same vectorizer and classifier fitted fold after fold in this process.
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def build_docs(banking77: str, n_docs: int, sentences: int, seed: int) -> pd.DataFrame:
    df = pd.read_csv(Path(banking77) / "train.csv")
    classes = sorted(df["category"].unique())
    half = set(classes[: len(classes) // 2])
    groups = [df.loc[df["category"].isin(half), "text"].tolist(), df.loc[~df["category"].isin(half), "text"].tolist()]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_docs)
    texts = [" ".join(rng.choice(groups[y], sentences)) for y in labels]
    return pd.DataFrame({"id": [f"d{i}" for i in range(n_docs)], "text": texts, "label": np.where(labels == 0, "first_half", "second_half")})


def loop_oof(texts: list[str], y: np.ndarray, folds: int, seed: int, C: float) -> tuple[np.ndarray, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    t0 = time.time()
    probs = np.zeros((len(y), 2))
    texts = np.asarray(texts, dtype=object)
    for tr, va in StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, y):
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        clf = LogisticRegression(C=C, max_iter=1000).fit(vec.fit_transform(texts[tr]), y[tr])
        probs[va] = clf.predict_proba(vec.transform(texts[va]))
    return probs, time.time() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--banking77", required=True)
    p.add_argument("--docs", type=int, default=25000)
    p.add_argument("--sentences", type=int, default=25)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--out", default="runs/bench/tfidf.json")
    p.add_argument("--work", default="runs/bench/tfidf_work")
    args = p.parse_args()
    if not Path(args.banking77, "train.csv").exists():
        raise SystemExit(f"{args.banking77}/train.csv not found: pass --banking77 ../shared/data/banking77")
    warnings.filterwarnings("ignore")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    docs = build_docs(args.banking77, args.docs, args.sentences, seed=0)
    data = work / "docs.csv"
    docs.to_csv(data, index=False)
    chars = docs["text"].str.len()
    print(f"{len(docs)} documents, {chars.mean():.0f} characters on average (max {chars.max()})")

    from hardmine.config import from_dict
    from hardmine.pipeline import run_all

    import shutil

    shutil.rmtree(work / "runs", ignore_errors=True)
    cfg = from_dict({"name": "tfidf", "run_root": str(work / "runs"), "data": {"path": str(data)},
                     "oof": {"backbones": ["tfidf"], "folds": args.folds}})
    t0 = time.time()
    store = run_all(cfg, log=lambda s: None, until="oof")
    hm_s = time.time() - t0
    s = store.manifest()["stages"]["oof"]["summary"]
    member_s = s["members"]["tfidf"]["seconds"]
    import ray

    ray.shutdown()
    y = np.where(docs["label"].to_numpy() == "first_half", 0, 1)
    probs, loop_s = loop_oof(docs["text"].tolist(), y, args.folds, cfg.seed, cfg.oof.tfidf.C)
    rows = [
        ("hardmine oof stage (Ray, 5 fold tasks; prepare + ray.init included)", hm_s, s["accuracy"]),
        ("  of which the tfidf member's folds", member_s, s["members"]["tfidf"]["accuracy"]),
        ("ten-line loop (same vectorizer and classifier, folds one after another)", loop_s, float((probs.argmax(1) == y).mean())),
    ]
    print(f"\n{'':<75} {'seconds':>8} {'OOF acc':>8}")
    for name, sec, acc in rows:
        print(f"{name:<75} {sec:>8.1f} {acc:>8.4f}")
    print(f"ratio hardmine / loop: {hm_s / loop_s:.2f}; target: 25,000 long documents in well under 120 s -> "
          f"{'met' if hm_s < 120 else 'NOT met'} ({hm_s:.1f} s)")
    out = {
        "machine": {"cpus": os.cpu_count()}, "docs": len(docs), "mean_chars": float(chars.mean()), "folds": args.folds,
        "hardmine_seconds": hm_s, "member_seconds": member_s, "loop_seconds": loop_s, "ratio": hm_s / loop_s,
        "hardmine_oof_accuracy": s["accuracy"], "loop_oof_accuracy": float((probs.argmax(1) == y).mean()),
        "target_met": hm_s < 120,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
