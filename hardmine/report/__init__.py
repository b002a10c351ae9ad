"""One self-contained HTML page per run: ``hardmine report RUN_DIR`` -> ``<run_dir>/report.html``.

The page reads whatever the stages have written so far (manifest, Parquet, JSON, PNG) and
renders one section per step; a section whose artifacts are absent says "not run yet" and
which stage writes them. Images are embedded as base64 data URIs, CSS is inline, there is
no JavaScript and no external asset, so the file can be mailed or opened offline. Every piece
of user data (texts, class names, ids, error messages) is HTML-escaped. The JSON summaries
(evaluation/summary.json, sweep/best.json, label_quality.json) are read through their contracts
in :mod:`hardmine.summaries`; a file that does not match is reported in its section. The score
stage's signals (outliers, duplicates, the dual model's error_risk) and the data map say
"not computed" where their columns are null.

Modules:

- :mod:`~hardmine.report.page`: the page (section order, head, :func:`build_report`, :func:`write_report`);
- :mod:`~hardmine.report.sections`: one renderer per section, grouped by pipeline stage;
- :mod:`~hardmine.report.run`: :class:`RunArtifacts`, the read-only view of the run directory;
- :mod:`~hardmine.report.tables`: pure helpers, tables in and rows/counts out (:func:`augmentation_funnel`,
  :func:`label_issue_rows`, :func:`arm_rows`, :func:`sweep_grid`, :func:`sweep_cell_labels`);
- :mod:`~hardmine.report.figures`: the PNGs drawn in memory (:func:`arm_errorbar_png`, :func:`sweep_heatmap_png`);
- :mod:`~hardmine.report.html` and :mod:`~hardmine.report.columns`: HTML building blocks and column readers.
"""
from __future__ import annotations

from hardmine.report.figures import arm_errorbar_png, sweep_heatmap_png
from hardmine.report.page import SECTIONS, build_report, write_report
from hardmine.report.run import NOT_RUN, RunArtifacts
from hardmine.report.sections.signals import NOT_COMPUTED
from hardmine.report.tables import arm_rows, augmentation_funnel, label_issue_rows, sweep_cell_labels, sweep_grid
from hardmine.summaries import read_evaluation_summary, read_label_quality  # the JSON contracts the report reads

__all__ = [
    "NOT_COMPUTED",
    "NOT_RUN",
    "SECTIONS",
    "RunArtifacts",
    "arm_errorbar_png",
    "arm_rows",
    "augmentation_funnel",
    "build_report",
    "label_issue_rows",
    "read_evaluation_summary",
    "read_label_quality",
    "sweep_cell_labels",
    "sweep_grid",
    "sweep_heatmap_png",
    "write_report",
]
