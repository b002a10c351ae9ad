"""The augmentation section: the filter funnel, per-method counts, and examples of kept, rejected and failed variants."""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.report.columns import bool_col, lookup, str_col
from hardmine.report.html import Html, h3, kv, para, pct, table, text
from hardmine.report.run import RunArtifacts
from hardmine.report.tables import augmentation_funnel


def _augment_filters(run: RunArtifacts) -> list[str] | None:
    """The filters the run's config turns on, in the order they run; None when the manifest has no augment config."""
    from hardmine.augment.filters import normalize_filter_config

    augment = (run.manifest.get("config") or {}).get("augment")
    if not isinstance(augment, dict) or "filters" not in augment:
        return None
    return list(normalize_filter_config(augment["filters"]))


def _pick_examples(groups: np.ndarray, candidates: np.ndarray, per_group: int, limit: int) -> np.ndarray:
    """Up to ``per_group`` row indices of each group value (round robin, first rows first), ``limit`` total."""
    picked: list[int] = []
    keys = list(dict.fromkeys(groups[candidates].tolist()))
    for round_ in range(per_group):
        for k in keys:
            idx = candidates[groups[candidates] == k]
            if round_ < idx.size and len(picked) < limit:
                picked.append(int(idx[round_]))
    return np.array(sorted(picked), dtype=np.int64)


def augmentation(run: RunArtifacts, max_examples: int = 6, **_) -> str:
    if not run.has("augmented.parquet"):
        return run.missing("augmented.parquet", "augment")
    light = run.table("augmented.parquet", columns=["method", "kept", "reject_reason", "error", "similarity"])
    filters = _augment_filters(run)
    f = augmentation_funnel(light, filters=filters)
    parts = []
    targeted = (run.summary("augment") or {}).get("targeted") or {}
    pairs: list[tuple[str, Any]] = [
        ("variants generated", f["generated"]),
        ("kept", Html(f"{f['kept']:,} ({pct(f['kept'] / f['generated'] if f['generated'] else 0)})")),
        ("rows with an error", f["errors"]),
    ]
    if targeted:
        pairs += [("source samples", targeted.get("sources")), ("seconds", targeted.get("seconds")),
                  ("rows per second", targeted.get("rows_per_s"))]
    parts.append(kv(pairs))
    rows = [["generated", "", "", f["generated"]]]
    for st in f["steps"]:
        label = "per-row errors" if st["step"] == "error" else st["step"]
        rows.append([label, st["rejected"], ", ".join(f"{k} {v:,}" for k, v in sorted(st["reasons"].items())) or "–", st["remaining"]])
    if f["unexplained"]:
        rows.append(["not kept, no reason recorded", f["unexplained"], "", f["generated"] - f["rejected"] - f["unexplained"]])
    rows.append([Html("<b>kept</b>"), "", "", f["kept"]])
    caption = "funnel: variants left after each filter, in the order the filters run"
    if filters is None:
        caption += " (the run's config does not list its filters: a step with 0 rejected may not have run)"
    parts.append(table(["step", "rejected here", "reasons", "remaining"], rows, caption=caption))
    parts.append(table(
        ["method", "generated", "kept", "keep rate", "errors", "rejections", "mean similarity (kept)"],
        [[m["method"], m["generated"], m["kept"], pct(m["keep_rate"]), m["errors"],
          ", ".join(f"{k} {v:,}" for k, v in sorted(m["reasons"].items())) or "–", m["mean_similarity_kept"]]
         for m in f["by_method"]],
        caption="per generator method",
    ))
    ctrl = run.table("augmented_random.parquet", columns=["kept"])
    if ctrl is not None:
        parts.append(para(f"Control pool (augmented_random.parquet, random sources): {ctrl.num_rows:,} variants, "
                          f"{int(bool_col(ctrl, 'kept').sum()):,} kept.", "muted"))

    # examples: source text -> variant, for kept and for rejected rows (only those rows are read in full)
    kept = bool_col(light, "kept")
    reason = str_col(light, "reject_reason", "")
    method = str_col(light, "method", "(none)")
    err = pc.is_valid(light.column("error")).to_numpy(zero_copy_only=False).astype(bool)
    ex_kept = _pick_examples(method, np.flatnonzero(kept), max(1, max_examples // 2), max_examples)
    ex_rej = _pick_examples(reason, np.flatnonzero(~kept & (reason != "") & ~err), 2, 2 * max_examples)
    ex_err = np.flatnonzero(err)[:10]
    want = np.unique(np.concatenate([ex_kept, ex_rej, ex_err]))
    full = run.table("augmented.parquet", columns=["source_id", "text", "method", "similarity", "reject_reason", "error"])
    sub = full.take(pa.array(want, pa.int64()))
    del full
    dataset = run.table("dataset.parquet", columns=["id", "text"])
    src = [None] * sub.num_rows
    if dataset is not None and "source_id" in sub.column_names:
        texts, found = lookup(sub.column("source_id"), dataset, "id", "text")
        src = [t if v else None for t, v in zip(texts, found)]
    recs = {int(i): {**r, "source_text": s} for i, r, s in zip(want.tolist(), sub.to_pylist(), src)}

    def ex_table(idx, caption, with_reason):
        header = ["method", "source text", "variant", "similarity"] + (["reject reason"] if with_reason else [])
        rows = []
        for i in idx.tolist():
            r = recs[i]
            row = [r.get("method"), text(r["source_text"], 200), text(r.get("text"), 200), r.get("similarity")]
            rows.append(row + ([r.get("reject_reason")] if with_reason else []))
        return table(header, rows, caption=caption)

    parts.append(h3("Examples"))
    parts.append(ex_table(ex_kept, "kept variants (source → variant)", False))
    parts.append(ex_table(ex_rej, "rejected variants, by reason", True))
    parts.append(h3(f"Rows with an error ({f['errors']:,})"))
    parts.append(table(
        ["method", "source id", "error"],
        [[recs[i].get("method"), text(recs[i].get("source_id"), 60), text(recs[i].get("error"), 300)] for i in ex_err.tolist()],
        more=f["errors"] - ex_err.size,
    ))
    return "".join(parts)
