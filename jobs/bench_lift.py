"""Benchmark: does augmenting the hard samples make the model better on data it has never seen?

    python jobs/bench_lift.py --banking77 ../shared/data/banking77 --clinc150 ../shared/data/clinc150 \
        [--sizes full,20,10] [--seeds 5] [--arms ARM,...] [--finetune-sizes 20,10] [--finetune-seeds 3] \
        [--out runs/bench/lift.json] [--noise 0.0] [--set KEY.PATH=VALUE ...]

    # hard-example emphasis only (baseline, the two hard_weighted arms and their control; frozen backbone):
    python jobs/bench_lift.py --banking77 ../shared/data/banking77 --clinc150 ../shared/data/clinc150 \
        --sizes full,20 --seeds 5 --finetune-sizes '' \
        --arms baseline,hard_weighted,hard_weighted-oversample,hard_weighted-shuffled \
        --run-root runs/bench/lift_hard_work --out runs/bench/lift_hard.json

    # issue 17's arms at 20 per class: self_training (frozen, both datasets); hard_weighted,
    # adversarial (FGM) and self_training with the finetune backbone on banking77:
    python jobs/bench_lift.py --banking77 ../shared/data/banking77 --clinc150 ../shared/data/clinc150 \
        --sizes 20 --seeds 5 --arms baseline,self_training --finetune-sizes 20 --finetune-datasets banking77 \
        --finetune-seeds 5 --finetune-epochs 3 --finetune-arms baseline,hard_weighted,adversarial \
        --run-root runs/bench/lift_hard_work --out runs/bench/lift_mined.json

    # OHEM and self_training with the finetune backbone on banking77 (baseline reused from the run above); then the
    # under-training control, the baseline alone at 5 epochs (--finetune-seeds 3 --finetune-epochs 5 --finetune-arms baseline):
    python jobs/bench_lift.py --banking77 ../shared/data/banking77 --sizes 20 --arms baseline --finetune-sizes 20 \
        --finetune-datasets banking77 --finetune-seeds 5 --finetune-epochs 3 \
        --finetune-arms baseline,hard_weighted-ohem,self_training \
        --run-root runs/bench/lift_hard_work --out runs/bench/lift_mined_ft.json

Settings: each dataset at full size and at N training examples per class (seeded subsets drawn
once with seed 0; the test split is untouched and never read by mining). For each setting the
hardmine pipeline runs with its defaults up to the augment stage (OOF ensemble tfidf + frozen
MiniLM, cleanlab scoring, selection by hardness, augmentation with the English generators
offline-bt + eda and the default filters, plus the random control pool). Two more augment pools
are generated with the same generators and filters for the other selection policies: the data
map's ambiguous region (``select.policy: ambiguous``) and the class-aware budget
(``select.class_budget: hard_share``). Then every arm is retrained over seeds and scored on
the test split:

- ``baseline``: the training split as given;
- ``clean``: rows the selection sent to review dropped;
- ``random``: + variants of randomly chosen rows, as many as ``targeted`` adds;
- ``targeted``: + variants of the hardest rows (hardness policy);
- ``targeted-ambiguous``: + variants of the ambiguous-region rows;
- ``targeted-class-aware``: + variants of hard rows, the budget spread by class hard share;
- ``tfidf-logreg``: the ten-line baseline (scikit-learn TF-IDF + LogisticRegression on the
  training split as given), for reference;
- ``hard_weighted`` (opt-in, ``--arms``): the baseline rows trained with ``train.hard_weighting:
  upweight`` -- loss weight ``1 + (cap - 1) x hardness`` from scores.parquet (label issues 1),
  normalised to mean 1; ``cap`` is ``train.hard_weight_cap`` (3 unless ``--set``);
- ``hard_weighted-oversample`` (opt-in): the same weights as repeat counts (``oversample``: each
  row ``floor(w)`` times plus one more with probability ``w - floor(w)``, drawn per seed);
- ``hard_weighted-ohem`` (opt-in; torch-trained backbones): the baseline rows, each batch back-propagating only its
  ``train.ohem_keep`` highest-loss share (label issues never picked): evaluate's hard_weighted arm under
  ``train.hard_weighting: ohem``, trained in a pass of its own;
- ``hard_weighted-shuffled`` (opt-in control): ``hard_weighted``'s weights permuted per seed over
  the rows that are not label issues -- as much re-weighting, not aimed at the hard rows.

- ``adversarial`` (opt-in, ``--finetune-arms`` only): the baseline rows trained with FGM on the word
  embeddings (``train.fgm_epsilon``), evaluate's adversarial arm;
- ``self_training`` (opt-in, N per class only): the baseline rows plus the rows of the unlabelled pool --
  the rest of the training split with its labels hidden (``_data/<setting>/pool.csv``) -- that the OOF
  fold models pseudo-label (evaluate's self_training arm: ``pseudo.threshold``, per-class caps).

``--arms`` picks the frozen retrains (default: every arm above but the opt-in ones; ``baseline``
is always trained). With only baseline / tfidf-logreg / hard_weighted arms the pipeline runs up to
the score stage only (no selection, no augmentation). Each arm selection records its retrains in
its own file (``bench/runs_frozen_s{seeds}[_{arms}].parquet``), with the upstream stages'
fingerprints: a re-run reuses it only when those still match. The ``baseline`` runs another selection recorded with
the same backbone recipe and seeds on the same prepare/oof/holdout/score fingerprints are reused too (its training rows
and recipe do not depend on the arms beside it); the JSON names the file (``baseline_reused_from``).

Augmented rows per arm: ``aug_ratio`` x training rows (``--aug-ratio`` full size, 0.1 by
default as evaluate's; ``--aug-ratio-small`` at N per class, 0.5 by default).

Retrain backbones: ``frozen`` (packaged MiniLM embeddings + the logreg head: convex, so seeds
differ only in the augmentation sample) at every setting, and ``finetune`` (the whole MiniLM
trained on CPU, where new texts change the learned features) at ``--finetune-sizes``.

Statistics: hardmine.evaluate.compare -- paired bootstrap over test rows (every arm on the same
resampled rows, seeds averaged within a resample) and McNemar against baseline. JSON per arm:
``accuracy``, ``delta_vs_baseline``, ``ci_low``, ``ci_high`` (the difference's interval),
``mcnemar_p``; per setting, each targeted arm minus ``random`` the same way (``targeted_vs_random``),
and each hard_weighted arm minus ``hard_weighted-shuffled`` when that ran (``hard_vs_shuffled``).
Everything is resumable: a re-run reuses the run directories and recorded retrains.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--banking77", help="folder with train.csv and test.csv (text,category)")
parser.add_argument("--clinc150", help="folder with data_full.json (in-scope intents are used)")
parser.add_argument("--out", default="runs/bench/lift.json")
parser.add_argument("--run-root", default="runs/bench/lift_work")
parser.add_argument("--sizes", default="full,20,10", help="comma list: full and/or training examples per class")
parser.add_argument("--seeds", type=int, default=5, help="retrains per arm, frozen backbone")
parser.add_argument("--arms", default=None,
                    help="comma list of arms retrained with the frozen backbone (default: baseline,clean,random,targeted,"
                    "targeted-ambiguous,targeted-class-aware,tfidf-logreg; opt-in: hard_weighted,hard_weighted-oversample,"
                    "hard_weighted-shuffled,hard_weighted-ohem,self_training); "
                    "baseline is always added")
parser.add_argument("--finetune-sizes", default="20,10", help="sizes also retrained with the finetune backbone ('' = none)")
parser.add_argument("--finetune-datasets", default="banking77,clinc150")
parser.add_argument("--finetune-seeds", type=int, default=3)
parser.add_argument("--finetune-epochs", type=int, default=5)
parser.add_argument("--finetune-lr", type=float, default=2e-4)
FINETUNE_ARMS = "baseline,random,targeted,targeted-ambiguous"
parser.add_argument("--finetune-arms", default=FINETUNE_ARMS,
                    help="arms retrained with finetune (each model costs minutes on CPU)")
parser.add_argument("--aug-ratio", type=float, default=0.1, help="augmented rows per training row, full size")
parser.add_argument("--aug-ratio-small", type=float, default=0.5, help="augmented rows per training row, N per class")
parser.add_argument("--noise", type=float, default=0.0, help="share of training labels flipped uniformly to another class (0: labels as given)")
parser.add_argument("--bootstrap", type=int, default=1000)
parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
args = parser.parse_args()

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hardmine.config import deep_merge, from_dict, parse_overrides  # noqa: E402
from hardmine.evaluate import (  # noqa: E402
    RUNS, arm_training_set, compare, evaluation_fingerprint, opt_in_sets, retrain_many, training_set_info)
from hardmine.pipeline import Context, run_all  # noqa: E402
from hardmine.pipeline.stages import stages_through  # noqa: E402
from hardmine.pipeline.augment import augment_to_store  # noqa: E402
from hardmine.select import select, select_kwargs  # noqa: E402

from bench_data import datasets, parse_sizes, per_class_subset, write_pool, write_split  # noqa: E402

TARGETED = ("targeted", "targeted-ambiguous", "targeted-class-aware")
ARMS = ("baseline", "clean", "random", *TARGETED, "tfidf-logreg")
# hard-example emphasis (issue 17): the baseline rows, evaluate's hard_weighted arm with train.hard_weighting = value
# hard_weighted-shuffled: the control -- hard_weighted's weights shuffled over the rows that are not label issues
HARD = {"hard_weighted": "upweight", "hard_weighted-oversample": "oversample", "hard_weighted-shuffled": "upweight",
        "hard_weighted-ohem": "ohem"}
# the hard arms whose loop mode differs from hard_weighted's upweight: trained in their own pass (see retrain)
LOOP_MODE = {"hard_weighted-ohem": "ohem"}
# issue 17's other arms: evaluate's adversarial (the baseline rows, FGM; finetune only) and self_training (the baseline
# rows + pseudo-labelled rows of the pool: at N per class, the rest of the training split with its labels hidden)
OPT_IN = ("adversarial", "self_training")
ALL_ARMS = (*ARMS, *HARD, *OPT_IN)
# arms whose training sets need the select and augment stages (and, for two, the extra pools)
NEEDS_AUGMENT = ("clean", "random", *TARGETED)
# the extra pools: (arm, select keyword overrides, selection file, pool file)
POLICIES = {
    "targeted-ambiguous": ({"policy": "ambiguous"}, "bench/selected_ambiguous.parquet", "bench/augmented_ambiguous.parquet"),
    # low_f1, not hard_share: with equal-sized classes (both datasets) hard_share weights are
    # proportional to each class's hard count, i.e. the same spread as the hardness policy itself
    "targeted-class-aware": ({"class_budget": "low_f1"}, "bench/selected_class_aware_low_f1.parquet",
                             "bench/augmented_class_aware_low_f1.parquet"),
}


# ----------------------------------------------------------------------------- pools and arms


def policy_pools(cfg, store, log) -> dict:
    """The ambiguous-region and class-aware selections, each augmented like the augment stage's pool."""
    ctx = Context(cfg, store, log)
    scores, ds = store.read_table("scores.parquet"), store.read_table("dataset.parquet")
    s = cfg.select
    base = select_kwargs(cfg, store.manifest()["labels"]) | {"policy": s.policy, "ambiguous_quantile": s.ambiguous_quantile,
                                                           "class_budget": s.class_budget}
    aug_summary = (store.manifest()["stages"]["augment"].get("summary") or {})
    pre = None
    out = {}
    budget = cfg.augment.budget(max(cfg.augment.aug_ratio or 0, cfg.evaluate.aug_ratio))
    for arm, (kw, sel_name, pool_name) in POLICIES.items():
        sel, summ = select(scores, ds, hardness_quantile=s.hardness_quantile, p_true_max=s.p_true_max,
                           issue_action=s.issue_action, **(base | kw))
        if not store.exists(pool_name):
            store.write_table(sel_name, sel)
            if pre is None:
                from hardmine.augment.pipeline import preflight

                gens = cfg.augment.generators if isinstance(cfg.augment.generators, str) else [dict(g) for g in cfg.augment.generators]
                pre = preflight(store.uri_of(sel_name), store.uri_of("dataset.parquet"), gens, cfg.augment.language)
            t = time.time()
            funnel = augment_to_store(ctx, sel_name, pool_name, budget, cfg.seed, pre)
            store.write_json(pool_name.replace(".parquet", ".json"), {"funnel": funnel, "seconds": time.time() - t})
        out[arm] = {"selection": {k: summ[k] for k in ("actions", "n_hard", "n_label_issues") if k in summ},
                    "funnel": store.read_json(pool_name.replace(".parquet", ".json"))["funnel"]}
    out["targeted"] = {"funnel": aug_summary.get("targeted"), "selection": store.manifest()["stages"]["select"]["summary"].get("actions")}
    out["random"] = {"funnel": aug_summary.get("random")}
    return out


def training_sets(cfg, store, seeds: int, arms, log=print) -> dict:
    """(arm, seed) -> training set for the requested ``arms`` (tfidf-logreg has none: see tfidf_logreg_runs)."""
    ds = store.read_table("dataset.parquet")
    need = set(arms)
    sel = store.read_table("selected.parquet") if need & set(NEEDS_AUGMENT) else None
    pool = store.read_table("augmented.parquet") if need & {"random", "targeted"} else None
    rpool = store.read_table("augmented_random.parquet") if "random" in need else None
    extra = {arm: (store.read_table(sel_name), store.read_table(pool_name))
             for arm, (_, sel_name, pool_name) in POLICIES.items() if arm in need}
    scores = store.read_table("scores.parquet") if need & set(HARD) else None
    r, e = cfg.evaluate.aug_ratio, cfg.evaluate
    sets = {}
    for s in range(seeds):
        seed = cfg.seed * 1000 + s
        if "baseline" in need:
            sets[("baseline", s)] = arm_training_set(ds, sel, None, None, "baseline", aug_ratio=0.0, seed=seed)
        if "clean" in need:
            sets[("clean", s)] = arm_training_set(ds, sel, None, None, "clean", aug_ratio=0.0, review_as=e.review_as, seed=seed)
        if "random" in need:
            sets[("random", s)] = arm_training_set(ds, sel, pool, rpool, "random", aug_ratio=r, seed=seed)
        if "targeted" in need:
            sets[("targeted", s)] = arm_training_set(ds, sel, pool, None, "targeted", aug_ratio=r, seed=seed)
        for arm, (xsel, xpool) in extra.items():
            sets[(arm, s)] = arm_training_set(ds, xsel, xpool, None, "targeted", aug_ratio=r, seed=seed)
        for arm, mode in HARD.items():
            if arm in need:  # evaluate's hard_weighted arm: weights (upweight) or repeated rows (oversample)
                sets[(arm, s)] = arm_training_set(ds, None, None, None, "hard_weighted", aug_ratio=0.0, seed=seed, scores=scores,
                                                  hard_weighting=mode, hard_weight_cap=cfg.train.hard_weight_cap)
        if "hard_weighted-shuffled" in need:
            sets[("hard_weighted-shuffled", s)] = shuffled_weights(sets[("hard_weighted-shuffled", s)], scores, seed)
        if "adversarial" in need:  # the baseline rows; retrain_many trains this arm with FGM (arm_train_settings)
            sets[("adversarial", s)] = arm_training_set(ds, None, None, None, "adversarial", aug_ratio=0.0, seed=seed)
    if "self_training" in need:  # evaluate's own construction: the OOF fold models pseudo-label data.unlabelled_path
        sets.update(opt_in_sets(cfg, store, ds, store.read_table("test.parquet"), ["self_training"], seeds, log))
    return sets


def shuffled_weights(table: pa.Table, scores: pa.Table, seed: int) -> pa.Table:
    """The control of the hard_weighted arm: the same weights permuted (seeded) over the rows that are not
    label issues (those keep weight 1): as much re-weighting, none of it aimed at the hard rows."""
    from hardmine.evaluate import hardness_for

    _, issue = hardness_for(scores, table.column("id").to_pylist())
    w = table.column("weight").to_numpy().copy()
    free = np.flatnonzero(~issue)
    w[free] = w[np.random.default_rng([seed, 17]).permutation(free)]
    i = table.schema.get_field_index("weight")
    out = table.set_column(i, table.schema.field(i), pa.array(w.astype(np.float32), pa.float32()))
    return out.replace_schema_metadata(table.schema.metadata)


def tfidf_logreg_runs(store, seeds: int) -> pa.Table:
    """The ten-line practitioner baseline, as runs rows (deterministic: the same predictions for every seed)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    ds, test = store.read_table("dataset.parquet"), store.read_table("test.parquet")
    t = time.time()
    clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=1000))
    clf.fit(ds.column("text").to_pylist(), ds.column("label").to_numpy())
    probs = np.zeros((test.num_rows, int(max(ds.column("label").to_numpy().max(), test.column("label").to_numpy().max())) + 1))
    probs[:, clf.classes_] = clf.predict_proba(test.column("text").to_pylist())
    acc = float((probs.argmax(1) == test.column("label").to_numpy()).mean())
    row = {"arm": "tfidf-logreg", "train_rows": ds.num_rows, "n_augmented": 0, "requested_augmented": 0, "n_dropped": 0,
           "n_relabelled": 0, "accuracy": acc, "macro_f1": None, "ece": None, "per_class_f1": None, "seconds": time.time() - t,
           "pred": probs.argmax(1).astype(np.int32), "confidence": probs.max(1).astype(np.float32)}
    return pa.Table.from_pylist([dict(row, seed=s) for s in range(seeds)], schema=RUNS)


def arm_list(spec: str | None, default, *, backbone: str = "finetune", pool: bool = True) -> tuple[str, ...]:
    """The arms of a comma list (``None``: ``default``) in ALL_ARMS order, baseline always included;
    adversarial only with finetune, self_training only where there is a pool (N per class)."""
    arms = list(default) if spec is None else [a.strip() for a in spec.split(",") if a.strip()]
    bad = [a for a in arms if a not in ALL_ARMS]
    if bad:
        raise SystemExit(f"unknown arms {bad}: choose from {list(ALL_ARMS)}")
    if backbone != "finetune" and "adversarial" in arms:
        raise SystemExit("adversarial perturbs the word embeddings of the finetune backbone: give it in --finetune-arms, not --arms")
    if not pool:
        arms = [a for a in arms if a != "self_training"]
    return tuple(a for a in ALL_ARMS if a in {"baseline", *arms})


def upstream(store) -> dict:
    """Fingerprints of the stages a retrain reads (a recorded retrain is reused only while they match)."""
    stages = store.manifest().get("stages", {})
    return {k: stages[k].get("fingerprint") for k in stages_through("augment") if k in stages}


def retrain(cfg, store, backbone: str, seeds: int, log) -> pa.Table:
    pool = bool(cfg.data.unlabelled_path)
    arms = (arm_list(args.arms, ARMS, backbone="frozen", pool=pool) if backbone == "frozen"
            else arm_list(args.finetune_arms, (), pool=pool))
    default = arms == arm_list(None, ARMS if backbone == "frozen" else arm_list(FINETUNE_ARMS, ()), backbone=backbone)
    # the recipe (backbone, seeds, finetune epochs and lr), then the arm selection
    prefix = f"bench/runs_{backbone}_s{seeds}" + (f"_e{args.finetune_epochs}_lr{args.finetune_lr:g}" if backbone == "finetune" else "")
    name = prefix + ("" if default else "_" + "+".join(arms)) + ".parquet"
    need_up = {k: v for k, v in upstream(store).items() if k in stages_through("augment" if set(arms) & set(NEEDS_AUGMENT) else "score")}
    if store.exists(name):
        meta = store.read_json(name.replace(".parquet", ".json"))
        rec = meta.get("upstream")
        if rec is None or {k: rec.get(k) for k in need_up} == need_up:
            log(f"  {backbone}: reusing {name}" + ("" if rec is not None else " (recorded without upstream fingerprints)"))
            return store.read_table(name), meta
        log(f"  {backbone}: {name} was trained on other upstream stages: retraining")
    c = cfg.model_copy(deep=True)
    c.evaluate.backbone = backbone
    c.train.hard_weighting = "upweight"  # the hard_weighted arm's loop mode (oversample arrives as repeated rows: trains plainly)
    if backbone == "finetune":
        c.evaluate.epochs, c.oof.lr = args.finetune_epochs, args.finetune_lr
    sets = training_sets(c, store, seeds, arms, log)
    ds, test = store.read_table("dataset.parquet"), store.read_table("test.parquet")
    t = time.time()
    base_up = {k: v for k, v in need_up.items() if k in stages_through("score")}
    reused, reused_from = recorded_baseline(store, prefix, name, base_up) if "baseline" in arms else (None, None)
    todo = {k: v for k, v in sets.items() if not (reused is not None and k[0] == "baseline")}
    if reused is not None:
        log(f"  {backbone}: baseline reused from {reused_from} (same recipe, seeds and upstream stages)")
    log(f"  {backbone}: retraining {len(todo)} models ({len(todo) // seeds} arms x {seeds} seeds)" if todo
        else f"  {backbone}: every model was recorded: nothing to retrain")
    tag = "" if default else "-" + "-".join(a.replace("-", "") for a in arms if a != "tfidf-logreg")
    parts = [] if reused is None else [reused]
    plain = {k: v for k, v in todo.items() if k[0] not in LOOP_MODE}
    if plain:
        parts.append(retrain_many(c, store, plain, ds, test, len(store.manifest()["labels"]),
                                  fingerprint=f"bench-{backbone}{tag}-{evaluation_fingerprint(c, store)}", log=log))
    for arm, mode in LOOP_MODE.items():  # evaluate's hard_weighted arm under another train.hard_weighting, renamed back
        own = {("hard_weighted", s): v for (a, s), v in todo.items() if a == arm}
        if own:
            cm = c.model_copy(deep=True)
            cm.train.hard_weighting = mode
            got = retrain_many(cm, store, own, ds, test, len(store.manifest()["labels"]),
                               fingerprint=f"bench-{backbone}{tag}-{arm}-{evaluation_fingerprint(cm, store)}", log=log)
            i = got.schema.get_field_index("arm")
            parts.append(got.set_column(i, got.schema.field(i), pa.array([arm] * got.num_rows, got.schema.field(i).type)))
    runs = pa.concat_tables(parts)
    if "tfidf-logreg" in arms or default:  # the default selections always carried the reference (finetune's too)
        runs = pa.concat_tables([runs, tfidf_logreg_runs(store, seeds)])
    store.write_table(name, runs)
    store.write_json(name.replace(".parquet", ".json"), {"seconds": time.time() - t, "file": name, "arms": list(arms), "upstream": need_up,
                                                         **({"baseline_reused_from": reused_from} if reused is not None else {}),
                                                         "training_sets": {k[0]: training_set_info(v) for k, v in sets.items() if k[1] == 0}})
    return runs, store.read_json(name.replace(".parquet", ".json"))


def recorded_baseline(store, prefix: str, name: str, up: dict) -> tuple[pa.Table | None, str | None]:
    """The baseline runs another arm selection recorded with the same backbone recipe and seeds (``prefix``) on the same
    prepare/oof/holdout/score fingerprints: its training rows and recipe do not depend on the arms beside it, so it is
    reused rather than trained again (minutes per model with finetune on CPU)."""
    folder = Path(store.path("bench"))
    stem = Path(prefix).name
    for meta in sorted(folder.glob(stem + "*.json")) if folder.is_dir() else []:
        other = f"bench/{meta.stem}.parquet"
        if meta.stem != stem and not meta.stem.startswith(stem + "_"):
            continue
        rec = json.loads(meta.read_text())
        if other == name or "baseline" not in rec.get("arms", ()) or not store.exists(other):
            continue
        if {k: (rec.get("upstream") or {}).get(k) for k in up} != up:
            continue
        runs = store.read_table(other)
        base = runs.filter(pc.equal(runs.column("arm"), "baseline"))
        if base.num_rows:
            return base, other
    return None, None


def summarize(runs: pa.Table, store, cfg) -> dict:
    test = store.read_table("test.parquet")
    summ = compare(runs, test.column("label").to_numpy(), num_labels=len(store.manifest()["labels"]),
                   resamples=args.bootstrap, confidence=0.95, seed=cfg.seed,
                   pairs=[(a, "random") for a in TARGETED] + [(a, "hard_weighted-shuffled") for a in HARD if a != "hard_weighted-shuffled"])
    out = {}
    for a in ALL_ARMS:
        if a not in summ["arms"]:
            continue
        r = summ["arms"][a]
        d = r.get("vs_baseline")
        out[a] = {
            "accuracy": r["accuracy"]["mean"], "accuracy_ci": [r["accuracy"]["lo"], r["accuracy"]["hi"]],
            "delta_vs_baseline": d["accuracy"]["mean"] if d else 0.0,
            "ci_low": d["accuracy"]["lo"] if d else 0.0, "ci_high": d["accuracy"]["hi"] if d else 0.0,
            "verdict": d["accuracy"]["verdict"] if d else "reference",
            "mcnemar_p": d["mcnemar"]["p_value"] if d else None,
            "train_rows": r.get("train_rows"), "n_augmented": r.get("n_augmented"), "n_seeds": r["n_seeds"],
        }
    vs_random, vs_shuffled = {}, {}
    for name, p in summ["pairs"].items():
        a, b = name.split(" - ")
        (vs_random if b == "random" else vs_shuffled)[a] = {
            "delta": p["accuracy"]["mean"], "ci_low": p["accuracy"]["lo"], "ci_high": p["accuracy"]["hi"],
            "verdict": p["accuracy"]["verdict"], "mcnemar_p": p["mcnemar"]["p_value"]}
    return {"arms": out, "targeted_vs_random": vs_random, **({"hard_vs_shuffled": vs_shuffled} if vs_shuffled else {}),
            "notes": summ["notes"]}


# ----------------------------------------------------------------------------- one setting


def bench(dataset: str, size: str, train: list, test: list, log) -> dict:
    t0 = time.time()
    root = Path(args.run_root)
    small = size != "full"
    rest: list = []
    if small:
        sub = per_class_subset(train, int(size), seed=0)
        picked = {id(r) for r in sub}
        rest = [r for r in train if id(r) not in picked]  # the self_training pool: the rest of the split, labels hidden
        train = sub
    tag = f"{dataset}-{size}"
    split = write_split(tag, train, test, root, args.noise)
    ratio = args.aug_ratio_small if small else args.aug_ratio
    base = {"name": f"lift-{tag}", "run_root": str(root), "data": split["data"]}
    if small and "self_training" in (set(arm_list(args.arms, ARMS, backbone="frozen")) | set(arm_list(args.finetune_arms, ()))):
        base["data"] = base["data"] | {"unlabelled_path": write_pool(tag, rest, root)}
    sets = [f"evaluate.aug_ratio={ratio}", f"augment.aug_ratio={ratio}", "sweep.enabled=false", *args.overrides]
    cfg = from_dict(deep_merge(base, parse_overrides(sets)))
    log(f"== {tag}: {split['n_train']} training rows, {split['n_test']} test rows, {len(split['data']['labels'])} classes")
    backbones = ["frozen"]
    if size in [x.strip() for x in args.finetune_sizes.split(",") if x.strip()] and dataset in args.finetune_datasets.split(","):
        backbones.append("finetune")
    wanted = set(arm_list(args.arms, ARMS, backbone="frozen", pool=small)) | (
        set(arm_list(args.finetune_arms, (), pool=small)) if "finetune" in backbones else set())
    # the augment pools only for the arms that train on them; hardness (score stage) for the others
    until = "augment" if wanted & set(NEEDS_AUGMENT) else "score"
    store = run_all(cfg, log=log, until=until)
    timings = {f"pipeline_to_{until}": time.time() - t0}
    pools = None
    if until == "augment":
        t = time.time()
        pools = policy_pools(cfg, store, log)
        timings["policy_pools"] = time.time() - t
    results = {}
    for bb in backbones:
        t = time.time()
        runs, meta = retrain(cfg, store, bb, args.seeds if bb == "frozen" else args.finetune_seeds, log)
        results[bb] = summarize(runs, store, cfg)
        results[bb]["seconds"] = meta["seconds"]
        results[bb]["training_sets"] = meta["training_sets"]
        timings[f"retrain_{bb}"] = time.time() - t
        log(table(tag, bb, results[bb]))
    stages = store.manifest()["stages"]
    return {
        "dataset": dataset, "size": size,
        "rows": {"train": split["n_train"], "test": split["n_test"], "classes": len(split["data"]["labels"]), "n_noisy": split["n_noisy"]},
        "aug_ratio": ratio,
        "hard_weight_cap": cfg.train.hard_weight_cap if wanted & set(HARD) else None,
        "oof": {k: stages["oof"]["summary"].get(k) for k in ("accuracy", "log_loss", "ece", "weights", "max_length")},
        "selection": stages["select"]["summary"].get("actions") if until == "augment" else None,
        "pools": pools,
        "backbones": results,
        "finetune": {"epochs": args.finetune_epochs, "lr": args.finetune_lr} if "finetune" in backbones else None,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }


def pct(x):
    return "-" if x is None else f"{100 * x:+.2f}"


def table(tag: str, bb: str, r: dict) -> str:
    lines = [f"{tag:<16} {bb:<9} {'arm':<24} {'acc %':>7} {'vs baseline [95% CI]':<26} {'McNemar p':>9} {'vs control [95% CI]':<24}"]
    for a, v in r["arms"].items():
        ci = "" if a == "baseline" else f"{pct(v['delta_vs_baseline'])} [{pct(v['ci_low'])}, {pct(v['ci_high'])}]"
        vr = r["targeted_vs_random"].get(a) or r.get("hard_vs_shuffled", {}).get(a)  # control: random / hard_weighted-shuffled
        vrs = f"{pct(vr['delta'])} [{pct(vr['ci_low'])}, {pct(vr['ci_high'])}]" if vr else ""
        p = "" if v["mcnemar_p"] is None else f"{v['mcnemar_p']:.3f}"
        lines.append(f"{tag:<16} {bb:<9} {a:<24} {100 * v['accuracy']:>7.2f} {ci:<26} {p:>9} {vrs:<24}")
    return "\n".join(lines)


def main() -> int:
    todo = datasets(args.banking77, args.clinc150)
    if not todo:
        print("nothing to run: pass --banking77 and/or --clinc150 with the dataset folders", file=sys.stderr)
        return 2
    try:
        order = parse_sizes(args.sizes)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    log = lambda s: print(s, flush=True)  # noqa: E731
    out = Path(args.out)
    results = json.loads(out.read_text()).get("settings", {}) if out.exists() else {}
    for size in order:
        for name, path, loader in todo:
            train, test = loader(path)
            results[f"{name}-{size}"] = bench(name, size, train, test, log)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"settings": results, "args": vars(args)}, indent=2, default=float))
    print()
    for tag, r in results.items():
        for bb, br in r["backbones"].items():
            print(table(tag, bb, br))
    print("vs baseline / vs control (targeted arms: random; hard_weighted arms: hard_weighted-shuffled): paired bootstrap over "
          "test rows (seeds averaged), 95% interval; McNemar exact p vs baseline")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
