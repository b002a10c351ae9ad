"""Review queues against a run directory: export (label issues, active learning) and import corrections."""
from __future__ import annotations

import functools
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.config import Config
from hardmine.data import DataError, load_split
from hardmine.probs import probs_from_arrow
from hardmine.review import (
    active_learning_queue,
    apply_corrections,
    label_issue_queue,
    read_corrections,
    write_csv,
    write_label_studio,
)
from hardmine.store import RunStore

VERSIONS = "review/versions"


def user_errors(fn):
    """The review library refuses bad files and queues with ValueError: at the command line, that is bad input.

    The run directory is locked for the call (``cfg`` is the first argument): a review export or import
    never races a running pipeline or another import.
    """
    @functools.wraps(fn)
    def wrapper(cfg, *args, **kwargs):
        from hardmine.store import RunStoreError

        try:
            with RunStore(cfg.run_dir).lock(command=f"hardmine review {fn.__name__}"):
                return fn(cfg, *args, **kwargs)
        except (DataError, RunStoreError):
            raise
        except FileNotFoundError as e:
            raise DataError(str(e).strip('"') or f"a file is missing: {e}") from None
        except ValueError as e:  # hardmine.review's validation: names the file, row and fix
            raise DataError(str(e)) from None
    return wrapper


def _labels(store: RunStore, cfg: Config) -> list[str]:
    labels = store.manifest().get("labels")
    if not labels:
        raise DataError(f"{cfg.run_dir} has no prepared dataset (no labels in its manifest): run `hardmine run CONFIG` "
                        "(at least up to the score stage) first")
    return labels


def current_dataset(store: RunStore) -> tuple[pa.Table, int]:
    """The newest dataset version (0 = as read by the prepare stage)."""
    n = store.manifest().get("dataset_version", 0)
    return (store.read_table(f"{VERSIONS}/v{n}.parquet") if n else store.read_table("dataset.parquet")), n


def _write_queue(store: RunStore, name: str, queue: pa.Table, labels: list[str], fmt: str) -> list[str]:
    with store.local_dir(f"review/{name}") as d:
        if fmt in ("csv", "both"):
            write_csv(queue, os.path.join(d, f"{name}.csv"))
        if fmt in ("label-studio", "both"):
            write_label_studio(queue, labels, os.path.join(d, f"{name}.tasks.json"))
        files = sorted(os.listdir(d))
    return [store.uri_of(f"review/{name}/{f}") for f in files]


@user_errors
def export(cfg: Config, *, queue: str, fmt: str = "both", strategy: str = "least_confidence", batch_size: int = 100,
           unlabelled: str | None = None, limit: int | None = None, budget: int | None = None, rank_by: str | None = None,
           log=print) -> list[str]:
    """Write a review queue under review/<name>/ and return the file URIs.

    ``queue="issues"``: cleanlab's label issues by ``issue_rank`` (``limit`` keeps the top N),
    or with ``budget=N`` the N rows with the lowest ``label_quality``, flagged or not
    (:func:`hardmine.review.label_issue_queue`); conflicting duplicates and outliers join the
    flagged queue. ``rank_by`` (default ``score.review_rank_by``): ``label_quality`` or
    ``error_risk``. ``queue="active"``: active learning.
    """
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise DataError(f"--budget {budget}: the review budget must be a whole number of rows >= 1")
        if queue != "issues":
            raise DataError("--budget applies to the label-issue queue (--queue issues); use --batch-size for --queue active")
        if limit is not None:
            raise DataError("pass --budget or --limit, not both: --budget already sets the queue length")
    store = RunStore(cfg.run_dir)
    labels = _labels(store, cfg)
    dataset, _ = current_dataset(store)
    if queue == "issues":
        scores = store.read_table("scores.parquet")
        if budget is not None and budget > scores.num_rows:
            log(f"note: --budget {budget} exceeds the {scores.num_rows} scored rows: the queue holds all of them")
        try:
            q = label_issue_queue(scores, dataset, labels, limit=limit, budget=budget, rank_by=rank_by or cfg.score.review_rank_by)
        except ValueError as e:
            raise DataError(str(e)) from None
        name = "label_issues"
    elif unlabelled:
        from hardmine.oof.predict import FoldEnsemble

        df_cfg = cfg.data.model_copy(update={"label_column": cfg.data.label_column})
        from hardmine.data import read_raw

        raw = read_raw(unlabelled, df_cfg.format, df_cfg.encoding)
        if df_cfg.text_column not in raw.columns:
            raise DataError(f"{unlabelled}: no column {df_cfg.text_column!r} (has {list(raw.columns)}); set data.text_column")
        texts = raw[df_cfg.text_column].tolist()
        empty = [i for i, t in enumerate(texts) if not str(t).strip()]
        if empty:
            raise DataError(f"{unlabelled}: empty text at rows {empty[:10]}: remove them before export")
        ids = raw[df_cfg.id_column].tolist() if df_cfg.id_column and df_cfg.id_column in raw.columns else [f"u{i}" for i in range(len(texts))]
        probs = FoldEnsemble(cfg.run_dir).predict(texts)
        q = active_learning_queue(ids, texts, probs, labels, strategy=strategy, batch_size=batch_size)
        name = f"active_{strategy}_unlabelled"
    else:
        oof = store.read_table("oof.parquet")
        pos = {i: n for n, i in enumerate(dataset.column("id").to_pylist())}
        ids = oof.column("id").to_pylist()
        rows = [pos[i] for i in ids]
        q = active_learning_queue(
            ids, dataset.column("text").take(rows).to_pylist(), probs_from_arrow(oof.column("probs")), labels,
            strategy=strategy, batch_size=batch_size, labels=dataset.column("label").to_numpy()[rows],
        )
        name = f"active_{strategy}"
    files = _write_queue(store, name, q, labels, fmt)
    if queue == "issues" and budget is not None:
        n_flagged = int(pc.sum(q.column("flagged")).as_py() or 0)
        order = "highest error_risk" if (rank_by or cfg.score.review_rank_by) == "error_risk" else "lowest label_quality"
        log(f"review budget {budget}: {q.num_rows} rows by {order}, {n_flagged} of them flagged by cleanlab")
    log(f"exported {q.num_rows} rows to review ({name}):")
    for f in files:
        log(f"  {f}")
    return files


@user_errors
def import_corrections(cfg: Config, path: str, *, source: str | None = None, strict: bool = True, log=print) -> dict:
    """Apply a corrected CSV / Label Studio export: new dataset version + audit rows (idempotent)."""
    store = RunStore(cfg.run_dir)
    labels = _labels(store, cfg)
    dataset, version = current_dataset(store)
    corrections = read_corrections(path)
    try:
        new, audit, report = apply_corrections(dataset, corrections, labels, source_name=source or os.path.basename(path), strict=strict)
    except ValueError as e:
        raise DataError(str(e)) from None
    for key in ("unknown_ids", "unknown_labels"):
        if report.get(key):
            log(f"warning: {len(report[key])} {key.replace('_', ' ')} left out: {report[key][:10]}")
    if report["changed"] == 0:
        log(f"no label changed: dataset stays at version {version}")
        return {**report, "version": version}
    version += 1
    store.write_table(f"{VERSIONS}/v{version}.parquet", new)
    with store.local_dir(f"{VERSIONS}/v{version}") as d:
        import pyarrow.csv as pacsv

        pacsv.write_csv(new.select(["id", "text", "label_name"]).rename_columns(["id", "text", "label"]), os.path.join(d, "dataset.csv"))
    old_audit = store.read_table("review/audit.parquet") if store.exists("review/audit.parquet") else None
    store.write_table("review/audit.parquet", pa.concat_tables([old_audit, audit]) if old_audit is not None else audit)
    store.update_manifest(dataset_version=version)
    log(
        f"{report['changed']} labels changed -> dataset version {version}: {store.uri_of(f'{VERSIONS}/v{version}/dataset.csv')} "
        f"(point data.path at it for the next run); audit: {store.uri_of('review/audit.parquet')}"
    )
    return {**report, "version": version}
