"""The score stage's signals beyond the out-of-fold probabilities, and their console summary.

Outliers and neighbour agreement (kNN over the frozen embeddings, :mod:`hardmine.neighbors`), conflicting
duplicates, and the dual model's ``error_risk`` (:mod:`hardmine.dual`), filled into the scores table
(:func:`hardmine.scoring.with_signals`); the summary is label_quality.json's ``signals``.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from hardmine.config import Config
from hardmine.scoring import with_signals


def compute_signals(cfg: Config, store, table: pa.Table, ids: list[str], texts: list[str],
                    log: Callable[[str], None] = print) -> tuple[pa.Table, dict[str, Any]]:
    """The signals filled into the scores ``table`` (rows ``ids`` with ``texts``): (table, summary)."""
    s = cfg.score
    labels = table.column("label").to_numpy()
    out: dict[str, Any] = {}
    signals: dict[str, Any] = {}
    t0 = time.time()
    if len(ids) > s.knn_k:
        from hardmine.neighbors import HNSW_AUTO_ROWS, knn_scores, outlier_flags

        emb, source = _embeddings(cfg, store, ids, texts, log)
        index = s.knn_index if s.knn_index != "auto" else ("hnsw" if len(ids) > HNSW_AUTO_ROWS else "exact")
        knn = knn_scores(emb, labels, k=s.knn_k, index=index)
        flags = outlier_flags(knn["outlier_score"], quantile=s.outlier_quantile)
        signals.update(outlier_score=knn["outlier_score"], knn_label_agreement=knn["knn_label_agreement"], is_outlier=flags)
        out["outliers"] = {"k": s.knn_k, "index": index, "quantile": s.outlier_quantile, "flagged": int(flags.sum()), "embeddings": source,
                           "min_flagged_score": float(knn["outlier_score"][flags].min()) if flags.any() else None,
                           "low_agreement_rows": int((knn["knn_label_agreement"] < 0.5).sum()), "seconds": round(time.time() - t0, 2)}
    else:
        out["outliers"] = {"skipped": f"{len(ids)} rows: score.knn_k={s.knn_k} needs more rows than neighbours"}
    if s.duplicates != "off":
        from hardmine.neighbors import duplicate_groups

        t0 = time.time()
        dup = duplicate_groups(texts, labels, near_threshold=s.near_duplicate_threshold if s.duplicates == "near" else None)
        signals.update(dup_group=dup["dup_group"], is_conflicting_duplicate=dup["is_conflicting_duplicate"])
        g = dup["dup_group"]
        conflicting = np.unique(g[dup["is_conflicting_duplicate"]])
        out["duplicates"] = {"mode": s.duplicates, "threshold": s.near_duplicate_threshold if s.duplicates == "near" else None,
                             "groups": int(len(np.unique(g[g >= 0]))), "rows_in_groups": int((g >= 0).sum()),
                             "conflicting_groups": int(conflicting.size), "conflicting_rows": int(dup["is_conflicting_duplicate"].sum()),
                             "seconds": round(time.time() - t0, 2)}
    if signals:
        table = with_signals(table, signals)
    if s.dual_model != "off":
        from hardmine.dual import FEATURE_SETS, error_risk_table

        t0 = time.time()
        risk, info = error_risk_table(table, texts, folds=cfg.oof.folds, seed=cfg.seed, model=s.dual_model,
                                      features=FEATURE_SETS[s.dual_features], n_threads=1)
        info["feature_set"] = s.dual_features
        table = with_signals(table, {"error_risk": risk})
        out["dual_model"] = {**info, "seconds": round(time.time() - t0, 2)}
    return table, out


def _embeddings(cfg: Config, store, ids: list[str], texts: list[str], log: Callable[[str], None]) -> tuple[np.ndarray, str]:
    """The kNN's embeddings: this OOF run's frozen member's, else the texts embedded with oof.model (cached)."""
    oof_outputs = (store.manifest().get("stages", {}).get("oof", {}).get("summary") or {}).get("outputs") or []
    if "embeddings.parquet" in oof_outputs and store.exists("embeddings.parquet"):
        from hardmine.evaluate import embeddings_by_id

        return embeddings_by_id(store, "embeddings.parquet", ids, "training"), "oof frozen member"
    from hardmine import embeddings
    from hardmine.oof.settings import oof_max_length
    from hardmine.runtime import connect

    connect(cfg, log)
    return embeddings.cached_embeddings(cfg, texts, max_length=oof_max_length(store), log=log), f"embedded with {cfg.oof.model}"


def format_signals(sig: dict) -> str:
    lines = ["other signals:"]
    o = sig.get("outliers") or {}
    if "skipped" in o:
        lines.append(f"  outliers: skipped ({o['skipped']})")
    elif o:
        lines.append(f"  outliers: {o['flagged']} rows flagged (top {o['quantile']:g} by mean distance to the {o['k']} nearest rows; "
                     f"{o['embeddings']}); {o['low_agreement_rows']} rows whose neighbours mostly carry another label")
    d = sig.get("duplicates")
    if d:
        lines.append(f"  duplicates ({d['mode']}): {d['groups']} groups, {d['conflicting_groups']} with conflicting labels "
                     f"({d['conflicting_rows']} rows; the select stage keeps them out of augmentation)")
    m = sig.get("dual_model")
    if m:
        top = ", ".join(f"{k} {v:.3f}" for k, v in sorted((m.get("importances") or {}).items(), key=lambda kv: -kv[1])[:3])
        auc = "-" if m.get("auc") is None else f"{m['auc']:.3f}"
        lines.append(f"  dual model ({m['model']}): error_risk AUC {auc} for OOF errors (base rate {m['base_rate']:.3f})"
                     + (f"; top features {top}" if top else "") + (f"; {m['note']}" if m.get("note") else ""))
    return "\n".join(lines)
