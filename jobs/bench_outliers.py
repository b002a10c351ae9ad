"""Benchmark: kNN outlier scoring at scale, exact search against the HNSW index (``score.knn_index``).

    python jobs/bench_outliers.py --emb runs/bench/nsmc_minilm_emb.npy --labels runs/bench/nsmc_labels.npy \
        [--rows 150000] [--exact-rows 20000,40000] [--queries 2000] [--out runs/bench/outliers.json]

The embeddings are precomputed (e.g. the NSMC training split with the packaged MiniLM; not part
of the timing). Each timing runs in a fresh process (``outlier_seconds``, ``outlier_peak_rss_mb``
of that process, embeddings loaded included). For HNSW at ``--rows``, the recall of its
neighbours against exact brute force is measured on ``--queries`` random rows, with the
exact and approximate ``outlier_score`` of those rows and whether each would be flagged
(``score.outlier_quantile`` 0.01 threshold from the HNSW run). Exact search is timed at the
smaller ``--exact-rows`` sizes (it grows as n^2); the README reports the extrapolation.
Target (issue 16): 150,000 rows in under 2 minutes and 4 GB on this machine.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, resource, sys, time
import numpy as np
from hardmine.neighbors import knn_scores, outlier_flags
x = np.load(sys.argv[1], mmap_mode="r")[: int(sys.argv[3])].astype(np.float32)
y = np.load(sys.argv[2])[: int(sys.argv[3])]
t = time.perf_counter()
r = knn_scores(x, y, k=10, index=sys.argv[4])
f = outlier_flags(r["outlier_score"], quantile=0.01)
s = time.perf_counter() - t
out = {"rows": int(len(x)), "dim": int(x.shape[1]), "index": sys.argv[4], "outlier_seconds": round(s, 1),
       "flagged": int(f.sum()), "threshold": float(r["outlier_score"][f].min()),
       "outlier_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
if len(sys.argv) > 5:  # recall against exact brute force on a sample of query rows
    q = np.random.default_rng(0).choice(len(x), size=int(sys.argv[5]), replace=False)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    hits, exact_scores = [], []
    from hardmine.neighbors import knn_hnsw
    d_h, i_h = knn_hnsw(x, 10)
    for s0 in range(0, len(q), 250):
        qq = q[s0:s0 + 250]
        sim = xn[qq] @ xn.T
        sim[np.arange(len(qq)), qq] = -np.inf
        top = np.argpartition(-sim, 10, axis=1)[:, :10]
        exact_scores.append(1.0 - np.take_along_axis(sim, top, axis=1).mean(axis=1))
        hits += [len(set(a) & set(b)) / 10 for a, b in zip(top, i_h[qq])]
    e = np.concatenate(exact_scores)
    a = r["outlier_score"][q]
    thr = out["threshold"]
    out.update(queries=int(len(q)), recall_at_10=round(float(np.mean(hits)), 4),
               score_mean_abs_diff=round(float(np.mean(np.abs(e - a))), 6),
               flag_agreement=round(float(np.mean((e >= thr) == (a >= thr))), 4),
               exact_flagged_in_sample=int((e >= thr).sum()), hnsw_flagged_in_sample=int((a >= thr).sum()))
print(json.dumps(out))
"""


def probe(emb: str, labels: str, rows: int, index: str, queries: int | None = None) -> dict:
    args = [sys.executable, "-c", PROBE, emb, labels, str(rows), index] + ([str(queries)] if queries else [])
    res = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--emb", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--rows", type=int, default=150_000)
    p.add_argument("--exact-rows", default="20000,40000")
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--out", default="runs/bench/outliers.json")
    a = p.parse_args()
    results = []
    for n in [int(v) for v in a.exact_rows.split(",") if v]:
        for index in ("exact", "hnsw"):
            results.append(probe(a.emb, a.labels, n, index))
            print(results[-1], flush=True)
    big = probe(a.emb, a.labels, a.rows, "hnsw", a.queries)
    big["target_met"] = bool(big["outlier_seconds"] < 120 and big["outlier_peak_rss_mb"] < 4096)
    results.append(big)
    print(big, flush=True)
    print(f"\n{'index':<6} {'rows':>7} {'seconds':>8} {'peak RSS MB':>12}  recall@10  flag agreement")
    for r in results:
        print(f"{r['index']:<6} {r['rows']:>7} {r['outlier_seconds']:>8} {r['outlier_peak_rss_mb']:>12}  "
              f"{r.get('recall_at_10', '-'):>9}  {r.get('flag_agreement', '-')}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"results": results}, indent=2))
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
