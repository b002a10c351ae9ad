"""PNG plots of the hard set (matplotlib Agg, no display, no pyplot global state).

Each function writes one PNG atomically (:func:`hardmine.store.atomic_file`) and returns its path.
The hard set drawn is the selection's (``hard_mask``: :func:`hardmine.select.hard_mask`), whatever its policy.
Many classes (e.g. 77) are handled by showing the top classes and folding the rest into "other".
:func:`style`, :func:`figure`, :func:`png_bytes` and :func:`short` are the building blocks the
report's in-memory figures (:mod:`hardmine.report.figures`) share.
"""
from __future__ import annotations

import io
import warnings
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import pyarrow as pa

from hardmine.checks import check_int, float_column, int_column
from hardmine.select.inputs import dynamics, score_ids
from hardmine.select.order import tiebreak_keys
from hardmine.select.table import check_mask
from hardmine.store import atomic_file
from hardmine.vocab import REGIONS

#: fonts tried first when installed, so Korean/CJK class names render (DejaVu Sans is the fallback).
CJK_FONTS = ("Noto Sans CJK KR", "Noto Sans KR", "NanumGothic", "Malgun Gothic", "AppleGothic", "Source Han Sans KR")


def _families() -> list[str]:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return [f for f in CJK_FONTS if f in installed] + ["DejaVu Sans"]


@lru_cache(maxsize=1)
def _codepoints() -> frozenset:
    """Code points the plot fonts can draw."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    cps: set[int] = set()
    for fam in _families():
        path = font_manager.findfont(font_manager.FontProperties(family=fam), fallback_to_default=True)
        cps.update(FT2Font(path).get_charmap())
    return frozenset(cps)


def _drawable(s: str) -> bool:
    cps = _codepoints()
    return all(ord(ch) in cps or ch.isspace() for ch in s)


@contextmanager
def style():
    """The plots' matplotlib settings (CJK-capable fonts, no top/right spines), glyph warnings silenced."""
    import matplotlib

    family = _families()
    with matplotlib.rc_context({"font.family": family, "font.size": 9, "axes.spines.top": False,
                                "axes.spines.right": False}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        yield


def figure(width: float, height: float):
    """A figure on the Agg canvas (no pyplot state), constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _savefig(fig, target) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        fig.savefig(target, format="png")


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (in memory)."""
    buf = io.BytesIO()
    _savefig(fig, buf)
    return buf.getvalue()


def _save(fig, path) -> str:
    with atomic_file(path) as tmp:
        _savefig(fig, tmp)
    return str(path)


def _name(label_names, c: int) -> str:
    """The class name, or ``#c`` when it is missing or the installed fonts cannot draw it (no CJK font)."""
    name = str(label_names[c]) if 0 <= c < len(label_names) else ""
    return name if name and _drawable(name) else f"#{c}"


def short(s: str, n: int = 24) -> str:
    """``s`` cut to ``n`` characters (with …), for tick labels and legends."""
    return s if len(s) <= n else s[: n - 1] + "…"


def hardness_histogram(
    scores: pa.Table,
    label_names: list[str],
    path,
    *,
    hard_mask: np.ndarray,
    top_n: int = 8,
    bins: int = 30,
    log: bool = True,
) -> str:
    """Overlaid step histograms of hardness: the ``top_n`` classes by hard count, the rest as "other".

    ``hard_mask`` (aligned with ``scores``) is the selection's hard set (:func:`hardmine.select.hard_mask`);
    when it is the top of the rows by hardness (policy ``hardness``) its lowest hardness is drawn as a line.
    """
    check_int("top_n", top_n, 1)
    check_int("bins", bins, 1)
    fix = "pass the score stage's table"
    hardness = float_column(scores, "hardness", "scores", fix)
    labels = int_column(scores, "label", "scores", fix)
    hard = check_mask(hard_mask, hardness.shape[0])
    edges = np.linspace(0.0, max(1.0, float(hardness.max()) if hardness.size else 1.0), bins + 1)
    classes = np.unique(labels)
    hard_counts = np.array([(hard & (labels == c)).sum() for c in classes])
    order = classes[np.lexsort((classes, -hard_counts))]
    shown, rest = order[:top_n], order[top_n:]
    with style():
        fig = figure(10, 4.5)
        ax = fig.add_subplot()
        ax.hist(hardness, bins=edges, color="0.85", label=f"all ({hardness.size})")
        for c in shown:
            m = labels == c
            ax.hist(hardness[m], bins=edges, histtype="step", linewidth=1.4,
                    label=f"{short(_name(label_names, int(c)))} ({int(hard[m].sum())} hard)")
        if rest.size:
            m = np.isin(labels, rest)
            ax.hist(hardness[m], bins=edges, histtype="step", linestyle="--", color="0.3",
                    label=f"other {rest.size} classes ({int(hard[m].sum())} hard)")
        thr = float(hardness[hard].min()) if hard.any() else None
        if thr is not None and not (hardness[~hard] > thr).any():  # no row outside the hard set is harder
            ax.axvline(thr, color="crimson", linestyle=":", label=f"hard set: hardness ≥ {thr:.2f}")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("hardness = 1 − p(given label)")
        ax.set_ylabel("samples")
        ax.set_title(f"Hardness by class ({int(hard.sum())} hard of {hardness.size})")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return _save(fig, path)


def hard_per_class(per_class_table: pa.Table, path, *, top_n: int = 30) -> str:
    """Horizontal bars of hard samples per class (label issues overlaid), most first; the rest summed in the title.

    ``per_class_table`` is ``analyze(...)['per_class']``: the hard set is the one the analysis was given.
    """
    check_int("top_n", top_n, 1)
    need = {"class", "n_hard"}
    if not need <= set(per_class_table.column_names):
        raise ValueError(
            f"per_class_table needs columns {sorted(need)} (got {per_class_table.column_names}); "
            "pass analyze(...)['per_class']"
        )
    cols = per_class_table.column_names
    cls = per_class_table.column("class").to_numpy().astype(int)
    n_hard = per_class_table.column("n_hard").to_numpy().astype(float)
    n_issue = per_class_table.column("n_issue").to_numpy().astype(float) if "n_issue" in cols else None
    n_all = per_class_table.column("n").to_numpy().astype(float) if "n" in cols else None
    names = per_class_table.column("name").to_pylist() if "name" in cols else [str(c) for c in cls]
    order = np.lexsort((cls, -n_hard))
    shown, rest = order[:top_n], order[top_n:]
    labels = [short(str(names[i])) if _drawable(str(names[i])) else f"#{cls[i]}" for i in shown]
    hard_v = n_hard[shown]
    issue_v = n_issue[shown] if n_issue is not None else None
    all_v = n_all[shown] if n_all is not None else None
    title = "Hard samples per class"
    if rest.size:  # a folded bar would dwarf the others: say it in the title instead
        title += f" (top {shown.size}; other {rest.size} classes: {int(n_hard[rest].sum())} hard)"
    y = np.arange(len(labels))
    with style():
        fig = figure(8, max(2.5, 0.28 * len(labels) + 1.2))
        ax = fig.add_subplot()
        ax.barh(y, hard_v, color="tab:orange", label="hard")
        if issue_v is not None:
            ax.barh(y, issue_v, height=0.4, color="tab:red", label="label issues")
        if all_v is not None:
            for yi, h, a in zip(y, hard_v, all_v):
                if a:
                    ax.text(h, yi, f" {h / a:.0%} of {int(a)}", va="center", fontsize=7)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlabel("samples")
        ax.set_title(title)
        ax.legend(fontsize=7, loc="lower right")
        return _save(fig, path)


def _confusion_matrix(data: pa.Table, k: int, hard_mask: np.ndarray | None) -> np.ndarray:
    cols = set(data.column_names)
    if {"label", "pred", "count"} <= cols:  # confusion pairs table
        lab = int_column(data, "label", "confusion_pairs", "")
        pred = int_column(data, "pred", "confusion_pairs", "")
        cnt = int_column(data, "count", "confusion_pairs", "")
        w = cnt
    elif {"label", "pred"} <= cols:  # scores table
        if hard_mask is None:
            raise ValueError("confusion_heatmap of a scores table needs hard_mask: pass hard_mask(selected, scores)")
        hard = check_mask(hard_mask, data.num_rows)
        lab = int_column(data, "label", "scores", "")[hard]
        pred = int_column(data, "pred", "scores", "")[hard]
        w = np.ones(lab.size, dtype=np.int64)
    else:
        raise ValueError(
            "confusion_heatmap needs a confusion pairs table (label, pred, count) or a scores table "
            f"(label, pred) with hard_mask; got columns {sorted(cols)}"
        )
    bad = np.flatnonzero((lab < 0) | (lab >= k) | (pred < 0) | (pred >= k))
    if bad.size:
        raise ValueError(f"label/pred outside 0..{k - 1} in rows {bad[:5].tolist()}; pass the full label_names")
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (lab, pred), w)
    return m


def confusion_heatmap(
    data: pa.Table,
    label_names: list[str],
    path,
    *,
    top_n: int = 15,
    hard_mask: np.ndarray | None = None,
) -> str:
    """Heat-map of given (rows) vs predicted (columns) among hard samples, top classes + "other".

    ``data`` is ``analyze(...)['confusion_pairs']`` (off-diagonal pairs) or a scores table with
    ``hard_mask``, the selection's hard set aligned with it (every hard sample, diagonal included).
    """
    check_int("top_n", top_n, 1)
    k = len(label_names)
    if k == 0:
        raise ValueError("label_names is empty: pass the label vocabulary")
    m = _confusion_matrix(data, k, hard_mask)
    off = m - np.diag(np.diag(m))
    weight = m.sum(axis=0) + m.sum(axis=1)
    confusion = off.sum(axis=0) + off.sum(axis=1)
    order = np.lexsort((np.arange(k), -weight, -confusion))  # most confused classes first
    keep = np.sort(order[:top_n][weight[order[:top_n]] > 0]) if weight.any() else np.arange(min(k, top_n))
    rest = np.setdiff1d(np.arange(k), keep)
    names = [short(_name(label_names, int(c)), 18) for c in keep]
    if rest.size and weight[rest].any():
        groups = [[int(c)] for c in keep] + [list(rest)]
        names.append(f"other ({rest.size})")
    else:
        groups = [[int(c)] for c in keep]
    g = len(groups)
    sub = np.array([[m[np.ix_(a, b)].sum() for b in groups] for a in groups], dtype=np.int64)
    with style():
        size = max(4.0, 0.45 * g + 2.5)
        fig = figure(size + 1, size)
        ax = fig.add_subplot()
        folded = len(groups) > len(keep)
        scale = sub.copy()
        if folded:  # the other x other cell would flatten the colour scale
            scale[-1, -1] = 0
        im = ax.imshow(sub, cmap="Oranges", aspect="auto", vmin=0, vmax=max(1, int(scale.max())))
        fig.colorbar(im, ax=ax, shrink=0.8, label="hard samples")
        ax.set_xticks(np.arange(g), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(np.arange(g), names, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("given label")
        ax.set_title(f"Given vs predicted among hard samples (n={int(sub.sum())})")
        if g <= 20:
            hi = scale.max() if scale.size else 0
            for i in range(g):
                for j in range(g):
                    if sub[i, j]:
                        ax.text(j, i, str(sub[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if sub[i, j] > 0.6 * hi else "black")
        return _save(fig, path)


# --------------------------------------------------------------------------- data map (dataset cartography)

#: most points drawn by :func:`data_map`; larger tables are subsampled deterministically (by a hash of the id)
DATA_MAP_MAX_POINTS = 20_000
#: marker of each data-map region (see :data:`hardmine.vocab.REGIONS`); rows without a region: "o"
REGION_MARKERS = {"easy": "o", "ambiguous": "^", "hard": "s"}
_NO_DYNAMICS = (
    "no training dynamics: oof.epochs >= 2 is needed for the data map (dyn_confidence / dyn_variability / "
    "dyn_correctness are null in every row: the OOF stage recorded no per-epoch probabilities, e.g. an "
    "external backbone); re-run the oof and score stages with oof.epochs >= 2"
)


def data_map_inputs(scores: pa.Table, regions, max_points: int) -> dict:
    """Validated arrays for the data map, subsampled to ``max_points`` rows (lowest id hashes, order-independent)."""
    check_int("max_points", max_points, 1)
    if not isinstance(scores, pa.Table):
        raise ValueError(f"scores must be a pyarrow Table (scores.parquet), got {type(scores).__name__}")
    dyn = dynamics(scores)
    if dyn is None or "dyn_correctness" not in scores.column_names:
        raise ValueError(f"scores have {_NO_DYNAMICS}")
    conf, var = dyn
    corr = float_column(scores, "dyn_correctness", "scores", "recompute the scores (hardmine.scoring.score_table with epoch_probs)")
    n = conf.shape[0]
    reg = None
    if regions is not None:
        reg = np.asarray([None if r is None else str(r) for r in list(regions)], dtype=object)
        if reg.shape != (n,):
            raise ValueError(f"regions has {reg.shape[0]} entries for {n} scores rows: pass selected.parquet's region, same order")
        bad = sorted({r for r in reg.tolist() if r is not None and r not in REGIONS})
        if bad:
            raise ValueError(f"regions must be one of {REGIONS} (or None), got {bad[:5]}")
        if all(r is None for r in reg.tolist()):
            reg = None
    # region boundaries from all rows, before subsampling
    lines = {}
    if reg is not None:
        amb, hard = reg == "ambiguous", reg == "hard"
        lines["ambiguous_min_variability"] = float(var[amb].min()) if amb.any() else None
        lines["hard_max_confidence"] = float(conf[hard].max()) if hard.any() else None
    idx = np.arange(n)
    if n > max_points:
        idx = np.sort(np.argsort(tiebreak_keys(score_ids(scores).tolist()), kind="stable")[:max_points])
    return {"conf": conf[idx], "var": var[idx], "corr": corr[idx], "region": None if reg is None else reg[idx],
            "n": n, "shown": idx.size, **lines}


def _draw_data_map(fig, ax, d: dict, label_names=None) -> None:
    """Draw the data map of :func:`data_map_inputs` onto ``ax`` (colour bar on ``fig``)."""
    import matplotlib
    from matplotlib.lines import Line2D

    cmap = matplotlib.colormaps["RdYlBu"]
    size = 14 if d["shown"] <= 2_000 else 5 if d["shown"] <= 10_000 else 2
    kw = {"c": None, "cmap": cmap, "vmin": 0.0, "vmax": 1.0, "s": size, "alpha": 0.75, "linewidths": 0.2, "edgecolors": "0.3"}
    sc = None
    if d["region"] is None:
        sc = ax.scatter(d["var"], d["conf"], **{**kw, "c": d["corr"]})
    else:
        handles = []
        for name, marker in REGION_MARKERS.items():
            m = d["region"] == name
            if name == "easy":
                m = m | np.array([r is None for r in d["region"].tolist()], dtype=bool)
            if not m.any():
                continue
            sc = ax.scatter(d["var"][m], d["conf"][m], marker=marker, **{**kw, "c": d["corr"][m]})
            handles.append(Line2D([], [], linestyle="", marker=marker, color="0.45", label=f"{name} ({int(m.sum()):,})"))
        if d.get("ambiguous_min_variability") is not None:
            ax.axvline(d["ambiguous_min_variability"], color="0.25", linestyle="--", linewidth=0.8)
            handles.append(Line2D([], [], color="0.25", linestyle="--", linewidth=0.8,
                                  label=f"ambiguous: variability ≥ {d['ambiguous_min_variability']:.3f}"))
        if d.get("hard_max_confidence") is not None:
            ax.axhline(d["hard_max_confidence"], color="0.25", linestyle=":", linewidth=0.8)
            handles.append(Line2D([], [], color="0.25", linestyle=":", linewidth=0.8,
                                  label=f"hard: confidence ≤ {d['hard_max_confidence']:.3f}, not ambiguous"))
        fig.legend(handles=handles, fontsize=7, loc="outside right upper", frameon=False, title="region", title_fontsize=7)
    fig.colorbar(sc, ax=ax, shrink=0.85, label="correctness (share of epochs predicting the label)")
    ax.set_xlabel("variability (std of p(given label) over epochs)")
    ax.set_ylabel("confidence (mean p(given label) over epochs)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0.0, right=max(0.05, float(d["var"].max()) * 1.05 if d["var"].size else 0.05))
    title = f"Data map: {d['n']:,} rows"
    if label_names is not None:
        title += f", {len(label_names)} classes"
    if d["shown"] < d["n"]:
        title += f" ({d['shown']:,} shown, subsampled by id hash)"
    if d["var"].size and not (d["var"] > 0).any():
        title += "\nvariability is 0 everywhere (one epoch): no ambiguous region"
    ax.set_title(title)


def _data_map_figure(scores: pa.Table, regions, max_points: int, label_names):
    """The data map of ``scores`` on a new figure (call inside :func:`style`)."""
    d = data_map_inputs(scores, regions, max_points)
    fig = figure(8.5, 5.5)
    _draw_data_map(fig, fig.add_subplot(), d, label_names)
    return fig


def data_map(
    scores: pa.Table,
    path,
    *,
    label_names: list[str] | None = None,
    regions=None,
    max_points: int = DATA_MAP_MAX_POINTS,
) -> str:
    """The dataset-cartography plot (Swayamdipta et al., 2020) of a scores table, written as a PNG.

    x = ``dyn_variability``, y = ``dyn_confidence``, one point per row coloured by
    ``dyn_correctness``. ``regions`` (a sequence aligned with the scores rows, e.g.
    selected.parquet's ``region``) sets each point's marker (:data:`REGION_MARKERS`) and draws the
    region boundaries. Above ``max_points`` rows a deterministic subsample (the rows with the
    lowest id hashes) is drawn. ``label_names`` only names the class count in the title.
    Scores without training dynamics (dyn_* null in every row) raise ``ValueError``.
    """
    with style():
        return _save(_data_map_figure(scores, regions, max_points, label_names), path)


def data_map_png(scores: pa.Table, regions=None, *, label_names: list[str] | None = None,
                 max_points: int = DATA_MAP_MAX_POINTS) -> bytes:
    """:func:`data_map` as PNG bytes (in memory, for the report)."""
    with style():
        return png_bytes(_data_map_figure(scores, regions, max_points, label_names))
