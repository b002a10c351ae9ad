"""Sections of the run's start: the run overview (stages and their state), the dataset, the out-of-fold models."""
from __future__ import annotations

import time
from typing import Any

from hardmine.pipeline.stages import STAGES
from hardmine.report.html import SKIP, Html, h3, kv, para, pct, table, text, trunc
from hardmine.report.run import NOT_RUN, RunArtifacts

#: the pipeline's stages in the order they run (others, e.g. from a newer version, follow sorted)
STAGE_ORDER = tuple(stage.name for stage in STAGES)


def overview(run: RunArtifacts, **_) -> str:
    m = run.manifest
    parts = [
        kv(
            [
                ("run", m.get("name") or run.store.uri),
                ("directory", run.store.uri),
                ("config hash", m.get("config_hash")),
                ("classes", len(run.labels) if run.labels else None),
                ("versions", ", ".join(f"{k} {v}" for k, v in sorted((m.get("versions") or {}).items())) or None),
            ]
        )
    ]
    names = [s for s in STAGE_ORDER if s in run.stages] + sorted(s for s in run.stages if s not in STAGE_ORDER)
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
                trunc(rec.get("error"), 300),
            ]
        )
    parts.append(table(["stage", "status", "seconds", "updated (UTC)", "rows written", "error"], rows))
    if not rows:
        parts.append(Html(f"<p class=missing><b>{NOT_RUN}</b>: no stage has run in this directory.</p>"))
    return "".join(parts)


def dataset(run: RunArtifacts, max_classes: int = 60, **_) -> str:
    s = run.summary("prepare")
    if s is None:
        return run.missing("the prepare stage's summary (dataset.parquet)", "prepare")
    parts = [
        kv(
            [
                ("training rows", s.get("rows")),
                ("held-out rows", s.get("test_rows")),
                ("classes", s.get("classes")),
                ("rows dropped (empty text)", s.get("dropped_empty")),
                ("training rows with injected truth", s.get("truth_rows") if s.get("truth_rows") is not None else SKIP),
                ("held-out rows with injected truth (read by evaluate only)",
                 s.get("test_truth_rows") if s.get("test_truth_rows") is not None else SKIP),
            ]
        )
    ]
    counts = s.get("class_counts") or {}
    if isinstance(counts, dict) and counts:
        total = sum(v for v in counts.values() if isinstance(v, (int, float))) or 1
        items = sorted(counts.items(), key=lambda item: (-(item[1] or 0), str(item[0])))
        rows = [[text(k, 80), v, pct(v / total)] for k, v in items[:max_classes]]
        parts.append(table(["class", "rows", "share"], rows, more=len(items) - max_classes,
                           caption="training rows per class (most first)"))
    return "".join(parts)


def _clock(t: Any) -> Any:
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return time.strftime("%H:%M:%S", time.gmtime(t))
    return t


def oof(run: RunArtifacts, **_) -> str:
    s = run.summary("oof")
    if s is None:
        return run.missing("the oof stage's summary (oof.parquet)", "oof")
    folds = [f for f in (s.get("folds") or []) if isinstance(f, dict)]
    cal = s.get("calibration") or {}
    parts = [
        kv(
            [
                ("out-of-fold accuracy (all folds)", s.get("accuracy")),
                ("out-of-fold log-loss", s.get("log_loss") if s.get("log_loss") is not None else SKIP),
                ("expected calibration error (15 bins)", s.get("ece") if s.get("ece") is not None else SKIP),
                ("ensemble members", " + ".join(s.get("backbones") or []) or SKIP),
                ("combination", s.get("combine") or SKIP),
                ("calibration", (f"temperature {cal['temperature']:.3f}, cross-fitted over folds: ECE {cal['ece_before']:.4f} -> "
                                 f"{cal['ece_after']:.4f}") if cal.get("method") == "temperature" else (cal.get("method") or SKIP)),
                ("max_length (tokens)", s.get("max_length") if s.get("max_length") is not None else SKIP),
                ("texts longer than max_length", pct((s.get("max_length_info") or {}).get("truncated_share"))
                 if (s.get("max_length_info") or {}).get("truncated_share") is not None else SKIP),
                ("runner", s.get("runner")),
                ("folds", len(folds) or None),
                ("embedding seconds", s.get("embed_seconds") if s.get("embed_seconds") is not None else SKIP),
                ("training seconds", s.get("train_seconds") if s.get("train_seconds") is not None else SKIP),
            ]
        )
    ]
    members = s.get("members") or {}
    if isinstance(members, dict) and members:
        mrows = [[name, m.get("weight"), m.get("accuracy"), m.get("log_loss"), m.get("ece"), m.get("seconds")]
                 for name, m in members.items() if isinstance(m, dict)]
        parts.append(table(["member", "weight", "accuracy", "log-loss", "ECE", "seconds"], mrows,
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
    parts.append(table(["fold", "rows", "accuracy", "started (UTC)", "finished (UTC)", "seconds", "resumed after epoch"], rows))
    if len(spans) > 1:
        wall = max(b for _, b in spans) - min(a for a, _ in spans)
        busy = sum(b - a for a, b in spans)
        if wall > 0:
            parts.append(para(f"The folds took {busy:.1f} s summed in {wall:.1f} s of wall time "
                              f"(on average {busy / wall:.2f} folds running at once).", "muted"))
    parts.append(h3("Held-out accuracy of the fold ensemble"))
    h = run.summary("holdout")
    prep = run.summary("prepare") or {}
    if h is not None and h.get("test_accuracy_fold_ensemble") is not None:
        parts.append(kv([("accuracy of the averaged fold models on the held-out split", h["test_accuracy_fold_ensemble"]),
                         ("held-out rows", h.get("rows"))]))
    elif (h is not None and not h) or (prep and not prep.get("test_rows")):
        parts.append(para("No held-out split in this run (set data.test_path or data.test_size).", "muted"))
    else:
        parts.append(run.missing("the holdout stage's summary (test_probs.parquet)", "holdout"))
    return "".join(parts)

