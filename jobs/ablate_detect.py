"""Ablation behind the OOF defaults: tfidf C, logreg-head C, calibration and score.rank_by, on the
probabilities of a finished `jobs/bench_detect.py` run (same folds, same members; no Ray).

    python jobs/bench_detect.py ... --set oof.tfidf.C=10 --set oof.calibration=none --out runs/bench/detect-v1.json
    python jobs/ablate_detect.py runs/bench/detect-v1.json [--out runs/bench/ablation.json]

For every setting of that run it refits the tfidf member with C=1 (and, on NSMC, character
2-4-grams) and the frozen head with C=1 on the run's own folds and embeddings, combines each pair
of members with the out-of-fold log-loss weights, optionally applies the cross-fitted temperature,
and reports recall at a budget equal to the number of injected errors for each rank_by method.
Keys: "t<C>[c24]+f<C>/<calibration>/<rank_by>" (t10/f10 are the run's own members; "None" = tfidf alone).
"""
import argparse
import json
import time
import warnings

import cleanlab.rank
import numpy as np
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression

from hardmine.oof.combine import fit_weights, combine, cross_fit_temperature
from hardmine.oof.linear import make_vectorizer
from hardmine.embed import embeddings_from_table
warnings.filterwarnings("ignore")
p = argparse.ArgumentParser(description=__doc__); p.add_argument("detect_json"); p.add_argument("--out", default="runs/bench/ablation.json"); args = p.parse_args()
d = json.load(open(args.detect_json))
out = []
for r in d["results"]:
    t0 = time.time()
    run = r["run_dir"]
    oof = pq.read_table(f"{run}/oof.parquet"); ids = oof.column("id").to_pylist()
    fold = np.asarray(oof.column("fold").to_pylist())
    truth = pq.read_table(f"{run}/truth.parquet"); tmap = dict(zip(truth.column("id").to_pylist(), truth.column("is_noisy").to_pylist()))
    ds = pq.read_table(f"{run}/dataset.parquet"); lab = dict(zip(ds.column("id").to_pylist(), ds.column("label").to_pylist())); txt = dict(zip(ds.column("id").to_pylist(), ds.column("text").to_pylist()))
    y = np.array([lab[i] for i in ids]); noisy = np.array([tmap[i] for i in ids]); B = int(noisy.sum())
    texts = np.array([txt[i] for i in ids], dtype=object)
    K = int(y.max()) + 1
    P = {"t10": np.asarray(oof.column("probs_tfidf").to_pylist()), "f10": np.asarray(oof.column("probs_frozen").to_pylist())}
    settings = {"t1": dict(C=1.0, ngram_range=None)}
    if r["dataset"] == "nsmc":
        settings["t1c24"] = dict(C=1.0, ngram_range=[2, 4])
    for name, s in settings.items():
        p = np.zeros((len(y), K))
        for k in np.unique(fold):
            st = {"analyzer": "auto", "ngram_range": s["ngram_range"], "min_df": 2, "max_df": 1.0, "max_features": None, "sublinear_tf": True, "lowercase": True}
            v = make_vectorizer(st, list(texts[fold != k])); Xtr = v.fit_transform(texts[fold != k])
            m = LogisticRegression(C=s["C"], max_iter=1000).fit(Xtr, y[fold != k])
            p[np.ix_(fold == k, m.classes_)] = m.predict_proba(v.transform(texts[fold == k]))
        P[name] = p
    et = pq.read_table(f"{run}/embeddings.parquet"); epos = {i: n for n, i in enumerate(et.column("id").to_pylist())}
    X = embeddings_from_table(et)[[epos[i] for i in ids]]
    p = np.zeros((len(y), K))
    for k in np.unique(fold):
        m = LogisticRegression(C=1.0, max_iter=1000).fit(X[fold != k], y[fold != k])
        p[np.ix_(fold == k, m.classes_)] = m.predict_proba(X[fold == k])
    P["f1"] = p
    res = {"setting": f"{r['dataset']}/{r['noise']}/{r['rate']}", "base": {k: r["methods"][k]["recall_at_budget"] for k in ("baseline_tfidf_lr", "baseline_embed_lr")}}
    for tn in [k for k in P if k.startswith("t")]:
        for fn in ("f10", "f1", None):
            mem = [P[tn]] + ([P[fn]] if fn else [])
            w = fit_weights(mem, y); pm = combine(mem, w)
            for cal in ("none", "temperature"):
                pc = pm if cal == "none" else cross_fit_temperature(pm, y, fold)[0]
                for rb in ("self_confidence", "normalized_margin"):
                    q = cleanlab.rank.get_label_quality_scores(y, pc, method=rb)
                    rab = float(noisy[np.argsort(q, kind="stable")[:B]].mean())
                    res[f"{tn}+{fn}/{cal}/{rb}"] = round(rab, 4)
    for fn in ("f10", "f1"):
        for cal in ("none", "temperature"):
            pc = P[fn] if cal == "none" else cross_fit_temperature(P[fn], y, fold)[0]
            q = cleanlab.rank.get_label_quality_scores(y, pc, method="self_confidence")
            res[f"{fn}/{cal}/self_confidence"] = round(float(noisy[np.argsort(q, kind='stable')[:B]].mean()), 4)
    res["acc"] = {k: round(float((v.argmax(1) == y).mean()), 4) for k, v in P.items()}
    res["sec"] = round(time.time() - t0, 1)
    out.append(res); print(json.dumps(res), flush=True)
    json.dump(out, open(args.out, "w"), indent=1)
