"""Benchmark: hardmine's OOF stage (K folds on Ray) vs a plain sequential loop.

    python jobs/bench_oof.py --data ../shared/data/banking77/train.csv [--out runs/bench/oof.json]

Per backbone, in one run on the same machine: the usual notebook approach (one process,
the same K fold models trained one after another with the same settings, torch using every
core) against `hardmine`'s OOF stage (embeddings with Ray Data, folds as concurrent Ray
tasks / TorchTrainer runs). Reported: wall time of each, their ratio (hardmine/sequential),
peak memory (sampled RSS of the driver plus every Ray process), OOF accuracy.
Defaults follow the issue: `frozen` on all rows, `finetune` on a 2,000-row stratified subset
with one epoch.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class PeakRSS:
    """Sample the RSS of this process and (optionally) all Ray processes; keep the peak (MB)."""

    def __init__(self, include_ray: bool):
        self.include_ray, self.peak, self._stop = include_ray, 0.0, threading.Event()

    def _sample(self) -> float:
        me = psutil.Process()
        procs = [me] + me.children(recursive=True)
        if self.include_ray:
            for p in psutil.process_iter(["cmdline"]):
                cmd = " ".join(p.info["cmdline"] or [])
                if "ray::" in cmd or "raylet" in cmd or "gcs_server" in cmd or "default_worker.py" in cmd:
                    procs.append(p)
        total, seen = 0, set()
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20

    def __enter__(self):
        def loop():
            while not self._stop.is_set():
                self.peak = max(self.peak, self._sample())
                time.sleep(0.5)

        self._t = threading.Thread(target=loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._sample())


class NoCheckpoints:
    """The notebook loop keeps nothing between epochs."""

    def latest(self):
        return None

    def save(self, local_dir, metrics):
        pass


def sequential(train, cfg, num_labels) -> float:
    """Plain loop in one process: embed (frozen) once, then K folds one after another."""
    import torch

    from hardmine.embed import load_encoder
    from hardmine.oof.folds import make_folds
    from hardmine.oof.loop import train_fold
    from hardmine.oof.runner import fold_data
    from hardmine.oof.settings import train_settings

    torch.set_num_threads(os.cpu_count() or 1)
    o = cfg.oof
    texts = train.column("text").to_pylist()
    y = train.column("label").to_numpy().astype(np.int64)
    fold = make_folds(y, o.folds, cfg.seed)
    x = load_encoder(o.model, max_length=o.max_length).encode(texts, o.embed_batch_size) if o.backbone == "frozen" else texts
    shared = {"x": x, "y": y, "test_x": None}
    base = train_settings(cfg, num_labels, threads=os.cpu_count() or 1)  # the settings hardmine's folds use
    probs = np.zeros((len(y), num_labels), dtype=np.float32)
    for k in range(o.folds):
        fcfg = dict(
            base, fold=k, data=fold_data(shared, np.flatnonzero(fold != k), np.flatnonzero(fold == k))
        )
        probs[fold == k] = train_fold(fcfg, NoCheckpoints(), log=lambda s: None)["val_probs"]
    return float((probs.argmax(1) == y).mean())


def run_backbone(name: str, data_path: str, rows: int | None, epochs: int, folds: int, work: Path, extra: list[str]) -> dict:
    import ray

    from hardmine.config import load_config
    from hardmine.data import load_split
    from hardmine.pipeline import run_all

    overrides = [
        f"name=bench-{name}", f"run_root={work}", f"data.path={data_path}", "data.label_column=category",
        "data.id_column=null", f"oof.backbone={name}", f"oof.folds={folds}", f"oof.epochs={epochs}",
        # the torch heads and the length these figures were measured with (the OOF benchmark measures Ray's overhead)
        "oof.model=packaged:minilm", "oof.head=linear", "oof.max_length=64",
    ] + extra
    cfg = load_config(None, overrides)
    train = load_split(data_path, cfg.data).table
    if rows and rows < train.num_rows:
        from sklearn.model_selection import train_test_split

        idx, _ = train_test_split(np.arange(train.num_rows), train_size=rows, random_state=0, stratify=train.column("label").to_numpy())
        train = train.take(np.sort(idx))
        sub = work / f"{name}-subset.parquet"
        import pyarrow.parquet as pq

        pq.write_table(train.rename_columns(["id", "text", "label_id", "category"]).drop(["label_id"]), sub)
        cfg = load_config(None, overrides + [f"data.path={sub}", "data.id_column=id"])
    num_labels = len(set(train.column("label").to_pylist()))
    labels_total = max(train.column("label").to_pylist()) + 1

    with PeakRSS(include_ray=False) as mem_seq:
        t0 = time.time()
        seq_acc = sequential(train, cfg, labels_total)
        seq_s = time.time() - t0
    with PeakRSS(include_ray=True) as mem_hm:
        t0 = time.time()
        store = run_all(cfg, log=lambda s: None, until="oof")  # data preparation + the OOF stage only
        hm_s = time.time() - t0
    ray.shutdown()
    summary = store.manifest()["stages"]["oof"]["summary"]
    return {
        "backbone": name, "rows": train.num_rows, "classes": num_labels, "folds": folds, "epochs": epochs,
        "hardmine_s": round(hm_s, 2), "sequential_s": round(seq_s, 2), "ratio": round(hm_s / seq_s, 3),
        "peak_rss_mb": round(mem_hm.peak, 1), "sequential_peak_rss_mb": round(mem_seq.peak, 1),
        "oof_accuracy": round(summary["accuracy"], 4), "sequential_oof_accuracy": round(seq_acc, 4),
        "runner": summary["runner"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="banking77 train.csv (text,category)")
    p.add_argument("--out", default="runs/bench/oof.json")
    p.add_argument("--backbones", default="frozen,finetune")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--frozen-rows", type=int, default=0, help="0 = all rows")
    p.add_argument("--frozen-epochs", type=int, default=8)
    p.add_argument("--finetune-rows", type=int, default=2000)
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--work", default=None, help="scratch run root (default: a temp dir)")
    args = p.parse_args()
    if not Path(args.data).exists():
        raise SystemExit(f"--data {args.data} not found (the benchmark data lives in ../shared/data)")
    # a fresh run root each time: nothing (embedding cache included) carries over between invocations
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hardmine-bench-", dir=args.work))
    results = []
    for name in args.backbones.split(","):
        rows = args.frozen_rows if name == "frozen" else args.finetune_rows
        epochs = args.frozen_epochs if name == "frozen" else args.finetune_epochs
        results.append(run_backbone(name, args.data, rows or None, epochs, args.folds, work, []))
        r = results[-1]
        print(f"{name}: hardmine {r['hardmine_s']}s vs sequential {r['sequential_s']}s (ratio {r['ratio']})", flush=True)

    cols = ["backbone", "rows", "folds", "epochs", "hardmine_s", "sequential_s", "ratio", "peak_rss_mb", "sequential_peak_rss_mb", "oof_accuracy", "sequential_oof_accuracy"]
    print(" | ".join(cols))
    for r in results:
        print(" | ".join(str(r[c]) for c in cols))
    out = {"machine": {"cpus": os.cpu_count()}, "backbones": {r["backbone"]: r for r in results}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
