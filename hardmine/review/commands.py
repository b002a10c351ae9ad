"""`hardmine review export | import | next` against a run directory: the label-issue and active-learning
queues out, the corrections back in as a new dataset version (:mod:`hardmine.review.versions`)."""
from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from hardmine.config import Config
from hardmine.data import DataError
from hardmine.probs import probs_from_arrow
from hardmine.review import (
    active_learning_queue,
    apply_corrections,
    label_issue_queue,
    read_corrections,
    write_csv,
    write_label_studio,
)
from hardmine.review.pseudo import read_pool
from hardmine.review.schemas import AUDIT_FILE, REVIEWED, REVIEWED_SCHEMA, utc_iso
from hardmine.review.versions import (
    append_rows,
    current_dataset,
    newest_version,
    prepared_version,
    record_version_metrics,
    reviewed_ids,
    run_labels,
    write_version,
)
from hardmine.store import RunStore, RunStoreError


@contextmanager
def command_errors(store: RunStore, command: str) -> Iterator[None]:
    """Hold the run directory's lock while ``command`` runs (it never races a running pipeline or another
    import); a missing file is bad input at the command line (:class:`~hardmine.data.DataError`)."""
    try:
        with store.lock(command=command):
            yield
    except (DataError, RunStoreError):
        raise
    except FileNotFoundError as e:
        raise DataError(str(e).strip('"') or f"a file is missing: {e}") from None


def user_errors(fn):
    """A `hardmine review` command (``cfg`` is the first argument) under :func:`command_errors`; the review library
    refuses bad files and queues with ValueError naming the file, row and fix: at the command line, that is bad input.
    """
    @functools.wraps(fn)
    def wrapper(cfg, *args, **kwargs):
        try:
            with command_errors(RunStore(cfg.run_dir), f"hardmine review {fn.__name__}"):
                return fn(cfg, *args, **kwargs)
        except (DataError, RunStoreError):
            raise
        except ValueError as e:
            raise DataError(str(e)) from None
    return wrapper


def write_queue(store: RunStore, name: str, queue: pa.Table, labels: list[str], fmt: str) -> list[str]:
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
           exclude_reviewed: bool = False, name: str | None = None, log=print) -> list[str]:
    """Write a review queue under review/<name>/ and return the file URIs.

    ``queue="issues"``: cleanlab's label issues by ``issue_rank`` (``limit`` keeps the top N),
    or with ``budget=N`` the N rows with the lowest ``label_quality``, flagged or not
    (:func:`hardmine.review.label_issue_queue`); conflicting duplicates and outliers join the
    flagged queue. ``rank_by`` (default ``score.review_rank_by``): ``label_quality`` or
    ``error_risk``. ``queue="active"``: active learning. ``exclude_reviewed``: leave out the rows
    a reviewer has already labelled (:func:`reviewed_ids`); ``name``: the queue's folder under review/.
    """
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise DataError(f"--budget {budget}: the review budget must be a whole number of rows >= 1")
        if queue != "issues":
            raise DataError("--budget applies to the label-issue queue (--queue issues); use --batch-size for --queue active")
        if limit is not None:
            raise DataError("pass --budget or --limit, not both: --budget already sets the queue length")
    store = RunStore(cfg.run_dir)
    labels = run_labels(store, cfg)
    dataset, _ = current_dataset(store)
    if queue == "issues":
        scores = store.read_table("scores.parquet")
        if exclude_reviewed:
            done = reviewed_ids(store)
            keep = pc.invert(pc.is_in(scores.column("id"), value_set=pa.array(sorted(done), pa.string())))
            n_before, scores = scores.num_rows, scores.filter(keep)
            log(f"{n_before - scores.num_rows} rows already reviewed are left out of the queue ({scores.num_rows} left)")
        if budget is not None and budget > scores.num_rows:
            log(f"note: --budget {budget} exceeds the {scores.num_rows} scored rows: the queue holds all of them")
        q = label_issue_queue(scores, dataset, labels, limit=limit, budget=budget, rank_by=rank_by or cfg.score.review_rank_by)
        default_name = "label_issues"
    elif unlabelled:
        from hardmine.oof.predict import FoldEnsemble

        ids, texts = read_pool(unlabelled, cfg.data)
        probs = FoldEnsemble(cfg.run_dir).predict(texts)
        q = active_learning_queue(ids, texts, probs, labels, strategy=strategy, batch_size=batch_size)
        default_name = f"active_{strategy}_unlabelled"
    else:
        oof = store.read_table("oof.parquet")
        pos = {i: n for n, i in enumerate(dataset.column("id").to_pylist())}
        ids = oof.column("id").to_pylist()
        rows = [pos[i] for i in ids]
        q = active_learning_queue(
            ids, dataset.column("text").take(rows).to_pylist(), probs_from_arrow(oof.column("probs")), labels,
            strategy=strategy, batch_size=batch_size, labels=dataset.column("label").to_numpy()[rows],
        )
        default_name = f"active_{strategy}"
    name = name or default_name
    files = write_queue(store, name, q, labels, fmt)
    if queue == "issues" and budget is not None:
        n_flagged = int(pc.sum(q.column("flagged")).as_py() or 0)
        order = "highest error_risk" if (rank_by or cfg.score.review_rank_by) == "error_risk" else "lowest label_quality"
        log(f"review budget {budget}: {q.num_rows} rows by {order}, {n_flagged} of them flagged by cleanlab")
    log(f"exported {q.num_rows} rows to review ({name}):")
    for f in files:
        log(f"  {f}")
    return files


def _record_reviewed(store: RunStore, corrections: pa.Table, dataset: pa.Table, labels: list[str], audit: pa.Table,
                     version: int, source: str) -> int:
    """Append the rows this import gave a label (changed or confirmed) to review/reviewed.parquet, as one review round.

    Rows already recorded with the same label are not repeated, so importing a file again adds nothing.
    """
    known, names = set(dataset.column("id").to_pylist()), set(labels)
    old = store.read_table(REVIEWED) if store.exists(REVIEWED) else None
    have = set(zip(old.column("id").to_pylist(), old.column("label").to_pylist())) if old is not None else set()
    changed = set(audit.column("id").to_pylist())
    rows, seen = [], set()
    for i, lab in zip(corrections.column("id").to_pylist(), corrections.column("new_label_name").to_pylist()):
        i, lab = str(i), ("" if lab is None else str(lab).strip())
        if not lab or i in seen or i not in known or lab not in names or (i, lab) in have:
            continue
        seen.add(i)
        rows.append((i, lab, i in changed))
    if not rows:
        return 0
    rnd = (max(old.column("round").to_pylist()) if old is not None and old.num_rows else 0) + 1
    stamp = utc_iso(None)
    new = pa.table({
        "id": [r[0] for r in rows], "label": [r[1] for r in rows], "changed": [r[2] for r in rows],
        "round": pa.array([rnd] * len(rows), pa.int32()), "version": pa.array([version] * len(rows), pa.int32()),
        "source": [source] * len(rows), "time": [stamp] * len(rows),
    }, schema=REVIEWED_SCHEMA)
    append_rows(store, REVIEWED, new)
    return len(rows)


@user_errors
def import_corrections(cfg: Config, path: str, *, source: str | None = None, strict: bool = True, log=print) -> dict:
    """Apply a corrected CSV / Label Studio export: new dataset version + audit rows (idempotent)."""
    store = RunStore(cfg.run_dir)
    labels = run_labels(store, cfg)
    dataset, version = current_dataset(store)
    corrections = read_corrections(path)
    new, audit, report = apply_corrections(dataset, corrections, labels, source_name=source or os.path.basename(path), strict=strict)
    for key in ("unknown_ids", "unknown_labels"):
        if report.get(key):
            log(f"warning: {len(report[key])} {key.replace('_', ' ')} left out: {report[key][:10]}")
    if report["changed"] == 0:
        _record_reviewed(store, corrections, dataset, labels, audit, version, source or os.path.basename(path))
        log(f"no label changed: dataset stays at version {version}")
        return {**report, "version": version}
    version += 1
    uri = write_version(store, version, new)
    append_rows(store, AUDIT_FILE, audit)
    _record_reviewed(store, corrections, dataset, labels, audit, version, source or os.path.basename(path))
    store.update_manifest(dataset_version=version)
    log(
        f"{report['changed']} labels changed -> dataset version {version}: {uri} (the next `hardmine run` trains on it; "
        f"`hardmine review next` retrains and exports the next batch); audit: {store.uri_of(AUDIT_FILE)}"
    )
    return {**report, "version": version}


def next_batch(cfg: Config, *, fmt: str = "both", limit: int | None = None, budget: int | None = None,
               rank_by: str | None = None, log=print) -> list[str]:
    """`hardmine review next`: retrain on the newest dataset version (the pipeline up to the score stage, resuming
    what the changed labels did not invalidate), then export the label-issue queue without the rows already reviewed.

    The queue goes to review/label_issues_v<N>/ (N = the version it was scored on).
    """
    from hardmine.pipeline import run_all
    from hardmine.preflight import preflight

    store = RunStore(cfg.run_dir)
    newest = newest_version(store)
    if cfg.data.version is not None and int(cfg.data.version) != newest:
        raise DataError(f"review next scores the newest dataset version ({newest}), but data.version is {cfg.data.version}: "
                        "remove data.version (or set it to the newest) to review the next batch")
    preflight(cfg)
    with store.lock(command="hardmine review next"):
        run_all(cfg, log=log, until="score")
        record_version_metrics(store)
        version = prepared_version(store)
        done = reviewed_ids(store)
        log(f"review next: scored on dataset version {version}; {len(done)} rows reviewed so far")
        return export(cfg, queue="issues", fmt=fmt, limit=limit, budget=budget, rank_by=rank_by, exclude_reviewed=True,
                      name=f"label_issues_v{version}", log=log)
