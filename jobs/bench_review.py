"""Benchmark: do review rounds spent where hardmine's queue points make the next model better, and better than
the same effort spent on random rows or no reviewer at all (the queued rows dropped)?

    python jobs/bench_review.py --banking77 ../shared/data/banking77 --clinc150 ../shared/data/clinc150 \
        [--sizes 20,full] [--noise 0.1] [--noise-kind uniform] [--rounds 2] [--budget 0.05] [--seeds 5] \
        [--run-root runs/bench/review_work] [--out runs/bench/review.json]

A **simulated reviewer** stands in for the human: an oracle that writes each queued row's true label. It can only
exist where the true labels are known, so the training split gets ``--noise`` of its labels flipped (seeded; the test
split is untouched; jobs/bench_data.py): ``--noise-kind uniform`` to a uniformly drawn other class, ``confusion`` to
the class a clean TF-IDF model confuses the row with most (settings named ``<dataset>-<size>-confusion``). What it
measures is the queue and the loop, with a perfect annotator; real annotators make mistakes of their own.

Per setting (a dataset at full size or N training examples per class): the hardmine pipeline with its defaults up to
the score stage, then ``--rounds`` review rounds through the product's own commands -- round 1 ``hardmine review
export --budget B``, later rounds ``hardmine review next --budget B`` (it retrains the fold models on the newest
dataset version and leaves out the rows already reviewed); the reviewer fills ``corrected_label``; ``hardmine review
import`` writes the next version. ``B`` = ``--budget`` x training rows. After the last round the pipeline runs once
more, so that the review history holds the fold ensemble's held-out accuracy for every version.

Arms, retrained with evaluate's default retrain (frozen MiniLM + the logreg head) over ``--seeds`` seeds and scored on
the test split:

- ``baseline``: the labels as given (noisy): evaluate's ``before_review`` (dataset version 0);
- ``reviewed-r<k>``: the labels after round k; the last round's is ``reviewed`` (evaluate's reviewed arm);
- ``random-review`` (control): as many rows as all rounds reviewed, drawn uniformly per seed, corrected by the same
  oracle: the same effort without the queue's ranking;
- ``dropped`` (no reviewer): the rows round 1's ranking puts first, as many as all rounds reviewed, left out of
  training: what dropping suspected errors gives without a human;
- ``oracle``: every training label true: the most any review could give.

Per round: the queue's precision (share of queued rows whose given label was wrong), the noisy rows found so far
(recall), labels changed, and the fold ensemble's held-out accuracy on that version (``hardmine.review.versions.
review_history``). Statistics: hardmine.evaluate.compare -- paired bootstrap over test rows (seeds averaged within a
resample), McNemar against baseline; pairs ``reviewed - random-review``, ``reviewed - dropped``, ``oracle - reviewed``.
Resumable: the rounds already imported are not repeated, and the retrains are recorded per label set.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--banking77", help="folder with train.csv and test.csv (text,category)")
parser.add_argument("--clinc150", help="folder with data_full.json (in-scope intents are used)")
parser.add_argument("--out", default="runs/bench/review.json")
parser.add_argument("--run-root", default="runs/bench/review_work")
parser.add_argument("--sizes", default="20,full", help="comma list: full and/or training examples per class")
parser.add_argument("--noise", type=float, default=0.1, help="share of training labels flipped to another class")
parser.add_argument("--noise-kind", choices=("uniform", "confusion"), default="uniform",
                    help="uniform: to a uniformly drawn other class; confusion: to the class a clean TF-IDF model confuses the row with most")
parser.add_argument("--rounds", type=int, default=2, help="review rounds")
parser.add_argument("--budget", type=float, default=0.05, help="rows reviewed per round, as a share of the training rows")
parser.add_argument("--seeds", type=int, default=5, help="retrains per arm")
parser.add_argument("--bootstrap", type=int, default=1000)
parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
args = parser.parse_args()

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hardmine.config import deep_merge, from_dict, parse_overrides  # noqa: E402
from hardmine.evaluate import compare, evaluation_fingerprint, retrain_many  # noqa: E402
from hardmine.evaluate.opt_in import relabelled_set  # noqa: E402
from hardmine.pipeline import run_all  # noqa: E402
from hardmine.review.commands import export, import_corrections, next_batch  # noqa: E402
from hardmine.review.versions import record_version_metrics, review_history, version_table  # noqa: E402
from hardmine.store import RunStore  # noqa: E402

from bench_data import datasets, parse_sizes, per_class_subset, write_split  # noqa: E402

PAIRS = (("reviewed", "random-review"), ("reviewed", "dropped"), ("oracle", "reviewed"))
DROP_QUEUE = "bench_drop_candidates"


# ----------------------------------------------------------------------------- the simulated reviewer


def read_truth(path: str) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as f:
        return {r["id"]: r["true_label"] for r in csv.DictReader(f)}


def queue_ids(csv_path: str) -> list[str]:
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        return [r["id"] for r in csv.DictReader(f)]


def simulate_reviewer(queue_csv: str, truth: dict[str, str], out_csv: str) -> dict:
    """The oracle annotator: ``corrected_label`` = the row's true label for every queued row (a confirmation where the
    given label was right). Returns the queue's size and how many of its given labels were wrong."""
    with open(queue_csv, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {"queued": 0, "wrong_given": 0}
    for r in rows:
        r["corrected_label"] = truth[r["id"]]
    with open(out_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return {"queued": len(rows), "wrong_given": sum(r["given_label"] != truth[r["id"]] for r in rows)}


def review_rounds(cfg, store: RunStore, truth: dict[str, str], budget: int, rounds: int, n_noisy: int, log) -> list[dict]:
    """Run the review rounds not yet imported (the run's review history says how many were); returns one record per
    round: queued, wrong given labels among them (precision), labels changed, noisy rows found so far (recall)."""
    queues = Path(store.path("bench_review"))
    queues.mkdir(parents=True, exist_ok=True)
    done = [r for r in review_history(store) if r["kind"] == "review"]
    if not store.exists(f"review/{DROP_QUEUE}/{DROP_QUEUE}.csv"):  # the no-reviewer arm's rows: round 1's ranking, all rounds' effort
        export(cfg, queue="issues", fmt="csv", budget=budget * rounds, name=DROP_QUEUE, log=lambda s: None)
    for k in range(len(done) + 1, rounds + 1):
        t = time.time()
        if k == 1:
            files = export(cfg, queue="issues", fmt="csv", budget=budget, log=log)
        else:
            files = next_batch(cfg, fmt="csv", budget=budget, log=log)
        src = next(f for f in files if f.endswith(".csv"))
        answered = str(queues / f"round{k}.csv")
        stats = simulate_reviewer(src, truth, answered)
        import_corrections(cfg, answered, source=f"simulated-reviewer-round{k}", log=log)
        (queues / f"round{k}.json").write_text(json.dumps({**stats, "queue": src, "seconds": time.time() - t}))
    run_all(cfg, log=log, until="score")  # the newest version scored: its fold-ensemble accuracy joins the history
    record_version_metrics(store)
    out = []
    hist = {r["round"]: r for r in review_history(store)}
    found = 0
    for k in range(1, rounds + 1):
        stats = json.loads((queues / f"round{k}.json").read_text())
        found += stats["wrong_given"]
        h = hist.get(k, {})
        out.append({"round": k, "queued": stats["queued"], "wrong_given": stats["wrong_given"],
                    "precision": stats["wrong_given"] / stats["queued"] if stats["queued"] else None,
                    "changed": h.get("changed"), "found_so_far": found, "recall_so_far": found / n_noisy if n_noisy else None,
                    "version": h.get("version"),
                    "fold_ensemble_accuracy": h.get("fold_ensemble")})
    return out


# ----------------------------------------------------------------------------- arms


def labels_of(table) -> dict[str, int]:
    return dict(zip(table.column("id").to_pylist(), table.column("label").to_numpy().astype(np.int64).tolist()))


def training_sets(cfg, store: RunStore, truth: dict[str, str], rounds: list[dict], seeds: int) -> tuple[dict, dict]:
    """(arm, seed) -> training set, and per arm the label set's hash (a recorded retrain is reused only for the same labels)."""
    names = store.manifest()["labels"]
    ds = store.read_table("dataset.parquet")  # texts and ids (every version has the same rows); labels come from the sets
    before = labels_of(version_table(store, 0))
    true = {i: names.index(truth[i]) for i in before}
    label_sets: dict[str, dict[str, int] | list[dict[str, int]]] = {"baseline": before, "oracle": true}
    for r in rounds:
        after = labels_of(version_table(store, r["version"]))
        arm = "reviewed" if r["round"] == rounds[-1]["round"] else f"reviewed-r{r['round']}"
        label_sets[arm] = {i: after.get(i, lab) for i, lab in before.items()}
    n_reviewed = sum(r["queued"] for r in rounds)
    ids = sorted(before)
    picks = [np.random.default_rng([cfg.seed, 31, s]).choice(len(ids), n_reviewed, replace=False) for s in range(seeds)]
    label_sets["random-review"] = [dict(before, **{ids[j]: true[ids[j]] for j in p}) for p in picks]
    drop = set(queue_ids(store.path(f"review/{DROP_QUEUE}/{DROP_QUEUE}.csv")))
    label_sets["dropped"] = {i: lab for i, lab in before.items() if i not in drop}
    sets, digests = {}, {}
    for arm, labs in label_sets.items():
        per_seed = labs if isinstance(labs, list) else [labs] * seeds
        h = hashlib.sha256()
        for s, lab in enumerate(per_seed):
            sets[(arm, s)] = relabelled_set(ds, lab, arm, seed=cfg.seed * 1000 + s)
            h.update(json.dumps(sorted(lab.items())).encode())
        digests[arm] = h.hexdigest()[:16]
    return sets, digests


def retrain(cfg, store: RunStore, sets: dict, digests: dict, seeds: int, log):
    """Retrain the sets whose labels have no recorded runs yet (frozen = evaluate's default retrain); all runs as one table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    c = cfg.model_copy(deep=True)
    c.evaluate.backbone = "frozen"
    upstream = evaluation_fingerprint(c, store)
    name, meta_name = f"bench_review/runs_s{seeds}.parquet", f"bench_review/runs_s{seeds}.json"
    old = store.read_table(name) if store.exists(name) else None
    rec = store.read_json(meta_name).get("digests", {}) if store.exists(meta_name) else {}
    keep = [a for a, d in digests.items() if rec.get(a) == d and old is not None]
    todo = {k: v for k, v in sets.items() if k[0] not in keep}
    parts = [old.filter(pc.is_in(old.column("arm"), value_set=pa.array(keep)))] if keep else []
    t = time.time()
    if todo:
        log(f"  retraining {len(todo)} models ({len(todo) // seeds} arms x {seeds} seeds; frozen MiniLM + {c.oof.head} head)"
            + (f"; reusing {', '.join(keep)}" if keep else ""))
        tag = hashlib.sha256(json.dumps(sorted((a, digests[a]) for a, _ in todo)).encode()).hexdigest()[:8]
        parts.append(retrain_many(c, store, todo, store.read_table("dataset.parquet"), store.read_table("test.parquet"),
                                  len(store.manifest()["labels"]), fingerprint=f"bench-review-{upstream}-{tag}", log=log))
    runs = pa.concat_tables(parts)
    store.write_table(name, runs)
    store.write_json(meta_name, {"digests": digests, "seconds": time.time() - t})
    return runs


def arm_order(arm: str) -> tuple:
    """baseline, reviewed-r1 .. reviewed, random-review, dropped, oracle."""
    if arm.startswith("reviewed-r"):
        return (1, int(arm[len("reviewed-r"):]))
    return ({"baseline": 0, "reviewed": 2, "random-review": 3, "dropped": 4, "oracle": 5}.get(arm, 6), 0)


def summarize(runs, store: RunStore, cfg) -> dict:
    test = store.read_table("test.parquet")
    summ = compare(runs, test.column("label").to_numpy(), num_labels=len(store.manifest()["labels"]),
                   resamples=args.bootstrap, confidence=0.95, seed=cfg.seed, pairs=PAIRS)
    arms = {}
    for a, r in sorted(summ["arms"].items(), key=lambda kv: arm_order(kv[0])):
        d = r.get("vs_baseline")
        arms[a] = {"accuracy": r["accuracy"]["mean"], "accuracy_ci": [r["accuracy"]["lo"], r["accuracy"]["hi"]],
                   "delta_vs_baseline": d["accuracy"]["mean"] if d else 0.0, "ci_low": d["accuracy"]["lo"] if d else 0.0,
                   "ci_high": d["accuracy"]["hi"] if d else 0.0, "verdict": d["accuracy"]["verdict"] if d else "reference",
                   "mcnemar_p": d["mcnemar"]["p_value"] if d else None, "train_rows": r.get("train_rows"), "n_seeds": r["n_seeds"]}
    pairs = {n: {"delta": p["accuracy"]["mean"], "ci_low": p["accuracy"]["lo"], "ci_high": p["accuracy"]["hi"],
                 "verdict": p["accuracy"]["verdict"], "mcnemar_p": p["mcnemar"]["p_value"]} for n, p in summ["pairs"].items()}
    return {"arms": arms, "pairs": pairs, "notes": summ["notes"]}


# ----------------------------------------------------------------------------- one setting


def setting_tag(dataset: str, size: str) -> str:
    """The setting's name (its run directory is review-<tag>): <dataset>-<size>, plus -confusion for confusable noise."""
    return f"{dataset}-{size}" + ("" if args.noise_kind == "uniform" else f"-{args.noise_kind}")


def bench(dataset: str, size: str, train: list, test: list, log) -> dict:
    t0 = time.time()
    root = Path(args.run_root)
    if size != "full":
        train = per_class_subset(train, int(size), seed=0)
    tag = setting_tag(dataset, size)
    split = write_split(tag, train, test, root, args.noise, kind=args.noise_kind)
    cfg = from_dict(deep_merge({"name": f"review-{tag}", "run_root": str(root), "data": split["data"]},
                               parse_overrides(["sweep.enabled=false", *args.overrides])))
    budget = max(1, int(round(args.budget * split["n_train"])))
    log(f"== {tag}: {split['n_train']} training rows ({split['n_noisy']} labels flipped), {split['n_test']} test rows, "
        f"{len(split['data']['labels'])} classes; {args.rounds} review rounds of {budget} rows")
    store = run_all(cfg, log=log, until="score")
    record_version_metrics(store)
    timings = {"pipeline_to_score": time.time() - t0}
    t = time.time()
    truth = read_truth(split["data"]["truth_path"])
    rounds = review_rounds(cfg, store, truth, budget, args.rounds, split["n_noisy"], log)
    timings["review_rounds"] = time.time() - t
    for r in rounds:
        log(f"  round {r['round']}: {r['queued']} rows queued, {r['wrong_given']} of them mislabelled "
            f"(precision {r['precision']:.2f}); {r['found_so_far']} of {split['n_noisy']} flipped labels found so far")
    t = time.time()
    sets, digests = training_sets(cfg, store, truth, rounds, args.seeds)
    runs = retrain(cfg, store, sets, digests, args.seeds, log)
    timings["retrain"] = time.time() - t
    res = summarize(runs, store, cfg)
    log(table(tag, res))
    hist = review_history(store)
    return {
        "dataset": dataset, "size": size,
        "rows": {"train": split["n_train"], "test": split["n_test"], "classes": len(split["data"]["labels"]), "n_noisy": split["n_noisy"]},
        "noise": args.noise, "noise_kind": args.noise_kind, "budget_per_round": budget, "rounds": rounds,
        "fold_ensemble_accuracy_v0": hist[0].get("fold_ensemble") if hist else None,
        "oof": {k: store.manifest()["stages"]["oof"]["summary"].get(k) for k in ("accuracy", "log_loss", "ece")},
        "retrain": {"backbone": "frozen", "head": cfg.oof.head, "seeds": args.seeds},
        **res,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }


def pct(x):
    return "-" if x is None else f"{100 * x:+.2f}"


def table(tag: str, r: dict) -> str:
    lines = [f"{tag:<16} {'arm':<16} {'acc %':>7} {'vs baseline [95% CI]':<26} {'McNemar p':>9}"]
    for a, v in r["arms"].items():
        ci = "" if a == "baseline" else f"{pct(v['delta_vs_baseline'])} [{pct(v['ci_low'])}, {pct(v['ci_high'])}]"
        p = "" if v["mcnemar_p"] is None else f"{v['mcnemar_p']:.3g}"
        lines.append(f"{tag:<16} {a:<16} {100 * v['accuracy']:>7.2f} {ci:<26} {p:>9}")
    for n, v in r["pairs"].items():
        lines.append(f"{tag:<16} {n:<33} {pct(v['delta'])} [{pct(v['ci_low'])}, {pct(v['ci_high'])}]  McNemar p {v['mcnemar_p']:.3g}")
    return "\n".join(lines)


def main() -> int:
    if not 0 < args.noise < 1:
        print(f"--noise {args.noise}: the simulated reviewer needs flipped labels to find: give a share in (0, 1)", file=sys.stderr)
        return 2
    if args.rounds < 1 or not 0 < args.budget < 1:
        print("--rounds must be >= 1 and --budget a share of the training rows in (0, 1)", file=sys.stderr)
        return 2
    todo = datasets(args.banking77, args.clinc150)
    if not todo:
        print("nothing to run: pass --banking77 and/or --clinc150 with the dataset folders", file=sys.stderr)
        return 2
    try:
        sizes = parse_sizes(args.sizes)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    log = lambda s: print(s, flush=True)  # noqa: E731
    out = Path(args.out)
    results = json.loads(out.read_text()).get("settings", {}) if out.exists() else {}
    for size in sizes:
        for name, path, loader in todo:
            train, test = loader(path)
            results[setting_tag(name, size)] = bench(name, size, train, test, log)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"settings": results, "args": vars(args)}, indent=2, default=float))
    print()
    for tag, r in results.items():
        print(table(tag, r))
    print("vs baseline (the labels as given): paired bootstrap over test rows (seeds averaged), 95% interval; McNemar exact p")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
