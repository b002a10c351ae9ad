"""The page: every section in order, the head and navigation, written as ``<run_dir>/report.html``."""
from __future__ import annotations

import time
from html import escape
from typing import Any, Callable

from hardmine.report.html import CSS
from hardmine.report.run import RunArtifacts
from hardmine.report.sections import augmentation, evaluation, hard, overview, signals
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
    ("data-map", "Data map"),
    ("outliers", "Outliers and duplicates"),
    ("dual-model", "Dual model"),
    ("augmentation", "Augmentation funnel"),
    ("arms", "Arm comparison"),
    ("review-history", "Review history"),
    ("sweep", "Threshold sweep"),
)
#: the renderer of each section
RENDER: dict[str, Callable[..., str]] = {
    "overview": overview.overview,
    "dataset": overview.dataset,
    "oof": overview.oof,
    "hardness": hard.hardness,
    "per-class": hard.per_class,
    "confusion": hard.confusion,
    "label-issues": hard.label_issues,
    "data-map": signals.data_map,
    "outliers": signals.outliers,
    "dual-model": signals.dual_model,
    "augmentation": augmentation.augmentation,
    "arms": evaluation.arms,
    "review-history": evaluation.review_history,
    "sweep": evaluation.sweep,
}


def build_report(store: RunStore, *, top_issues: int = 50, max_examples: int = 6, strict: bool = False) -> str:
    """The report of the run in ``store`` as one self-contained HTML string.

    A section whose artifacts are missing says "not run yet"; one whose artifacts cannot be
    rendered (e.g. a malformed file) shows the error in place and is listed at the top, or,
    with ``strict``, raises.
    """
    run = RunArtifacts(store)
    opts = {"top_issues": top_issues, "max_examples": max_examples}
    body, failed = [], []
    for anchor, title in SECTIONS:
        try:
            content = RENDER[anchor](run, **opts)
        except Exception as e:  # noqa: BLE001 - one bad artifact must not hide the rest of the report
            if strict:
                raise
            failed.append(title)
            content = (f"<p class=error>This section could not be rendered: "
                       f"{escape(type(e).__name__)}: {escape(str(e))}</p>")
        body.append(f'<section id="{anchor}"><h2>{escape(title)}</h2>{content}</section>')
    name = run.manifest.get("name") or store.uri.rstrip("/").rsplit("/", 1)[-1]
    from hardmine import __version__

    head = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>hardmine report: {escape(str(name))}</title><style>{CSS}</style></head><body>"
        f"<h1>hardmine report: {escape(str(name))}</h1>"
        f"<p class=muted>{escape(store.uri)} · generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} "
        f"by hardmine {escape(__version__)}</p>"
        "<nav>" + "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in SECTIONS) + "</nav>"
    )
    if failed:
        head += f"<p class=error>{len(failed)} section(s) could not be rendered: {escape(', '.join(failed))}.</p>"
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
