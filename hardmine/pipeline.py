"""The stages in order, each resumable through the run store's manifest.

A stage's fingerprint hashes its own config section together with the fingerprints of
the stages it reads, so changing anything upstream makes everything downstream stale.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa

from hardmine.config import Config
from hardmine.console import detail
from hardmine.data import DataError, check_folds, load_split, stratified_holdout
from hardmine.store import RunStore, fingerprint_bytes, fingerprint_path


@dataclass
class Context:
    cfg: Config
    store: RunStore
    log: Callable[[str], None] = print

    def fingerprint(self, stage: str) -> str:
        fp = self.store.stage_fingerprint(stage)
        if fp is None:
            raise RuntimeError(f"stage {stage!r} has not run in {self.store.uri}: run it first (hardmine run)")
        return fp


def run_stage(ctx: Context, name: str, fingerprint: str, outputs: list[str], fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Skip when done with the same fingerprint and intact outputs; else run and record.

    Outputs may be files or directories; a done stage whose outputs are missing, empty, unreadable
    (a truncated Parquet file) or changed since completion re-runs (:meth:`RunStore.why_not_done`).
    """
    store = ctx.store
    why = store.why_not_done(name, fingerprint, outputs)
    if why is None:
        ctx.log(f"[{name}] up to date (fingerprint {fingerprint}): skipped")
        return store.manifest()["stages"][name].get("summary", {})
    rec = store.manifest().get("stages", {}).get(name) or {}
    if rec.get("status") == "done" and rec.get("fingerprint") == fingerprint:
        ctx.log(f"[{name}] outputs damaged since it completed ({why}): running again")
    else:
        ctx.log(f"[{name}] running")
    store.mark(name, "running", fingerprint=fingerprint, started=time.time())
    t0 = time.time()
    store.reads.clear()
    try:
        summary = fn()
    except BaseException as e:
        store.mark(name, "failed", error=f"{type(e).__name__}: {e}")
        raise
    seconds = time.time() - t0
    reads = sorted(set(store.reads))
    signatures = store.signatures(outputs)
    rows = {o: sig["rows"] for o, sig in signatures.items() if "rows" in sig}
    store.mark(
        name, "done", fingerprint=fingerprint, seconds=round(seconds, 3), outputs=outputs, rows=rows, reads=reads, summary=summary,
        signatures=signatures,
    )
    problem = store.output_problem(store.manifest()["stages"][name], outputs)
    if problem:  # a stage that does not write what it declares would re-run every time
        ctx.log(f"warning: [{name}] finished but {problem}: it will run again next time")
    ctx.log(f"[{name}] done in {seconds:.1f}s")
    return summary


# ----------------------------------------------------------------------------- prepare


def prepare(ctx: Context) -> dict[str, Any]:
    """Read + validate the data (or generate the demo set), carve the hold-out: dataset.parquet, test.parquet.

    With injected truth (the demo, ``data.truth_path``): truth.parquet for the training rows and
    test_truth.parquet for the held-out rows (only the evaluate stage reads it).
    """
    cfg, store = ctx.cfg, ctx.store
    d = cfg.data
    if d.demo is not None:
        inputs = {"demo": fingerprint_bytes(d.demo.model_dump_json())}
    else:
        from hardmine.data import check_path

        for key in ("path", "test_path", "truth_path"):  # before hashing them: a missing file is a DataError naming the key
            if getattr(d, key):
                check_path(getattr(d, key), f"data.{key}")
        inputs = {"data": fingerprint_path(d.path)}
        for key in ("test_path", "truth_path"):
            if getattr(d, key):
                inputs[key] = fingerprint_path(getattr(d, key))
    from hardmine.pseudo import check_run_inputs
    from hardmine.review_cmd import VERSIONS, run_version

    # the dataset version trained on: data.version, else the newest review/pseudo-label version (0 = as read)
    version = run_version(cfg, store)
    check_run_inputs(cfg, store, ctx.log)  # the self_training / reviewed arms' inputs, before anything trains
    if version:
        inputs["version"] = f"{version}:{fingerprint_path(store.uri_of(f'{VERSIONS}/v{version}.parquet'))}"
    fp = fingerprint_bytes(_data_hash(cfg), repr(sorted(inputs.items())), str(cfg.oof.folds))
    has_test, has_truth = bool(d.test_path or d.test_size), d.demo is not None or bool(d.truth_path)
    outputs = ["dataset.parquet"] + (["test.parquet"] if has_test else []) + (["truth.parquet"] if has_truth else []) + (
        ["test_truth.parquet"] if has_test and has_truth else []
    )

    def _run():
        path, truth_path = d.path, d.truth_path
        if d.demo is not None:
            import tempfile

            from hardmine.demo_data import write_demo

            written = write_demo(tempfile.mkdtemp(prefix="hardmine-demo-"), **d.demo.model_dump())
            path, truth_path = written["data"], written["truth"]
            with store.local_dir("input") as keep:  # a copy of the generated input stays with the run
                import shutil

                shutil.copy(path, keep)
                shutil.copy(truth_path, keep)
            ctx.log(f"generated the demo dataset: {written['n_rows']} rows, {written['n_noisy']} labels flipped on purpose")
        loaded = load_split(path, d)
        table, labels = loaded.table, loaded.labels
        present = sorted(set(table.column("label_name").to_pylist()))
        if len(present) < 2:
            raise DataError(
                f"{path}: all {table.num_rows} rows have the label {present[0]!r} (column {d.label_column!r}): mining needs "
                "at least 2 classes. Fix: check data.label_column, or add rows of the other classes"
            )
        test = None
        if d.test_path:
            test = load_split(d.test_path, d, labels=labels).table
        elif d.test_size:
            table, test = stratified_holdout(table, d.test_size, cfg.seed)
        n_pseudo = 0
        if version:  # the reviewed / pseudo-labelled rows replace the training rows; the held-out split stays as carved
            table, n_pseudo = _versioned_table(store, version, table, test)
            ctx.log(f"dataset version {version}: {store.uri_of(f'{VERSIONS}/v{version}.parquet')}"
                    + (f" ({n_pseudo} pseudo-labelled rows)" if n_pseudo else ""))
        check_folds(table, labels, cfg.oof.folds)
        from hardmine.preflight import check_known_tokens

        unknown_rows = check_known_tokens(table.column("id").to_pylist(), table.column("text").to_pylist(), cfg, ctx.log)
        if cfg.score.knn_k >= table.num_rows:
            raise DataError(
                f"score.knn_k={cfg.score.knn_k} neighbours, but the training split has {table.num_rows} rows: "
                f"set score.knn_k below {table.num_rows} (e.g. {max(1, min(10, table.num_rows - 1))})"
            )
        if test is not None:
            overlap = set(table.column("id").to_pylist()) & set(test.column("id").to_pylist())
            if overlap and d.test_path:
                raise DataError(
                    f"{len(overlap)} ids appear in both data.path and data.test_path (e.g. {sorted(overlap)[:5]}): "
                    "the held-out split must be disjoint from the training data"
                )
        truth = None
        if truth_path:  # validated (columns, ids, label names) before anything is written
            import pyarrow.compute as pc

            given_labels = dict(zip(loaded.table.column("id").to_pylist(), loaded.table.column("label").to_pylist()))
            if test is not None and d.test_path:
                given_labels.update(zip(test.column("id").to_pylist(), test.column("label").to_pylist()))
            truth = _read_truth(truth_path, labels, given=given_labels, dropped=set(loaded.dropped_ids), encoding=d.encoding)
            covered = pc.sum(pc.is_in(table.column("id"), value_set=truth.column("id"))).as_py() or 0
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
                is_test = pc.is_in(truth.column("id"), value_set=test.column("id").cast(pa.string()))
                test_truth, truth = truth.filter(is_test), truth.filter(pc.invert(is_test))
                store.write_table("test_truth.parquet", test_truth)
                test_truth_rows = test_truth.num_rows
                if test_truth_rows:
                    given = dict(zip(test.column("id").to_pylist(), test.column("label").to_pylist()))
                    flipped = sum(given[i] != t for i, t in zip(test_truth.column("id").to_pylist(), test_truth.column("true_label").to_pylist()))
                    ctx.log(f"injected truth: {test_truth_rows} of {test.num_rows} held-out rows have a true label "
                            f"({flipped} given labels differ from it); the evaluate stage scores against both")
            store.write_table("truth.parquet", truth)
            truth_rows = truth.num_rows
        store.update_manifest(
            labels=labels,
            dropped_ids=loaded.dropped_ids,
            inputs=inputs,
            test_fingerprint=fingerprint_path(store.path("test.parquet")) if test is not None else None,
        )
        counts = dict(zip(*_value_counts(table.column("label_name"))))
        ctx.log(f"dataset: {table.num_rows} training rows, {len(labels)} classes" + (f", {test.num_rows} held-out" if test is not None else ""))
        return {
            "rows": table.num_rows,
            "test_rows": test.num_rows if test is not None else 0,
            "classes": len(labels),
            "class_counts": counts,
            "dropped_empty": len(loaded.dropped_ids),
            "unknown_token_rows": unknown_rows,
            "truth_rows": truth_rows,
            "test_truth_rows": test_truth_rows,
            "dataset_version": version,
            "pseudo_rows": n_pseudo,
        }

    summary = run_stage(ctx, "prepare", fp, outputs, _run)
    check_run_inputs(cfg, store, ctx.log, after_prepare=True)  # the pool against the prepared training and held-out ids
    return summary


def _data_hash(cfg: Config) -> str:
    """``cfg.section_hash("data", "seed")`` without data.version and data.unlabelled_path: the version enters the
    prepare fingerprint as the resolved number and its file's content (null and the newest number agree), and the
    pool is read by pseudo-label and the evaluate stage only (a new pool retrains nothing upstream)."""
    import hashlib
    import json

    d = cfg.model_dump(mode="json")
    data = {k: v for k, v in d["data"].items() if k not in ("version", "unlabelled_path")}
    return hashlib.sha256(json.dumps({"data": data, "seed": d["seed"]}, sort_keys=True).encode()).hexdigest()[:16]


def _versioned_table(store: RunStore, version: int, table: pa.Table, test: pa.Table | None) -> tuple[pa.Table, int]:
    """Dataset version ``version`` as the training rows, checked against the rows carved from data.path.

    Every training row of data.path must be in it (a review changes labels only); its other rows must be
    pseudo-labelled rows (review/pseudo_audit.parquet); none may be a held-out row. Keeps
    review/versions/v0.parquet (the rows as read) when it is missing. Returns (table, pseudo-labelled rows).
    """
    from hardmine.pseudo import pseudo_ids
    from hardmine.review_cmd import VERSIONS

    name = f"{VERSIONS}/v{version}.parquet"
    vt = store.read_table(name)
    ids = table.column("id").to_pylist()
    v_ids = vt.column("id").to_pylist()
    missing = sorted(set(ids) - set(v_ids))
    pseudo = pseudo_ids(store)
    extra = sorted(set(v_ids) - set(ids) - pseudo)
    if missing or extra:
        eg = missing or extra
        raise DataError(
            f"dataset version {version} ({store.uri_of(name)}) does not match the training rows of data.path: "
            f"{len(missing)} rows of data.path are not in it, {len(extra)} of its rows are neither in data.path nor "
            f"pseudo-labelled (e.g. {eg[:5]}); data.path changed since the version was made. Fix: set data.version: 0 "
            "to train on data.path as it is now"
        )
    if test is not None:
        on_test = sorted(set(v_ids) & set(test.column("id").to_pylist()))
        if on_test:
            raise DataError(f"dataset version {version} has {len(on_test)} held-out ids (e.g. {on_test[:5]}): the held-out "
                            "split must stay out of the training rows. Fix: set data.version: 0")
    if not store.exists(f"{VERSIONS}/v0.parquet"):
        store.write_table(f"{VERSIONS}/v0.parquet", table)
    missing_cols = [c for c in table.column_names if c not in vt.column_names]
    if missing_cols:
        raise DataError(f"dataset version {version} ({store.uri_of(name)}) lacks the columns {missing_cols}: set data.version: 0")
    vt = vt.select(table.column_names).cast(table.schema)
    return vt, len(set(v_ids) & pseudo)


def _value_counts(col: pa.ChunkedArray) -> tuple[list, list]:
    vc = col.value_counts()
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()


def _read_truth(path: str, labels: list[str], given: dict[str, int] | None = None, dropped: set[str] = frozenset(),
                encoding: str = "utf-8") -> pa.Table:
    """Injected truth (id, true_label[, is_noisy, is_ambiguous]): detection precision/recall, and the
    held-out rows' true labels for the evaluate stage (:func:`prepare` splits the two).

    Validated by :func:`hardmine.data.read_truth`: the columns, ids (unique, and with ``given``,
    the dataset's id -> given label index, every one in the dataset), true_label names (numbers
    match however written), true/false flags; ``is_noisy`` is derived from ``given`` when absent.
    """
    from hardmine.data import read_truth

    return read_truth(path, labels, given=given, dropped=dropped, encoding=encoding)


# ----------------------------------------------------------------------------- oof


def oof(ctx: Context) -> dict[str, Any]:
    cfg, store = ctx.cfg, ctx.store
    o = cfg.oof
    from hardmine.oof.settings import oof_training_key

    fp = fingerprint_bytes(  # oof_training_key: train.* that reaches the fold models ("" when none: fingerprints unchanged)
        ctx.fingerprint("prepare"), cfg.section_hash("oof", "seed"), fingerprint_path(o.probs_path) if o.probs_path else "",
        *filter(None, [oof_training_key(cfg)]),
    )
    outputs = ["oof.parquet"] + [f"oof/{b}.parquet" for b in o.backbones] + (["embeddings.parquet"] if "frozen" in o.backbones else [])
    outputs += [f"models/{b}/fold-{k}" for b in o.trainable for k in range(o.folds)]  # the holdout, review and filters load them

    def _run():
        from hardmine.oof.runner import run_oof
        from hardmine.runtime import connect

        if o.trainable:
            connect(cfg, ctx.log)
        train = store.read_table("dataset.parquet")
        labels = store.manifest()["labels"]
        summary = run_oof(cfg, store, train, len(labels), fp, log=ctx.log, data_fingerprint=ctx.fingerprint("prepare"))
        head, *rest = format_oof(summary).splitlines()
        ctx.log(head)
        detail("\n".join(rest))  # per-member and per-fold tables: the log file (console with -v)
        return summary

    return run_stage(ctx, "oof", fp, outputs, _run)


def holdout(ctx: Context) -> dict[str, Any]:
    """The K fold models predict the held-out split (averaged probabilities): test_probs.parquet.

    Only this stage and ``evaluate`` read test.parquet; no mining stage reads what it writes.
    """
    cfg, store = ctx.cfg, ctx.store
    if not store.exists("test.parquet"):
        return {}
    if not cfg.oof.trainable:
        ctx.log("[holdout] skipped: an external-only ensemble has no fold models to predict the held-out split")
        return {}
    fp = fingerprint_bytes(ctx.fingerprint("oof"), "holdout")
    outputs = ["test_probs.parquet"] + (["test_embeddings.parquet"] if "frozen" in cfg.oof.backbones else [])

    def _run():
        from hardmine.embed import embeddings_table
        from hardmine.oof.predict import FoldEnsemble

        test = store.read_table("test.parquet")
        ens = FoldEnsemble(store.uri, batch_size=cfg.oof.embed_batch_size)
        probs = ens.predict(test.column("text").to_pylist())
        if ens.frozen is not None:
            store.write_table("test_embeddings.parquet", embeddings_table(test.column("id"), ens.frozen.last_embeddings))
        store.write_table("test_probs.parquet", pa.table({"id": test.column("id"), "probs": pa.array(list(probs), pa.list_(pa.float32()))}))
        acc = float((probs.argmax(1) == test.column("label").to_numpy()).mean())
        ctx.log(f"held-out accuracy of the fold models ({', '.join(ens.members)}; {len(ens.models)} models, combined): {acc:.4f} on {test.num_rows} rows")
        return {"test_accuracy_fold_ensemble": acc, "rows": test.num_rows}

    return run_stage(ctx, "holdout", fp, outputs, _run)


def format_oof(summary: dict) -> str:
    members = summary.get("members") or {}
    lines = [f"OOF accuracy {summary['accuracy']:.4f}, log-loss {summary.get('log_loss', float('nan')):.4f}, "
             f"ECE {summary.get('ece', float('nan')):.4f} ({' + '.join(summary.get('backbones', [])) or summary.get('runner')})"]
    if len(members) > 1 or members:
        lines.append(f"  {'member':<10} {'weight':>6}  {'accuracy':>8}  {'log-loss':>8}  {'ECE':>6}")
        for name, m in members.items():
            lines.append(f"  {name:<10} {m.get('weight', 1.0):>6.3f}  {m['accuracy']:>8.4f}  {m['log_loss']:>8.4f}  {m['ece']:>6.4f}")
    cal = summary.get("calibration") or {}
    if cal.get("method") == "temperature":
        lines.append(f"  temperature {cal['temperature']:.3f} (cross-fitted over folds): ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}")
    if summary.get("folds"):
        lines.append("  fold  rows  accuracy" + (f"  ({summary['backbones'][0]})" if summary.get("backbones") else ""))
        for f in summary["folds"]:
            lines.append(f"  {f['fold']:>4}  {f['rows']:>4}  {f['accuracy']:.4f}")
    return "\n".join(lines)


STAGES: dict[str, Callable[[Context], dict]] = {"prepare": prepare, "oof": oof, "holdout": holdout}


def run_all(cfg: Config, log=print, until: str | None = None) -> RunStore:
    """Every stage up to ``until`` (all, then the report), holding the run's lock throughout.

    Raises :class:`hardmine.store.RunLockedError` when another process uses the run directory
    (re-entrant: a caller of this process that already holds the lock may call it).
    """
    store = RunStore(cfg.run_dir, log=log)
    with store.lock():
        store.update_manifest(config=cfg.model_dump(mode="json"), config_hash=cfg.section_hash(), name=cfg.name)
        ctx = Context(cfg, store, log)
        for name, fn in STAGES.items():
            fn(ctx)
            if name == until:
                break
        if until is None:
            from hardmine.report import write_report

            log(f"report: {write_report(store.uri)}")
    return store


# ----------------------------------------------------------------------------- score


def _rows_in_order(ds: pa.Table, ids: list[str]) -> pa.Table:
    """The dataset rows of the OOF ``ids``, in that order."""
    pos = {i: n for n, i in enumerate(ds.column("id").to_pylist())}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise DataError(f"{len(missing)} ids in oof.parquet are not in dataset.parquet (e.g. {missing[:5]}): re-run the oof stage")
    return ds.take(pa.array([pos[i] for i in ids], pa.int64()))


def score(ctx: Context) -> dict[str, Any]:
    """Hardness, confident learning and training dynamics from the OOF probabilities: scores.parquet."""
    cfg, store = ctx.cfg, ctx.store
    fp = fingerprint_bytes(ctx.fingerprint("oof"), cfg.section_hash("score"))
    outputs = ["scores.parquet", "label_quality.json"]

    def _run():
        from hardmine.scoring import detection_metrics, score_table

        oof_t = store.read_table("oof.parquet")
        ds = store.read_table("dataset.parquet")
        names = store.manifest()["labels"]
        ids = oof_t.column("id").to_pylist()
        if len(set(ids)) != len(ids) or len(ids) != ds.num_rows:
            missing = sorted(set(ds.column("id").to_pylist()) - set(ids))
            raise DataError(
                f"oof.parquet covers {len(set(ids))} distinct ids of the {ds.num_rows} training rows"
                + (f" ({len(missing)} missing, e.g. {missing[:5]})" if missing else "")
                + (f"; {len(ids) - len(set(ids))} ids repeat" if len(set(ids)) != len(ids) else "")
                + ": every row needs exactly one out-of-fold prediction. Fix: delete oof.parquet and re-run (the oof stage recomputes it)"
            )
        rows = _rows_in_order(ds, ids)
        labels = rows.column("label").to_numpy().astype("int64")
        s = cfg.score
        table, summary = score_table(
            oof_t.column("id"), labels, oof_t.column("probs"), oof_t.column("epoch_probs"), label_names=names,
            filter_by=s.filter_by, rank_by=s.rank_by, low_memory_threshold=s.low_memory_threshold,
        )
        for w in summary.get("warnings", []):
            ctx.log(f"warning: {w}")
        texts = rows.column("text").to_pylist()
        table, summary["signals"] = _signals(ctx, table, ids, texts)
        store.write_table("scores.parquet", table)
        if store.exists("truth.parquet"):
            summary["detection"] = _detection(store.read_table("truth.parquet"), table, detection_metrics)
        store.write_json("label_quality.json", summary)
        ctx.log(format_label_quality(summary))
        ctx.log(format_signals(summary["signals"]))
        return {
            "label_issues": int(table.column("is_label_issue").to_numpy().sum()),
            "estimated_label_errors": summary["estimated_label_errors"],
            "detection": summary.get("detection"),
        }

    return run_stage(ctx, "score", fp, outputs, _run)


def _signals(ctx: Context, table: pa.Table, ids: list[str], texts: list[str]) -> tuple[pa.Table, dict]:
    """Outliers and neighbour agreement (kNN over the frozen embeddings), conflicting duplicates
    and the dual model's error_risk, filled into ``table``; returns (table, summary)."""
    import numpy as np

    from hardmine.scoring import with_signals

    cfg, store, s = ctx.cfg, ctx.store, ctx.cfg.score
    labels = table.column("label").to_numpy()
    out: dict[str, Any] = {}
    signals: dict[str, Any] = {}
    t0 = time.time()
    if len(ids) > s.knn_k:
        from hardmine.neighbors import knn_scores, outlier_flags

        oof_outputs = (store.manifest().get("stages", {}).get("oof", {}).get("summary") or {}).get("outputs") or []
        if "embeddings.parquet" in oof_outputs and store.exists("embeddings.parquet"):  # this OOF run's frozen member's
            from hardmine.evaluate import _embeddings_by_id

            emb, source = _embeddings_by_id(store, "embeddings.parquet", ids, "training"), "oof frozen member"
        else:
            from hardmine.evaluate import embed_cached
            from hardmine.runtime import connect

            connect(cfg, ctx.log)
            emb, source = embed_cached(cfg, store, texts, ctx.log), f"embedded with {cfg.oof.model}"
        from hardmine.neighbors import HNSW_AUTO_ROWS

        index = s.knn_index if s.knn_index != "auto" else ("hnsw" if len(ids) > HNSW_AUTO_ROWS else "exact")
        knn = knn_scores(emb, labels, k=s.knn_k, index=index)
        flags = outlier_flags(knn["outlier_score"], quantile=s.outlier_quantile)
        signals.update(outlier_score=knn["outlier_score"], knn_label_agreement=knn["knn_label_agreement"], is_outlier=flags)
        out["outliers"] = {"k": s.knn_k, "index": index, "quantile": s.outlier_quantile, "flagged": int(flags.sum()), "embeddings": source,
                           "min_flagged_score": float(knn["outlier_score"][flags].min()) if flags.any() else None,
                           "low_agreement_rows": int((knn["knn_label_agreement"] < 0.5).sum()), "seconds": round(time.time() - t0, 2)}
    else:
        out["outliers"] = {"skipped": f"{len(ids)} rows: score.knn_k={s.knn_k} needs more rows than neighbours"}
    if s.duplicates != "off":
        from hardmine.neighbors import duplicate_groups

        t0 = time.time()
        dup = duplicate_groups(texts, labels, near_threshold=s.near_duplicate_threshold if s.duplicates == "near" else None)
        signals.update(dup_group=dup["dup_group"], is_conflicting_duplicate=dup["is_conflicting_duplicate"])
        g = dup["dup_group"]
        conflicting = np.unique(g[dup["is_conflicting_duplicate"]])
        out["duplicates"] = {"mode": s.duplicates, "threshold": s.near_duplicate_threshold if s.duplicates == "near" else None,
                             "groups": int(len(np.unique(g[g >= 0]))), "rows_in_groups": int((g >= 0).sum()),
                             "conflicting_groups": int(conflicting.size), "conflicting_rows": int(dup["is_conflicting_duplicate"].sum()),
                             "seconds": round(time.time() - t0, 2)}
    if signals:
        table = with_signals(table, signals)
    if s.dual_model != "off":
        from hardmine.dual import FEATURE_SETS, error_risk_table

        t0 = time.time()
        risk, info = error_risk_table(table, texts, folds=cfg.oof.folds, seed=cfg.seed, model=s.dual_model,
                                      features=FEATURE_SETS[s.dual_features], n_threads=1)
        info["feature_set"] = s.dual_features
        table = with_signals(table, {"error_risk": risk})
        out["dual_model"] = {**info, "seconds": round(time.time() - t0, 2)}
    return table, out


def format_signals(sig: dict) -> str:
    lines = ["other signals:"]
    o = sig.get("outliers") or {}
    if "skipped" in o:
        lines.append(f"  outliers: skipped ({o['skipped']})")
    elif o:
        lines.append(f"  outliers: {o['flagged']} rows flagged (top {o['quantile']:g} by mean distance to the {o['k']} nearest rows; "
                     f"{o['embeddings']}); {o['low_agreement_rows']} rows whose neighbours mostly carry another label")
    d = sig.get("duplicates")
    if d:
        lines.append(f"  duplicates ({d['mode']}): {d['groups']} groups, {d['conflicting_groups']} with conflicting labels "
                     f"({d['conflicting_rows']} rows; the select stage keeps them out of augmentation)")
    m = sig.get("dual_model")
    if m:
        top = ", ".join(f"{k} {v:.3f}" for k, v in sorted((m.get("importances") or {}).items(), key=lambda kv: -kv[1])[:3])
        auc = "-" if m.get("auc") is None else f"{m['auc']:.3f}"
        lines.append(f"  dual model ({m['model']}): error_risk AUC {auc} for OOF errors (base rate {m['base_rate']:.3f})"
                     + (f"; top features {top}" if top else "") + (f"; {m['note']}" if m.get("note") else ""))
    return "\n".join(lines)


def _detection(truth: pa.Table, scores: pa.Table, detection_metrics) -> dict:
    import numpy as np

    noisy = dict(zip(truth.column("id").to_pylist(), truth.column("is_noisy").to_pylist()))
    ids = scores.column("id").to_pylist()
    is_noisy = np.array([bool(noisy.get(i, False)) for i in ids])
    return detection_metrics(scores.column("is_label_issue").to_numpy(zero_copy_only=False), is_noisy)


def format_label_quality(summary: dict) -> str:
    n = summary["n_rows"]
    lines = [
        "label quality:",
        f"  estimated wrong labels: {summary['estimated_label_errors']} of {n} "
        f"({100 * summary['estimated_label_error_fraction']:.1f}%); flagged as label issues: {summary['n_flagged']}",
    ]
    worst = sorted(summary["per_class"], key=lambda r: -r["estimated_noise_rate"])[:5]
    for r in worst:
        lines.append(f"  {r['name']:<24} estimated noise rate {100 * r['estimated_noise_rate']:5.1f}%  flagged {r['n_flagged']}")
    det = summary.get("detection")
    if det:
        lines.append(
            f"  label-issue detection vs the injected truth: precision {det['precision']:.3f}  "
            f"recall {det['recall']:.3f}  f1 {det['f1']:.3f}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- select


def select_stage(ctx: Context) -> dict[str, Any]:
    """Action per sample (augment / review / drop / relabel / none), hard-case analysis and plots."""
    cfg, store = ctx.cfg, ctx.store
    fp = fingerprint_bytes(ctx.fingerprint("score"), cfg.section_hash("select", "seed"))
    outputs = ["selected.parquet", "analysis/analysis.json", "plots/hardness_histogram.png"]

    def _run():
        import numpy as np

        from hardmine.analysis import analyze, format_tables, write_analysis
        from hardmine.plots import confusion_heatmap, hard_per_class, hardness_histogram
        from hardmine.select import select
        from hardmine.sweep import select_kwargs

        scores = store.read_table("scores.parquet")
        ds = store.read_table("dataset.parquet")
        names = store.manifest()["labels"]
        s = cfg.select
        try:
            kw = select_kwargs(cfg, names)
        except ValueError as e:
            raise DataError(str(e)) from None
        # the policy keys live here, not in select_kwargs: the sweep varies the hardness rule only
        kw.update(policy=s.policy, ambiguous_quantile=s.ambiguous_quantile, class_budget=s.class_budget)
        try:
            selected, summary = select(
                scores, ds, hardness_quantile=s.hardness_quantile, p_true_max=s.p_true_max, issue_action=s.issue_action, **kw
            )
        except ValueError as e:  # e.g. policy ambiguous on one-epoch dynamics: a clear refusal, not a traceback
            raise DataError(f"select: {e}") from None
        store.write_table("selected.parquet", selected)
        quantile = s.hardness_quantile or 0.2
        result = analyze(scores, ds, names, hardness_quantile=quantile, top_pairs=cfg.score.top_pairs, top_tokens=cfg.score.top_tokens, seed=cfg.seed)
        with store.local_dir("analysis") as d:
            write_analysis(result, d)
        with store.local_dir("plots") as d:
            hardness_histogram(scores, names, f"{d}/hardness_histogram.png", hardness_quantile=quantile)
            hard_per_class(result["per_class"], f"{d}/hard_per_class.png")
            confusion_heatmap(scores, names, f"{d}/confusion_hard.png", hardness_quantile=quantile)
            if summary.get("data_map"):  # the dataset-cartography plot needs training dynamics
                from hardmine.plots import data_map

                data_map(scores, f"{d}/data_map.png", label_names=names, regions=selected.column("region").to_pylist())
        detail(format_tables(result, max_rows=10))  # the tables: log file, console with -v, analysis/ and the report
        ctx.log(format_hard_overview(summary, result))
        actions = selected.column("action").value_counts().to_pylist()
        ctx.log("selection: " + ", ".join(f"{a['values']} {a['counts']}" for a in actions))
        if summary["n_conflicting_duplicates"] or summary["n_outliers"]:
            ctx.log(f"kept out of augmentation{', sent to review' if s.issue_action != 'keep' else ''}: {summary['n_conflicting_duplicates']} conflicting duplicates, "
                    f"{summary['n_outliers']} outliers (score stage)")
        if summary.get("data_map"):
            ctx.log("data map regions: " + ", ".join(f"{k} {v}" for k, v in summary["data_map"]["regions"].items())
                    + f" (policy {s.policy})")
        cb = summary.get("class_budget") or {}
        if cb.get("per_class"):
            moved = {c: f"{r['uniform_sources']}->{r['sources']}" for c, r in cb["per_class"].items() if r["uniform_sources"] != r["sources"]}
            ctx.log(f"class budget {cb['mode']}: {cb['allocated']} of {cb['total']} sources placed; per class {moved or 'unchanged'}"
                    + (f"; {cb['fallback']}" if cb.get("fallback") else ""))
        out = {"actions": {a["values"]: a["counts"] for a in actions}, **{k: v for k, v in summary.items() if k != "actions"}}
        if not summary["actions"].get("augment"):
            from hardmine.augment.explain import no_sources_reason

            out["no_augment_reason"] = no_sources_reason(summary, summary["n_hard_with_issues"])
            if s.policy == "ambiguous" and not summary["n_hard"]:  # no_sources_reason speaks of the hardness rule
                q = summary["params"]["ambiguous_quantile"]
                out["no_augment_reason"] = (
                    f"0 rows to augment: no row outside the {summary['n_label_issues']} label issues is in the ambiguous "
                    f"region (select.policy=ambiguous, select.ambiguous_quantile={q:g}); raise select.ambiguous_quantile, "
                    "set select.issue_action: keep, or use select.policy: hardness"
                )
            ctx.log(f"selection: {out['no_augment_reason']}")
        return out

    return run_stage(ctx, "select", fp, outputs, _run)


def format_hard_overview(summary: dict, result: dict) -> str:
    """Two console lines for the hard set (the full tables go to the log file, analysis/ and the report)."""
    pc = result["per_class"].to_pylist()
    pc.sort(key=lambda r: (-(r["share_hard"] or 0), r["class"]))
    shares = ", ".join(f"{r['name']} {100 * (r['share_hard'] or 0):.0f}%" for r in pc[:3] if r["n_hard"])
    lines = [f"hard samples: {result['n_hard']} of {result['n']} ({result['hard_rule']}); label issues: {result.get('n_issue', 0)}"
             + (f"; hardest classes: {shares}" if shares else "")]
    pairs = result["confusion_pairs"].to_pylist()[:3]
    if pairs:
        lines.append("most confused among hard samples (given -> predicted): "
                     + ", ".join(f"{p['label_name']} -> {p['pred_name']} {p['count']}" for p in pairs)
                     + " (tables: analysis/, the report, or -v)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- augment


def _augment_to_store(ctx: Context, selected: str, out: str, budget: dict, seed: int, pre: dict | None = None) -> dict:
    """Run the Ray Data augmentation pipeline on ``selected`` into the run's ``out`` Parquet.

    ``pre``: a :func:`hardmine.augment.pipeline.preflight` result whose language and
    generators are used as decided (else the config's, ``auto`` resolved by ``run_augment``).
    """
    import os
    import tempfile

    from hardmine.augment.filters import normalize_filter_config
    from hardmine.augment.pipeline import run_augment
    from hardmine.oof.predict import fold_predictor_factory

    cfg, store = ctx.cfg, ctx.store
    a = cfg.augment
    factory = fold_predictor_factory(store.uri) if "consistency" in normalize_filter_config(a.filters) else None
    local = store.is_local_fs()
    tmpdir = None if local else tempfile.mkdtemp(prefix="hardmine-aug-")
    out_path = store.path(out) if local else os.path.join(tmpdir, out)
    if pre is not None:
        generators, language = [dict(g) for g in pre["generator_specs"]], pre["language"]
    else:
        generators = a.generators if isinstance(a.generators, str) else [dict(g) for g in a.generators]
        language = a.language
    summary = run_augment(
        store.uri_of(selected) if local else store.read_table(selected),
        store.uri_of("dataset.parquet") if local else store.read_table("dataset.parquet"),
        out_path, generators=generators, filters=dict(a.filters), budget=budget,
        predictor_factory=factory, seed=seed, language=language, batch_size=a.batch_size, log=detail, decided=pre,
    )
    if pre is not None:  # how the language and generators were decided, not "as passed"
        summary.update(language_detection=pre["language_detection"], generators_from=pre["generators_from"])
    if not local:
        store.put_file(out_path, out)
    return summary


def format_funnel_short(summary: dict, what: str) -> str:
    """One console line per augmentation run (the full funnel goes to the log file)."""
    if not summary["sources"]:
        return f"augment ({what}): nothing to generate" + (f": {summary['no_sources_reason']}" if summary.get("no_sources_reason") else "")
    rejected = ", ".join(f"{r} {n}" for r, n in summary["reject_reasons"].items()) or "none"
    errors = f", {summary['errors']} errors" if summary.get("errors") else ""
    return (f"augment ({what}): {summary['sources']} sources -> {summary['rows']} variants, {summary['kept']} kept{errors} "
            f"in {summary.get('seconds', 0):.0f}s; rejected: {rejected}")


def format_funnel(summary: dict) -> str:
    from hardmine.augment.language import describe_detection

    lines = []
    if summary.get("language"):
        det = summary.get("language_detection") or {"language": summary["language"]}
        how = "auto for " + summary["language"] if summary.get("generators_from") == "auto" else "as configured"
        lines.append(f"  language {describe_detection(det)}; generators {summary.get('generators')} ({how})")
    if not summary["sources"] and summary.get("no_sources_reason"):
        lines.append(f"  {summary['no_sources_reason']}")
    lines.append(f"  generated {summary['rows']} variants from {summary['sources']} sources; kept {summary['kept']}")
    left = summary["rows"]
    for reason, n in summary["reject_reasons"].items():
        left -= n
        lines.append(f"    {reason:<24} rejected {n:>6}")
    for method, m in summary["by_method"].items():
        lines.append(f"    method {method:<17} {m}")
    return "\n".join(lines)


def augment(ctx: Context) -> dict[str, Any]:
    """Variants of the hard-but-correct samples (and, as a control, of random rows), filtered.

    The language, the generators for it and their fit are decided first (a generator that
    cannot handle the language is refused before Ray starts); with no rows to augment the
    stage completes with empty outputs and says why (from the select stage's summary).
    """
    cfg, store = ctx.cfg, ctx.store
    a = cfg.augment
    # the pool covers the largest budget evaluate may ask for, so arms subsample instead of regenerating
    ratio = None if a.aug_ratio is None else max(a.aug_ratio, cfg.evaluate.aug_ratio)
    fp = fingerprint_bytes(ctx.fingerprint("select"), cfg.section_hash("augment", "seed"), repr(ratio))
    outputs = ["augmented.parquet"] + (["selected_random.parquet", "augmented_random.parquet"] if a.random_control else [])

    def _run():
        import numpy as np

        from hardmine.augment.explain import no_sources_reason
        from hardmine.augment.pipeline import preflight
        from hardmine.runtime import connect

        local = store.is_local_fs()

        def src(name):
            return store.uri_of(name) if local else store.read_table(name)

        generators = a.generators if isinstance(a.generators, str) else [dict(g) for g in a.generators]
        pre = preflight(src("selected.parquet"), src("dataset.parquet"), generators, a.language)
        n_src = len(pre["ids"])
        reason = None
        if n_src == 0:
            sel_summary = (store.manifest().get("stages", {}).get("select") or {}).get("summary") or {}
            reason = (sel_summary.get("no_augment_reason") or no_sources_reason(sel_summary)
                      or "0 rows to augment: selected.parquet has no row with action augment")
            ctx.log(f"augment: {reason}")
        else:  # nothing to generate needs no cluster
            connect(cfg, ctx.log)
        budget = a.budget(ratio)
        targeted = _augment_to_store(ctx, "selected.parquet", "augmented.parquet", budget, cfg.seed, pre)
        if reason:
            targeted["no_sources_reason"] = reason
        summary = {"language": pre["language"], "generators": targeted["generators"], "targeted": targeted}
        if reason:
            summary["no_sources_reason"] = reason
        det = targeted.get("language_detection") or {}
        if targeted.get("language"):
            from hardmine.augment.language import describe_detection

            how = f"auto for {targeted['language']}" if targeted.get("generators_from") == "auto" else "as configured"
            ctx.log(f"augment: language {describe_detection(det) if det else targeted['language']}; generators {targeted.get('generators')} ({how})")
        ctx.log(format_funnel_short(targeted, "targeted: hard samples"))
        detail("augmentation funnel (targeted: hard samples):\n" + format_funnel(targeted))
        if a.random_control:
            sel = store.read_table("selected.parquet", columns=["id", "label", "action"])
            rng = np.random.default_rng(cfg.seed + 7)
            chosen = np.zeros(sel.num_rows, dtype=bool)
            chosen[rng.choice(sel.num_rows, size=min(n_src, sel.num_rows), replace=False)] = True
            rand = pa.table({
                "id": sel.column("id"), "label": sel.column("label"),
                "action": pa.array(np.where(chosen, "augment", "none")), "rule": pa.array(np.where(chosen, "random_control", "none")),
            })
            store.write_table("selected_random.parquet", rand)
            # same language and generators as the targeted run (random rows may differ in script)
            summary["random"] = _augment_to_store(ctx, "selected_random.parquet", "augmented_random.parquet", budget, cfg.seed + 1, pre)
            if reason:
                summary["random"]["no_sources_reason"] = reason
            ctx.log(format_funnel_short(summary["random"], "random control, same number of sources"))
            detail("augmentation funnel (random control: same number of random sources):\n" + format_funnel(summary["random"]))
        return summary

    return run_stage(ctx, "augment", fp, outputs, _run)


# ----------------------------------------------------------------------------- evaluate, sweep


def evaluate_stage(ctx: Context) -> dict[str, Any]:
    """Retrain the arms (baseline, clean, targeted, clean+targeted, random) over seeds; held-out metrics
    with paired-bootstrap intervals, against the given labels and, with injected truth, the true ones."""
    cfg, store = ctx.cfg, ctx.store
    if not store.exists("test.parquet"):
        ctx.log("[evaluate] skipped: no held-out split (set data.test_size or data.test_path)")
        return {}
    fp = fingerprint_bytes(ctx.fingerprint("augment"), cfg.section_hash("evaluate", "oof", "train", "seed"), *_evaluate_inputs(cfg, store))
    outputs = ["evaluation/runs.parquet", "evaluation/heldout.parquet", "evaluation/summary.json"]

    def _run():
        from hardmine.evaluate import run_evaluate

        return run_evaluate(cfg, store, ctx.log, fingerprint=fp)

    summary = run_stage(ctx, "evaluate", fp, outputs, _run)
    from hardmine.review_cmd import record_version_metrics

    record_version_metrics(store)  # the held-out accuracy of this dataset version, for the report's review history
    return summary


def _evaluate_inputs(cfg: Config, store: RunStore) -> list[str]:
    """What the opt-in arms read beyond the upstream stages (nothing for the other arms, so their fingerprint is as before).

    self_training: the pool's content and the pseudo.* rule; reviewed: the newest dataset version and
    version 0 (their files' content), which the arm compares.
    """
    from hardmine.review_cmd import VERSIONS, newest_version

    extra = []
    arms = set(cfg.evaluate.arms)
    if "self_training" in arms and cfg.data.unlabelled_path:
        extra += [f"pool:{fingerprint_path(cfg.data.unlabelled_path)}", f"pseudo:{cfg.section_hash('pseudo')}"]
        if store.exists("review/pseudo_audit.parquet"):
            extra.append(f"pseudo_audit:{fingerprint_path(store.uri_of('review/pseudo_audit.parquet'))}")
    if "reviewed" in arms:
        newest = newest_version(store)
        for v in sorted({0, newest}):
            name = f"{VERSIONS}/v{v}.parquet"
            extra.append(f"v{v}:{fingerprint_path(store.uri_of(name)) if store.exists(name) else 'prepared'}")
    return extra


def sweep_stage(ctx: Context) -> dict[str, Any]:
    """Ray Tune over threshold x aug_ratio x issue_action, each cell over seeds, trials subsampling one
    augmentation pool; chosen on a validation split carved from the training rows, confirmed once on test."""
    cfg, store = ctx.cfg, ctx.store
    if not cfg.sweep.enabled or not store.exists("test.parquet"):
        ctx.log("[sweep] skipped: " + ("sweep.enabled is false" if not cfg.sweep.enabled else "no held-out split"))
        return {}
    sw = cfg.sweep
    e = cfg.evaluate
    retrain = {"epochs": e.epochs, "ece_bins": e.ece_bins, "bootstrap": e.bootstrap, "confidence": e.confidence, "backbone": e.backbone}
    fp = fingerprint_bytes(ctx.fingerprint("augment"), cfg.section_hash("sweep", "select", "augment", "oof", "train", "seed"), repr(sorted(retrain.items())))
    outputs = ["sweep/pool.parquet", "sweep/results.parquet", "sweep/validation.parquet", "sweep/confirmation.parquet", "sweep/best.json"]

    def _run():
        from hardmine.runtime import connect
        from hardmine.select import select
        from hardmine.sweep import run_sweep, select_kwargs, validation_split

        labels = store.manifest()["labels"]
        # a validation split too small for the classes is refused before the pool is generated or anything trains
        validation_split(store.read_table("dataset.parquet", columns=["id", "label"]), sw.validation_size, cfg.seed, labels)
        connect(cfg, ctx.log)
        if not store.is_done("sweep_pool", fp, ["sweep/pool.parquet"]):
            # one pool at the largest budget, from the most permissive selection (issue rows kept as sources), over
            # every training row: the trials leave out the variants of validation rows, the confirmation uses them all
            kw = select_kwargs(cfg, labels)
            kw.update({"issue_action": "keep", "hardness_quantile": None, "p_true_max": None})
            kw[sw.threshold] = max(sw.thresholds)
            selected, _ = select(store.read_table("scores.parquet"), store.read_table("dataset.parquet"), **kw)
            store.write_table("sweep/selected_pool.parquet", selected)
            budget = cfg.augment.budget(max(sw.aug_ratios) if cfg.augment.per_sample is None else None)
            pool_summary = _augment_to_store(ctx, "sweep/selected_pool.parquet", "sweep/pool.parquet", budget, cfg.seed + 2)
            store.mark("sweep_pool", "done", fingerprint=fp, summary=pool_summary)
            ctx.log(format_funnel_short(pool_summary, "sweep pool, largest budget"))
        results = run_sweep(cfg, store, store.read_table("sweep/pool.parquet"), ctx.log, fingerprint=fp)
        best = store.read_json("sweep/best.json")
        b, conf = best["best"], best["confirmation"]
        return {
            "rows": results.num_rows, "trials": best["trials"], "validation_rows": best["selection"]["rows"],
            "chosen": None if b is None else {k: b[k] for k in ("key", "threshold_kind", "threshold", "aug_ratio", "issue_action", "no_action")},
            "validation_diff": None if b is None or b["no_action"] else b["vs_baseline"][sw.metric],
            "test_verdict": None if conf is None else conf.get("verdict", "baseline chosen"),
            "test_verdict_true_labels": None if conf is None else conf.get("verdict_true_labels"),
        }

    return run_stage(ctx, "sweep", fp, outputs, _run)


STAGES.update({"score": score, "select": select_stage, "augment": augment, "evaluate": evaluate_stage, "sweep": sweep_stage})
