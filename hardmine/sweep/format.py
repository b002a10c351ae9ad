"""Console formatting of the sweep: the cells by lower bound, the choice and its confirmation on test."""
from __future__ import annotations

from hardmine.evaluate.format import format_diff
from hardmine.summaries import SweepBest
from hardmine.sweep.space import BASELINE, cell_name


def format_results(best: SweepBest, top: int = 10) -> str:
    """The cells by lower bound (validation), the choice and its confirmation on test, as text (points)."""
    m = best["metric"]
    lines = [f"sweep cells on the validation split ({best['selection']['rows']} rows), by the lower bound of Δ {m} vs baseline:",
             f"{'threshold':>9} {'aug_ratio':>9} {'issue_action':<12} {'seeds':>5} {'train':>7} {'aug':>6}  "
             f"{m + ' %':<24} Δ vs baseline (points) [interval]"]
    for c in best["configs"][:top]:
        iv = c[m]
        thr = "-" if c["threshold"] is None else f"{c['threshold']:g}"
        act = "(none)" if c["no_action"] else c["issue_action"]
        lines.append(
            f"{thr:>9} {c['aug_ratio']:>9g} {act:<12} {c['n_seeds']:>5} {c.get('train_rows', float('nan')):>7.0f} "
            f"{c.get('n_augmented', float('nan')):>6.0f}  {100 * iv['mean']:6.2f} [{100 * iv['lo']:.2f}, {100 * iv['hi']:.2f}]  "
            f"{format_diff(c['vs_baseline'][m]) if 'vs_baseline' in c else 'reference' if c['no_action'] else '-'}"
        )
    if len(best["configs"]) > top:
        lines.append(f"... {len(best['configs']) - top} more cells in sweep/best.json")
    t = best["trials"]
    lines.append(f"cells: {t.get('done', 0)} trained, {t.get('shared', 0)} sharing another cell's runs, "
                 f"{t.get('error', 0)} failed, {t.get('incomplete', 0)} not finished")
    b = best["best"]
    if b is None:
        lines.append(best["note"])
        return "\n".join(lines)
    if b["no_action"]:
        lines.append(f"chosen on validation: the baseline (no action): no cell's {m} interval lies above it")
    else:
        lines.append(f"chosen on validation: {cell_name(b)}: Δ {m} {format_diff(b['vs_baseline'][m])}")
    conf = best.get("confirmation")
    if conf is None:
        lines.append("not confirmed on the test split yet (incomplete sweep)")
        return "\n".join(lines)
    for ls in conf["label_sets"]:
        tag = "given test labels" if ls == "given" else "true test labels (injected truth)"
        base = conf["arms"][BASELINE] if ls == "given" else conf["arms"][BASELINE]["true_labels"]
        line = f"confirmed on the test split ({conf['rows']} rows, {tag}): baseline {100 * base[m]['mean']:.2f}%"
        ch = conf["arms"].get("chosen")
        if ch is not None:
            rec = ch if ls == "given" else ch["true_labels"]
            line += f", chosen {100 * rec[m]['mean']:.2f}%, Δ {format_diff(rec['vs_baseline'][m])}"
        lines.append(line)
    return "\n".join(lines)
