"""The select stage: an action per sample (augment / review / drop / relabel / none), the hard-case analysis and its plots."""
from __future__ import annotations

from typing import Any

from hardmine.analysis import analyze, format_tables, write_analysis
from hardmine.augment.explain import no_sources_reason
from hardmine.console import detail
from hardmine.data import DataError
from hardmine.pipeline.run import Context, run_declared
from hardmine.select import hard_mask, select, select_kwargs


def select_stage(ctx: Context) -> dict[str, Any]:
    """Action per sample (augment / review / drop / relabel / none), hard-case analysis and plots."""
    return run_declared(ctx, "select", lambda fp: _select(ctx))


def _select(ctx: Context) -> dict[str, Any]:
    cfg, store = ctx.cfg, ctx.store
    scores = store.read_table("scores.parquet")
    ds = store.read_table("dataset.parquet")
    names = store.manifest()["labels"]
    s = cfg.select
    try:
        kw = select_kwargs(cfg, names)
    except ValueError as e:
        raise DataError(str(e)) from None
    # the policy keys live here, not in select_kwargs: the sweep varies the hardness rule only
    kw.update(policy=s.policy, ambiguous_quantile=s.ambiguous_quantile, class_budget=s.class_budget)
    try:
        selected, summary = select(
            scores, ds, hardness_quantile=s.hardness_quantile, p_true_max=s.p_true_max, issue_action=s.issue_action, **kw
        )
    except ValueError as e:  # e.g. policy ambiguous on one-epoch dynamics: a clear refusal, not a traceback
        raise DataError(f"select: {e}") from None
    store.write_table("selected.parquet", selected)
    hard = hard_mask(selected, scores)  # the selection's hard set: what the analysis and the plots describe
    result = analyze(scores, ds, names, hard_mask=hard, hard_rule=summary["hard_rule"], top_pairs=cfg.score.top_pairs,
                     top_tokens=cfg.score.top_tokens, seed=cfg.seed)
    with store.local_dir("analysis") as d:
        write_analysis(result, d)
    with store.local_dir("plots") as d:
        _plots(d, scores, selected, names, result, hard, data_map=bool(summary.get("data_map")))
    detail(format_tables(result, max_rows=10))  # the tables: log file, console with -v, analysis/ and the report
    ctx.log(format_hard_overview(summary, result))
    actions = selected.column("action").value_counts().to_pylist()
    ctx.log("selection: " + ", ".join(f"{a['values']} {a['counts']}" for a in actions))
    if summary["n_conflicting_duplicates"] or summary["n_outliers"]:
        ctx.log(f"kept out of augmentation{', sent to review' if s.issue_action != 'keep' else ''}: {summary['n_conflicting_duplicates']} conflicting duplicates, "
                f"{summary['n_outliers']} outliers (score stage)")
    if summary.get("data_map"):
        ctx.log("data map regions: " + ", ".join(f"{k} {v}" for k, v in summary["data_map"]["regions"].items())
                + f" (policy {s.policy})")
    cb = summary.get("class_budget") or {}
    if cb.get("per_class"):
        moved = {c: f"{r['uniform_sources']}->{r['sources']}" for c, r in cb["per_class"].items() if r["uniform_sources"] != r["sources"]}
        ctx.log(f"class budget {cb['mode']}: {cb['allocated']} of {cb['total']} sources placed; per class {moved or 'unchanged'}"
                + (f"; {cb['fallback']}" if cb.get("fallback") else ""))
    out = {"actions": {a["values"]: a["counts"] for a in actions}, **{k: v for k, v in summary.items() if k != "actions"}}
    if not summary["actions"].get("augment"):
        out["no_augment_reason"] = no_augment_reason(summary, s.policy)
        ctx.log(f"selection: {out['no_augment_reason']}")
    return out


def _plots(d: str, scores, selected, names: list[str], result: dict, hard, data_map: bool) -> None:
    from hardmine.plots import confusion_heatmap, hard_per_class, hardness_histogram

    hardness_histogram(scores, names, f"{d}/hardness_histogram.png", hard_mask=hard)
    hard_per_class(result["per_class"], f"{d}/hard_per_class.png")
    confusion_heatmap(scores, names, f"{d}/confusion_hard.png", hard_mask=hard)
    if data_map:  # the dataset-cartography plot needs training dynamics
        from hardmine.plots import data_map as data_map_plot

        data_map_plot(scores, f"{d}/data_map.png", label_names=names, regions=selected.column("region").to_pylist())


def no_augment_reason(summary: dict, policy: str) -> str:
    """Why the selection has no row to augment (the augment stage repeats it)."""
    if policy == "ambiguous" and not summary["n_hard"]:  # no_sources_reason speaks of the hardness rule
        q = summary["params"]["ambiguous_quantile"]
        return (
            f"0 rows to augment: no row outside the {summary['n_label_issues']} label issues is in the ambiguous "
            f"region (select.policy=ambiguous, select.ambiguous_quantile={q:g}); raise select.ambiguous_quantile, "
            "set select.issue_action: keep, or use select.policy: hardness"
        )
    return no_sources_reason(summary, summary["n_hard_with_issues"])


def format_hard_overview(summary: dict, result: dict) -> str:
    """Two console lines for the hard set (the full tables go to the log file, analysis/ and the report)."""
    pc = result["per_class"].to_pylist()
    pc.sort(key=lambda r: (-(r["share_hard"] or 0), r["class"]))
    shares = ", ".join(f"{r['name']} {100 * (r['share_hard'] or 0):.0f}%" for r in pc[:3] if r["n_hard"])
    lines = [f"hard samples: {result['n_hard']} of {result['n']} ({result['hard_rule']}); label issues: {result.get('n_issue', 0)}"
             + (f"; hardest classes: {shares}" if shares else "")]
    pairs = result["confusion_pairs"].to_pylist()[:3]
    if pairs:
        lines.append("most confused among hard samples (given -> predicted): "
                     + ", ".join(f"{p['label_name']} -> {p['pred_name']} {p['count']}" for p in pairs)
                     + " (tables: analysis/, the report, or -v)")
    return "\n".join(lines)
