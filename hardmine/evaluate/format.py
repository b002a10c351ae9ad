"""Console formatting of the evaluation summary: fixed-width tables of :func:`hardmine.evaluate.compare`'s
output, and the interval / difference notation the sweep's tables share."""
from __future__ import annotations

from hardmine.summaries import EvaluationSummary

LABEL_SET_TITLE = {
    "given": "against the given held-out labels",
    "true": "against the true held-out labels (injected truth)",
}


def _fmt_iv(iv: dict | None) -> str:
    if iv is None:
        return "-"
    return f"{100 * iv['mean']:.2f} [{100 * iv['lo']:.2f}, {100 * iv['hi']:.2f}]"


def format_diff(d: dict | None) -> str:
    """A difference in points with its interval and what it means: higher / lower / not distinguishable."""
    if d is None:
        return "-"
    return f"{100 * d['mean']:+.2f} [{100 * d['lo']:+.2f}, {100 * d['hi']:+.2f}] {d['verdict']}"


def format_summary(summary: EvaluationSummary) -> str:
    """Fixed-width tables of :func:`hardmine.evaluate.compare`'s output, one per label set (given, and true when known).

    Percentages; a difference is followed by ``higher`` / ``lower`` when its interval excludes
    zero, else ``not distinguishable``.
    """
    b = summary["bootstrap"]
    pct = f"{100 * b['confidence']:g}%"
    lines: list[str] = []
    for ls in summary["label_sets"]:
        tag = f"({ls} labels)"
        title = LABEL_SET_TITLE[ls]
        if ls == "true":
            title += f": {summary['truth']['flipped']} of {summary['truth']['rows']} given labels differ"
        lines.append(f"held-out metrics {title}")
        lines.append(
            f"{'arm':<15} {'seeds':>5} {'train':>7} {'aug':>6}  {'accuracy % ' + tag:<26} {'Δ accuracy vs baseline (points)':<44} "
            f"{'McNemar p':>9}  {'macro-F1 % ' + tag:<26} {'Δ macro-F1 vs baseline':<44} {'ECE %':>6}"
        )
        for a, r in summary["arms"].items():
            rec = r if ls == "given" else r.get("true_labels")
            if rec is None:
                continue
            d = rec.get("vs_baseline")
            p = f"{d['mcnemar']['p_value']:.3g}" if d else "-"
            lines.append(
                f"{a:<15} {r['n_seeds']:>5} {r.get('train_rows', float('nan')):>7.0f} {r.get('n_augmented', float('nan')):>6.0f}  "
                f"{_fmt_iv(rec['accuracy']):<26} {format_diff(d['accuracy'] if d else None):<44} {p:>9}  "
                f"{_fmt_iv(rec['macro_f1']):<26} {format_diff(d['macro_f1'] if d else None):<44} {100 * rec['ece']['mean']:>6.2f}"
            )
        for name, pr in summary.get("pairs", {}).items():
            prec = pr if ls == "given" else pr.get("true_labels")
            if prec is not None:
                lines.append(
                    f"{name} {tag}: accuracy {format_diff(prec['accuracy'])}  macro-F1 {format_diff(prec['macro_f1'])}  "
                    f"McNemar p {prec['mcnemar']['p_value']:.3g}"
                )
        lines.append("")
    lines.append(
        f"[{pct} interval]: paired bootstrap over the {b['rows']} held-out rows ({b['resamples']} resamples, seeds averaged "
        f"within each); a difference is real only when its interval excludes zero (higher / lower), else not distinguishable. "
        f"McNemar: exact test on per-row correctness, seeds pooled by majority."
    )
    if not summary["truth"]["available"]:
        lines.append("true labels of the held-out rows are not known: metrics are against the given labels")
    lines.extend(f"note: {n}" for n in summary.get("notes", []))
    return "\n".join(lines)
