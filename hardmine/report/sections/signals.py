"""Sections of the score stage's signals: the data map, outliers and duplicates, the dual model.

Each says "not computed" where the score stage left its columns null (signal off, or a score stage
from before the signal).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from hardmine.plots import data_map_png
from hardmine.report.columns import bool_col, class_names, float_col, top_rows
from hardmine.report.html import SKIP, Html, h3, img, kv, para, pct, table, text
from hardmine.report.run import RunArtifacts
from hardmine.select import dynamics
from hardmine.vocab import REGIONS

#: rows listed per signal table (outliers, low neighbour agreement, error_risk), and conflicting duplicate groups shown
SIGNAL_ROWS = 10
DUP_GROUPS = 5
DUP_GROUP_ROWS = 4
NOT_COMPUTED = "not computed"
#: how the page names each data-map region (:data:`hardmine.vocab.REGIONS`)
REGION_NAME = {"easy": "easy-to-learn", "ambiguous": "ambiguous", "hard": "hard-to-learn"}


def label_cell(run: RunArtifacts, label: Any) -> Html:
    """The name of class index ``label`` as a table cell."""
    if label is None:
        return text(None)
    return text(class_names(run.labels, np.array([int(label)]))[0], 50)


def data_map(run: RunArtifacts, max_rows: int = 30, **_) -> str:
    s = run.summary("select")
    if s is None or not run.has("scores.parquet"):
        return run.missing("the select stage's summary (selected.parquet, plots/data_map.png)", "select")
    scores = run.table("scores.parquet", columns=["id", "dyn_confidence", "dyn_variability", "dyn_correctness"])
    if dynamics(scores) is None or float_col(scores, "dyn_correctness") is None:
        return para("No training dynamics in this run: the OOF stage recorded no per-epoch probabilities (e.g. an external "
                    "backbone), so there is no data map. Set oof.epochs >= 2 and re-run the oof, score and select stages.", "muted")
    dm = s.get("data_map") if isinstance(s.get("data_map"), dict) else None
    parts = []
    if dm:
        reg = dm.get("regions") or {}
        total = sum(v for v in reg.values() if isinstance(v, int)) or 1
        pairs: list[tuple[str, Any]] = [("selection policy", s.get("policy") or SKIP)]
        for key in REGIONS:
            pairs.append((REGION_NAME[key], Html(f"{reg.get(key, 0):,} ({pct(reg.get(key, 0) / total)})")))
        pairs += [("ambiguous: variability at least", dm.get("ambiguous_min_variability")),
                  ("hard-to-learn: confidence at most", dm.get("hard_max_confidence"))]
        parts.append(kv(pairs))
    png = run.png("plots/data_map.png")
    if png is None:  # drawn from scores.parquet and selected.parquet's region
        regions = None
        sel = run.table("selected.parquet", columns=["id", "region"])
        if sel is not None and "region" in sel.column_names:
            of = dict(zip(sel.column("id").cast(pa.string()).to_pylist(), sel.column("region").to_pylist()))
            regions = [of.get(i) for i in scores.column("id").cast(pa.string()).to_pylist()]
        png = data_map_png(scores, regions, label_names=run.labels or None)
    parts.append(img(png, "data map: variability vs confidence over the OOF epochs, coloured by correctness"))
    if dm and isinstance(dm.get("per_class"), dict):
        rows = []
        for c, r in dm["per_class"].items():
            n = sum(r.get(k, 0) for k in REGIONS)
            rows.append((-(r.get("ambiguous", 0) + r.get("hard", 0)) / (n or 1), int(c), n, r))
        rows.sort(key=lambda x: (x[0], x[1]))
        parts.append(table(
            ["class", "rows", *REGIONS, "share ambiguous", "share hard"],
            [[label_cell(run, c), n, *(r.get(k, 0) for k in REGIONS),
              pct(r.get("ambiguous", 0) / n if n else 0), pct(r.get("hard", 0) / n if n else 0)] for _, c, n, r in rows[:max_rows]],
            more=len(rows) - max_rows, caption="data-map regions per class, largest share of ambiguous + hard rows first",
        ))
        parts.append(para(f"Regions (Swayamdipta et al., 2020, Dataset Cartography): {dm.get('rule', '')}. Confidence is the mean "
                          "p(given label) over the OOF epochs, variability its standard deviation, correctness the share of "
                          "epochs whose prediction is the given label.", "muted"))
    else:
        parts.append(para("The select stage's summary has no data-map counts (written by an older version): re-run the select "
                          "stage for the per-class table.", "muted"))
    return "".join(parts)


def outliers(run: RunArtifacts, **_) -> str:
    if not run.has("scores.parquet"):
        return run.missing("scores.parquet", "score")
    scores = run.table("scores.parquet", columns=["id", "label", "outlier_score", "knn_label_agreement", "is_outlier",
                                                  "dup_group", "is_conflicting_duplicate"])
    sig = run.signals()
    o, d = sig.get("outliers"), sig.get("duplicates")
    outlier, agree = float_col(scores, "outlier_score"), float_col(scores, "knn_label_agreement")
    groups = float_col(scores, "dup_group")
    if not sig and outlier is None and agree is None and groups is None:
        return para(f"Outliers and duplicates were {NOT_COMPUTED}: label_quality.json has no signals and the signal columns "
                    "of scores.parquet are null (a score stage from before the signals); re-run the score stage.", "muted")
    pairs: list[tuple[str, Any]] = []
    if o and "skipped" not in o:
        pairs += [("outliers flagged", f"{o['flagged']:,} (top {o['quantile']:g} by mean cosine distance to the "
                                       f"{o['k']} nearest rows)"),
                  ("lowest flagged outlier_score", o["min_flagged_score"]),
                  ("rows whose neighbours mostly carry another label", o["low_agreement_rows"]),
                  ("embeddings", o["embeddings"])]
    elif o:
        pairs.append(("outliers", f"{NOT_COMPUTED}: {o['skipped']}"))
    elif outlier is None:
        pairs.append(("outliers", NOT_COMPUTED))
    if d:
        how = d["mode"] + (f", MinHash Jaccard ≥ {d['threshold']:g}" if d.get("threshold") is not None else "")
        pairs += [("duplicate groups", f"{d['groups']:,} ({d['rows_in_groups']:,} rows; {how})"),
                  ("groups with conflicting labels", f"{d['conflicting_groups']:,} ({d['conflicting_rows']:,} rows)")]
    elif groups is None:
        pairs.append(("duplicates", f"{NOT_COMPUTED} (score.duplicates: off)"))
    sel = run.summary("select") or {}
    if "n_outliers" in sel or "n_conflicting_duplicates" in sel:
        pairs.append(("kept out of augmentation by the select stage",
                      f"{sel.get('n_outliers', 0):,} outliers, {sel.get('n_conflicting_duplicates', 0):,} conflicting duplicates"))
    parts = [kv(pairs)]
    ids = scores.column("id").cast(pa.string()).to_pylist()
    labels = scores.column("label").to_pylist()
    flag = bool_col(scores, "is_outlier") if "is_outlier" in scores.column_names else np.zeros(len(ids), bool)
    top_out = top_rows(outlier, SIGNAL_ROWS) if outlier is not None else np.zeros(0, np.int64)
    low_agree = top_rows(agree, SIGNAL_ROWS, highest=False) if agree is not None else np.zeros(0, np.int64)
    conflict: list[tuple[int, list[int]]] = []
    n_groups = 0
    if groups is not None and "is_conflicting_duplicate" in scores.column_names:
        cmask = bool_col(scores, "is_conflicting_duplicate")
        g = np.where(np.isfinite(groups), groups, -1).astype(np.int64)
        gids = list(dict.fromkeys(g[cmask & (g >= 0)].tolist()))
        n_groups = len(gids)
        conflict = [(gid, np.flatnonzero(g == gid)[:DUP_GROUP_ROWS].tolist()) for gid in gids[:DUP_GROUPS]]
    want = {ids[i] for i in np.concatenate([top_out, low_agree]).tolist()} | {ids[i] for _, rs in conflict for i in rs}
    texts = run.texts(sorted(want))

    def num(a, i):
        return None if a is None or not np.isfinite(a[i]) else float(a[i])

    if outlier is not None:
        parts.append(h3("Most isolated rows (highest outlier_score)"))
        parts.append(table(["id", "text", "label", "outlier_score", "kNN label agreement", "flagged"],
                           [[text(ids[i], 40), text(texts.get(ids[i])), label_cell(run, labels[i]), num(outlier, i),
                             num(agree, i), bool(flag[i])] for i in top_out.tolist()],
                           caption="mean cosine distance to the nearest training rows: far from all data"))
    if agree is not None:
        parts.append(h3("Rows whose neighbours carry other labels (lowest kNN label agreement)"))
        parts.append(table(["id", "text", "label", "kNN label agreement", "outlier_score"],
                           [[text(ids[i], 40), text(texts.get(ids[i])), label_cell(run, labels[i]), num(agree, i),
                             num(outlier, i)] for i in low_agree.tolist()],
                           caption="share of the nearest rows that carry the row's own label"))
    if groups is not None:
        parts.append(h3(f"Duplicate groups with conflicting labels ({n_groups:,})"))
        parts.append(table(["group", "id", "text", "label"],
                           [[gid, text(ids[i], 40), text(texts.get(ids[i])), label_cell(run, labels[i])]
                            for gid, rs in conflict for i in rs],
                           caption="the same (or nearly the same) text under different labels: kept out of augmentation"))
        if n_groups > len(conflict):
            parts.append(para(f"… {n_groups - len(conflict):,} more groups not shown", "muted"))
    return "".join(parts)


def dual_model(run: RunArtifacts, max_rows: int = 15, **_) -> str:
    if not run.has("scores.parquet"):
        return run.missing("scores.parquet", "score")
    scores = run.table("scores.parquet", columns=["id", "label", "pred", "p_true", "error_risk"])
    m = run.signals().get("dual_model")
    risk = float_col(scores, "error_risk")
    if m is None and risk is None:
        return para(f"The dual model was {NOT_COMPUTED} (score.dual_model: off, or the score stage predates it).", "muted")
    parts = []
    if m is not None:
        parts.append(kv([
            ("model", m["model"]),
            ("cross-fitted over", f"{m['folds']} folds"),
            ("AUC of error_risk for the rows the OOF prediction got wrong", m["auc"] if m["auc"] is not None else "undefined"),
            ("base rate (OOF prediction wrong)", pct(m["base_rate"])),
            ("rows", m.get("n_rows", SKIP)),
            ("note", m["note"] if m.get("note") else SKIP),
        ]))
        # label_quality.json is written with sorted keys: order by importance here (ties by name)
        imps = sorted(m["importances"].items(), key=lambda item: (-item[1], item[0]))
        parts.append(table(["feature", "importance"], [[f, v] for f, v in imps[:max_rows]], more=len(imps) - max_rows,
                           caption="meta-feature importances of the dual model, highest first"))
    if risk is None:
        parts.append(para(f"error_risk: {NOT_COMPUTED} in scores.parquet.", "muted"))
        return "".join(parts)
    top = top_rows(risk, SIGNAL_ROWS)
    ids = scores.column("id").cast(pa.string()).to_pylist()
    texts = run.texts([ids[i] for i in top.tolist()])
    lab, pred, p_true = (scores.column(c).to_pylist() for c in ("label", "pred", "p_true"))
    parts.append(h3("Rows most likely mispredicted (highest error_risk)"))
    parts.append(table(["id", "text", "label", "predicted", "p(given)", "error_risk"],
                       [[text(ids[i], 40), text(texts.get(ids[i])), label_cell(run, lab[i]), label_cell(run, pred[i]),
                         p_true[i], float(risk[i])] for i in top.tolist()],
                       caption="the dual model's cross-fitted probability that the out-of-fold prediction is wrong"))
    return "".join(parts)

