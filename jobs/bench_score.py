"""Benchmark of the score stage (hardmine.scoring.score_table) on synthetic probabilities.

    python jobs/bench_score.py --rows 1000000 --classes 20 --seed 0 --out runs/bench/score.json

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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=1, help="cleanlab processes (1 is fastest on 2 cores)")
    parser.add_argument("--out", default="runs/bench/score.json")
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

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
