"""The run's dataset versions: which one a run trains on, reading and writing them, the audit logs that
grow with each review import or pseudo-label round, and the review history (rounds, rows, labels
changed, held-out accuracy per version) the report shows.

Version 0 is the data as read from ``data.path``; every review import that changes labels and
every ``hardmine pseudo-label`` round adds one (``review/versions/v<N>.parquet``).
"""
from __future__ import annotations

import os
from typing import Any, Callable

import pyarrow as pa

from hardmine.config import Config
from hardmine.data import DataError
from hardmine.review.schemas import AUDIT_FILE, PSEUDO_AUDIT, REVIEWED, VERSIONS
from hardmine.store import RunStore


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


def grouped_rows(store: RunStore, name: str, key: Callable[[dict], Any]) -> list[tuple[Any, list[dict]]]:
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
        for _, rs in grouped_rows(store, REVIEWED, lambda r: int(r["round"])):
            rows.append({"kind": "review", "version": int(rs[0]["version"]), "rows": len(rs), "changed": sum(bool(r["changed"]) for r in rs),
                         "source": rs[0]["source"], "time": rs[0]["time"]})
    elif store.exists(AUDIT_FILE):  # imports from before review/reviewed.parquet: changed rows only
        for v, ((stamp, src), rs) in enumerate(grouped_rows(store, AUDIT_FILE, lambda r: (r["time"], r["source"])), start=1):
            rows.append({"kind": "review", "version": v, "rows": len(rs), "changed": len(rs), "source": src, "time": stamp})
    if store.exists(PSEUDO_AUDIT):
        for v, rs in grouped_rows(store, PSEUDO_AUDIT, lambda r: int(r["version"])):
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
