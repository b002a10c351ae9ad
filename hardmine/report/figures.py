"""The report's own figures, drawn in memory as PNG bytes: arm error bars and the sweep heat-map."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hardmine.plots import figure, png_bytes, short, style
from hardmine.report.tables import arm_rows, sweep_cell_labels, sweep_grid
from hardmine.summaries import EvaluationSummary
from hardmine.vocab import METRICS


def arm_errorbar_png(summary: EvaluationSummary, metrics: Sequence[str] = ("accuracy", "macro_f1"), label_set: str | None = None) -> bytes:
    """Error bars (mean over seeds, paired-bootstrap interval over held-out rows) per arm, one panel per metric.

    ``label_set``: ``given`` or ``true``; default: the true labels when the summary has them.
    """
    label_set = label_set or ("true" if "true" in summary["label_sets"] else "given")
    rows = arm_rows(summary, label_set)
    shown = list(metrics)
    unknown = [m for m in shown if m not in METRICS]
    if unknown or not shown:
        raise ValueError(f"metrics must be some of {list(METRICS)}, got {list(metrics)}")
    labels = [short(r["arm"], 16) for r in rows]
    x = np.arange(len(rows))
    with style():
        fig = figure(max(5.0, 1.3 * len(rows) * len(shown) + 1.5), 3.8)
        axes = fig.subplots(1, len(shown), squeeze=False)[0]
        for ax, m in zip(axes, shown):
            base = next((r[m] for r in rows if r["arm"] == "baseline"), None)
            for i, r in enumerate(rows):
                iv = r[m]
                lo, hi = iv["mean"] - iv["lo"], iv["hi"] - iv["mean"]
                color = "0.35" if r["arm"] == "baseline" else f"C{i % 10}"
                ax.errorbar([x[i]], [iv["mean"]], yerr=[[max(lo, 0.0)], [max(hi, 0.0)]], fmt="o", capsize=5,
                            color=color, markersize=6, linewidth=1.5)
                ax.annotate(f"{iv['mean']:.3f}", (x[i], iv["mean"]), xytext=(7, 0), textcoords="offset points",
                            va="center", fontsize=7)
            if base is not None:
                ax.axhline(base["mean"], color="0.35", linestyle="--", linewidth=0.8, label="baseline mean")
                ax.legend(fontsize=7, loc="best", frameon=False)
            ax.set_xticks(x, labels, rotation=20, ha="right")
            ax.set_xlim(-0.6, len(rows) - 0.4)
            ax.set_ylabel(f"held-out {m} ({label_set} labels)")
            ax.set_title(f"{m} per arm, {label_set} labels (mean, {100 * summary['bootstrap']['confidence']:g}% interval)")
        return png_bytes(fig)


def sweep_heatmap_png(best: dict, metric: str | None = None, *, threshold_name: str | None = None) -> bytes:
    """Heat-map threshold x aug_ratio -> Δ ``metric`` vs the baseline (no action) on the validation split, one
    panel per issue_action: diverging colours centred on zero and spanning the intervals, ``*``, full
    colour and a black frame where the interval excludes zero (the others faded), the chosen cell
    outlined in orange."""
    g = sweep_grid(best, metric)
    threshold_name = threshold_name or g["threshold_kind"]
    diff = 100 * g["diff"]
    labels = sweep_cell_labels(g)
    a, t, r = diff.shape
    # colours span the intervals, not just the means: a difference smaller than its noise stays pale
    bounds = 100 * np.concatenate([g["lo"][np.isfinite(g["lo"])], g["hi"][np.isfinite(g["hi"])]])
    span = float(np.abs(bounds).max()) if bounds.size else 1.0
    span = span if span > 0 else 1.0
    with style():
        import matplotlib

        cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="0.9")
        panel = max(3.0, 0.95 * r + 1.6)
        fig = figure(panel * max(a, 1) + 1.4, max(3.0, 0.7 * t + 1.9))
        axes = fig.subplots(1, max(a, 1), squeeze=False)[0]
        im = None
        for k, ax in enumerate(axes):
            if k >= a:
                ax.text(0.5, 0.5, "no finished cell", ha="center", va="center", transform=ax.transAxes)
                continue
            im = ax.imshow(np.ma.masked_invalid(diff[k]), cmap=cmap, vmin=-span, vmax=span, aspect="auto", origin="lower",
                           alpha=np.where(g["marked"][k], 1.0, 0.45))  # not distinguishable from the baseline: faded
            for i in range(t):
                for j in range(r):
                    if labels[k, i, j]:
                        strong = g["marked"][k, i, j] and abs(diff[k, i, j]) > 0.6 * span
                        ax.text(j, i, labels[k, i, j], ha="center", va="center", fontsize=7,
                                fontweight="bold" if g["marked"][k, i, j] else "normal", color="white" if strong else "black")
                    if g["marked"][k, i, j]:
                        ax.add_patch(matplotlib.patches.Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False,
                                                                  edgecolor="black", linewidth=1.2))
            if g["chosen"] is not None and g["chosen"][0] == k:
                ax.add_patch(matplotlib.patches.Rectangle((g["chosen"][2] - 0.5, g["chosen"][1] - 0.5), 1, 1, fill=False,
                                                          edgecolor="orange", linewidth=3.0))
            ax.set_xticks(np.arange(r), [f"{x:g}" for x in g["ratios"]])
            ax.set_yticks(np.arange(t), [f"{x:g}" for x in g["thresholds"]])
            ax.set_xlabel("aug_ratio")
            if k == 0:
                ax.set_ylabel(threshold_name)
            ax.set_title(f"issue_action = {short(g['actions'][k], 18)}")
            ax.spines[["top", "right"]].set_visible(True)
        if im is not None:
            fig.colorbar(im, ax=list(axes), shrink=0.85, label=f"Δ validation {g['metric']} vs baseline (points)")
        fig.suptitle(f"Sweep on the validation split: Δ {g['metric']} vs baseline (no action), points [interval]\n"
                     "* framed = interval excludes 0 (others faded); orange = chosen", fontsize=9)
        return png_bytes(fig)
