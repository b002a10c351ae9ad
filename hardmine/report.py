"""One self-contained HTML page per run: ``hardmine report RUN_DIR`` -> ``<run_dir>/report.html``.

The page reads whatever the stages have written so far (manifest, Parquet, JSON, PNG) and
renders one section per step; a section whose artifacts are absent says "not run yet" and
which stage writes them. Images are embedded as base64 data URIs, CSS is inline, there is
no JavaScript and no external asset, so the file can be mailed or opened offline.

Pure helpers (tables in, dicts/tables/PNG bytes out) sit next to the renderer:
:func:`augmentation_funnel`, :func:`label_issue_rows`, :func:`arm_rows`, :func:`sweep_grid`,
:func:`arm_errorbar_png`, :func:`sweep_heatmap_png`. Every piece of user data (texts, class
names, ids, error messages) is HTML-escaped.
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

from hardmine.store import MANIFEST, RunStore, split_uri

#: (anchor, heading) of every section, in page order.
SECTIONS = (
    ("overview", "Run overview"),
    ("dataset", "Dataset"),
    ("oof", "Out-of-fold accuracy"),
    ("hardness", "Hardness"),
    ("per-class", "Hard samples per class"),
    ("confusion", "Confusion pairs"),
    ("label-issues", "Label issues"),
    ("augmentation", "Augmentation funnel"),
    ("arms", "Arm comparison"),
    ("sweep", "Threshold sweep"),
)
NOT_RUN = "not run yet"
#: the training-set arms of the evaluate stage, in display order (others follow, sorted).
ARM_ORDER = ("baseline", "clean", "targeted", "clean+targeted", "random")
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
SWEEP_NEED = ("threshold", "aug_ratio", "issue_action")


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


def _interval(v: Any) -> dict | None:
    """{mean, lo, hi, excludes_zero} from a dict, a bare number or None (missing parts -> None)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return {"mean": float(v), "lo": None, "hi": None, "excludes_zero": None}
    if isinstance(v, dict):
        def num(*keys):
            for k in keys:
                x = v.get(k)
                if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
                    return float(x)
            return None

        mean = num("mean", "value", "estimate")
        if mean is None:
            return None
        ez = v.get("excludes_zero")
        return {"mean": mean, "lo": num("lo", "low", "lower"), "hi": num("hi", "high", "upper"),
                "excludes_zero": bool(ez) if isinstance(ez, bool) else None}
    return None


def arm_rows(summary: Any, metrics: Sequence[str] = ("accuracy", "macro_f1", "ece")) -> list[dict]:
    """Normalise ``evaluation/summary.json`` into one dict per arm (baseline first).

    Accepts ``{"arms": {arm: {...}}}``, ``{"arms": [{"arm": ..., ...}]}`` or a bare
    ``{arm: {...}}`` mapping. Each row: ``arm``, ``{metric: interval or None}``, ``diff``
    (``{metric: interval}`` from ``diff_vs_baseline``) and ``extra`` (other scalar fields).
    """
    if not isinstance(summary, dict):
        raise ValueError(f"evaluation/summary.json must hold a JSON object, got {type(summary).__name__}")
    arms = summary.get("arms", summary if all(isinstance(v, dict) for v in summary.values()) and summary else None)
    if isinstance(arms, list):
        arms = {str(a.get("arm", i)): a for i, a in enumerate(arms) if isinstance(a, dict)}
    if not isinstance(arms, dict) or not arms:
        raise ValueError(
            "evaluation/summary.json has no 'arms' mapping ({arm: {accuracy: {mean, lo, hi}, ...}}); "
            "re-run the evaluate stage"
        )
    names = [a for a in ARM_ORDER if a in arms] + sorted(a for a in arms if a not in ARM_ORDER)
    rows = []
    for a in names:
        rec = arms[a] if isinstance(arms[a], dict) else {}
        diff_src = rec.get("diff_vs_baseline") or {}
        diff = {m: _interval(diff_src.get(m)) for m in metrics} if isinstance(diff_src, dict) else {}
        extra = {
            k: v for k, v in rec.items()
            if k not in metrics and k != "diff_vs_baseline" and k != "arm"
            and (isinstance(v, (int, float, str)) or v is None)
        }
        rows.append({"arm": str(a), **{m: _interval(rec.get(m)) for m in metrics}, "diff": diff, "extra": extra})
    return rows


def sweep_grid(results: pa.Table, metric: str = "accuracy") -> dict:
    """Mean ``metric`` per (issue_action, threshold, aug_ratio) of a sweep results table.

    Returns ``actions``, ``thresholds``, ``ratios`` (sorted), ``mean`` and ``count`` arrays of
    shape (actions, thresholds, ratios) (NaN / 0 where no trial finished) and ``failed`` (rows
    whose metric is null or NaN).
    """
    _require(results, (*SWEEP_NEED, metric), "sweep results", "pass sweep/results.parquet written by the sweep stage")
    act = _str_col(results, "issue_action", "(none)").astype(str)
    thr = pc.fill_null(results.column("threshold").cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
    rat = pc.fill_null(results.column("aug_ratio").cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
    val = pc.fill_null(results.column(metric).cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~np.isfinite(thr) | ~np.isfinite(rat))
    if bad.size:
        raise ValueError(f"sweep results rows {bad[:5].tolist()} have no threshold/aug_ratio; re-run the sweep stage")
    ok = np.isfinite(val)
    actions, ai = np.unique(act, return_inverse=True)
    thresholds, ti = np.unique(thr, return_inverse=True)
    ratios, ri = np.unique(rat, return_inverse=True)
    shape = (len(actions), len(thresholds), len(ratios))
    total = np.zeros(shape)
    count = np.zeros(shape, dtype=np.int64)
    np.add.at(total, (ai[ok], ti[ok], ri[ok]), val[ok])
    np.add.at(count, (ai[ok], ti[ok], ri[ok]), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return {
        "metric": metric,
        "actions": [str(a) for a in actions],
        "thresholds": thresholds.tolist(),
        "ratios": ratios.tolist(),
        "mean": mean,
        "count": count,
        "failed": int((~ok).sum()),
    }


# --------------------------------------------------------------------------- PNG plots (in memory)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        fig.savefig(buf, format="png")
    return buf.getvalue()


def arm_errorbar_png(summary: Any, metrics: Sequence[str] = ("accuracy", "macro_f1")) -> bytes:
    """Error bars (mean and 95% interval over seeds) per arm, one panel per metric present."""
    from hardmine.plots import _figure, _short, _style

    rows = arm_rows(summary, metrics=tuple(metrics))
    shown = [m for m in metrics if any(r[m] is not None for r in rows)]
    if not shown:
        raise ValueError(f"evaluation/summary.json has none of the metrics {list(metrics)} for any arm")
    labels = [_short(r["arm"], 16) for r in rows]
    x = np.arange(len(rows))
    with _style():
        fig = _figure(max(5.0, 1.3 * len(rows) * len(shown) + 1.5), 3.8)
        axes = fig.subplots(1, len(shown), squeeze=False)[0]
        for ax, m in zip(axes, shown):
            base = next((r[m] for r in rows if r["arm"] == "baseline" and r[m] is not None), None)
            for i, r in enumerate(rows):
                iv = r[m]
                if iv is None:
                    continue
                lo = iv["mean"] - iv["lo"] if iv["lo"] is not None else 0.0
                hi = iv["hi"] - iv["mean"] if iv["hi"] is not None else 0.0
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
            ax.set_ylabel(f"held-out {m}")
            ax.set_title(f"{m} per arm (mean, 95% interval)")
        return _png(fig)


def sweep_heatmap_png(results: pa.Table, metric: str = "accuracy", *, threshold_name: str = "threshold") -> bytes:
    """Heat-map threshold x aug_ratio -> mean held-out ``metric``, one panel per issue_action."""
    from hardmine.plots import _figure, _short, _style

    g = sweep_grid(results, metric)
    mean, count = g["mean"], g["count"]
    a, t, r = mean.shape
    finite = mean[np.isfinite(mean)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmax <= vmin:
        vmin, vmax = vmin - 1e-3, vmax + 1e-3
    best = np.unravel_index(np.nanargmax(np.where(np.isfinite(mean), mean, -np.inf)), mean.shape) if finite.size else None
    with _style():
        import matplotlib

        cmap = matplotlib.colormaps["viridis"].copy()
        cmap.set_bad("0.9")
        panel = max(2.8, 0.75 * r + 1.6)
        fig = _figure(panel * a + 1.2, max(2.8, 0.5 * t + 1.6))
        axes = fig.subplots(1, a, squeeze=False)[0]
        im = None
        for k, ax in enumerate(axes):
            im = ax.imshow(np.ma.masked_invalid(mean[k]), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
            for i in range(t):
                for j in range(r):
                    if count[k, i, j]:
                        v = mean[k, i, j]
                        txt = f"{v:.3f}" + (f"\nn={count[k, i, j]}" if count[k, i, j] > 1 else "")
                        ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                                color="black" if v > vmin + 0.6 * (vmax - vmin) else "white")
            if best is not None and best[0] == k:
                ax.add_patch(matplotlib.patches.Rectangle((best[2] - 0.5, best[1] - 0.5), 1, 1, fill=False,
                                                          edgecolor="crimson", linewidth=2.0))
            ax.set_xticks(np.arange(r), [f"{x:g}" for x in g["ratios"]])
            ax.set_yticks(np.arange(t), [f"{x:g}" for x in g["thresholds"]])
            ax.set_xlabel("aug_ratio")
            if k == 0:
                ax.set_ylabel(threshold_name)
            ax.set_title(f"issue_action = {_short(g['actions'][k], 18)}")
            ax.spines[["top", "right"]].set_visible(True)
        fig.colorbar(im, ax=list(axes), shrink=0.85, label=f"mean held-out {metric}")
        fig.suptitle(f"Sweep: mean held-out {metric} (best outlined)")
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


def _ci(iv: dict | None, signed: bool = False) -> _Html:
    if iv is None:
        return _Html("–")
    f = "{:+.4f}" if signed else "{:.4f}"
    s = f.format(iv["mean"])
    if iv.get("lo") is not None and iv.get("hi") is not None:
        s += f" <span class=muted>[{f.format(iv['lo'])}, {f.format(iv['hi'])}]</span>"
    if iv.get("excludes_zero") is True:
        s += " <span class=badge>≠0</span>"
    return _Html(s)


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
                ("rows with injected truth", s.get("truth_rows") if s.get("truth_rows") is not None else _SKIP),
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
    phrases: dict[int, list[str]] = {}
    tok = run.table("analysis/distinctive_tokens.parquet", columns=["class", "phrase", "token"])
    if tok is not None and tok.num_rows and "class" in tok.column_names:
        col = "phrase" if "phrase" in tok.column_names else "token"
        for c, ph in zip(tok.column("class").to_pylist(), tok.column(col).to_pylist()):
            if ph is not None and len(phrases.setdefault(int(c), [])) < 3:
                phrases[int(c)].append(ph.strip())
    rows = table.to_pylist()
    rows.sort(key=lambda r: (-(r.get("n_hard") or 0), r.get("class") or 0))
    out = []
    for r in rows[:max_rows]:
        out.append([
            _text(r.get("name", r.get("class")), 60), r.get("n"), r.get("n_hard"), _pct(r.get("share_hard")),
            r.get("n_issue"), _pct(r.get("share_issue")),
            _Html(" · ".join(f"<code>{html.escape(p)}</code>" for p in phrases.get(int(r.get("class", -1)), []))),
        ])
    parts.append(_table(["class", "rows", "hard", "share hard", "label issues", "share issues", "distinctive phrases of its hard samples"],
                        out, more=len(rows) - max_rows, caption="per class, most hard samples first"))
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
    lq = run.json("label_quality.json")
    parts = []
    pairs: list[tuple[str, Any]] = [("rows scored", n), ("flagged as label issues", _Html(f"{n_flag:,} ({_pct(n_flag / n if n else 0)})"))]
    if isinstance(lq, dict):
        pairs += [
            ("estimated wrong labels (cleanlab confident joint)", lq.get("estimated_label_errors")),
            ("estimated wrong-label fraction", _pct(lq.get("estimated_label_error_fraction"))),
            ("issue filter", (lq.get("label_issues") or {}).get("filter_used") if isinstance(lq.get("label_issues"), dict) else None),
        ]
    parts.append(_kv(pairs))
    det = lq.get("detection") if isinstance(lq, dict) else None
    parts.append(_h3("Detection against the injected truth"))
    if isinstance(det, dict):
        parts.append(_table(["precision", "recall", "F1", "true positives", "false positives", "false negatives"],
                            [[det.get("precision"), det.get("recall"), det.get("f1"), det.get("tp"), det.get("fp"), det.get("fn")]]))
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

    if isinstance(lq, dict) and isinstance(lq.get("per_class"), list):
        pc_rows = [r for r in lq["per_class"] if isinstance(r, dict)]
        pc_rows.sort(key=lambda r: -(r.get("estimated_noise_rate") or 0))
        parts.append(_table(
            ["class", "rows", "estimated noise rate", "estimated mislabeled", "flagged"],
            [[_text(r.get("name"), 60), r.get("count"), _pct(r.get("estimated_noise_rate")), r.get("estimated_mislabeled"),
              r.get("n_flagged")] for r in pc_rows[:30]],
            more=len(pc_rows) - 30, caption="estimated label noise per class (cleanlab), noisiest first",
        ))
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


def _arms(run: _Run, **_) -> str:
    summary = run.json("evaluation/summary.json")
    if summary is None:
        return run.missing("evaluation/summary.json", "evaluate")
    rows = arm_rows(summary)
    extra_keys = sorted({k for r in rows for k in r["extra"]})
    header = ["arm", "accuracy [95% interval]", "macro-F1", "ECE", "Δ accuracy vs baseline", "Δ macro-F1 vs baseline"] + extra_keys
    body = []
    for r in rows:
        base = r["arm"] == "baseline"
        body.append([
            _Html(f"<b>{html.escape(r['arm'])}</b>") if base else r["arm"],
            _ci(r["accuracy"]), _ci(r["macro_f1"]), _ci(r["ece"]),
            "–" if base else _ci(r["diff"].get("accuracy"), signed=True),
            "–" if base else _ci(r["diff"].get("macro_f1"), signed=True),
        ] + [r["extra"].get(k) for k in extra_keys])
    parts = [_table(header, body, caption="held-out metrics per arm: mean over seeds [95% interval]; "
                                          "≠0 marks a difference whose interval excludes zero")]
    scalars = [(k, v) for k, v in summary.items() if k != "arms" and isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    if scalars:
        parts.insert(0, _kv(scalars))
    if any(r["accuracy"] is not None for r in rows):
        parts.append(_img(arm_errorbar_png(summary), "held-out accuracy per arm with 95% intervals"))
    return "".join(parts)


def _sweep(run: _Run, **_) -> str:
    results = run.table("sweep/results.parquet")
    best = run.json("sweep/best.json")
    if results is None and best is None:
        return run.missing("sweep/results.parquet", "sweep")
    parts = []
    cfg_sweep = (run.manifest.get("config") or {}).get("sweep") or {}
    thr_name = cfg_sweep.get("threshold", "threshold") if isinstance(cfg_sweep, dict) else "threshold"
    if isinstance(best, dict):
        flat = [(k, v) for k, v in best.items() if isinstance(v, (int, float, str, bool)) or v is None]
        flat += [(f"{k}.{k2}", v2) for k, v in best.items() if isinstance(v, dict) for k2, v2 in v.items()
                 if isinstance(v2, (int, float, str, bool)) or v2 is None]
        parts.append(_h3("Best configuration (sweep/best.json)"))
        parts.append(_kv(flat))
    if results is None:
        parts.append(run.missing("sweep/results.parquet", "sweep"))
        return "".join(parts)
    metric = "accuracy" if "accuracy" in results.column_names else "macro_f1"
    g = sweep_grid(results, metric)
    parts.insert(0, _kv([("trials", results.num_rows), ("trials without a result", g["failed"]),
                         ("threshold parameter", thr_name)]))
    parts.append(_img(sweep_heatmap_png(results, metric, threshold_name=thr_name),
                      f"sweep heat-map: {thr_name} x aug_ratio -> mean held-out {metric}"))
    cells = []
    other = "macro_f1" if metric == "accuracy" else "accuracy"
    g2 = sweep_grid(results, other) if other in results.column_names else None
    for a, act in enumerate(g["actions"]):
        for i, t in enumerate(g["thresholds"]):
            for j, r in enumerate(g["ratios"]):
                if g["count"][a, i, j]:
                    cells.append([act, t, r, float(g["mean"][a, i, j]),
                                  float(g2["mean"][a, i, j]) if g2 is not None and g2["count"][a, i, j] else None,
                                  int(g["count"][a, i, j])])
    cells.sort(key=lambda c: -c[3])
    parts.append(_table(["issue_action", thr_name, "aug_ratio", f"mean {metric}", f"mean {other}", "trials"],
                        cells[:15], more=len(cells) - 15, caption=f"configurations by mean held-out {metric}"))
    return "".join(parts)


_RENDER: dict[str, Callable[..., str]] = {
    "overview": _overview,
    "dataset": _dataset,
    "oof": _oof,
    "hardness": _hardness,
    "per-class": _per_class,
    "confusion": _confusion,
    "label-issues": _label_issues,
    "augmentation": _augmentation,
    "arms": _arms,
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
