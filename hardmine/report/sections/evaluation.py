"""Sections of the held-out evaluation: the arm comparison, the threshold sweep, the review history."""
from __future__ import annotations

from html import escape
from typing import Any

from hardmine.report.figures import arm_errorbar_png, sweep_heatmap_png
from hardmine.report.html import SKIP, Html, ci, delta, h3, img, kv, para, pct, table, text
from hardmine.report.run import RunArtifacts
from hardmine.report.tables import arm_rows, threshold_name
from hardmine.summaries import EvaluationSummary, read_evaluation_summary, read_sweep_best


#: how each set of held-out labels is named on the page
LABEL_SET_NAME = {"given": "given labels", "true": "true labels"}


def _arm_table(summary: EvaluationSummary, label_set: str) -> Html:
    tag = LABEL_SET_NAME[label_set]
    pct = f"{100 * summary['bootstrap']['confidence']:g}%"
    header = ["arm", "seeds", "train rows", "augmented", f"accuracy ({tag}) [{pct} interval]", f"Δ accuracy vs baseline ({tag})",
              "McNemar p", f"macro-F1 ({tag})", f"Δ macro-F1 vs baseline ({tag})", f"ECE ({tag})"]
    body = []
    for r in arm_rows(summary, label_set):
        base = r["arm"] == "baseline"
        body.append([
            Html(f"<b>{escape(r['arm'])}</b>") if base else r["arm"], r["n_seeds"], r["train_rows"], r["n_augmented"],
            ci(r["accuracy"]), "–" if base else delta(r["diff"]["accuracy"]),
            "–" if r["mcnemar"] is None else Html(f"{r['mcnemar']['p_value']:.3g} <span class=muted>"
                                                  f"({r['mcnemar']['only_arm_correct']}:{r['mcnemar']['only_reference_correct']})</span>"),
            ci(r["macro_f1"]), "–" if base else delta(r["diff"]["macro_f1"]), ci(r["ece"]),
        ])
    caption = (f"held-out metrics per arm against the {tag}: mean over seeds [{pct} paired-bootstrap interval over held-out rows]; "
               "a Δ marked ≠0 has an interval that excludes zero, any other is not distinguishable from baseline; "
               "McNemar p (rows only this arm got right : rows only baseline got right)")
    return table(header, body, caption=caption)


def hard_weighted_line(info: dict | None) -> Any:
    """What the hard_weighted arm trained with (from its training-set info), or SKIP."""
    if not info:
        return SKIP
    mode, cap = info.get("hard_weighting", "upweight"), info.get("hard_weight_cap", 3.0)
    keep = (info.get("train") or {}).get("ohem_keep")
    what = {
        "upweight": f"the baseline rows with loss weights 1 + {cap - 1:g} × hardness ({info.get('n_upweighted', 0):,} rows up-weighted)",
        "oversample": f"the baseline rows, hard ones repeated about 1 + {cap - 1:g} × hardness times ({info.get('n_repeated', 0):,} repeats)",
        "ohem": "the baseline rows, each batch back-propagating only its highest-loss "
                + (f"{keep:g} share" if keep is not None else "share") + " (OHEM)",
    }.get(mode, mode)
    return f"{what}; {info.get('n_label_issues', 0):,} label issues never up-weighted"


def adversarial_line(info: dict | None) -> Any:
    """What the adversarial arm trained with (from its training-set info), or SKIP."""
    if not info:
        return SKIP
    eps = (info.get("train") or {}).get("fgm_epsilon")
    return "the baseline rows trained with FGM on the word embeddings" + (f" (epsilon {eps:g})" if eps is not None else "")


def arms(run: RunArtifacts, **_) -> str:
    raw = run.json("evaluation/summary.json")
    if raw is None:
        return run.missing("evaluation/summary.json", "evaluate")
    summary = read_evaluation_summary(raw)
    b, truth = summary["bootstrap"], summary["truth"]
    labels_note = (
        f"given and true (injected truth: {truth['flipped']:,} of {truth['rows']:,} given held-out labels differ from the true ones)"
        if truth["available"] else "given labels only (" + truth["note"] + ")"
    )
    parts = [kv([
        ("held-out rows", b["rows"]),
        ("held-out labels scored against", labels_note),
        ("seeds per arm", ", ".join(sorted({str(a["n_seeds"]) for a in summary["arms"].values()}))),
        ("intervals", f"{100 * b['confidence']:g}%, paired bootstrap over held-out rows ({b['resamples']:,} resamples; "
                      "the same rows for every arm, seeds averaged)"),
        ("McNemar test", summary["mcnemar_pooling"]),
        ("retrained model", summary.get("backbone", SKIP)),
        ("aug_ratio", summary.get("aug_ratio", SKIP)),
        ("review rows in the clean arms", summary.get("review_as", SKIP)),
        ("hard_weighted arm", hard_weighted_line(summary.get("training_sets", {}).get("hard_weighted"))),
        ("adversarial arm", adversarial_line(summary.get("training_sets", {}).get("adversarial"))),
        ("seconds", summary.get("seconds", SKIP)),
    ])]
    for ls in summary["label_sets"]:
        title = ("Against the given held-out labels" if ls == "given"
                 else "Against the true held-out labels (injected truth)")
        parts.append(h3(title))
        if ls == "true":
            parts.append(para(f"{truth['flipped']:,} of the {truth['rows']:,} given held-out labels differ from the injected truth: "
                              "a model that learns the true labels is scored down by the given ones. These numbers use the true labels.",
                              "muted"))
        parts.append(_arm_table(summary, ls))
    pair_rows = []
    for name, pr in summary["pairs"].items():
        for ls in summary["label_sets"]:
            rec = pr if ls == "given" else pr.get("true_labels")
            if rec is not None:
                pair_rows.append([name, LABEL_SET_NAME[ls], delta(rec["accuracy"]), delta(rec["macro_f1"]),
                                  f"{rec['mcnemar']['p_value']:.3g}"])
    if pair_rows:
        parts.append(table(["pair", "labels", "Δ accuracy", "Δ macro-F1", "McNemar p"], pair_rows,
                           caption="other paired differences (e.g. targeted augmentation against the random control at the same budget)"))
    for n in summary["notes"]:
        parts.append(para(f"note: {n}", "muted"))
    ls = "true" if truth["available"] else "given"
    parts.append(img(arm_errorbar_png(summary, label_set=ls), f"held-out accuracy per arm ({LABEL_SET_NAME[ls]}) with intervals"))
    return "".join(parts)


def _sweep_conf_rows(conf: dict, metric: str) -> list[list]:
    rows = []
    for ls in conf["label_sets"]:
        for arm in ("baseline", "chosen"):
            a = conf["arms"].get(arm)
            if a is None:
                continue
            rec = a if ls == "given" else a.get("true_labels")
            if rec is None:
                continue
            vs = rec.get("vs_baseline")
            rows.append([
                Html("<b>baseline</b> (no action)") if arm == "baseline" else "chosen", LABEL_SET_NAME[ls], a["n_seeds"],
                a.get("train_rows"), a.get("n_augmented"), ci(rec[metric]), "–" if vs is None else delta(vs[metric]),
                "–" if vs is None else f"{vs['mcnemar']['p_value']:.3g}",
            ])
    return rows


def sweep(run: RunArtifacts, **_) -> str:
    raw = run.json("sweep/best.json")
    if raw is None:
        return run.missing("sweep/best.json", "sweep")
    sb = read_sweep_best(raw)
    m, sel, b = sb["metric"], sb["selection"], sb["best"]
    t = sb["trials"]
    boot = sb["bootstrap"]
    parts = [kv([
        ("chosen on", f"the validation split: {sel['rows']:,} of the training rows (sweep.validation_size "
                      f"{sel['validation_size']:g}, stratified, seed {sel['seed']}); trials trained on the other "
                      f"{sel['train_rows']:,}, without the {sel['pool_rows_excluded']:,} pool variants of validation rows"),
        ("rule", sel["rule"]),
        ("seeds per cell", len(sel["seeds"])),
        ("cells", f"{t.get('done', 0)} trained, {t.get('shared', 0)} sharing another cell's training set, "
                  f"{t.get('error', 0)} failed, {t.get('incomplete', 0)} not finished"),
        ("intervals", SKIP if boot is None else f"{100 * boot['confidence']:g}%, paired bootstrap over the "
                      f"{boot['rows']:,} validation rows ({boot['resamples']:,} resamples, seeds averaged)"),
    ])]
    parts.append(h3("Chosen on the validation split"))
    if b is None:
        parts.append(para(sb["note"], "muted"))
    elif b["no_action"]:
        parts.append(para(f"The baseline (no action): no cell's interval of Δ {m} lies above zero on the validation split.",))
    else:
        parts.append(kv([
            (b["threshold_kind"], b["threshold"]), ("aug_ratio", b["aug_ratio"]), ("issue_action", b["issue_action"]),
            (f"validation {m}", ci(b[m])), (f"Δ {m} vs baseline (validation)", delta(b["vs_baseline"][m])),
        ]))
    conf = sb["confirmation"]
    parts.append(h3("Confirmed on the test split (once, after the choice)"))
    if conf is None:
        parts.append(para("Not confirmed yet: the sweep is incomplete or nothing was chosen. The test split is read only "
                          "once the choice is final.", "muted"))
    else:
        parts.append(table(
            ["model", "labels", "seeds", "train rows", "augmented", f"test {m}", f"Δ {m} vs baseline", "McNemar p"],
            _sweep_conf_rows(conf, m),
            caption=f"retrained on all {conf['train_rows']:,} training rows, scored on the {conf['rows']:,} test rows; "
                    + ("true labels = the injected truth of the test rows" if conf["truth"]["available"] else conf["truth"]["note"]),
        ))
    if sb["configs"]:
        parts.append(img(sweep_heatmap_png(raw), f"sweep heat-map: Δ validation {m} vs baseline; * = interval excludes 0"))
        cells = []
        for c in sb["configs"]:
            vs = c.get("vs_baseline")
            cells.append([
                "baseline (no action)" if c["no_action"] else c["issue_action"], "–" if c["threshold"] is None else c["threshold"],
                c["aug_ratio"], ci(c[m]), "reference" if c["no_action"] else delta(vs[m]) if vs else "–",
                "–" if not vs else f"{vs['mcnemar']['p_value']:.3g}", c["n_seeds"], c.get("train_rows"),
                c.get("same_as") or "",
            ])
        parts.append(table(["issue_action", threshold_name(sb), "aug_ratio", f"validation {m}", f"Δ {m} vs baseline", "McNemar p", "seeds",
                            "train rows", "shares runs of"], cells[:15], more=len(cells) - 15,
                           caption=f"cells by the lower bound of Δ {m} vs baseline on the validation split"))
    parts.append(para(sb["note"], "muted"))
    for n in sb["notes"]:
        parts.append(para(f"note: {n}", "muted"))
    return "".join(parts)


def review_history(run: RunArtifacts, **_) -> str:
    """Review rounds (imports) and pseudo-label rounds, with the held-out accuracy of a run on each version."""
    from hardmine.review.versions import review_history

    rows = review_history(run.store)
    prep = run.summary("prepare") or {}
    on = prep.get("dataset_version")
    if not rows:
        return para("No review round yet: export a queue (<code>hardmine review export CONFIG</code>), correct it and import it "
                    "(<code>hardmine review import CONFIG FILE</code>); the next <code>hardmine run</code> trains on the new "
                    "version and <code>hardmine review next CONFIG</code> exports the next batch.", "muted")
    body = []
    for r in rows:
        body.append([
            r["round"], r["kind"], Html(f"<b>{r['version']}</b>") if r["version"] == on else r["version"],
            "–" if r["rows"] is None else r["rows"], "–" if r["changed"] is None else r["changed"],
            "–" if r["fold_ensemble"] is None else pct(r["fold_ensemble"]),
            "–" if r["baseline"] is None else pct(r["baseline"]),
            text(r["source"], 120), r["time"] or "–",
        ])
    total_rows = sum(r["rows"] or 0 for r in rows if r["kind"] == "review")
    total_changed = sum(r["changed"] or 0 for r in rows if r["kind"] == "review")
    parts = [kv([
        ("review rounds", sum(r["kind"] == "review" for r in rows)),
        ("rows reviewed", total_rows),
        ("labels changed", total_changed),
        ("pseudo-label rounds", sum(r["kind"] == "pseudo-label" for r in rows)),
        ("this run trains on dataset version", on if on is not None else SKIP),
    ])]
    parts.append(table(
        ["round", "kind", "dataset version after", "rows reviewed / added", "labels changed",
         "held-out accuracy (fold models)", "held-out accuracy (evaluate baseline)", "source", "time (UTC)"],
        body,
        caption="round 0 is the data as prepared; held-out accuracy is that of a run on the round's dataset version (the same "
                "held-out split every round), shown when a run on that version got that far; – when none did",
    ))
    return "".join(parts)
