"""Review queues against a run directory: export (label issues, active learning) and import corrections."""
from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from hardmine.config import Config
from hardmine.data import DataError
from hardmine.probs import probs_from_arrow
from hardmine.pseudo import read_pool
from hardmine.review import (
    active_learning_queue,
    apply_corrections,
    label_issue_queue,
    read_corrections,
    write_csv,
    write_label_studio,
)
from hardmine.review.schemas import AUDIT_FILE, PSEUDO_AUDIT, REVIEWED, REVIEWED_SCHEMA, VERSIONS, utc_iso
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


def run_labels(store: RunStore, cfg: Config) -> list[str]:
    labels = store.manifest().get("labels")
    if not labels:
        raise DataError(f"{cfg.run_dir} has no prepared dataset (no labels in its manifest): run `hardmine run CONFIG` "
                        "(at least up to the score stage) first")
    return labels


def current_dataset(store: RunStore) -> tuple[pa.Table, int]:
    """The newest dataset version (0 = as read by the prepare stage)."""
    n = store.manifest().get("dataset_version", 0)
    return (store.read_table(f"{VERSIONS}/v{n}.parquet") if n else store.read_table("dataset.parquet")), n


def newest_version(store: RunStore) -> int:
    return int(store.manifest().get("dataset_version") or 0)


def prepared_version(store: RunStore) -> int:
    """The dataset version the run's prepare stage trained on (0 = as read from data.path)."""
    rec = store.manifest().get("stages", {}).get("prepare") or {}
    return int((rec.get("summary") or {}).get("dataset_version") or 0)


def run_version(cfg: Config, store: RunStore) -> int:
    """The version ``hardmine run`` trains on: ``data.version``, else the newest (manifest ``dataset_version``)."""
    newest = newest_version(store)
    n = newest if cfg.data.version is None else int(cfg.data.version)
    if n > newest:
        raise DataError(
            f"data.version: {n}, but {cfg.run_dir} has dataset versions 0..{newest} (0 = as read from data.path; review "
            "imports and pseudo-label rounds add versions): set data.version to one of them, or remove it for the newest"
        )
    if n and not store.exists(f"{VERSIONS}/v{n}.parquet"):
        raise DataError(f"dataset version {n} ({store.uri_of(f'{VERSIONS}/v{n}.parquet')}) is missing: set data.version "
                        "to a version that exists (0 = as read from data.path)")
    return n


def version_table(store: RunStore, n: int) -> pa.Table:
    """Dataset version ``n`` (0 = as prepared from data.path, before any review)."""
    if n == prepared_version(store) and store.exists("dataset.parquet"):
        return store.read_table("dataset.parquet")
    name = f"{VERSIONS}/v{n}.parquet"
    if not store.exists(name):
        raise DataError(f"dataset version {n} ({store.uri_of(name)}) is missing: re-run `hardmine run CONFIG` with data.version: 0 "
                        "to prepare the data again")
    return store.read_table(name)


def write_version(store: RunStore, version: int, table: pa.Table) -> str:
    """``review/versions/v<version>.parquet`` (+ a CSV copy); the first version also keeps v0, the data as prepared."""
    if not store.exists(f"{VERSIONS}/v0.parquet") and prepared_version(store) == 0 and store.exists("dataset.parquet"):
        store.write_table(f"{VERSIONS}/v0.parquet", store.read_table("dataset.parquet"))
    store.write_table(f"{VERSIONS}/v{version}.parquet", table)
    with store.local_dir(f"{VERSIONS}/v{version}") as d:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table.select(["id", "text", "label_name"]).rename_columns(["id", "text", "label"]), os.path.join(d, "dataset.csv"))
    return store.uri_of(f"{VERSIONS}/v{version}/dataset.csv")


def reviewed_ids(store: RunStore) -> set[str]:
    """Ids a reviewer has labelled in an import (review/reviewed.parquet), and every id whose label an import changed."""
    out: set[str] = set()
    for name in (REVIEWED, AUDIT_FILE):
        if store.exists(name):
            out |= set(store.read_table(name, columns=["id"]).column("id").to_pylist())
    return out


def append_rows(store: RunStore, name: str, rows: pa.Table) -> None:
    """Add ``rows`` to the end of the run's table ``name`` (an audit log), creating it when missing."""
    store.write_table(name, pa.concat_tables([store.read_table(name), rows]) if store.exists(name) else rows)


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


def record_version_metrics(store: RunStore) -> dict | None:
    """Keep the held-out accuracy of the version the run is on (manifest ``version_metrics``), for the review history.

    ``fold_ensemble``: the holdout stage's fold models; ``baseline``: the evaluate stage's baseline
    arm (mean over seeds). Recorded only from stages that ran on that version.
    """
    m = store.manifest()
    stages = m.get("stages", {})
    prep = stages.get("prepare") or {}
    if prep.get("status") != "done":
        return None
    version = int((prep.get("summary") or {}).get("dataset_version") or 0)
    rec: dict = {}
    hold = stages.get("holdout") or {}
    if hold.get("status") == "done" and (hold.get("summary") or {}).get("test_accuracy_fold_ensemble") is not None:
        rec["fold_ensemble"] = float(hold["summary"]["test_accuracy_fold_ensemble"])
    ev = stages.get("evaluate") or {}
    base = (((ev.get("summary") or {}).get("arms") or {}).get("baseline") or {}).get("accuracy") if ev.get("status") == "done" else None
    if isinstance(base, dict) and base.get("mean") is not None:
        rec["baseline"] = float(base["mean"])
    if not rec:
        return None
    metrics = dict(m.get("version_metrics") or {})
    merged = {**(metrics.get(str(version)) or {}), **rec, "prepare_fingerprint": prep.get("fingerprint")}
    if metrics.get(str(version)) != merged:
        metrics[str(version)] = merged
        store.update_manifest(version_metrics=metrics)
    return merged


def _grouped(store: RunStore, name: str, key: Callable[[dict], Any]) -> list[tuple[Any, list[dict]]]:
    """The rows of the table ``name`` grouped by ``key(row)``, in key order."""
    groups: dict[Any, list[dict]] = {}
    for r in store.read_table(name).to_pylist():
        groups.setdefault(key(r), []).append(r)
    return sorted(groups.items())


def review_history(store: RunStore) -> list[dict]:
    """One row per review round and pseudo-label round, oldest first, after a row for version 0.

    Keys: ``round`` (0 = as prepared), ``kind`` (prepared / review / pseudo-label), ``version`` (the dataset
    version after the round), ``rows`` (rows reviewed, or pseudo-labelled rows added), ``changed`` (labels
    changed), ``source``, ``time``, ``fold_ensemble`` / ``baseline`` (held-out accuracy of a run on that
    version, when one was recorded).
    """
    m = store.manifest()
    metrics = m.get("version_metrics") or {}
    rows: list[dict] = []
    if store.exists(REVIEWED):
        for _, rs in _grouped(store, REVIEWED, lambda r: int(r["round"])):
            rows.append({"kind": "review", "version": int(rs[0]["version"]), "rows": len(rs), "changed": sum(bool(r["changed"]) for r in rs),
                         "source": rs[0]["source"], "time": rs[0]["time"]})
    elif store.exists(AUDIT_FILE):  # imports from before review/reviewed.parquet: changed rows only
        for v, ((stamp, src), rs) in enumerate(_grouped(store, AUDIT_FILE, lambda r: (r["time"], r["source"])), start=1):
            rows.append({"kind": "review", "version": v, "rows": len(rs), "changed": len(rs), "source": src, "time": stamp})
    if store.exists(PSEUDO_AUDIT):
        for v, rs in _grouped(store, PSEUDO_AUDIT, lambda r: int(r["version"])):
            rows.append({"kind": "pseudo-label", "version": v, "rows": len(rs), "changed": 0, "source": rs[0]["source"], "time": rs[0]["time"]})
    if not rows and not metrics:
        return []
    rows.sort(key=lambda r: (r["time"] or "", r["version"]))
    out = [{"round": 0, "kind": "prepared", "version": 0, "rows": None, "changed": None, "source": "data.path", "time": None}]
    for n, r in enumerate(rows, start=1):
        out.append({"round": n, **r})
    for r in out:
        rec = metrics.get(str(r["version"])) or {}
        r["fold_ensemble"], r["baseline"] = rec.get("fold_ensemble"), rec.get("baseline")
    return out
