"""The prepare stage: the data read and validated (or the demo set generated), the held-out split carved."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from hardmine.config import Config
from hardmine.data import DataError, check_folds, check_path
from hardmine.data.splits import (
    check_disjoint, class_counts, flipped_labels, held_out, read_run_truth, read_training, split_truth, truth_coverage)
from hardmine.data.versions import versioned_table
from hardmine.pipeline.run import Context, run_declared
from hardmine.preflight import check_known_tokens
from hardmine.review.pseudo import check_run_inputs, pseudo_ids
from hardmine.review.schemas import VERSIONS
from hardmine.review.versions import run_version
from hardmine.store import RunStore, fingerprint_bytes, fingerprint_path


def prepare(ctx: Context) -> dict[str, Any]:
    """Read + validate the data (or generate the demo set), carve the hold-out: dataset.parquet, test.parquet.

    With injected truth (the demo, ``data.truth_path``): truth.parquet for the training rows and
    test_truth.parquet for the held-out rows (only the evaluate stage reads it).
    """
    cfg, store = ctx.cfg, ctx.store
    d = cfg.data
    if d.demo is None:
        for key in ("path", "test_path", "truth_path"):  # before hashing them: a missing file is a DataError naming the key
            if getattr(d, key):
                check_path(getattr(d, key), f"data.{key}")
    version = run_version(cfg, store)
    check_run_inputs(cfg, store, ctx.log)  # the self_training / reviewed arms' inputs, before anything trains
    summary = run_declared(ctx, "prepare", lambda fp: _prepare(ctx, version))
    check_run_inputs(cfg, store, ctx.log, after_prepare=True)  # the pool against the prepared training and held-out ids
    return summary


def fingerprint_parts(ctx: Context) -> list[str]:
    """The data config (:func:`data_hash`), the inputs' content (:func:`data_inputs`), the number of folds."""
    return [data_hash(ctx.cfg), repr(sorted(_inputs(ctx).items())), str(ctx.cfg.oof.folds)]


def _inputs(ctx: Context) -> dict[str, str]:
    """:func:`data_inputs` once per run of the stage: the fingerprint and the manifest's ``inputs`` share it."""
    if "prepare_inputs" not in ctx.memo:
        ctx.memo["prepare_inputs"] = data_inputs(ctx.cfg, ctx.store)
    return ctx.memo["prepare_inputs"]


def data_hash(cfg: Config) -> str:
    """``cfg.section_hash("data", "seed")`` without data.version and data.unlabelled_path: the version enters the
    prepare fingerprint as the resolved number and its file's content (null and the newest number agree), and the
    pool is read by pseudo-label and the evaluate stage only (a new pool retrains nothing upstream). The data files
    count by their content (:func:`data_inputs`), not by how their paths are spelled (:meth:`Config.hash_payload`)."""
    d = cfg.hash_payload("data", "seed")
    data = {k: v for k, v in d["data"].items() if k not in ("version", "unlabelled_path")}
    return hashlib.sha256(json.dumps({"data": data, "seed": d["seed"]}, sort_keys=True).encode()).hexdigest()[:16]


def data_inputs(cfg: Config, store: RunStore) -> dict[str, str]:
    """The content of what prepare reads (recorded as the manifest's ``inputs``): the demo's settings or the data
    files, and the dataset version trained on (data.version, else the newest review/pseudo-label version; 0 = as read)."""
    d = cfg.data
    if d.demo is not None:
        inputs = {"demo": fingerprint_bytes(d.demo.model_dump_json())}
    else:
        inputs = {"data": fingerprint_path(d.path)}
        for key in ("test_path", "truth_path"):
            if getattr(d, key):
                inputs[key] = fingerprint_path(getattr(d, key))
    version = run_version(cfg, store)
    if version:
        inputs["version"] = f"{version}:{fingerprint_path(store.uri_of(f'{VERSIONS}/v{version}.parquet'))}"
    return inputs


def _prepare(ctx: Context, version: int) -> dict[str, Any]:
    cfg, store = ctx.cfg, ctx.store
    d = cfg.data
    path, truth_path = _demo_input(ctx) if d.demo is not None else (d.path, d.truth_path)
    loaded = read_training(path, d)
    labels = loaded.labels
    table, test = held_out(d, loaded.table, labels, cfg.seed)
    n_pseudo = 0
    if version:  # the reviewed / pseudo-labelled rows replace the training rows; the held-out split stays as carved
        name = f"{VERSIONS}/v{version}.parquet"
        versioned, n_pseudo = versioned_table(store.read_table(name), table, test, pseudo_ids(store), version, store.uri_of(name))
        if not store.exists(f"{VERSIONS}/v0.parquet"):  # the rows as read, kept beside the versions
            store.write_table(f"{VERSIONS}/v0.parquet", table)
        table = versioned
        ctx.log(f"dataset version {version}: {store.uri_of(name)}" + (f" ({n_pseudo} pseudo-labelled rows)" if n_pseudo else ""))
    check_folds(table, labels, cfg.oof.folds)
    unknown_rows = check_known_tokens(table.column("id").to_pylist(), table.column("text").to_pylist(), cfg, ctx.log)
    if cfg.score.knn_k >= table.num_rows:
        raise DataError(
            f"score.knn_k={cfg.score.knn_k} neighbours, but the training split has {table.num_rows} rows: "
            f"set score.knn_k below {table.num_rows} (e.g. {max(1, min(10, table.num_rows - 1))})"
        )
    if test is not None and d.test_path:
        check_disjoint(table, test)
    truth = None
    if truth_path:  # validated (columns, ids, label names) before anything is written
        truth = read_run_truth(truth_path, loaded, test, d, labels)
        covered = truth_coverage(truth, table)
        if covered < table.num_rows:
            ctx.log(f"warning: the truth file covers {covered} of {table.num_rows} training rows: detection "
                    "precision/recall count the others as correctly labelled")
    store.write_table("dataset.parquet", table)
    if test is not None:
        store.write_table("test.parquet", test)
    truth_rows = test_truth_rows = None
    if truth is not None:
        # the held-out rows' truth goes to its own file, read only by the evaluate stage: mining
        # stages (score's detection metrics, the report's label-issue table) see training rows only
        if test is not None:
            truth, test_truth = split_truth(truth, test)
            store.write_table("test_truth.parquet", test_truth)
            test_truth_rows = test_truth.num_rows
            if test_truth_rows:
                ctx.log(f"injected truth: {test_truth_rows} of {test.num_rows} held-out rows have a true label "
                        f"({flipped_labels(test, test_truth)} given labels differ from it); the evaluate stage scores against both")
        store.write_table("truth.parquet", truth)
        truth_rows = truth.num_rows
    store.update_manifest(
        labels=labels,
        dropped_ids=loaded.dropped_ids,
        inputs=_inputs(ctx),
        test_fingerprint=fingerprint_path(store.path("test.parquet")) if test is not None else None,
    )
    ctx.log(f"dataset: {table.num_rows} training rows, {len(labels)} classes" + (f", {test.num_rows} held-out" if test is not None else ""))
    return {
        "rows": table.num_rows,
        "test_rows": test.num_rows if test is not None else 0,
        "classes": len(labels),
        "class_counts": class_counts(table.column("label_name")),
        "dropped_empty": len(loaded.dropped_ids),
        "unknown_token_rows": unknown_rows,
        "truth_rows": truth_rows,
        "test_truth_rows": test_truth_rows,
        "dataset_version": version,
        "pseudo_rows": n_pseudo,
    }


def _demo_input(ctx: Context) -> tuple[str, str]:
    """The demo dataset written to a temporary folder, a copy kept in the run's input/: (data path, truth path)."""
    import shutil
    import tempfile

    from hardmine.data.demo import write_demo

    written = write_demo(tempfile.mkdtemp(prefix="hardmine-demo-"), **ctx.cfg.data.demo.model_dump())
    with ctx.store.local_dir("input") as keep:  # a copy of the generated input stays with the run
        shutil.copy(written["data"], keep)
        shutil.copy(written["truth"], keep)
    ctx.log(f"generated the demo dataset: {written['n_rows']} rows, {written['n_noisy']} labels flipped on purpose")
    return written["data"], written["truth"]
