"""One self-contained HTML page per run: ``hardmine report RUN_DIR`` -> ``<run_dir>/report.html``.

The page reads whatever the stages have written so far (manifest, Parquet, JSON, PNG) and
renders one section per step; a section whose artifacts are absent says "not run yet" and
which stage writes them. Images are embedded as base64 data URIs, CSS is inline, there is
no JavaScript and no external asset, so the file can be mailed or opened offline.

Pure helpers (tables in, dicts/tables/PNG bytes out) sit next to the renderer:
:func:`augmentation_funnel`, :func:`label_issue_rows`, :func:`arm_rows`, :func:`sweep_grid`,
:func:`arm_errorbar_png`, :func:`sweep_heatmap_png`. Every piece of user data (texts, class
names, ids, error messages) is HTML-escaped. The JSON summaries (evaluation/summary.json,
sweep/best.json, label_quality.json) are read through their contracts in
:mod:`hardmine.summaries`; a file that does not match is reported in its section. The score
stage's signals (outliers, duplicates, the dual model's error_risk) and the data map say
"not computed" where their columns are null.
"""
from __future__ import annotations

import base64
import html
import io
import math
import time
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hardmine.stats import METRICS
from hardmine.store import MANIFEST, RunStore, split_uri
from hardmine.summaries import (
    EvaluationSummary,
    read_evaluation_summary,
    read_label_quality,
    read_sweep_best,
)

#: (anchor, heading) of every section, in page order.
SECTIONS = (
    ("overview", "Run overview"),
    ("dataset", "Dataset"),
    ("oof", "Out-of-fold accuracy"),
    ("hardness", "Hardness"),
    ("per-class", "Hard samples per class"),
    ("confusion", "Confusion pairs"),
    ("label-issues", "Label issues"),
    ("data-map", "Data map"),
    ("outliers", "Outliers and duplicates"),
    ("dual-model", "Dual model"),
    ("augmentation", "Augmentation funnel"),
    ("arms", "Arm comparison"),
    ("review-history", "Review history"),
    ("sweep", "Threshold sweep"),
)
NOT_RUN = "not run yet"
#: the training-set arms of the evaluate stage, in display order (others follow, sorted).
ARM_ORDER = ("baseline", "clean", "targeted", "clean+targeted", "random", "hard_weighted", "adversarial", "self_training", "reviewed", "before_review")
#: which filter step an augmented row's ``reject_reason`` belongs to.
REASON_STEP = {
    "error": "error",
    "too_short": "length",
    "too_long": "length",
    "identical": "identical",
    "script_mismatch": "script",
    "low_similarity": "similarity",
    "label_inconsistent": "consistency",
    "near_duplicate_train": "near_duplicate",
    "near_duplicate_variant": "near_duplicate",
}
AUGMENTED_NEED = ("method", "kept", "reject_reason", "error")


# =========================================================================== pure helpers


def _filter_order() -> tuple[str, ...]:
    from hardmine.augment.filters import FILTER_ORDER

    return tuple(FILTER_ORDER)


def _require(table: pa.Table, cols: Sequence[str], what: str, fix: str) -> None:
    missing = [c for c in cols if c not in table.column_names]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing} (has {table.column_names}); {fix}")


def _str_col(table: pa.Table, name: str, fill: str) -> np.ndarray:
    col = table.column(name)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_null(col.type)):
        col = col.cast(pa.string())
    return np.asarray(pc.fill_null(col.cast(pa.string()), fill).to_pylist(), dtype=object)


def _bool_col(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if pa.types.is_null(col.type):
        return np.zeros(table.num_rows, dtype=bool)
    return pc.fill_null(col.cast(pa.bool_()), False).to_numpy(zero_copy_only=False).astype(bool)


def augmentation_funnel(table: pa.Table, *, filters: Sequence[str] | None = None) -> dict:
    """Counts of an AUGMENTED table: generated -> what is left after each filter -> kept.

    Steps follow the pipeline's order (per-row errors first, then
    :data:`hardmine.augment.filters.FILTER_ORDER`); each step lists the rows it rejected and
    the rows remaining. ``filters``: names of the filters that ran (from the config); steps of
    other filters are listed only when they rejected something. Without it every step is
    listed. Unknown reasons become their own step at the end; not-kept rows without a reason
    are counted in ``unexplained``. ``by_method``: generated / kept / errors / rejections per
    generator method, with the mean similarity of the kept rows.
    """
    _require(table, AUGMENTED_NEED, "the augmented table", "pass augmented.parquet (hardmine.schema.AUGMENTED)")
    n = table.num_rows
    kept = _bool_col(table, "kept")
    reason = _str_col(table, "reject_reason", "")
    err = pc.is_valid(table.column("error")).to_numpy(zero_copy_only=False).astype(bool)
    method = _str_col(table, "method", "(none)")
    rejected = ~kept & (reason != "")
    reasons, counts = np.unique(reason[rejected].astype(str), return_counts=True)
    by_reason = {str(r): int(c) for r, c in zip(reasons, counts)}

    order = ["error", *_filter_order()]
    enabled = None if filters is None else set(filters) | {"error"}
    steps, remaining = [], n
    step_reasons: dict[str, dict[str, int]] = {}
    for r, c in by_reason.items():
        step_reasons.setdefault(REASON_STEP.get(r, f"other:{r}"), {})[r] = c
    for step in order + sorted(s for s in step_reasons if s not in order):
        rs = step_reasons.get(step, {})
        rej = sum(rs.values())
        if enabled is not None and step not in enabled and rej == 0:
            continue
        remaining -= rej
        steps.append({"step": step, "rejected": rej, "remaining": remaining, "reasons": rs})

    methods, inv = np.unique(method.astype(str), return_inverse=True)
    sim = None
    if "similarity" in table.column_names:
        sim = pc.fill_null(table.column("similarity").cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
    by_method = []
    for j, m in enumerate(methods):
        sel = inv == j
        g, k = int(sel.sum()), int((sel & kept).sum())
        ks = sim[sel & kept] if sim is not None else np.zeros(0)
        ks = ks[np.isfinite(ks)]
        rr, rc = np.unique(reason[sel & rejected].astype(str), return_counts=True)
        by_method.append(
            {
                "method": str(m),
                "generated": g,
                "kept": k,
                "keep_rate": k / g if g else 0.0,
                "errors": int((sel & err).sum()),
                "reasons": {str(a): int(b) for a, b in zip(rr, rc)},
                "mean_similarity_kept": float(ks.mean()) if ks.size else None,
            }
        )
    return {
        "generated": int(n),
        "kept": int(kept.sum()),
        "rejected": int(rejected.sum()),
        "errors": int(err.sum()),
        "unexplained": int((~kept & (reason == "")).sum()),
        "reasons": by_reason,
        "steps": steps,
        "by_method": by_method,
    }


def _names(label_names: Sequence[str], idx: np.ndarray) -> list[str]:
    k = len(label_names)
    return [str(label_names[i]) if 0 <= i < k else f"#{i}" for i in idx.tolist()]


def _lookup(keys: pa.Array | pa.ChunkedArray, table: pa.Table, key: str, value: str) -> tuple[list, pa.Array]:
    """(``table[value]`` for each of ``keys`` matched on ``table[key]``, the match positions).

    A position is null where the key is absent; the value there is meaningless (mask it).
    """
    pos = pc.index_in(keys.cast(pa.string()), value_set=table.column(key).combine_chunks().cast(pa.string()))
    if not table.num_rows:
        return [None] * len(keys), pos
    return table.column(value).take(pc.fill_null(pos, 0)).to_pylist(), pos


def label_issue_rows(
    scores: pa.Table,
    dataset: pa.Table | None,
    label_names: Sequence[str],
    *,
    top: int = 50,
    truth: pa.Table | None = None,
) -> pa.Table:
    """The ``top`` label issues of a scores table in ``issue_rank`` order, with text and label names.

    Columns: ``issue_rank``, ``id``, ``text`` (None when ``dataset`` lacks the id), ``label_name``,
    ``suggested_name``, ``suggested_confidence``, ``p_true`` and, when present, ``label_quality``;
    with ``truth`` (id, true_label[, is_noisy]) also ``true_name`` and ``injected_noise``.
    """
    _require(
        scores, ("id", "label", "is_label_issue", "issue_rank", "suggested_label"), "scores",
        "pass scores.parquet written by the score stage",
    )
    if not isinstance(top, (int, np.integer)) or isinstance(top, bool) or top < 0:
        raise ValueError(f"top must be an integer >= 0, got {top!r}")
    flag = _bool_col(scores, "is_label_issue")
    idx = np.flatnonzero(flag)
    big = int(np.iinfo(np.int64).max)
    rank = pc.fill_null(scores.column("issue_rank").cast(pa.int64()), big).to_numpy()
    rank = np.where(rank[idx] < 0, big, rank[idx])
    idx = idx[np.argsort(rank, kind="stable")][:top]
    t = scores.take(pa.array(idx, pa.int64()))
    ids = t.column("id").cast(pa.string())
    cols: dict[str, Any] = {
        "issue_rank": t.column("issue_rank").cast(pa.int64()),
        "id": ids,
    }
    if dataset is not None and {"id", "text"} <= set(dataset.column_names):
        texts, pos = _lookup(ids, dataset, "id", "text")
        valid = pc.is_valid(pos).to_numpy(zero_copy_only=False)
        cols["text"] = pa.array([x if v else None for x, v in zip(texts, valid)], pa.string())
    else:
        cols["text"] = pa.nulls(t.num_rows, pa.string())
    cols["label_name"] = _names(label_names, t.column("label").to_numpy().astype(np.int64))
    cols["suggested_name"] = _names(label_names, t.column("suggested_label").to_numpy().astype(np.int64))
    for c in ("suggested_confidence", "p_true", "label_quality"):
        if c in t.column_names:
            cols[c] = t.column(c).cast(pa.float64())
    if truth is not None and {"id", "true_label"} <= set(truth.column_names):
        tl, pos = _lookup(ids, truth, "id", "true_label")
        valid = pc.is_valid(pos).to_numpy(zero_copy_only=False)
        cols["true_name"] = [(_names(label_names, np.array([x]))[0] if v and x is not None else None) for x, v in zip(tl, valid)]
        if "is_noisy" in truth.column_names:
            noisy, _ = _lookup(ids, truth, "id", "is_noisy")
            cols["injected_noise"] = pa.array([bool(x) if v else None for x, v in zip(noisy, valid)], pa.bool_())
    return pa.table(cols)


def arm_rows(summary: EvaluationSummary, label_set: str = "given") -> list[dict]:
    """One dict per arm of a (validated) evaluation summary, baseline first, against ``label_set``.

    ``label_set``: ``given`` (the held-out labels as loaded) or ``true`` (injected truth; only when
    the summary has it). Each row: ``arm``, ``n_seeds``, ``train_rows``, ``n_augmented``,
    ``accuracy`` / ``macro_f1`` / ``ece`` (:class:`~hardmine.summaries.Interval`), ``diff``
    ({metric: :class:`~hardmine.summaries.Difference`}, empty for baseline) and ``mcnemar``.
    """
    if label_set not in summary["label_sets"]:
        raise ValueError(f"the evaluation summary has no metrics against the {label_set} labels (it has {summary['label_sets']})")
    arms = summary["arms"]
    names = [a for a in ARM_ORDER if a in arms] + sorted(a for a in arms if a not in ARM_ORDER)
    rows = []
    for a in names:
        r = arms[a]
        rec = r if label_set == "given" else r["true_labels"]
        vs = rec.get("vs_baseline")
        rows.append({
            "arm": a, "n_seeds": r["n_seeds"], "train_rows": r.get("train_rows"), "n_augmented": r.get("n_augmented"),
            **{m: rec[m] for m in METRICS},
            "diff": {m: vs[m] for m in METRICS} if vs else {},
            "mcnemar": vs["mcnemar"] if vs else None,
        })
    return rows


def sweep_grid(best: dict, metric: str | None = None) -> dict:
    """The sweep's cells on the validation split as (issue_action, threshold, aug_ratio) arrays.

    ``best``: sweep/best.json (:class:`hardmine.summaries.SweepBest`). Returns ``actions``,
    ``thresholds``, ``ratios`` (sorted) and arrays of shape (actions, thresholds, ratios): ``diff``,
    ``lo``, ``hi`` (the cell minus the baseline in ``metric``, default the sweep's, with its
    paired-bootstrap interval; NaN where no cell finished), ``marked`` (the interval excludes
    zero), ``value`` (the cell's own mean), ``seeds`` and ``shared`` (the cell reuses another
    cell's runs); ``chosen``: the chosen cell's index or None (the baseline, or nothing, chosen).
    """
    sb = read_sweep_best(best)
    metric = metric or sb["metric"]
    if metric not in ("accuracy", "macro_f1", "ece"):
        raise ValueError(f"metric must be accuracy, macro_f1 or ece, got {metric!r}")
    cells = [c for c in sb["configs"] if not c["no_action"]]
    actions = sorted({c["issue_action"] for c in cells})
    thresholds = sorted({float(c["threshold"]) for c in cells})
    ratios = sorted({float(c["aug_ratio"]) for c in cells})
    shape = (len(actions), len(thresholds), len(ratios))
    out = {k: np.full(shape, np.nan) for k in ("diff", "lo", "hi", "value")}
    marked = np.zeros(shape, dtype=bool)
    seeds = np.zeros(shape, dtype=np.int64)
    shared = np.zeros(shape, dtype=bool)
    chosen = None
    b = sb["best"]
    for c in cells:
        i = (actions.index(c["issue_action"]), thresholds.index(float(c["threshold"])), ratios.index(float(c["aug_ratio"])))
        d = (c.get("vs_baseline") or {}).get(metric)
        if d is not None:
            out["diff"][i], out["lo"][i], out["hi"][i] = d["mean"], d["lo"], d["hi"]
            marked[i] = bool(d["excludes_zero"])
        out["value"][i] = c[metric]["mean"]
        seeds[i] = c["n_seeds"]
        shared[i] = c.get("same_as") is not None
        if b is not None and not b["no_action"] and b["key"] == c["key"]:
            chosen = i
    return {"metric": metric, "actions": actions, "thresholds": thresholds, "ratios": ratios, **out, "marked": marked,
            "seeds": seeds, "shared": shared, "chosen": chosen,
            "baseline": (sb["baseline"] or {}).get(metric) if sb["baseline"] else None}


def sweep_cell_labels(grid: dict) -> np.ndarray:
    """The text of every heat-map cell: Δ in points, ``*`` when its interval excludes zero, the interval below."""
    labels = np.full(grid["diff"].shape, "", dtype=object)
    for i in np.ndindex(grid["diff"].shape):
        d = grid["diff"][i]
        if np.isfinite(d):
            labels[i] = (f"{100 * d:+.1f}{'*' if grid['marked'][i] else ''}\n"
                         f"[{100 * grid['lo'][i]:+.1f}, {100 * grid['hi'][i]:+.1f}]")
    return labels


# --------------------------------------------------------------------------- PNG plots (in memory)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        fig.savefig(buf, format="png")
    return buf.getvalue()


def arm_errorbar_png(summary: EvaluationSummary, metrics: Sequence[str] = ("accuracy", "macro_f1"), label_set: str | None = None) -> bytes:
    """Error bars (mean over seeds, paired-bootstrap interval over held-out rows) per arm, one panel per metric.

    ``label_set``: ``given`` or ``true``; default: the true labels when the summary has them.
    """
    from hardmine.plots import _figure, _short, _style

    label_set = label_set or ("true" if "true" in summary["label_sets"] else "given")
    rows = arm_rows(summary, label_set)
    shown = list(metrics)
    unknown = [m for m in shown if m not in METRICS]
    if unknown or not shown:
        raise ValueError(f"metrics must be some of {list(METRICS)}, got {list(metrics)}")
    labels = [_short(r["arm"], 16) for r in rows]
    x = np.arange(len(rows))
    with _style():
        fig = _figure(max(5.0, 1.3 * len(rows) * len(shown) + 1.5), 3.8)
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
        return _png(fig)


def sweep_heatmap_png(best: dict, metric: str | None = None, *, threshold_name: str | None = None) -> bytes:
    """Heat-map threshold x aug_ratio -> Δ ``metric`` vs the baseline (no action) on the validation split, one
    panel per issue_action: diverging colours centred on zero and spanning the intervals, ``*``, full
    colour and a black frame where the interval excludes zero (the others faded), the chosen cell
    outlined in orange."""
    from hardmine.plots import _figure, _short, _style

    g = sweep_grid(best, metric)
    threshold_name = threshold_name or next((c["threshold_kind"] for c in best["configs"] if not c["no_action"]), "threshold")
    diff = 100 * g["diff"]
    labels = sweep_cell_labels(g)
    a, t, r = diff.shape
    # colours span the intervals, not just the means: a difference smaller than its noise stays pale
    bounds = 100 * np.concatenate([g["lo"][np.isfinite(g["lo"])], g["hi"][np.isfinite(g["hi"])]])
    span = float(np.abs(bounds).max()) if bounds.size else 1.0
    span = span if span > 0 else 1.0
    with _style():
        import matplotlib

        cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="0.9")
        panel = max(3.0, 0.95 * r + 1.6)
        fig = _figure(panel * max(a, 1) + 1.4, max(3.0, 0.7 * t + 1.9))
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
            ax.set_title(f"issue_action = {_short(g['actions'][k], 18)}")
            ax.spines[["top", "right"]].set_visible(True)
        if im is not None:
            fig.colorbar(im, ax=list(axes), shrink=0.85, label=f"Δ validation {g['metric']} vs baseline (points)")
        fig.suptitle(f"Sweep on the validation split: Δ {g['metric']} vs baseline (no action), points [interval]\n"
                     "* framed = interval excludes 0 (others faded); orange = chosen", fontsize=9)
        return _png(fig)


# =========================================================================== HTML building blocks


class _Html(str):
    """Trusted markup (already escaped); everything else is escaped by :func:`_e`."""


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return str(v)
        if v == int(v):
            return f"{int(v):,}"
        if abs(v) < 1:  # probabilities and metrics: fixed width
            return f"{v:.4f}"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def _e(v: Any) -> str:
    return v if isinstance(v, _Html) else html.escape(_fmt(v), quote=True)


def _pct(v: Any) -> _Html:
    return _Html("–" if v is None else f"{100 * float(v):.1f}%")


def _ci(iv: dict | None) -> _Html:
    """A metric with its interval: ``0.8000 [0.7800, 0.8200]``."""
    if iv is None:
        return _Html("–")
    return _Html(f"{iv['mean']:.4f} <span class=muted>[{iv['lo']:.4f}, {iv['hi']:.4f}]</span>")


def _diff(d: dict | None) -> _Html:
    """A difference with its interval and what it means: ``≠0`` (higher / lower) or "not distinguishable"."""
    if d is None:
        return _Html("–")
    s = f"{d['mean']:+.4f} <span class=muted>[{d['lo']:+.4f}, {d['hi']:+.4f}]</span> "
    if d["excludes_zero"]:
        return _Html(s + f"<span class=badge>≠0</span> {html.escape(d['verdict'])}")
    return _Html(s + "<span class=muted>not distinguishable</span>")


def _trunc(s: Any, n: int = 300) -> Any:
    if not isinstance(s, str):
        return s
    return s if len(s) <= n else s[: n - 1] + "…"


def _text(s: Any, n: int = 300) -> _Html:
    """User text: escaped, truncated, direction detected by the browser."""
    if s is None:
        return _Html("<span class=muted>(missing)</span>")
    return _Html(f'<span dir="auto">{html.escape(_trunc(str(s), n), quote=True)}</span>')


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, more: int = 0, caption: str | None = None) -> _Html:
    """An HTML table; numbers are right-aligned, every cell is escaped unless it is :class:`_Html`."""
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for row in rows:
        cells = []
        for v in row:
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            cells.append(f"<td class=num>{_e(v)}</td>" if num else f"<td>{_e(v)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        out.append(f'<tr><td colspan="{len(header)}" class=muted>(none)</td></tr>')
    out.append("</tbody></table>")
    if more > 0:
        out.append(f"<p class=muted>… {more:,} more rows not shown</p>")
    return _Html("".join(out))


def _kv(pairs: Sequence[tuple[str, Any]]) -> _Html:
    return _Html(
        "<dl class=kv>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs if v is not _SKIP) + "</dl>"
    )


_SKIP = object()


def _img(png: bytes, alt: str) -> _Html:
    data = base64.b64encode(png).decode("ascii")
    return _Html(f'<figure><img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{data}"></figure>')


def _p(text: str, cls: str | None = None) -> _Html:
    return _Html(f"<p{f' class={cls}' if cls else ''}>{html.escape(text)}</p>")


def _h3(text: str) -> _Html:
    return _Html(f"<h3>{html.escape(text)}</h3>")


# =========================================================================== the report


class _Run:
    """Read-only view of a run directory for the renderer (missing artifacts -> None)."""

    def __init__(self, store: RunStore):
        self.store = store
        self.manifest = store.manifest()
        self.stages = self.manifest.get("stages") or {}
        self.labels = [str(x) for x in (self.manifest.get("labels") or [])]

    def has(self, name: str) -> bool:
        return self.store.exists(name)

    def summary(self, stage: str) -> dict | None:
        rec = self.stages.get(stage) or {}
        s = rec.get("summary")
        return s if isinstance(s, dict) and rec.get("status") == "done" else None

    def schema(self, name: str) -> pa.Schema:
        with self.store.fs.open_input_file(self.store.path(name)) as f:
            return pq.read_schema(f)

    def table(self, name: str, columns: Sequence[str] | None = None) -> pa.Table | None:
        if not self.has(name):
            return None
        if columns is not None:
            have = set(self.schema(name).names)
            columns = [c for c in columns if c in have]
        return self.store.read_table(name, columns=list(columns) if columns is not None else None)

    def json(self, name: str) -> Any:
        return self.store.read_json(name) if self.has(name) else None

    def png(self, name: str) -> bytes | None:
        return self.store.read_bytes(name) if self.has(name) else None

    def missing(self, artifacts: str, stage: str) -> _Html:
        """The "not run yet" note, with the stage's failure or state when the manifest has one."""
        rec = self.stages.get(stage) or {}
        status = rec.get("status")
        note = (
            f'<p class=missing><b>{NOT_RUN}</b>: {html.escape(artifacts)} is missing; '
            f"run <code>hardmine {html.escape(stage)} CONFIG</code> (or <code>hardmine run CONFIG</code>).</p>"
        )
        if status == "failed":
            note += f"<p class=error>The {html.escape(stage)} stage failed: {html.escape(str(rec.get('error', '')))}</p>"
        elif status == "running":
            note += f"<p class=muted>The {html.escape(stage)} stage is running (or was interrupted).</p>"
        return _Html(note)


def _overview(run: _Run, **_) -> str:
    m = run.manifest
    parts = [
        _kv(
            [
                ("run", m.get("name") or run.store.uri),
                ("directory", run.store.uri),
                ("config hash", m.get("config_hash")),
                ("classes", len(run.labels) if run.labels else None),
                ("versions", ", ".join(f"{k} {v}" for k, v in sorted((m.get("versions") or {}).items())) or None),
            ]
        )
    ]
    order = ["prepare", "oof", "holdout", "score", "select", "augment", "evaluate", "sweep"]
    names = [s for s in order if s in run.stages] + sorted(s for s in run.stages if s not in order)
    rows = []
    for s in names:
        rec = run.stages[s] or {}
        out_rows = rec.get("rows") or {}
        rows.append(
            [
                s,
                rec.get("status"),
                rec.get("seconds"),
                rec.get("updated"),
                ", ".join(f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}" for k, v in out_rows.items()) or "–",
                _trunc(rec.get("error"), 300),
            ]
        )
    parts.append(_table(["stage", "status", "seconds", "updated (UTC)", "rows written", "error"], rows))
    if not rows:
        parts.append(_Html(f"<p class=missing><b>{NOT_RUN}</b>: no stage has run in this directory.</p>"))
    return "".join(parts)


def _dataset(run: _Run, max_classes: int = 60, **_) -> str:
    s = run.summary("prepare")
    if s is None:
        return run.missing("the prepare stage's summary (dataset.parquet)", "prepare")
    parts = [
        _kv(
            [
                ("training rows", s.get("rows")),
                ("held-out rows", s.get("test_rows")),
                ("classes", s.get("classes")),
                ("rows dropped (empty text)", s.get("dropped_empty")),
                ("training rows with injected truth", s.get("truth_rows") if s.get("truth_rows") is not None else _SKIP),
                ("held-out rows with injected truth (read by evaluate only)",
                 s.get("test_truth_rows") if s.get("test_truth_rows") is not None else _SKIP),
            ]
        )
    ]
    counts = s.get("class_counts") or {}
    if isinstance(counts, dict) and counts:
        total = sum(v for v in counts.values() if isinstance(v, (int, float))) or 1
        items = sorted(counts.items(), key=lambda kv: (-(kv[1] or 0), str(kv[0])))
        rows = [[_text(k, 80), v, _pct(v / total)] for k, v in items[:max_classes]]
        parts.append(_table(["class", "rows", "share"], rows, more=len(items) - max_classes,
                            caption="training rows per class (most first)"))
    return "".join(parts)


def _clock(t: Any) -> Any:
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return time.strftime("%H:%M:%S", time.gmtime(t))
    return t


def _oof(run: _Run, **_) -> str:
    s = run.summary("oof")
    if s is None:
        return run.missing("the oof stage's summary (oof.parquet)", "oof")
    folds = [f for f in (s.get("folds") or []) if isinstance(f, dict)]
    cal = s.get("calibration") or {}
    parts = [
        _kv(
            [
                ("out-of-fold accuracy (all folds)", s.get("accuracy")),
                ("out-of-fold log-loss", s.get("log_loss") if s.get("log_loss") is not None else _SKIP),
                ("expected calibration error (15 bins)", s.get("ece") if s.get("ece") is not None else _SKIP),
                ("ensemble members", " + ".join(s.get("backbones") or []) or _SKIP),
                ("combination", s.get("combine") or _SKIP),
                ("calibration", (f"temperature {cal['temperature']:.3f}, cross-fitted over folds: ECE {cal['ece_before']:.4f} -> "
                                 f"{cal['ece_after']:.4f}") if cal.get("method") == "temperature" else (cal.get("method") or _SKIP)),
                ("max_length (tokens)", s.get("max_length") if s.get("max_length") is not None else _SKIP),
                ("texts longer than max_length", _pct((s.get("max_length_info") or {}).get("truncated_share"))
                 if (s.get("max_length_info") or {}).get("truncated_share") is not None else _SKIP),
                ("runner", s.get("runner")),
                ("folds", len(folds) or None),
                ("embedding seconds", s.get("embed_seconds") if s.get("embed_seconds") is not None else _SKIP),
                ("training seconds", s.get("train_seconds") if s.get("train_seconds") is not None else _SKIP),
            ]
        )
    ]
    members = s.get("members") or {}
    if isinstance(members, dict) and members:
        mrows = [[name, m.get("weight"), m.get("accuracy"), m.get("log_loss"), m.get("ece"), m.get("seconds")]
                 for name, m in members.items() if isinstance(m, dict)]
        parts.append(_table(["member", "weight", "accuracy", "log-loss", "ECE", "seconds"], mrows,
                            caption="each member's own out-of-fold probabilities, and its weight in the combination"))
    rows, spans = [], []
    for f in folds:
        st, fi = f.get("started"), f.get("finished")
        dur = fi - st if all(isinstance(x, (int, float)) for x in (st, fi)) else None
        if dur is not None:
            spans.append((st, fi))
        resumed = f.get("resumed_after_epochs") or []
        rows.append([f.get("fold"), f.get("rows"), f.get("accuracy"), _clock(st), _clock(fi), dur,
                     ", ".join(map(str, resumed)) or "–"])
    parts.append(_table(["fold", "rows", "accuracy", "started (UTC)", "finished (UTC)", "seconds", "resumed after epoch"], rows))
    if len(spans) > 1:
        wall = max(b for _, b in spans) - min(a for a, _ in spans)
        busy = sum(b - a for a, b in spans)
        if wall > 0:
            parts.append(_p(f"The folds took {busy:.1f} s summed in {wall:.1f} s of wall time "
                            f"(on average {busy / wall:.2f} folds running at once).", "muted"))
    parts.append(_h3("Held-out accuracy of the fold ensemble"))
    h = run.summary("holdout")
    prep = run.summary("prepare") or {}
    if h is not None and h.get("test_accuracy_fold_ensemble") is not None:
        parts.append(_kv([("accuracy of the averaged fold models on the held-out split", h["test_accuracy_fold_ensemble"]),
                          ("held-out rows", h.get("rows"))]))
    elif (h is not None and not h) or (prep and not prep.get("test_rows")):
        parts.append(_p("No held-out split in this run (set data.test_path or data.test_size).", "muted"))
    else:
        parts.append(run.missing("the holdout stage's summary (test_probs.parquet)", "holdout"))
    return "".join(parts)


def _hardness(run: _Run, **_) -> str:
    png = run.png("plots/hardness_histogram.png")
    if png is None:
        return run.missing("plots/hardness_histogram.png", "select")
    parts = []
    s = run.summary("select")
    if s is not None:
        acts = s.get("actions") or {}
        parts.append(_kv([
            ("hard (eligible for augmentation)", s.get("n_hard")),
            ("hardness threshold", s.get("hardness_threshold")),
            ("actions", ", ".join(f"{k} {v:,}" for k, v in acts.items() if isinstance(v, int)) or None),
        ]))
    parts.append(_img(png, "hardness histogram per class"))
    a = run.json("analysis/analysis.json")
    if isinstance(a, dict) and isinstance(a.get("length"), dict):
        stats = ["n", "mean", "min", "p10", "p50", "p90", "max"]
        rows = [[g] + [(a["length"][g] or {}).get(k) for k in stats] for g in a["length"]]
        parts.append(_table(["group"] + stats, rows, caption=f"text length in characters (hard = {a.get('hard_rule', '?')})"))
    return "".join(parts)


def _per_class(run: _Run, max_rows: int = 40, **_) -> str:
    png = run.png("plots/hard_per_class.png")
    table = run.table("analysis/per_class.parquet")
    if png is None and table is None:
        return run.missing("plots/hard_per_class.png and analysis/per_class.parquet", "select")
    parts = [_img(png, "hard samples per class")] if png is not None else [run.missing("plots/hard_per_class.png", "select")]
    if table is None:
        parts.append(run.missing("analysis/per_class.parquet", "select"))
        return "".join(parts)
    phrases: dict[int, list[str]] = {}  # class -> rendered "<code>phrase</code> k/n" (the analysis' top 3)
    tok = run.table("analysis/distinctive_tokens.parquet", columns=["class", "phrase", "token", "hard_df", "n_hard"])
    if tok is not None and tok.num_rows and "class" in tok.column_names:
        col = "phrase" if "phrase" in tok.column_names else "token"
        counted = "hard_df" in tok.column_names and "n_hard" in tok.column_names  # tables before n_hard: no counts
        for r in tok.to_pylist():
            ph = r.get(col)
            if ph is not None and len(phrases.setdefault(int(r["class"]), [])) < 3:
                cell = f"<code>{html.escape(ph.strip())}</code>"
                if counted and r.get("hard_df") is not None and r.get("n_hard"):
                    cell += f" <span class=muted>{r['hard_df']}/{r['n_hard']}</span>"
                phrases[int(r["class"])].append(cell)
    rows = table.to_pylist()
    rows.sort(key=lambda r: (-(r.get("n_hard") or 0), r.get("class") or 0))
    out = []
    for r in rows[:max_rows]:
        out.append([
            _text(r.get("name", r.get("class")), 60), r.get("n"), r.get("n_hard"), _pct(r.get("share_hard")),
            r.get("n_issue"), _pct(r.get("share_issue")),
            _Html(" · ".join(phrases.get(int(r.get("class", -1)), []))),
        ])
    parts.append(_table(["class", "rows", "hard", "share hard", "label issues", "share issues", "distinctive phrases of its hard samples"],
                        out, more=len(rows) - max_rows,
                        caption="per class, most hard samples first; k/n after a distinctive phrase: k of the class's n hard samples contain it"))
    return "".join(parts)


def _confusion(run: _Run, max_rows: int = 20, **_) -> str:
    png = run.png("plots/confusion_hard.png")
    table = run.table("analysis/confusion_pairs.parquet")
    if png is None and table is None:
        return run.missing("plots/confusion_hard.png and analysis/confusion_pairs.parquet", "select")
    parts = [_img(png, "given vs predicted among hard samples")] if png is not None else [run.missing("plots/confusion_hard.png", "select")]
    if table is None:
        parts.append(run.missing("analysis/confusion_pairs.parquet", "select"))
        return "".join(parts)
    rows = table.to_pylist()
    parts.append(_table(
        ["given label", "predicted", "hard samples", "share of hard"],
        [[_text(r.get("label_name"), 60), _text(r.get("pred_name"), 60), r.get("count"), _pct(r.get("share_of_hard"))]
         for r in rows[:max_rows]],
        more=len(rows) - max_rows, caption="most frequent confusions among hard samples (given → predicted)",
    ))
    return "".join(parts)


def _label_issues(run: _Run, top_issues: int = 50, **_) -> str:
    if not run.has("scores.parquet"):
        return run.missing("scores.parquet", "score")
    cols = ["id", "label", "is_label_issue", "issue_rank", "suggested_label", "suggested_confidence", "p_true", "label_quality"]
    scores = run.table("scores.parquet", columns=cols)
    n = scores.num_rows
    n_flag = int(_bool_col(scores, "is_label_issue").sum()) if "is_label_issue" in scores.column_names else 0
    raw_lq = run.json("label_quality.json")
    lq = read_label_quality(raw_lq) if raw_lq is not None else None
    parts = []
    pairs: list[tuple[str, Any]] = [("rows scored", n), ("flagged as label issues", _Html(f"{n_flag:,} ({_pct(n_flag / n if n else 0)})"))]
    if lq is not None:
        pairs += [
            ("estimated wrong labels (cleanlab confident joint)", lq["estimated_label_errors"]),
            ("estimated wrong-label fraction", _pct(lq["estimated_label_error_fraction"])),
            ("issue filter", lq["label_issues"]["filter_used"] if "label_issues" in lq else _SKIP),
        ]
    parts.append(_kv(pairs))
    det = lq.get("detection") if lq is not None else None
    parts.append(_h3("Detection against the injected truth"))
    if det is not None:
        parts.append(_table(["precision", "recall", "F1", "true positives", "false positives", "false negatives"],
                            [[det["precision"], det["recall"], det["f1"], det["tp"], det["fp"], det["fn"]]]))
    elif lq is None:
        parts.append(run.missing("label_quality.json", "score"))
    else:
        parts.append(_p("No injected truth in this run (data.truth_path): precision and recall are not computed.", "muted"))

    truth = run.table("truth.parquet")
    dataset = run.table("dataset.parquet", columns=["id", "text"])
    rows = label_issue_rows(scores, dataset, run.labels, top=top_issues, truth=truth)
    parts.append(_h3(f"Top {min(top_issues, n_flag)} label issues of {n_flag:,} (most likely wrong first)"))
    header = ["rank", "id", "text", "given label", "suggested label", "p(suggested)", "p(given)"]
    has_truth = "true_name" in rows.column_names
    if has_truth:
        header += ["true label", "injected noise"]
    out = []
    for r in rows.to_pylist():
        row = [r["issue_rank"], _text(r["id"], 40), _text(r["text"]), _text(r["label_name"], 50),
               _Html(f"<b>{_text(r['suggested_name'], 50)}</b>"), r.get("suggested_confidence"), r.get("p_true")]
        if has_truth:
            row += [_text(r.get("true_name"), 50), r.get("injected_noise")]
        out.append(row)
    parts.append(_table(header, out))

    if lq is not None:
        pc_rows = sorted(lq["per_class"], key=lambda r: -r["estimated_noise_rate"])
        parts.append(_table(
            ["class", "rows", "estimated noise rate", "estimated mislabeled", "flagged"],
            [[_text(r["name"], 60), r["count"], _pct(r["estimated_noise_rate"]), r["estimated_mislabeled"],
              r["n_flagged"]] for r in pc_rows[:30]],
            more=len(pc_rows) - 30, caption="estimated label noise per class (cleanlab), noisiest first",
        ))
    return "".join(parts)


# --------------------------------------------------------------------------- score signals and the data map

#: rows listed per signal table (outliers, low neighbour agreement, error_risk), and conflicting duplicate groups shown
SIGNAL_ROWS = 10
DUP_GROUPS = 5
DUP_GROUP_ROWS = 4
NOT_COMPUTED = "not computed"


def _float_col(table: pa.Table, name: str) -> np.ndarray | None:
    """float64 values (NaN where null), or None when the column is absent or null in every row (not computed)."""
    if name not in table.column_names or table.column(name).null_count == table.num_rows:
        return None
    return pc.fill_null(table.column(name).cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)


def _top_rows(values: np.ndarray, n: int, *, highest: bool = True) -> np.ndarray:
    """Indices of the ``n`` highest (lowest) finite values, ties in row order."""
    idx = np.flatnonzero(np.isfinite(values))
    order = np.argsort(-values[idx] if highest else values[idx], kind="stable")
    return idx[order][:n]


def _texts_of(run: _Run, ids: Sequence[str]) -> dict[str, Any]:
    """id -> text from dataset.parquet for the given ids (missing ids are absent)."""
    dataset = run.table("dataset.parquet", columns=["id", "text"])
    if dataset is None or not {"id", "text"} <= set(dataset.column_names) or not len(ids):
        return {}
    texts, pos = _lookup(pa.array(list(ids), pa.string()), dataset, "id", "text")
    valid = pc.is_valid(pos).to_numpy(zero_copy_only=False)
    return {i: t for i, t, v in zip(ids, texts, valid) if v}


def _label_cell(run: _Run, label: Any) -> _Html:
    if label is None:
        return _text(None)
    return _text(_names(run.labels, np.array([int(label)]))[0], 50)


def _signal_info(run: _Run) -> dict:
    """The ``signals`` entry of label_quality.json (validated; empty when absent)."""
    raw = run.json("label_quality.json")
    if raw is None:
        return {}
    return dict(read_label_quality(raw).get("signals") or {})


def _data_map(run: _Run, max_rows: int = 30, **_) -> str:
    from hardmine.plots import data_map_png
    from hardmine.select import dynamics

    s = run.summary("select")
    if s is None or not run.has("scores.parquet"):
        return run.missing("the select stage's summary (selected.parquet, plots/data_map.png)", "select")
    scores = run.table("scores.parquet", columns=["id", "dyn_confidence", "dyn_variability", "dyn_correctness"])
    if dynamics(scores) is None or _float_col(scores, "dyn_correctness") is None:
        return _p("No training dynamics in this run: the OOF stage recorded no per-epoch probabilities (e.g. an external "
                  "backbone), so there is no data map. Set oof.epochs >= 2 and re-run the oof, score and select stages.", "muted")
    dm = s.get("data_map") if isinstance(s.get("data_map"), dict) else None
    parts = []
    if dm:
        reg = dm.get("regions") or {}
        total = sum(v for v in reg.values() if isinstance(v, int)) or 1
        pairs: list[tuple[str, Any]] = [("selection policy", s.get("policy") or _SKIP)]
        for key, name in (("easy", "easy-to-learn"), ("ambiguous", "ambiguous"), ("hard", "hard-to-learn")):
            pairs.append((name, _Html(f"{reg.get(key, 0):,} ({_pct(reg.get(key, 0) / total)})")))
        pairs += [("ambiguous: variability at least", dm.get("ambiguous_min_variability")),
                  ("hard-to-learn: confidence at most", dm.get("hard_max_confidence"))]
        parts.append(_kv(pairs))
    png = run.png("plots/data_map.png")
    if png is None:  # drawn from scores.parquet and selected.parquet's region
        regions = None
        sel = run.table("selected.parquet", columns=["id", "region"])
        if sel is not None and "region" in sel.column_names:
            of = dict(zip(sel.column("id").cast(pa.string()).to_pylist(), sel.column("region").to_pylist()))
            regions = [of.get(i) for i in scores.column("id").cast(pa.string()).to_pylist()]
        png = data_map_png(scores, regions, label_names=run.labels or None)
    parts.append(_img(png, "data map: variability vs confidence over the OOF epochs, coloured by correctness"))
    if dm and isinstance(dm.get("per_class"), dict):
        rows = []
        for c, r in dm["per_class"].items():
            n = sum(r.get(k, 0) for k in ("easy", "ambiguous", "hard"))
            rows.append((-(r.get("ambiguous", 0) + r.get("hard", 0)) / (n or 1), int(c), n, r))
        rows.sort(key=lambda x: (x[0], x[1]))
        parts.append(_table(
            ["class", "rows", "easy", "ambiguous", "hard", "share ambiguous", "share hard"],
            [[_label_cell(run, c), n, r.get("easy", 0), r.get("ambiguous", 0), r.get("hard", 0),
              _pct(r.get("ambiguous", 0) / n if n else 0), _pct(r.get("hard", 0) / n if n else 0)] for _, c, n, r in rows[:max_rows]],
            more=len(rows) - max_rows, caption="data-map regions per class, largest share of ambiguous + hard rows first",
        ))
        parts.append(_p(f"Regions (Swayamdipta et al., 2020, Dataset Cartography): {dm.get('rule', '')}. Confidence is the mean "
                        "p(given label) over the OOF epochs, variability its standard deviation, correctness the share of "
                        "epochs whose prediction is the given label.", "muted"))
    else:
        parts.append(_p("The select stage's summary has no data-map counts (written by an older version): re-run the select "
                        "stage for the per-class table.", "muted"))
    return "".join(parts)


def _outliers(run: _Run, **_) -> str:
    if not run.has("scores.parquet"):
        return run.missing("scores.parquet", "score")
    scores = run.table("scores.parquet", columns=["id", "label", "outlier_score", "knn_label_agreement", "is_outlier",
                                                  "dup_group", "is_conflicting_duplicate"])
    sig = _signal_info(run)
    o, d = sig.get("outliers"), sig.get("duplicates")
    outlier, agree = _float_col(scores, "outlier_score"), _float_col(scores, "knn_label_agreement")
    groups = _float_col(scores, "dup_group")
    if not sig and outlier is None and agree is None and groups is None:
        return _p(f"Outliers and duplicates were {NOT_COMPUTED}: label_quality.json has no signals and the signal columns "
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
    parts = [_kv(pairs)]
    ids = scores.column("id").cast(pa.string()).to_pylist()
    labels = scores.column("label").to_pylist()
    flag = _bool_col(scores, "is_outlier") if "is_outlier" in scores.column_names else np.zeros(len(ids), bool)
    top_out = _top_rows(outlier, SIGNAL_ROWS) if outlier is not None else np.zeros(0, np.int64)
    low_agree = _top_rows(agree, SIGNAL_ROWS, highest=False) if agree is not None else np.zeros(0, np.int64)
    conflict: list[tuple[int, list[int]]] = []
    n_groups = 0
    if groups is not None and "is_conflicting_duplicate" in scores.column_names:
        cmask = _bool_col(scores, "is_conflicting_duplicate")
        g = np.where(np.isfinite(groups), groups, -1).astype(np.int64)
        gids = list(dict.fromkeys(g[cmask & (g >= 0)].tolist()))
        n_groups = len(gids)
        conflict = [(gid, np.flatnonzero(g == gid)[:DUP_GROUP_ROWS].tolist()) for gid in gids[:DUP_GROUPS]]
    want = {ids[i] for i in np.concatenate([top_out, low_agree]).tolist()} | {ids[i] for _, rs in conflict for i in rs}
    texts = _texts_of(run, sorted(want))

    def num(a, i):
        return None if a is None or not np.isfinite(a[i]) else float(a[i])

    if outlier is not None:
        parts.append(_h3("Most isolated rows (highest outlier_score)"))
        parts.append(_table(["id", "text", "label", "outlier_score", "kNN label agreement", "flagged"],
                            [[_text(ids[i], 40), _text(texts.get(ids[i])), _label_cell(run, labels[i]), num(outlier, i),
                              num(agree, i), bool(flag[i])] for i in top_out.tolist()],
                            caption="mean cosine distance to the nearest training rows: far from all data"))
    if agree is not None:
        parts.append(_h3("Rows whose neighbours carry other labels (lowest kNN label agreement)"))
        parts.append(_table(["id", "text", "label", "kNN label agreement", "outlier_score"],
                            [[_text(ids[i], 40), _text(texts.get(ids[i])), _label_cell(run, labels[i]), num(agree, i),
                              num(outlier, i)] for i in low_agree.tolist()],
                            caption="share of the nearest rows that carry the row's own label"))
    if groups is not None:
        parts.append(_h3(f"Duplicate groups with conflicting labels ({n_groups:,})"))
        parts.append(_table(["group", "id", "text", "label"],
                            [[gid, _text(ids[i], 40), _text(texts.get(ids[i])), _label_cell(run, labels[i])]
                             for gid, rs in conflict for i in rs],
                            caption="the same (or nearly the same) text under different labels: kept out of augmentation"))
        if n_groups > len(conflict):
            parts.append(_p(f"… {n_groups - len(conflict):,} more groups not shown", "muted"))
    return "".join(parts)


def _dual_model(run: _Run, max_rows: int = 15, **_) -> str:
    if not run.has("scores.parquet"):
        return run.missing("scores.parquet", "score")
    scores = run.table("scores.parquet", columns=["id", "label", "pred", "p_true", "error_risk"])
    m = _signal_info(run).get("dual_model")
    risk = _float_col(scores, "error_risk")
    if m is None and risk is None:
        return _p(f"The dual model was {NOT_COMPUTED} (score.dual_model: off, or the score stage predates it).", "muted")
    parts = []
    if m is not None:
        parts.append(_kv([
            ("model", m["model"]),
            ("cross-fitted over", f"{m['folds']} folds"),
            ("AUC of error_risk for the rows the OOF prediction got wrong", m["auc"] if m["auc"] is not None else "undefined"),
            ("base rate (OOF prediction wrong)", _pct(m["base_rate"])),
            ("rows", m.get("n_rows", _SKIP)),
            ("note", m["note"] if m.get("note") else _SKIP),
        ]))
        # label_quality.json is written with sorted keys: order by importance here (ties by name)
        imps = sorted(m["importances"].items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append(_table(["feature", "importance"], [[f, v] for f, v in imps[:max_rows]], more=len(imps) - max_rows,
                            caption="meta-feature importances of the dual model, highest first"))
    if risk is None:
        parts.append(_p(f"error_risk: {NOT_COMPUTED} in scores.parquet.", "muted"))
        return "".join(parts)
    top = _top_rows(risk, SIGNAL_ROWS)
    ids = scores.column("id").cast(pa.string()).to_pylist()
    texts = _texts_of(run, [ids[i] for i in top.tolist()])
    lab, pred, p_true = (scores.column(c).to_pylist() for c in ("label", "pred", "p_true"))
    parts.append(_h3("Rows most likely mispredicted (highest error_risk)"))
    parts.append(_table(["id", "text", "label", "predicted", "p(given)", "error_risk"],
                        [[_text(ids[i], 40), _text(texts.get(ids[i])), _label_cell(run, lab[i]), _label_cell(run, pred[i]),
                          p_true[i], float(risk[i])] for i in top.tolist()],
                        caption="the dual model's cross-fitted probability that the out-of-fold prediction is wrong"))
    return "".join(parts)


def _augment_filters(run: _Run) -> list[str] | None:
    for src in ((run.manifest.get("config") or {}).get("augment") or {}, run.summary("augment") or {}):
        f = src.get("filters") if isinstance(src, dict) else None
        if isinstance(f, dict):
            return [k for k, v in f.items() if v not in (False, None)]
        if isinstance(f, list):
            return [str(x) for x in f]
    return None


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


def _augmentation(run: _Run, max_examples: int = 6, **_) -> str:
    if not run.has("augmented.parquet"):
        return run.missing("augmented.parquet", "augment")
    light = run.table("augmented.parquet", columns=["method", "kept", "reject_reason", "error", "similarity"])
    f = augmentation_funnel(light, filters=_augment_filters(run))
    parts = []
    s = run.summary("augment")
    pairs: list[tuple[str, Any]] = [
        ("variants generated", f["generated"]),
        ("kept", _Html(f"{f['kept']:,} ({_pct(f['kept'] / f['generated'] if f['generated'] else 0)})")),
        ("rows with an error", f["errors"]),
    ]
    if s:
        pairs += [("source samples", s.get("sources")), ("seconds", s.get("seconds")), ("rows per second", s.get("rows_per_s"))]
    parts.append(_kv(pairs))
    rows = [["generated", "", "", f["generated"]]]
    for st in f["steps"]:
        label = "per-row errors" if st["step"] == "error" else st["step"]
        rows.append([label, st["rejected"], ", ".join(f"{k} {v:,}" for k, v in sorted(st["reasons"].items())) or "–", st["remaining"]])
    if f["unexplained"]:
        rows.append(["not kept, no reason recorded", f["unexplained"], "", f["generated"] - f["rejected"] - f["unexplained"]])
    rows.append([_Html("<b>kept</b>"), "", "", f["kept"]])
    caption = "funnel: variants left after each filter, in the order the filters run"
    if _augment_filters(run) is None:
        caption += " (the run's config does not list its filters: a step with 0 rejected may not have run)"
    parts.append(_table(["step", "rejected here", "reasons", "remaining"], rows, caption=caption))
    parts.append(_table(
        ["method", "generated", "kept", "keep rate", "errors", "rejections", "mean similarity (kept)"],
        [[m["method"], m["generated"], m["kept"], _pct(m["keep_rate"]), m["errors"],
          ", ".join(f"{k} {v:,}" for k, v in sorted(m["reasons"].items())) or "–", m["mean_similarity_kept"]]
         for m in f["by_method"]],
        caption="per generator method",
    ))
    ctrl = run.table("augmented_random.parquet", columns=["kept"])
    if ctrl is not None:
        parts.append(_p(f"Control pool (augmented_random.parquet, random sources): {ctrl.num_rows:,} variants, "
                        f"{int(_bool_col(ctrl, 'kept').sum()):,} kept.", "muted"))

    # examples: source text -> variant, for kept and for rejected rows (only those rows are read in full)
    kept = _bool_col(light, "kept")
    reason = _str_col(light, "reject_reason", "")
    method = _str_col(light, "method", "(none)")
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
        texts, pos = _lookup(sub.column("source_id"), dataset, "id", "text")
        valid = pc.is_valid(pos).to_numpy(zero_copy_only=False)
        src = [t if v else None for t, v in zip(texts, valid)]
    recs = {int(i): {**r, "source_text": s} for i, r, s in zip(want.tolist(), sub.to_pylist(), src)}

    def ex_table(idx, caption, with_reason):
        header = ["method", "source text", "variant", "similarity"] + (["reject reason"] if with_reason else [])
        rows = []
        for i in idx.tolist():
            r = recs[i]
            row = [r.get("method"), _text(r["source_text"], 200), _text(r.get("text"), 200), r.get("similarity")]
            rows.append(row + ([r.get("reject_reason")] if with_reason else []))
        return _table(header, rows, caption=caption)

    parts.append(_h3("Examples"))
    parts.append(ex_table(ex_kept, "kept variants (source → variant)", False))
    parts.append(ex_table(ex_rej, "rejected variants, by reason", True))
    parts.append(_h3(f"Rows with an error ({f['errors']:,})"))
    parts.append(_table(
        ["method", "source id", "error"],
        [[recs[i].get("method"), _text(recs[i].get("source_id"), 60), _text(recs[i].get("error"), 300)] for i in ex_err.tolist()],
        more=f["errors"] - ex_err.size,
    ))
    return "".join(parts)


#: how each set of held-out labels is named on the page
LABEL_SET_NAME = {"given": "given labels", "true": "true labels"}


def _arm_table(summary: EvaluationSummary, label_set: str) -> _Html:
    tag = LABEL_SET_NAME[label_set]
    pct = f"{100 * summary['bootstrap']['confidence']:g}%"
    header = ["arm", "seeds", "train rows", "augmented", f"accuracy ({tag}) [{pct} interval]", f"Δ accuracy vs baseline ({tag})",
              "McNemar p", f"macro-F1 ({tag})", f"Δ macro-F1 vs baseline ({tag})", f"ECE ({tag})"]
    body = []
    for r in arm_rows(summary, label_set):
        base = r["arm"] == "baseline"
        body.append([
            _Html(f"<b>{html.escape(r['arm'])}</b>") if base else r["arm"], r["n_seeds"], r["train_rows"], r["n_augmented"],
            _ci(r["accuracy"]), "–" if base else _diff(r["diff"]["accuracy"]),
            "–" if r["mcnemar"] is None else _Html(f"{r['mcnemar']['p_value']:.3g} <span class=muted>"
                                                   f"({r['mcnemar']['only_arm_correct']}:{r['mcnemar']['only_reference_correct']})</span>"),
            _ci(r["macro_f1"]), "–" if base else _diff(r["diff"]["macro_f1"]), _ci(r["ece"]),
        ])
    caption = (f"held-out metrics per arm against the {tag}: mean over seeds [{pct} paired-bootstrap interval over held-out rows]; "
               "a Δ marked ≠0 has an interval that excludes zero, any other is not distinguishable from baseline; "
               "McNemar p (rows only this arm got right : rows only baseline got right)")
    return _table(header, body, caption=caption)


def _hard_weighted_line(info: dict | None) -> Any:
    """What the hard_weighted arm trained with (from its training-set info), or _SKIP."""
    if not info:
        return _SKIP
    mode, cap = info.get("hard_weighting", "upweight"), info.get("hard_weight_cap", 3.0)
    keep = (info.get("train") or {}).get("ohem_keep")
    what = {
        "upweight": f"the baseline rows with loss weights 1 + {cap - 1:g} × hardness ({info.get('n_upweighted', 0):,} rows up-weighted)",
        "oversample": f"the baseline rows, hard ones repeated about 1 + {cap - 1:g} × hardness times ({info.get('n_repeated', 0):,} repeats)",
        "ohem": "the baseline rows, each batch back-propagating only its highest-loss "
                + (f"{keep:g} share" if keep is not None else "share") + " (OHEM)",
    }.get(mode, mode)
    return f"{what}; {info.get('n_label_issues', 0):,} label issues never up-weighted"


def _adversarial_line(info: dict | None) -> Any:
    if not info:
        return _SKIP
    eps = (info.get("train") or {}).get("fgm_epsilon")
    return "the baseline rows trained with FGM on the word embeddings" + (f" (epsilon {eps:g})" if eps is not None else "")


def _arms(run: _Run, **_) -> str:
    raw = run.json("evaluation/summary.json")
    if raw is None:
        return run.missing("evaluation/summary.json", "evaluate")
    summary = read_evaluation_summary(raw)
    b, truth = summary["bootstrap"], summary["truth"]
    labels_note = (
        f"given and true (injected truth: {truth['flipped']:,} of {truth['rows']:,} given held-out labels differ from the true ones)"
        if truth["available"] else "given labels only (" + truth["note"] + ")"
    )
    parts = [_kv([
        ("held-out rows", b["rows"]),
        ("held-out labels scored against", labels_note),
        ("seeds per arm", ", ".join(sorted({str(a["n_seeds"]) for a in summary["arms"].values()}))),
        ("intervals", f"{100 * b['confidence']:g}%, paired bootstrap over held-out rows ({b['resamples']:,} resamples; "
                      "the same rows for every arm, seeds averaged)"),
        ("McNemar test", summary["mcnemar_pooling"]),
        ("retrained model", summary.get("backbone", _SKIP)),
        ("aug_ratio", summary.get("aug_ratio", _SKIP)),
        ("review rows in the clean arms", summary.get("review_as", _SKIP)),
        ("hard_weighted arm", _hard_weighted_line(summary.get("training_sets", {}).get("hard_weighted"))),
        ("adversarial arm", _adversarial_line(summary.get("training_sets", {}).get("adversarial"))),
        ("seconds", summary.get("seconds", _SKIP)),
    ])]
    for ls in summary["label_sets"]:
        title = ("Against the given held-out labels" if ls == "given"
                 else "Against the true held-out labels (injected truth)")
        parts.append(_h3(title))
        if ls == "true":
            parts.append(_p(f"{truth['flipped']:,} of the {truth['rows']:,} given held-out labels differ from the injected truth: "
                            "a model that learns the true labels is scored down by the given ones. These numbers use the true labels.",
                            "muted"))
        parts.append(_arm_table(summary, ls))
    pair_rows = []
    for name, pr in summary["pairs"].items():
        for ls in summary["label_sets"]:
            rec = pr if ls == "given" else pr.get("true_labels")
            if rec is not None:
                pair_rows.append([name, LABEL_SET_NAME[ls], _diff(rec["accuracy"]), _diff(rec["macro_f1"]),
                                  f"{rec['mcnemar']['p_value']:.3g}"])
    if pair_rows:
        parts.append(_table(["pair", "labels", "Δ accuracy", "Δ macro-F1", "McNemar p"], pair_rows,
                            caption="other paired differences (e.g. targeted augmentation against the random control at the same budget)"))
    for n in summary["notes"]:
        parts.append(_p(f"note: {n}", "muted"))
    ls = "true" if truth["available"] else "given"
    parts.append(_img(arm_errorbar_png(summary, label_set=ls), f"held-out accuracy per arm ({LABEL_SET_NAME[ls]}) with intervals"))
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
                _Html("<b>baseline</b> (no action)") if arm == "baseline" else "chosen", LABEL_SET_NAME[ls], a["n_seeds"],
                a.get("train_rows"), a.get("n_augmented"), _ci(rec[metric]), "–" if vs is None else _diff(vs[metric]),
                "–" if vs is None else f"{vs['mcnemar']['p_value']:.3g}",
            ])
    return rows


def _sweep(run: _Run, **_) -> str:
    raw = run.json("sweep/best.json")
    if raw is None:
        return run.missing("sweep/best.json", "sweep")
    sb = read_sweep_best(raw)
    m, sel, b = sb["metric"], sb["selection"], sb["best"]
    t = sb["trials"]
    boot = sb["bootstrap"]
    parts = [_kv([
        ("chosen on", f"the validation split: {sel['rows']:,} of the training rows (sweep.validation_size "
                      f"{sel['validation_size']:g}, stratified, seed {sel['seed']}); trials trained on the other "
                      f"{sel['train_rows']:,}, without the {sel['pool_rows_excluded']:,} pool variants of validation rows"),
        ("rule", sel["rule"]),
        ("seeds per cell", len(sel["seeds"])),
        ("cells", f"{t.get('done', 0)} trained, {t.get('shared', 0)} sharing another cell's training set, "
                  f"{t.get('error', 0)} failed, {t.get('incomplete', 0)} not finished"),
        ("intervals", _SKIP if boot is None else f"{100 * boot['confidence']:g}%, paired bootstrap over the "
                      f"{boot['rows']:,} validation rows ({boot['resamples']:,} resamples, seeds averaged)"),
    ])]
    parts.append(_h3("Chosen on the validation split"))
    if b is None:
        parts.append(_p(sb["note"], "muted"))
    elif b["no_action"]:
        parts.append(_p(f"The baseline (no action): no cell's interval of Δ {m} lies above zero on the validation split.",))
    else:
        parts.append(_kv([
            (b["threshold_kind"], b["threshold"]), ("aug_ratio", b["aug_ratio"]), ("issue_action", b["issue_action"]),
            (f"validation {m}", _ci(b[m])), (f"Δ {m} vs baseline (validation)", _diff(b["vs_baseline"][m])),
        ]))
    conf = sb["confirmation"]
    parts.append(_h3("Confirmed on the test split (once, after the choice)"))
    if conf is None:
        parts.append(_p("Not confirmed yet: the sweep is incomplete or nothing was chosen. The test split is read only "
                        "once the choice is final.", "muted"))
    else:
        parts.append(_table(
            ["model", "labels", "seeds", "train rows", "augmented", f"test {m}", f"Δ {m} vs baseline", "McNemar p"],
            _sweep_conf_rows(conf, m),
            caption=f"retrained on all {conf['train_rows']:,} training rows, scored on the {conf['rows']:,} test rows; "
                    + ("true labels = the injected truth of the test rows" if conf["truth"]["available"] else conf["truth"]["note"]),
        ))
    if sb["configs"]:
        parts.append(_img(sweep_heatmap_png(raw), f"sweep heat-map: Δ validation {m} vs baseline; * = interval excludes 0"))
        cells = []
        for c in sb["configs"]:
            vs = c.get("vs_baseline")
            cells.append([
                "baseline (no action)" if c["no_action"] else c["issue_action"], "–" if c["threshold"] is None else c["threshold"],
                c["aug_ratio"], _ci(c[m]), "reference" if c["no_action"] else _diff(vs[m]) if vs else "–",
                "–" if not vs else f"{vs['mcnemar']['p_value']:.3g}", c["n_seeds"], c.get("train_rows"),
                c.get("same_as") or "",
            ])
        thr = next((c["threshold_kind"] for c in sb["configs"] if not c["no_action"]), "threshold")
        parts.append(_table(["issue_action", thr, "aug_ratio", f"validation {m}", f"Δ {m} vs baseline", "McNemar p", "seeds",
                             "train rows", "shares runs of"], cells[:15], more=len(cells) - 15,
                            caption=f"cells by the lower bound of Δ {m} vs baseline on the validation split"))
    parts.append(_p(sb["note"], "muted"))
    for n in sb["notes"]:
        parts.append(_p(f"note: {n}", "muted"))
    return "".join(parts)


def _review_history(run: _Run, **_) -> str:
    """Review rounds (imports) and pseudo-label rounds, with the held-out accuracy of a run on each version."""
    from hardmine.review_cmd import review_history

    rows = review_history(run.store)
    prep = run.summary("prepare") or {}
    on = prep.get("dataset_version")
    if not rows:
        return _p("No review round yet: export a queue (<code>hardmine review export CONFIG</code>), correct it and import it "
                  "(<code>hardmine review import CONFIG FILE</code>); the next <code>hardmine run</code> trains on the new "
                  "version and <code>hardmine review next CONFIG</code> exports the next batch.", "muted")
    body = []
    for r in rows:
        body.append([
            r["round"], r["kind"], _Html(f"<b>{r['version']}</b>") if r["version"] == on else r["version"],
            "–" if r["rows"] is None else r["rows"], "–" if r["changed"] is None else r["changed"],
            "–" if r["fold_ensemble"] is None else _pct(r["fold_ensemble"]),
            "–" if r["baseline"] is None else _pct(r["baseline"]),
            _text(r["source"], 120), r["time"] or "–",
        ])
    total_rows = sum(r["rows"] or 0 for r in rows if r["kind"] == "review")
    total_changed = sum(r["changed"] or 0 for r in rows if r["kind"] == "review")
    parts = [_kv([
        ("review rounds", sum(r["kind"] == "review" for r in rows)),
        ("rows reviewed", total_rows),
        ("labels changed", total_changed),
        ("pseudo-label rounds", sum(r["kind"] == "pseudo-label" for r in rows)),
        ("this run trains on dataset version", on if on is not None else _SKIP),
    ])]
    parts.append(_table(
        ["round", "kind", "dataset version after", "rows reviewed / added", "labels changed",
         "held-out accuracy (fold models)", "held-out accuracy (evaluate baseline)", "source", "time (UTC)"],
        body,
        caption="round 0 is the data as prepared; held-out accuracy is that of a run on the round's dataset version (the same "
                "held-out split every round), shown when a run on that version got that far; – when none did",
    ))
    return "".join(parts)


_RENDER: dict[str, Callable[..., str]] = {
    "overview": _overview,
    "dataset": _dataset,
    "oof": _oof,
    "hardness": _hardness,
    "per-class": _per_class,
    "confusion": _confusion,
    "label-issues": _label_issues,
    "data-map": _data_map,
    "outliers": _outliers,
    "dual-model": _dual_model,
    "augmentation": _augmentation,
    "arms": _arms,
    "review-history": _review_history,
    "sweep": _sweep,
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans KR","Apple SD Gothic Neo",sans-serif;
 margin:0 auto;max-width:1200px;padding:1rem 2rem 4rem;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.25rem;border-bottom:2px solid #e4e4e8;padding-bottom:.2rem;margin-top:2.2rem}
h3{font-size:1rem;margin:1.2rem 0 .4rem} nav{font-size:.9rem;margin:.6rem 0 1rem} nav a{margin-right:.9rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.85rem;max-width:100%}
caption{text-align:left;font-size:.8rem;color:#666;padding-bottom:.25rem}
th,td{border:1px solid #e1e1e6;padding:.25rem .5rem;vertical-align:top;text-align:left}
th{background:#f5f5f7} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td span[dir]{display:inline-block;max-width:34rem;overflow-wrap:anywhere}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:.15rem 1rem;font-size:.9rem}
dl.kv dt{color:#555} dl.kv dd{margin:0;font-variant-numeric:tabular-nums}
figure{margin:.6rem 0} img{max-width:100%;height:auto;border:1px solid #eee}
.missing{background:#fff8e1;border-left:4px solid #f0b400;padding:.4rem .7rem}
.error{background:#fdecea;border-left:4px solid #d93025;padding:.4rem .7rem}
.muted{color:#777} .badge{background:#e6f4ea;color:#137333;border-radius:3px;padding:0 .3rem;font-size:.75rem}
code{background:#f3f3f6;padding:0 .2rem;border-radius:2px}
"""


def build_report(store: RunStore, *, top_issues: int = 50, max_examples: int = 6, strict: bool = False) -> str:
    """The report of the run in ``store`` as one self-contained HTML string.

    A section whose artifacts are missing says "not run yet"; one whose artifacts cannot be
    rendered (e.g. a malformed file) shows the error in place and is listed at the top, or,
    with ``strict``, raises.
    """
    run = _Run(store)
    opts = {"top_issues": top_issues, "max_examples": max_examples}
    body, failed = [], []
    for anchor, title in SECTIONS:
        try:
            content = _RENDER[anchor](run, **opts)
        except Exception as e:  # noqa: BLE001 - one bad artifact must not hide the rest of the report
            if strict:
                raise
            failed.append(title)
            content = (f"<p class=error>This section could not be rendered: "
                       f"{html.escape(type(e).__name__)}: {html.escape(str(e))}</p>")
        body.append(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{content}</section>')
    name = run.manifest.get("name") or store.uri.rstrip("/").rsplit("/", 1)[-1]
    from hardmine import __version__

    head = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>hardmine report: {html.escape(str(name))}</title><style>{_CSS}</style></head><body>"
        f"<h1>hardmine report: {html.escape(str(name))}</h1>"
        f"<p class=muted>{html.escape(store.uri)} · generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} "
        f"by hardmine {html.escape(__version__)}</p>"
        "<nav>" + "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in SECTIONS) + "</nav>"
    )
    if failed:
        head += f"<p class=error>{len(failed)} section(s) could not be rendered: {html.escape(', '.join(failed))}.</p>"
    return head + "".join(body) + "</body></html>\n"


def write_report(run_dir: str, *, name: str = "report.html", **kwargs: Any) -> str:
    """Render the report of ``run_dir`` and write it atomically to ``<run_dir>/<name>``; returns its path/URI."""
    from pyarrow import fs as pafs

    fs, root = split_uri(run_dir)
    if fs.get_file_info(f"{root}/{MANIFEST}").type == pafs.FileType.NotFound:
        raise ValueError(
            f"{run_dir} has no {MANIFEST}: not a hardmine run directory; pass runs/<name> of a run "
            "(start one with `hardmine run CONFIG`)"
        )
    store = RunStore(run_dir)
    page = build_report(store, **kwargs)
    store.write_bytes(name, page.encode("utf-8"))
    return store.uri_of(name)


def main(argv: list[str] | None = None) -> int:
    """``python -m hardmine.report RUN_DIR``: write the report and print where it is."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="hardmine report", description="write <run_dir>/report.html")
    p.add_argument("run_dir")
    p.add_argument("--top-issues", type=int, default=50, help="label issues listed")
    p.add_argument("--strict", action="store_true", help="fail on a section that cannot be rendered")
    args = p.parse_args(argv)
    try:
        path = write_report(args.run_dir, top_issues=args.top_issues, strict=args.strict)
    except ValueError as e:
        print(f"hardmine report: error: {e}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
