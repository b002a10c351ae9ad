"""Benchmark: does hardmine's default OOF ensemble find injected label errors better than plain baselines?

    python jobs/bench_detect.py --banking77 ../shared/data/banking77 --clinc150 ../shared/data/clinc150 \
        --nsmc ../shared/data/nsmc [--out runs/bench/detect.json] [--rates 0.05,0.1,0.2] \
        [--noise uniform,confusion] [--nsmc-rows 20000] [--limit N] [--set key=value ...]

(run from the repository root with hardmine installed, or with PYTHONPATH=.)

Data: banking77 train.csv (all 10,003 rows), clinc150 data_full.json "train" (15,000 rows,
in-scope intents only), NSMC ratings_train.txt (a seeded stratified subset of --nsmc-rows rows).
A missing path skips that dataset with a message. --limit N subsamples every dataset
(stratified, seeded, at least 6 rows per class) for smoke runs.

Noise, injected with a fixed seed and kept as truth, at each rate of --rates:
- uniform: a share `rate` of the rows gets a label drawn uniformly from the other classes;
- confusion: a clean model (TF-IDF + LogisticRegression, 5-fold cross_val_predict on the CLEAN
  labels, fitted once per dataset) gives each row the class it is most confused with (its most
  likely class other than the true one); `rate` of the rows are flipped to that class, chosen
  with probability proportional to that confusion probability (seeded, without replacement):
  people mislabel confusable rows.
No class is flipped below 5 given rows (hardmine's 5 folds need them); this only matters
on --limit subsets and the rows skipped for it are counted in `n_protected`.

Methods, each scored against the injected truth:
- hardmine_default: hardmine's pipeline with its DEFAULT config (plus any --set) up to the
  score stage (prepare -> oof -> score);
- member_<name>: each ensemble member alone (its out-of-fold probabilities from oof.parquet),
  label issues from the same hardmine.scoring.score_table call the score stage makes;
- baseline_tfidf_lr: what a practitioner writes in ten lines: TfidfVectorizer + LogisticRegression,
  5-fold out-of-fold predict_proba, cleanlab.filter.find_label_issues with cleanlab's defaults;
- baseline_embed_lr: LogisticRegression on the same frozen embeddings hardmine used, same folds
  and cleanlab defaults.

Metrics: oof_accuracy (against the given, noisy labels), oof_accuracy_true (against the clean
labels), ece (15 equal-width bins) and log_loss (noisy labels), precision / recall / f1 of
is_label_issue against the injected errors, n_flagged, recall_at_budget (recall among the N rows
with the lowest label-quality score, N = number of injected errors) and seconds.
Target: hardmine_default's recall_at_budget above both baselines' in every setting.

Other signals (hardmine_default's scores.parquet, issue 16): recall at the same budget when the
review queue is ranked by label_quality alone, by the dual model's error_risk, and by their
combination (mean of the two ranks); with --dup-rate, a separate run per dataset with
conflicting duplicates injected on purpose (seeded copies of rows given another label) and the
recall / precision of is_conflicting_duplicate; with --outlier-rows N, kNN outlier scoring of N
NSMC rows (embeddings precomputed and cached) in a fresh process: outlier_seconds and
outlier_peak_rss_mb (target: under 2 minutes and 4 GB). --reuse keeps each setting's run
directory, so only stages whose config changed re-run (their seconds then cover only those).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import ray

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--banking77", help="folder with train.csv (text,category)")
parser.add_argument("--clinc150", help="folder with data_full.json (the in-scope train split is used)")
parser.add_argument("--nsmc", help="folder with ratings_train.txt (or the file itself)")
parser.add_argument("--out", default="runs/bench/detect.json")
parser.add_argument("--work", default="runs/bench/detect_work", help="data files, hardmine runs and caches")
parser.add_argument("--rates", default="0.05,0.1,0.2", help="noise rates, comma-separated")
parser.add_argument("--noise", default="uniform,confusion", help="noise kinds, comma-separated: uniform, confusion")
parser.add_argument("--nsmc-rows", type=int, default=20000, help="stratified NSMC subset")
parser.add_argument("--limit", type=int, default=0, help="subsample every dataset to about N rows (smoke runs; 0: all)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--signals-only", action="store_true",
                    help="hardmine_default and its other signals only (no members, baselines or ablations); use with --reuse and another --out")
parser.add_argument("--reuse", action="store_true", help="keep existing run directories (resume; seconds cover re-run stages only)")
parser.add_argument("--dup-rate", type=float, default=0.01, help="share of rows copied with another label in the duplicate run (0: skip)")
parser.add_argument("--outlier-rows", type=int, default=0, help="NSMC rows for the outlier-scoring scale test (0: skip; needs --nsmc)")
parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="hardmine config override, e.g. --set oof.backbones=[tfidf] (repeatable)")
args = parser.parse_args()

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import StratifiedKFold, cross_val_predict  # noqa: E402

import cleanlab.filter  # noqa: E402
import cleanlab.rank  # noqa: E402

from hardmine.config import load_config  # noqa: E402
from hardmine.embed import embeddings_from_table, load_encoder  # noqa: E402
from hardmine.oof.combine import combine, cross_fit_temperature, member_metrics  # noqa: E402
from hardmine.pipeline import run_all  # noqa: E402
from hardmine.runtime import connect  # noqa: E402
from hardmine.scoring import detection_metrics, score_table  # noqa: E402

from bench_data import FOLDS, inject_noise, tfidf_lr_oof  # noqa: E402

RATES = [float(r) for r in args.rates.split(",") if r.strip()]
NOISE = [k.strip() for k in args.noise.split(",") if k.strip()]
for kind in NOISE:
    if kind not in ("uniform", "confusion"):
        parser.error(f"--noise {kind!r}: choose uniform and/or confusion")
log = lambda s: print(s, flush=True)  # noqa: E731
hardmine_log = lambda s: print("    | " + s, flush=True)  # noqa: E731


# ----------------------------------------------------------------------------- data


def load_banking77(path: str) -> tuple[list[str], list[str]]:
    with open(Path(path) / "train.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def load_clinc150(path: str) -> tuple[list[str], list[str]]:
    d = json.loads((Path(path) / "data_full.json").read_text(encoding="utf-8"))
    return [t for t, _ in d["train"]], [lab for _, lab in d["train"]]  # "train" has no oos rows (those are "oos_train")


def load_nsmc(path: str) -> tuple[list[str], list[str]]:
    import pandas as pd

    p = Path(path)
    p = p / "ratings_train.txt" if p.is_dir() else p
    df = pd.read_csv(p, sep="\t", quoting=csv.QUOTE_NONE, dtype={"id": str, "document": str, "label": int})
    df = df[df["document"].notna() & (df["document"].fillna("").str.strip() != "")]
    texts = df["document"].tolist()
    labels = ["negative" if v == 0 else "positive" for v in df["label"]]
    return stratified_subset(texts, labels, args.nsmc_rows, args.seed)


def stratified_subset(texts: list[str], labels: list[str], n: int, seed: int) -> tuple[list[str], list[str]]:
    """About n rows with the class shares kept (at least 6 per class), seeded; original order."""
    if not n or n >= len(texts):
        return texts, labels
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_class.setdefault(lab, []).append(i)
    frac = n / len(texts)
    keep = []
    for idx in by_class.values():
        keep.extend(rng.choice(idx, min(len(idx), max(6, round(frac * len(idx)))), replace=False).tolist())
    keep.sort()
    return [texts[i] for i in keep], [labels[i] for i in keep]


# ----------------------------------------------------------------------------- the practitioner's embedding model


def embed_lr_oof(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """5-fold out-of-fold predict_proba of LogisticRegression on fixed embeddings."""
    cv = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=0)
    return cross_val_predict(LogisticRegression(max_iter=1000), x, y, cv=cv, method="predict_proba")


# ----------------------------------------------------------------------------- metrics


def method_metrics(probs, given, true, is_noisy, flagged, quality, seconds) -> dict:
    """Every metric of one method: probability quality and label-issue detection."""
    probs = np.asarray(probs, dtype=np.float64)
    m = member_metrics(probs, given)  # accuracy, log_loss, ece (15 equal-width bins) against the given labels
    det = detection_metrics(np.asarray(flagged, dtype=bool), is_noisy)
    budget = int(is_noisy.sum())
    lowest = np.argsort(np.asarray(quality), kind="stable")[:budget]
    return {
        "oof_accuracy": round(m["accuracy"], 4),
        "oof_accuracy_true": round(float((probs.argmax(axis=1) == true).mean()), 4),
        "ece": round(m["ece"], 4),
        "log_loss": round(m["log_loss"], 4),
        "precision": round(det["precision"], 4),
        "recall": round(det["recall"], 4),
        "f1": round(det["f1"], 4),
        "n_flagged": det["n_flagged"],
        "recall_at_budget": round(float(is_noisy[lowest].sum() / budget), 4) if budget else 0.0,
        "seconds": round(float(seconds), 2),
    }


def write_train_csv(path: Path, ids, texts, labels, names) -> None:
    """The data file hardmine reads: id, text, label name."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        for i, t, lab in zip(ids, texts, labels):
            w.writerow([i, t, names[lab]])


def recall_at(order: np.ndarray, is_noisy: np.ndarray) -> float:
    budget = int(is_noisy.sum())
    return round(float(is_noisy[order[:budget]].sum() / budget), 4) if budget else 0.0


def signal_recall(scores, s_order: np.ndarray, is_noisy: np.ndarray, store) -> dict:
    """Recall at budget of the review queue ranked by label_quality, error_risk, and both (mean rank)."""
    from scipy.stats import rankdata

    col = lambda c: scores.column(c).to_numpy(zero_copy_only=False)[s_order]  # noqa: E731
    lq = col("label_quality").astype(np.float64)
    out = {"recall_at_budget_label_quality": recall_at(np.argsort(lq, kind="stable"), is_noisy)}
    if scores.column("error_risk").null_count == 0:
        risk = col("error_risk").astype(np.float64)
        out["recall_at_budget_error_risk"] = recall_at(np.argsort(-risk, kind="stable"), is_noisy)
        both = (rankdata(lq) + rankdata(-risk)) / 2
        out["recall_at_budget_combined"] = recall_at(np.argsort(both, kind="stable"), is_noisy)
    sig = (store.manifest()["stages"]["score"]["summary"] or {})
    lqj = store.read_json("label_quality.json").get("signals", {})
    dual = lqj.get("dual_model") or {}
    out.update(dual_auc=dual.get("auc"), dual_top_features=[k for k, _ in sorted((dual.get("importances") or {}).items(), key=lambda kv: -kv[1])][:4],
               outliers_flagged=(lqj.get("outliers") or {}).get("flagged"),
               outlier_precision_noisy=round(float(is_noisy[col("is_outlier").astype(bool)].mean()), 4) if col("is_outlier").any() else None,
               conflicting_rows=(lqj.get("duplicates") or {}).get("conflicting_rows"), score_summary_keys=sorted(sig))
    return out


def duplicate_setting(dataset: str, texts: list[str], names: list[str], y: np.ndarray, ds_work: Path) -> dict:
    """Clean labels plus seeded conflicting copies: recall / precision of is_conflicting_duplicate."""
    rng = np.random.default_rng(args.seed + 17)
    n_dup = max(20, int(round(args.dup_rate * len(texts))))
    src = rng.choice(len(texts), n_dup, replace=False)
    other = (y[src] + rng.integers(1, len(names), n_dup)) % len(names)
    all_texts = list(texts) + [texts[i] for i in src]
    all_y = np.concatenate([y, other])
    ids = [f"r{i}" for i in range(len(texts))] + [f"dup{j}" for j in range(n_dup)]
    planted = np.zeros(len(all_texts), dtype=bool)
    planted[src] = True
    planted[len(texts):] = True
    tag = f"{dataset}-dup-{args.dup_rate:g}"
    d = ds_work / "data" / tag
    d.mkdir(parents=True, exist_ok=True)
    write_train_csv(d / "train.csv", ids, all_texts, all_y, names)
    base = {"name": tag, "run_root": str(ds_work / "runs"), "data": {"path": str(d / "train.csv"), "labels": names}}
    cfg = load_config(None, args.overrides, base=base)
    if not args.reuse:
        shutil.rmtree(cfg.run_dir, ignore_errors=True)
    t0 = time.perf_counter()
    store = run_all(cfg, log=hardmine_log, until="score")
    seconds = time.perf_counter() - t0
    scores = store.read_table("scores.parquet")
    pos = {i: n for n, i in enumerate(scores.column("id").to_pylist())}
    order = np.array([pos[i] for i in ids])
    flag = scores.column("is_conflicting_duplicate").to_numpy(zero_copy_only=False)[order].astype(bool)
    lq = scores.column("label_quality").to_numpy(zero_copy_only=False)[order]
    issue = scores.column("is_label_issue").to_numpy(zero_copy_only=False)[order].astype(bool)
    return {
        "dataset": dataset, "n_rows": len(all_texts), "n_copies": n_dup, "planted_rows": int(planted.sum()),
        "recall": round(float(flag[planted].mean()), 4),
        "precision": round(float(planted[flag].mean()), 4) if flag.any() else None,
        "flagged": int(flag.sum()), "flagged_not_planted": int((flag & ~planted).sum()),
        # the probabilities alone: how many planted rows cleanlab flags / the budget ranking finds
        "label_issue_recall": round(float(issue[planted].mean()), 4),
        "label_quality_recall_at_budget": recall_at(np.argsort(lq, kind="stable"), planted),
        "seconds": round(seconds, 1),
    }


OUTLIER_PROBE = """
import json, resource, sys, time
import numpy as np
from hardmine.neighbors import knn_scores, outlier_flags
x = np.load(sys.argv[1]); y = np.load(sys.argv[2])
t = time.perf_counter()
r = knn_scores(x, y, k=10)
f = outlier_flags(r["outlier_score"], quantile=0.01)
s = time.perf_counter() - t
print(json.dumps({"rows": int(len(x)), "dim": int(x.shape[1]), "outlier_seconds": round(s, 1), "flagged": int(f.sum()),
                  "outlier_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def outlier_scale(path: str, rows: int, ds_work: Path) -> dict:
    """kNN outlier scoring of ``rows`` NSMC texts, embeddings precomputed (cached), timed in a fresh process."""
    import subprocess

    import pandas as pd

    p = Path(path)
    p = p / "ratings_train.txt" if p.is_dir() else p
    df = pd.read_csv(p, sep="\t", quoting=csv.QUOTE_NONE, dtype={"id": str, "document": str, "label": int})
    df = df[df["document"].notna() & (df["document"].fillna("").str.strip() != "")].head(rows)
    texts, labels = df["document"].tolist(), df["label"].tolist()
    rows = len(texts)
    f_x, f_y = ds_work / f"nsmc-{rows}-minilm-64.npy", ds_work / f"nsmc-{rows}-labels.npy"
    if not f_x.exists():
        t0 = time.perf_counter()
        np.save(f_x, load_encoder("packaged:minilm", max_length=64).encode(texts).astype(np.float32))
        log(f"  embedded {rows} NSMC texts in {time.perf_counter() - t0:.0f}s -> {f_x} (not part of the timing)")
    np.save(f_y, np.array([int(v) for v in labels]))
    res = subprocess.run([sys.executable, "-c", OUTLIER_PROBE, str(f_x), str(f_y)], capture_output=True, text=True, check=True)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    r["target_met"] = bool(r["outlier_seconds"] < 120 and r["outlier_peak_rss_mb"] < 4096)
    r["embeddings"] = "packaged:minilm, max_length 64, computed once by this script (not timed)"
    return r


def close(a: float, b: float, tol: float = 1e-4) -> bool:
    return abs(float(a) - float(b)) <= tol


# ----------------------------------------------------------------------------- one dataset x noise x rate


def run_setting(dataset: str, texts: list[str], names: list[str], y: np.ndarray, noisy: np.ndarray, tag: str,
                ds_work: Path, embed_cache: dict) -> tuple[dict, dict, list[str], object]:
    """hardmine_default, its members and both baselines on one noisy labelling: (methods, extra info, warnings, config)."""
    is_noisy = noisy != y
    ids = [f"r{i}" for i in range(len(texts))]
    korean = dataset == "nsmc"
    warnings: list[str] = []

    # --- the inputs hardmine reads: data (id,text,label) and the injected truth (id,true_label,is_noisy)
    d = ds_work / "data" / tag
    d.mkdir(parents=True, exist_ok=True)
    write_train_csv(d / "train.csv", ids, texts, noisy, names)
    with open(d / "truth.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "true_label", "is_noisy"])
        for i, lab, bad in zip(ids, y, is_noisy):
            w.writerow([i, names[lab], "true" if bad else "false"])

    # --- hardmine_default: the pipeline up to the score stage, default config (+ --set)
    run_root = ds_work / "runs"  # one run_root per dataset: the frozen embeddings are cached once under _cache
    base = {"name": tag, "run_root": str(run_root),
            "data": {"path": str(d / "train.csv"), "truth_path": str(d / "truth.csv"), "labels": names}}
    cfg = load_config(None, args.overrides, base=base)
    if not args.reuse:
        shutil.rmtree(cfg.run_dir, ignore_errors=True)  # a fresh run: seconds are real work, not skipped stages
    connect(cfg, hardmine_log)  # a no-op once Ray is up: one Ray session for the whole script
    t0 = time.perf_counter()
    store = run_all(cfg, log=hardmine_log, until="score")
    hm_seconds = time.perf_counter() - t0

    oof_t = store.read_table("oof.parquet")
    scores = store.read_table("scores.parquet")
    summary = store.manifest()["stages"]["oof"]["summary"]
    oof_ids = oof_t.column("id").to_pylist()
    pos = {i: n for n, i in enumerate(ids)}
    order = np.array([pos[i] for i in oof_ids])  # oof row -> our row
    y_o, noisy_o, is_noisy_o = y[order], noisy[order], is_noisy[order]
    probs = np.asarray(oof_t.column("probs").to_pylist(), dtype=np.float64)
    s_pos = {i: n for n, i in enumerate(scores.column("id").to_pylist())}
    s_order = np.array([s_pos[i] for i in oof_ids])  # oof row -> scores row
    flagged = scores.column("is_label_issue").to_numpy(zero_copy_only=False)[s_order]
    quality = scores.column("label_quality").to_numpy(zero_copy_only=False)[s_order]
    methods = {"hardmine_default": method_metrics(probs, noisy_o, y_o, is_noisy_o, flagged, quality, hm_seconds)}
    methods["hardmine_default"]["signals"] = signal_recall(scores, s_order, is_noisy_o, store)
    if args.signals_only:
        return methods, {"run_dir": cfg.run_dir, "signals_only": True}, warnings, cfg

    # consistency checks of hardmine's outputs (reported, not fatal)
    mine = methods["hardmine_default"]
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        warnings.append(f"oof.parquet probs rows do not sum to 1 (range {probs.sum(axis=1).min():.4f}..{probs.sum(axis=1).max():.4f})")
    for key in ("accuracy", "log_loss", "ece"):
        if not close(summary[key], mine["oof_accuracy" if key == "accuracy" else key], 1e-3):
            warnings.append(f"manifest oof summary {key}={summary[key]:.4f} but oof.parquet probs give {mine['oof_accuracy' if key == 'accuracy' else key]:.4f}")
    expect_q = cleanlab.rank.get_label_quality_scores(noisy_o, probs, method=cfg.score.rank_by)
    if not np.allclose(quality, expect_q, atol=1e-4):
        warnings.append(f"scores.parquet label_quality differs from cleanlab get_label_quality_scores(method={cfg.score.rank_by}) "
                        f"by up to {np.abs(quality - expect_q).max():.4g}")
    det = store.manifest()["stages"]["score"]["summary"].get("detection") or {}
    if det and not (close(det["precision"], mine["precision"]) and close(det["recall"], mine["recall"])):
        warnings.append(f"score summary detection P/R {det['precision']:.4f}/{det['recall']:.4f} but scores.parquet vs our truth gives "
                        f"{mine['precision']:.4f}/{mine['recall']:.4f}")

    # --- ablations on the same out-of-fold probabilities (no retraining): the defaults they choose
    # are score.rank_by, oof.calibration and oof.combine
    ablation: dict = {"rank_by": {}}
    for method in ("self_confidence", "normalized_margin", "confidence_weighted_entropy"):
        q = cleanlab.rank.get_label_quality_scores(noisy_o, probs, method=method)
        ablation["rank_by"][method] = round(float(is_noisy_o[np.argsort(q, kind="stable")[:int(is_noisy_o.sum())]].mean()), 4)
    fold_o = np.asarray(oof_t.column("fold").to_pylist())
    variants = {}
    if cfg.oof.calibration == "none":
        variants["calibration_temperature"] = cross_fit_temperature(probs, noisy_o, fold_o)[0]
    member_cols = [f"probs_{b}" for b in summary.get("backbones", []) if f"probs_{b}" in oof_t.column_names]
    if len(member_cols) > 1 and cfg.oof.combine != "equal":
        variants["combine_equal"] = combine([np.asarray(oof_t.column(c).to_pylist()) for c in member_cols], np.full(len(member_cols), 1 / len(member_cols)))
    for name, p_v in variants.items():
        t_v, _ = score_table(oof_ids, noisy_o, p_v, label_names=names, filter_by=cfg.score.filter_by, rank_by=cfg.score.rank_by)
        ablation[name] = method_metrics(p_v, noisy_o, y_o, is_noisy_o, t_v.column("is_label_issue").to_numpy(zero_copy_only=False),
                                        t_v.column("label_quality").to_numpy(zero_copy_only=False), 0.0)

    # --- member_<name>: each ensemble member alone, the score stage's cleanlab call on its probabilities
    backbones = list(summary.get("backbones") or cfg.oof.backbones)
    for b in backbones:
        col = f"probs_{b}"
        if col in oof_t.column_names:
            p_b = np.asarray(oof_t.column(col).to_pylist(), dtype=np.float64)
        else:  # a one-member ensemble has no probs_<member> column: its member file holds the same probabilities
            if len(backbones) > 1:
                warnings.append(f"oof.parquet has no {col} column although the ensemble has {len(backbones)} members")
            mt = store.read_table(f"oof/{b}.parquet")
            m_pos = {i: n for n, i in enumerate(mt.column("id").to_pylist())}
            p_b = np.asarray(mt.column("probs").to_pylist(), dtype=np.float64)[[m_pos[i] for i in oof_ids]]
        table_b, _ = score_table(oof_ids, noisy_o, p_b, label_names=names, filter_by=cfg.score.filter_by, rank_by=cfg.score.rank_by)
        member = summary["members"][b]
        methods[f"member_{b}"] = method_metrics(
            p_b, noisy_o, y_o, is_noisy_o, table_b.column("is_label_issue").to_numpy(zero_copy_only=False),
            table_b.column("label_quality").to_numpy(zero_copy_only=False), member["seconds"],
        )
        for key in ("accuracy", "log_loss", "ece"):
            ours = methods[f"member_{b}"]["oof_accuracy" if key == "accuracy" else key]
            if key in member and not close(member[key], ours, 1e-3):
                warnings.append(f"manifest members.{b}.{key}={member[key]:.4f} but its probabilities give {ours:.4f}")

    # --- baseline_tfidf_lr: the practitioner's ten lines, cleanlab defaults
    t0 = time.perf_counter()
    p_tfidf = tfidf_lr_oof(texts, noisy, korean)
    issues = cleanlab.filter.find_label_issues(noisy, p_tfidf)
    q_tfidf = cleanlab.rank.get_label_quality_scores(noisy, p_tfidf)
    methods["baseline_tfidf_lr"] = method_metrics(p_tfidf, noisy, y, is_noisy, issues, q_tfidf, time.perf_counter() - t0)

    # --- baseline_embed_lr: LogisticRegression on the frozen embeddings hardmine used
    if store.exists("embeddings.parquet"):
        et = store.read_table("embeddings.parquet")
        e_pos = {i: n for n, i in enumerate(et.column("id").to_pylist())}
        x = embeddings_from_table(et)[[e_pos[i] for i in ids]]
        embed_source = f"{cfg.oof.model} via hardmine's embeddings.parquet (max_length {summary.get('max_length')})"
    else:  # no frozen member in this config: packaged MiniLM, computed once per dataset
        if "x" not in embed_cache:
            f_npy = ds_work / "embeddings-minilm-128.npy"
            if not f_npy.exists():
                t_e = time.perf_counter()
                np.save(f_npy, load_encoder("packaged:minilm", max_length=128).encode(texts))
                log(f"  embedded {len(texts)} texts with packaged:minilm in {time.perf_counter() - t_e:.1f}s -> {f_npy}")
            embed_cache["x"] = np.load(f_npy)
        x = embed_cache["x"]
        embed_source = "packaged:minilm (max_length 128), computed by this script"
    t0 = time.perf_counter()
    p_embed = embed_lr_oof(x, noisy)
    issues = cleanlab.filter.find_label_issues(noisy, p_embed)
    q_embed = cleanlab.rank.get_label_quality_scores(noisy, p_embed)
    methods["baseline_embed_lr"] = method_metrics(p_embed, noisy, y, is_noisy, issues, q_embed, time.perf_counter() - t0)

    extra = {
        "run_dir": cfg.run_dir,
        "backbones": backbones,
        "weights": summary.get("weights"),
        "max_length": summary.get("max_length"),
        "member_timings": {b: {k: summary["members"][b].get(k) for k in ("seconds", "embed_seconds", "train_seconds") if k in summary["members"][b]}
                           for b in backbones},
        "embeddings": embed_source,
        "ablation": ablation,
    }
    return methods, extra, warnings, cfg


# ----------------------------------------------------------------------------- main

LOADERS = {"banking77": load_banking77, "clinc150": load_clinc150, "nsmc": load_nsmc}
todo = []
for name in LOADERS:
    path = getattr(args, name)
    if not path:
        log(f"skip {name}: no --{name} path given")
    elif not Path(path).exists():
        log(f"skip {name}: {path} does not exist (the benchmark data lives in ../shared/data/{name})")
    else:
        todo.append((name, path))
if not todo:
    print("nothing to run: pass --banking77, --clinc150 and/or --nsmc with the dataset folders", file=sys.stderr)
    sys.exit(2)

work = Path(args.work)
set_tag = "" if not args.overrides else "-set" + hashlib.sha256(json.dumps(args.overrides).encode()).hexdigest()[:8]
out = {
    "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                "loadavg_start": list(os.getloadavg())},
    "config": None,
    "overrides": args.overrides,
    "args": {"rates": RATES, "noise": NOISE, "nsmc_rows": args.nsmc_rows, "limit": args.limit, "seed": args.seed},
    "results": [],
    "warnings": [],
    "targets": {},
}
ray_sessions = set()
t_start = time.perf_counter()


def write_json() -> None:
    target = Path(args.out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(out, indent=2, default=float) + "\n")
    os.replace(tmp, target)


for dataset, path in todo:
    texts, label_names = LOADERS[dataset](path)
    texts, label_names = stratified_subset(texts, label_names, args.limit, args.seed)
    names = sorted(set(label_names))
    index = {n: i for i, n in enumerate(names)}
    y = np.array([index[n] for n in label_names], dtype=np.int64)
    ds_work = work / (dataset + (f"-limit{args.limit}" if args.limit else ""))
    ds_work.mkdir(parents=True, exist_ok=True)
    log(f"== {dataset}: {len(texts)} rows, {len(names)} classes (work dir {ds_work})")

    clean_probs = None
    if "confusion" in NOISE:  # the clean model, fitted once per dataset on the CLEAN labels
        t0 = time.perf_counter()
        clean_probs = tfidf_lr_oof(texts, y, korean=dataset == "nsmc")
        log(f"  clean TF-IDF model: out-of-fold accuracy {(clean_probs.argmax(axis=1) == y).mean():.4f} "
            f"({time.perf_counter() - t0:.1f}s)")

    embed_cache: dict = {}
    for kind in NOISE:
        for rate in RATES:
            tag = f"{dataset}-{kind}-{round(rate * 100)}{set_tag}"
            noisy, protected = inject_noise(y, len(names), rate, kind, clean_probs, seed=args.seed + round(rate * 1000))
            n_injected = int((noisy != y).sum())
            log(f"-- {tag}: {n_injected} labels flipped ({kind}, rate {rate})" + (f", {protected} rows protected" if protected else ""))
            methods, extra, warnings, cfg = run_setting(dataset, texts, names, y, noisy, tag, ds_work, embed_cache)
            ray_sessions.add(ray.get_runtime_context().gcs_address)
            if out["config"] is None:
                out["config"] = {"oof": cfg.oof.model_dump(mode="json"), "score": cfg.score.model_dump(mode="json")}
            for w in warnings:
                log(f"  WARNING {tag}: {w}")
            out["warnings"].extend(f"{tag}: {w}" for w in warnings)
            out["results"].append({
                "dataset": dataset, "noise": kind, "rate": rate, "n_rows": len(texts), "n_classes": len(names),
                "n_injected": n_injected, "n_protected": protected, **extra, "methods": methods,
            })
            for m, r in methods.items():
                log(f"  {m:<18} acc {r['oof_accuracy']:.3f}  P {r['precision']:.3f}  R {r['recall']:.3f}  "
                    f"F1 {r['f1']:.3f}  R@budget {r['recall_at_budget']:.3f}  {r['seconds']:.1f}s")
            write_json()
    if args.dup_rate > 0:
        log(f"-- {dataset}: conflicting duplicates injected ({args.dup_rate:g} of the rows copied with another label)")
        out.setdefault("duplicates", []).append(duplicate_setting(dataset, texts, names, y, ds_work))
        log(f"  {out['duplicates'][-1]}")
        write_json()

if args.outlier_rows and args.nsmc:
    log(f"== outlier scoring scale: {args.outlier_rows} NSMC rows")
    out["outlier_scale"] = outlier_scale(args.nsmc, args.outlier_rows, work / "nsmc-scale")
    log(f"  {out['outlier_scale']}")
    write_json()

# ----------------------------------------------------------------------------- targets, tables, JSON

targets = {}
for r in out["results"]:
    m = r["methods"]
    key = f"{r['dataset']}/{r['noise']}/{r['rate']}"
    if "baseline_tfidf_lr" not in m:  # --signals-only
        continue
    targets[key] = bool(m["hardmine_default"]["recall_at_budget"] > m["baseline_tfidf_lr"]["recall_at_budget"]
                        and m["hardmine_default"]["recall_at_budget"] > m["baseline_embed_lr"]["recall_at_budget"])
out["targets"] = {"recall_at_budget_default_above_both_baselines": targets, "all": bool(targets) and all(targets.values())}
out["machine"]["ray_sessions"] = len(ray_sessions)
out["machine"]["loadavg_end"] = list(os.getloadavg())
out["seconds"] = round(time.perf_counter() - t_start, 1)

print()
for dataset in dict.fromkeys(r["dataset"] for r in out["results"]):
    rows = [r for r in out["results"] if r["dataset"] == dataset]
    print(f"[{dataset}] {rows[0]['n_rows']} rows, {rows[0]['n_classes']} classes")
    print(f"  {'noise/rate':<15} {'method':<18} {'oof_acc':>7} {'acc_true':>8} {'ece':>6} {'P':>6} {'R':>6} {'F1':>6} "
          f"{'R@budget':>8} {'flagged':>7} {'injected':>8} {'seconds':>8}")
    for r in rows:
        for m, v in r["methods"].items():
            print(f"  {r['noise'] + '/' + format(r['rate'], 'g'):<15} {m:<18} {v['oof_accuracy']:>7.3f} {v['oof_accuracy_true']:>8.3f} "
                  f"{v['ece']:>6.3f} {v['precision']:>6.3f} {v['recall']:>6.3f} {v['f1']:>6.3f} {v['recall_at_budget']:>8.3f} "
                  f"{v['n_flagged']:>7} {r['n_injected']:>8} {v['seconds']:>8.1f}")
    print()
print("ablations on hardmine_default's probabilities (recall@budget by score.rank_by; F1 / R@budget / ECE of the variants)")
for r in out["results"]:
    a = r.get("ablation") or {}
    line = f"  {r['dataset'] + '/' + r['noise'] + '/' + format(r['rate'], 'g'):<24} " + "  ".join(f"{k} {v:.3f}" for k, v in a.get("rank_by", {}).items())
    for name in ("calibration_temperature", "combine_equal"):
        if name in a:
            line += f"  | {name}: F1 {a[name]['f1']:.3f} R@b {a[name]['recall_at_budget']:.3f} ECE {a[name]['ece']:.3f}"
    print(line)
print()
print("review queue ranking (recall at budget, hardmine_default's scores): label_quality / error_risk / combined; dual-model AUC")
for r in out["results"]:
    g = r["methods"]["hardmine_default"].get("signals") or {}
    print(f"  {r['dataset'] + '/' + r['noise'] + '/' + format(r['rate'], 'g'):<24} {g.get('recall_at_budget_label_quality', float('nan')):.3f} / "
          f"{g.get('recall_at_budget_error_risk', float('nan')):.3f} / {g.get('recall_at_budget_combined', float('nan')):.3f}; "
          f"AUC {g.get('dual_auc') or float('nan'):.3f}; top features {g.get('dual_top_features')}")
for d in out.get("duplicates", []):
    print(f"  conflicting duplicates {d['dataset']}: {d['n_copies']} copies planted; recall {d['recall']:.3f}, precision "
          f"{d['precision']}, label-issue recall {d['label_issue_recall']:.3f}")
if out.get("outlier_scale"):
    o = out["outlier_scale"]
    print(f"  outlier scoring {o['rows']} x {o['dim']}: {o['outlier_seconds']} s, peak RSS {o['outlier_peak_rss_mb']} MB "
          f"(target < 120 s, < 4096 MB: {'met' if o['target_met'] else 'NOT met'})")
print()
met = sum(targets.values())
print(f"target (hardmine_default recall@budget above both baselines): met in {met} of {len(targets)} settings"
      f" -> {'MET' if out['targets']['all'] else 'NOT met'}" + ("" if out["targets"]["all"] else
      f" (not met: {', '.join(k for k, v in targets.items() if not v)})"))
if out["warnings"]:
    print(f"{len(out['warnings'])} consistency warning(s) about hardmine's outputs: see 'warnings' in the JSON")
print(f"Ray sessions used: {len(ray_sessions)}; total {out['seconds']} s")
write_json()
print(f"wrote {args.out}")
