"""Diagnostic for the lift benchmark: is it the variants, or the extra weight on some classes?

    python jobs/lift_copies.py runs/bench/lift_work/lift-banking77-10

In one lift run (frozen backbone, logreg head as configured), retrain the baseline's head on
the training rows plus *exact copies* of the random pool's source rows (one copy per kept
variant, no new text), and plus the same number of copies spread evenly over classes. If the
copies hurt as much as the variants, the harm is the reweighting, not the variants' text.
Prints one line per training set; held-out accuracy on the run's test split.
"""
from __future__ import annotations

import sys

import numpy as np
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression

from hardmine.embed import embeddings_from_table

run = sys.argv[1].rstrip("/") + "/"
ds, test = pq.read_table(run + "dataset.parquet"), pq.read_table(run + "test.parquet")
emb, temb = pq.read_table(run + "embeddings.parquet"), pq.read_table(run + "test_embeddings.parquet")
pos = {i: n for n, i in enumerate(emb.column("id").to_pylist())}
tpos = {i: n for n, i in enumerate(temb.column("id").to_pylist())}
X = embeddings_from_table(emb)[[pos[i] for i in ds.column("id").to_pylist()]]
Xt = embeddings_from_table(temb)[[tpos[i] for i in test.column("id").to_pylist()]]
y, yt = ds.column("label").to_numpy(), test.column("label").to_numpy()
dpos = {i: n for n, i in enumerate(ds.column("id").to_pylist())}
pool = pq.read_table(run + "augmented_random.parquet").to_pandas()
src = np.array([dpos[s] for s in pool[pool.kept].source_id])
k = len(np.unique(y))
rng = np.random.default_rng(0)
even = np.concatenate([rng.choice(np.flatnonzero(y == c), len(src) // k, replace=True) for c in range(k)])


def acc(rows: np.ndarray) -> float:
    m = LogisticRegression(C=1.0, max_iter=1000).fit(np.vstack([X, X[rows]]), np.concatenate([y, y[rows]]))
    return float((m.predict(Xt) == yt).mean())


print(f"baseline ({len(y)} rows)                          {acc(np.array([], dtype=np.int64)):.4f}")
print(f"+ {len(src)} exact copies of the random pool's sources  {acc(src):.4f}")
print(f"+ {len(even)} exact copies spread evenly over classes   {acc(even):.4f}")
