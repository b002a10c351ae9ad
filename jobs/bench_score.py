"""Benchmark of the score stage (hardmine.scoring.score_table) on synthetic probabilities.

    python jobs/bench_score.py --rows 1000000 --classes 20 --seed 0 --out runs/bench/score.json \
        [--data ../shared/data/banking77/train.csv]

(run from the repository root with hardmine installed, or with PYTHONPATH=.)

The synthetic section draws true labels, makes each row's probabilities point at its
true class (a softmax of noisy logits with a per-row difficulty), flips 10% of the labels
uniformly to another class, and times ``score_table`` on the result. At a million rows
this takes cleanlab's low-memory (batched) path. Reported: wall seconds, peak RSS (MB),
and precision / recall / F1 of the flagged label issues against the planted flips.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

import cleanlab.experimental.label_issues_batched  # noqa: E402,F401  (import time is not timed)
import cleanlab.filter  # noqa: E402,F401

from hardmine.scoring import detection_metrics, score_table  # noqa: E402


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic_probs(rows: int, classes: int, seed: int, flip_rate: float = 0.10):
    """(probs float32 (rows, classes), given labels, planted is_noisy) with probs pointing at the true class."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, classes, rows)
    # logits: noise plus a boost for the true class whose size varies per row (easy .. hard
    # rows); argmax == true class for about 92% of rows at 20 classes
    logits = rng.standard_normal((rows, classes), dtype=np.float32)
    logits[np.arange(rows), true] += rng.gamma(6.0, 0.8, rows).astype(np.float32)
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    probs = logits
    labels = true.copy()
    n_flip = round(flip_rate * rows)
    flip = rng.choice(rows, n_flip, replace=False)
    labels[flip] = (true[flip] + rng.integers(1, classes, n_flip)) % classes
    return probs, labels, labels != true


def synthetic_section(args: argparse.Namespace) -> dict:
    """Time score_table on synthetic probabilities with planted label noise."""
    probs, labels, is_noisy = synthetic_probs(args.rows, args.classes, args.seed)
    ids = [f"s{i:08d}" for i in range(args.rows)]
    start = time.perf_counter()
    table, summary = score_table(ids, labels, probs, n_jobs=args.n_jobs)
    seconds = time.perf_counter() - start
    if args.rows > 500_000:
        assert summary["label_issues"]["path"] == "batched", summary["label_issues"]
    flagged = table.column("is_label_issue").to_numpy(zero_copy_only=False)
    det = detection_metrics(flagged, is_noisy)
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rows": args.rows,
        "classes": args.classes,
        "precision": round(det["precision"], 4),
        "recall": round(det["recall"], 4),
        "f1": round(det["f1"], 4),
        "n_flagged": det["n_flagged"],
        "n_planted": det["n_noisy"],
        "estimated_label_errors": summary["estimated_label_errors"],
        "label_issue_path": summary["label_issues"]["path"],
        "filter_used": summary["label_issues"]["filter_used"],
        "n_jobs": args.n_jobs,
    }


def print_table(sections: dict) -> None:
    for name, sec in sections.items():
        print(f"[{name}]")
        for key, value in sec.items():
            print(f"  {key:<24} {value}")


def inject_noise(y: np.ndarray, k: int, rate: float, kind: str, seed: int) -> np.ndarray:
    """Flip ``rate`` of the labels (seeded): ``uniform`` to any other class; ``class_conditional``
    to one of two fixed, class-specific confusable classes (70/30), a non-uniform noise matrix."""
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    flip = rng.choice(len(y), size=int(round(rate * len(y))), replace=False)
    if kind == "uniform":
        noisy[flip] = (y[flip] + rng.integers(1, k, size=len(flip))) % k
    else:
        targets = np.stack([(np.arange(k) + rng.integers(1, k, size=k)) % k for _ in range(2)], axis=1)
        same = targets[:, 0] == targets[:, 1]
        targets[same, 1] = (targets[same, 0] + 1) % k
        targets[targets[:, 1] == np.arange(k), 1] = (np.arange(k)[targets[:, 1] == np.arange(k)] + 2) % k
        pick = (rng.random(len(flip)) >= 0.7).astype(int)
        noisy[flip] = targets[y[flip], pick]
    assert (noisy[flip] != y[flip]).all()
    return noisy


def detection_section(args) -> list[dict]:
    """Label-issue detection on banking77 with injected noise, from the frozen backbone's OOF (hardmine pipeline)."""
    import pandas as pd
    import ray

    from hardmine.config import load_config
    from hardmine.pipeline import run_all

    df = pd.read_csv(args.data)
    names = sorted(df["category"].unique())
    y = df["category"].map({n: i for i, n in enumerate(names)}).to_numpy()
    work = Path(args.work)
    rows = []
    for kind in ("uniform", "class_conditional"):
        for rate in (0.1, 0.3):
            tag = f"{kind}-{int(rate * 100)}"
            noisy = inject_noise(y, len(names), rate, kind, seed=args.seed)
            d = work / tag
            d.mkdir(parents=True, exist_ok=True)
            ids = [f"b{i}" for i in range(len(df))]
            pd.DataFrame({"id": ids, "text": df["text"], "label": [names[v] for v in noisy]}).to_csv(d / "train.csv", index=False)
            pd.DataFrame({"id": ids, "true_label": [names[v] for v in y], "is_noisy": noisy != y}).to_csv(d / "truth.csv", index=False)
            cfg = load_config(None, [
                f"name={tag}", f"run_root={work / 'runs'}", f"data.path={d / 'train.csv'}", f"data.truth_path={d / 'truth.csv'}",
                "oof.backbone=frozen", "oof.model=packaged:minilm", "oof.folds=5", f"oof.epochs={args.epochs}",
                "oof.head=linear", "oof.max_length=64",  # the settings README's figures were measured with
            ])
            t0 = time.perf_counter()
            store = run_all(cfg, until="score", log=lambda s: None)
            stages = store.manifest()["stages"]
            det = stages["score"]["summary"]["detection"]
            rows.append({
                "noise": kind, "rate": rate, "rows": len(df), "oof_accuracy": round(stages["oof"]["summary"]["accuracy"], 4),
                "precision": round(det["precision"], 4), "recall": round(det["recall"], 4), "f1": round(det["f1"], 4),
                "flagged": det["tp"] + det["fp"], "injected": int((noisy != y).sum()), "seconds": round(time.perf_counter() - t0, 1),
            })
            print(f"  {tag}: precision {det['precision']:.3f} recall {det['recall']:.3f} f1 {det['f1']:.3f}", flush=True)
    ray.shutdown()
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=1, help="cleanlab processes (1 is fastest on 2 cores)")
    parser.add_argument("--out", default="runs/bench/score.json")
    parser.add_argument("--data", default=None, help="banking77 train.csv: adds the detection-quality section")
    parser.add_argument("--epochs", type=int, default=8, help="frozen head epochs (detection section)")
    parser.add_argument("--work", default=None, help="scratch run root for the detection section (default: a temp dir)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    sections = {"synthetic": synthetic_section(args)}
    result = {
        **sections,
        "seconds": round(time.perf_counter() - start, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print_table(sections)
    print(f"total {result['seconds']} s, peak RSS {result['peak_rss_mb']} MB")
    if args.data:
        if not Path(args.data).exists():
            raise SystemExit(f"--data {args.data} not found (the benchmark data lives in ../shared/data)")
        import tempfile

        args.work = args.work or tempfile.mkdtemp(prefix="hardmine-bench-score-")
        det = detection_section(args)
        result["detection"] = det
        result["f1"] = {f"{r['noise']}-{int(r['rate'] * 100)}": r["f1"] for r in det}
        cols = ["noise", "rate", "oof_accuracy", "injected", "flagged", "precision", "recall", "f1", "seconds"]
        print(" | ".join(cols))
        for r in det:
            print(" | ".join(str(r[c]) for c in cols))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
