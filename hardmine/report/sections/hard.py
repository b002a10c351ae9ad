"""Sections of the hard set and the label issues: hardness, hard samples per class, confusion pairs, label issues."""
from __future__ import annotations

from html import escape
from typing import Any

import pyarrow as pa

from hardmine.report.columns import bool_col
from hardmine.report.html import SKIP, Html, h3, img, kv, para, pct, table, text
from hardmine.report.run import RunArtifacts
from hardmine.report.tables import label_issue_rows
from hardmine.summaries import read_label_quality


def hardness(run: RunArtifacts, **_) -> str:
    png = run.png("plots/hardness_histogram.png")
    if png is None:
        return run.missing("plots/hardness_histogram.png", "select")
    parts = []
    s = run.summary("select")
    if s is not None:
        acts = s.get("actions") or {}
        parts.append(kv([
            ("hard (eligible for augmentation)", s.get("n_hard")),
            ("hardness threshold", s.get("hardness_threshold")),
            ("actions", ", ".join(f"{k} {v:,}" for k, v in acts.items() if isinstance(v, int)) or None),
        ]))
    parts.append(img(png, "hardness histogram per class"))
    a = run.json("analysis/analysis.json")
    if isinstance(a, dict) and isinstance(a.get("length"), dict):
        stats = ["n", "mean", "min", "p10", "p50", "p90", "max"]
        rows = [[g] + [(a["length"][g] or {}).get(k) for k in stats] for g in a["length"]]
        parts.append(table(["group"] + stats, rows, caption=f"text length in characters (hard = {a.get('hard_rule', '?')})"))
    return "".join(parts)


def _plot_and_table(run: RunArtifacts, png_name: str, table_name: str, alt: str) -> tuple[list[str], pa.Table | None]:
    """A section's select-stage plot (or its "not run yet" note) and its analysis table (None when absent, noted)."""
    png = run.png(png_name)
    t = run.table(table_name)
    if png is None and t is None:
        return [run.missing(f"{png_name} and {table_name}", "select")], None
    parts = [img(png, alt) if png is not None else run.missing(png_name, "select")]
    if t is None:
        parts.append(run.missing(table_name, "select"))
    return parts, t


def per_class(run: RunArtifacts, max_rows: int = 40, **_) -> str:
    parts, per_class_t = _plot_and_table(run, "plots/hard_per_class.png", "analysis/per_class.parquet", "hard samples per class")
    if per_class_t is None:
        return "".join(parts)
    phrases: dict[int, list[str]] = {}  # class -> rendered "<code>phrase</code> k/n" (the analysis' top 3)
    tok = run.table("analysis/distinctive_tokens.parquet", columns=["class", "phrase", "token", "hard_df", "n_hard"])
    if tok is not None and tok.num_rows and "class" in tok.column_names:
        col = "phrase" if "phrase" in tok.column_names else "token"
        counted = "hard_df" in tok.column_names and "n_hard" in tok.column_names  # tables before n_hard: no counts
        for r in tok.to_pylist():
            ph = r.get(col)
            if ph is not None and len(phrases.setdefault(int(r["class"]), [])) < 3:
                cell = f"<code>{escape(ph.strip())}</code>"
                if counted and r.get("hard_df") is not None and r.get("n_hard"):
                    cell += f" <span class=muted>{r['hard_df']}/{r['n_hard']}</span>"
                phrases[int(r["class"])].append(cell)
    rows = per_class_t.to_pylist()
    rows.sort(key=lambda r: (-(r.get("n_hard") or 0), r.get("class") or 0))
    out = []
    for r in rows[:max_rows]:
        out.append([
            text(r.get("name", r.get("class")), 60), r.get("n"), r.get("n_hard"), pct(r.get("share_hard")),
            r.get("n_issue"), pct(r.get("share_issue")),
            Html(" · ".join(phrases.get(int(r.get("class", -1)), []))),
        ])
    parts.append(table(["class", "rows", "hard", "share hard", "label issues", "share issues", "distinctive phrases of its hard samples"],
                       out, more=len(rows) - max_rows,
                       caption="per class, most hard samples first; k/n after a distinctive phrase: k of the class's n hard samples contain it"))
    return "".join(parts)


def confusion(run: RunArtifacts, max_rows: int = 20, **_) -> str:
    parts, pairs_t = _plot_and_table(run, "plots/confusion_hard.png", "analysis/confusion_pairs.parquet",
                                     "given vs predicted among hard samples")
    if pairs_t is None:
        return "".join(parts)
    rows = pairs_t.to_pylist()
    parts.append(table(
        ["given label", "predicted", "hard samples", "share of hard"],
        [[text(r.get("label_name"), 60), text(r.get("pred_name"), 60), r.get("count"), pct(r.get("share_of_hard"))]
         for r in rows[:max_rows]],
        more=len(rows) - max_rows, caption="most frequent confusions among hard samples (given → predicted)",
    ))
    return "".join(parts)


def label_issues(run: RunArtifacts, top_issues: int = 50, **_) -> str:
    if not run.has("scores.parquet"):
        return run.missing("scores.parquet", "score")
    cols = ["id", "label", "is_label_issue", "issue_rank", "suggested_label", "suggested_confidence", "p_true", "label_quality"]
    scores = run.table("scores.parquet", columns=cols)
    n = scores.num_rows
    n_flag = int(bool_col(scores, "is_label_issue").sum()) if "is_label_issue" in scores.column_names else 0
    raw_lq = run.json("label_quality.json")
    lq = read_label_quality(raw_lq) if raw_lq is not None else None
    parts = []
    pairs: list[tuple[str, Any]] = [("rows scored", n), ("flagged as label issues", Html(f"{n_flag:,} ({pct(n_flag / n if n else 0)})"))]
    if lq is not None:
        pairs += [
            ("estimated wrong labels (cleanlab confident joint)", lq["estimated_label_errors"]),
            ("estimated wrong-label fraction", pct(lq["estimated_label_error_fraction"])),
            ("issue filter", lq["label_issues"]["filter_used"] if "label_issues" in lq else SKIP),
        ]
    parts.append(kv(pairs))
    det = lq.get("detection") if lq is not None else None
    parts.append(h3("Detection against the injected truth"))
    if det is not None:
        parts.append(table(["precision", "recall", "F1", "true positives", "false positives", "false negatives"],
                           [[det["precision"], det["recall"], det["f1"], det["tp"], det["fp"], det["fn"]]]))
    elif lq is None:
        parts.append(run.missing("label_quality.json", "score"))
    else:
        parts.append(para("No injected truth in this run (data.truth_path): precision and recall are not computed.", "muted"))

    truth = run.table("truth.parquet")
    dataset = run.table("dataset.parquet", columns=["id", "text"])
    rows = label_issue_rows(scores, dataset, run.labels, top=top_issues, truth=truth)
    parts.append(h3(f"Top {min(top_issues, n_flag)} label issues of {n_flag:,} (most likely wrong first)"))
    header = ["rank", "id", "text", "given label", "suggested label", "p(suggested)", "p(given)"]
    has_truth = "true_name" in rows.column_names
    if has_truth:
        header += ["true label", "injected noise"]
    out = []
    for r in rows.to_pylist():
        row = [r["issue_rank"], text(r["id"], 40), text(r["text"]), text(r["label_name"], 50),
               Html(f"<b>{text(r['suggested_name'], 50)}</b>"), r.get("suggested_confidence"), r.get("p_true")]
        if has_truth:
            row += [text(r.get("true_name"), 50), r.get("injected_noise")]
        out.append(row)
    parts.append(table(header, out))

    if lq is not None:
        pc_rows = sorted(lq["per_class"], key=lambda r: -r["estimated_noise_rate"])
        parts.append(table(
            ["class", "rows", "estimated noise rate", "estimated mislabeled", "flagged"],
            [[text(r["name"], 60), r["count"], pct(r["estimated_noise_rate"]), r["estimated_mislabeled"],
              r["n_flagged"]] for r in pc_rows[:30]],
            more=len(pc_rows) - 30, caption="estimated label noise per class (cleanlab), noisiest first",
        ))
    return "".join(parts)
