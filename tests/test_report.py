"""The HTML report, built from a run directory assembled from the real stage functions (no Ray)."""
from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pyarrow as pa
import pytest

from hardmine import report as R
from hardmine.analysis import analyze, write_analysis
from hardmine.plots import confusion_heatmap, hard_per_class, hardness_histogram
from hardmine.schema import AUGMENTED
from hardmine.scoring import detection_metrics, score_table
from hardmine.select import hard_mask, select
from hardmine.store import RunStore

NAMES = ["billing", "배송 문의", "<b>account</b>"]
SCRIPT_TEXT = "<script>alert('x')</script> refund my 요금 please"
WORDS = {
    0: "invoice charge bill payment card fee overcharged statement price paid".split(),
    1: "배송 택배 도착 주소 상자 지연 운송장 발송 조회 반품".split(),
    2: "password login account locked email reset username signin profile access".split(),
}
PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _dataset(n_per_class=50, seed=0):
    rng = np.random.default_rng(seed)
    ids, texts, labels = [], [], []
    for c, words in WORDS.items():
        for i in range(n_per_class):
            ids.append(f"c{c}-{i}")
            texts.append(" ".join(rng.choice(words, 5)))
            labels.append(c)
    texts[0] = SCRIPT_TEXT  # id c0-0: user text with markup, made a label issue below
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "text": pa.array(texts, pa.string()),
            "label": pa.array(labels, pa.int32()),
            "label_name": pa.array([NAMES[c] for c in labels], pa.string()),
        }
    )


def _probs(labels, seed=0):
    """Confident OOF probabilities with 6 planted label errors (the model predicts the true class)."""
    rng = np.random.default_rng(seed)
    n, k = len(labels), len(NAMES)
    true = labels.copy()
    noisy = np.array([0, 7, 55, 60, 110, 120])
    true[noisy] = (labels[noisy] + 1) % k
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), true] += 4.0
    hard = rng.choice(np.setdiff1d(np.arange(n), noisy), 25, replace=False)  # ambiguous rows
    logits[hard] = rng.normal(0, 0.3, (hard.size, k))
    p = np.exp(logits)
    return (p / p.sum(1, keepdims=True)).astype(np.float32), true, noisy


def _augmented():
    """8 rows: 3 kept (2 eda, 1 offline-bt), too_short, low_similarity x2, near_duplicate_variant, error."""
    rows = [
        ("c0-1", "eda", True, None, None, 0.91, "charge bill invoice fee paid"),
        ("c0-2", "eda", True, None, None, 0.88, "card price payment overcharged fee"),
        ("c1-3", "offline-bt", True, None, None, 0.86, "택배 배송 도착 조회 지연"),
        ("c0-4", "eda", False, "too_short", None, None, "fee"),
        ("c2-5", "offline-bt", False, "low_similarity", None, 0.31, "<i>completely</i> different"),
        ("c2-6", "offline-bt", False, "low_similarity", None, 0.42, "another unrelated sentence"),
        ("c0-1", "eda", False, "near_duplicate_variant", None, 0.99, "charge bill invoice fee paid"),
        ("c2-7", "offline-bt", False, "error", "RuntimeError: <boom> translation failed", None, ""),
    ]
    return pa.Table.from_pylist(
        [
            {"id": f"{s}~{m}~{i}", "source_id": s, "text": t, "label": int(s[1]), "method": m, "variant": i,
             "similarity": sim, "consistent": None, "kept": k, "reject_reason": rr, "error": err}
            for i, (s, m, k, rr, err, sim, t) in enumerate(rows)
        ],
        schema=AUGMENTED,
    )


def _evaluation():
    """evaluation/summary.json as the evaluate stage writes it: evaluate.compare over held-out predictions.

    60 held-out rows, 3 seeds per arm (identical: a converged model); the held-out labels carry
    6 injected flips whose truth is known. clean fixes 12 rows, random predicts as baseline.
    """
    from hardmine.evaluate import compare

    rng = np.random.default_rng(4)
    n = 60
    true = np.arange(n) % 3
    given = true.copy()
    given[:6] = (true[:6] + 1) % 3
    base = np.where(rng.random(n) < 0.75, true, (true + 2) % 3)
    wrong = np.flatnonzero(base != true)
    clean = base.copy()
    clean[wrong[:12]] = true[wrong[:12]]
    rows = []
    for arm, pred, train in (("baseline", base, 150), ("clean", clean, 144), ("random", base.copy(), 165)):
        for s in range(3):
            rows.append({"arm": arm, "seed": s, "pred": pred.astype(np.int32), "confidence": np.full(n, 0.8, np.float32),
                         "train_rows": train, "n_augmented": 15 if arm == "random" else 0})
    summary = compare(pa.Table.from_pylist(rows), given, y_true=true, num_labels=3, resamples=500)
    summary.update({"test_rows": n, "seconds": 1.5, "aug_ratio": 0.1, "review_as": "drop", "backbone": "frozen"})
    return summary


def _sweep():
    """(sweep/results.parquet, sweep/best.json) written by the sweep's own writers (tests.test_sweep_choice.fake_sweep)."""
    from tests.test_sweep_choice import fake_sweep

    table, _, best = fake_sweep()
    return table, best


def _early_run(root) -> RunStore:
    store = RunStore(str(root))
    ds = _dataset()
    store.write_table("dataset.parquet", ds)
    store.update_manifest(labels=NAMES, name="report-test")
    counts = dict(zip(*np.unique(ds.column("label_name").to_pylist(), return_counts=True)))
    store.mark("prepare", "done", summary={"rows": ds.num_rows, "test_rows": 0, "classes": 3,
                                           "class_counts": {k: int(v) for k, v in counts.items()}, "dropped_empty": 2})
    folds = [{"fold": f, "rows": 50, "accuracy": 0.8 + f / 100, "started": 1000.0 + f, "finished": 1010.0 + f,
              "resumed_after_epochs": []} for f in range(3)]
    store.mark("oof", "done", summary={"accuracy": 0.8123, "runner": "ray task", "folds": folds})
    store.mark("holdout", "done", summary={})
    return store


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run") / "demo"
    store = _early_run(root)
    store.mark("prepare", "done", summary={**store.manifest()["stages"]["prepare"]["summary"], "test_rows": 30})
    store.mark("holdout", "done", summary={"test_accuracy_fold_ensemble": 0.7777, "rows": 30})
    ds = store.read_table("dataset.parquet")
    labels = ds.column("label").to_numpy().astype(np.int64)
    probs, true, noisy = _probs(labels)
    scores, summary = score_table(ds.column("id"), labels, probs, label_names=NAMES)
    is_noisy = np.zeros(len(labels), bool)
    is_noisy[noisy] = True
    summary["detection"] = detection_metrics(scores.column("is_label_issue").to_numpy(zero_copy_only=False), is_noisy)
    store.write_table("scores.parquet", scores)
    store.write_json("label_quality.json", summary)
    store.write_table("truth.parquet", pa.table({"id": ds.column("id"), "true_label": pa.array(true, pa.int32()),
                                                 "is_noisy": pa.array(is_noisy)}))
    selected, sel_summary = select(scores, ds, hardness_quantile=0.2)
    store.write_table("selected.parquet", selected)
    hard = hard_mask(selected, scores)
    result = analyze(scores, ds, NAMES, hard_mask=hard, hard_rule=sel_summary["hard_rule"], top_pairs=5, top_tokens=3)
    write_analysis(result, store.path("analysis"))
    hardness_histogram(scores, NAMES, store.path("plots/hardness_histogram.png"), hard_mask=hard)
    hard_per_class(result["per_class"], store.path("plots/hard_per_class.png"))
    confusion_heatmap(scores, NAMES, store.path("plots/confusion_hard.png"), hard_mask=hard)
    store.mark("score", "done", summary={"label_issues": int(scores.column("is_label_issue").to_numpy().sum())})
    store.mark("select", "done", summary={"actions": sel_summary["actions"], "n_hard": sel_summary["n_hard"],
                                          "hardness_threshold": sel_summary["hardness_threshold"]})
    store.write_table("augmented.parquet", _augmented())
    evaluation = _evaluation()
    store.write_json("evaluation/summary.json", evaluation)
    sweep_results, sweep_best = _sweep()
    store.write_table("sweep/results.parquet", sweep_results)
    store.write_json("sweep/best.json", sweep_best)
    path = R.write_report(str(root), strict=True)
    with open(path, encoding="utf-8") as f:
        page = f.read()
    return {"store": store, "page": page, "scores": scores, "path": path, "evaluation": evaluation}


def _section(page: str, anchor: str) -> str:
    m = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
    assert m, f"section {anchor} missing"
    return m.group(1)


def test_full_report_has_every_section_and_no_missing_notes(full_run):
    page = full_run["page"]
    assert full_run["path"].endswith("/demo/report.html")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for anchor, title in R.SECTIONS:
        assert f"<h2>{title}</h2>" in _section(page, anchor)
    assert R.NOT_RUN not in page
    assert "could not be rendered" not in page
    # self-contained: no external assets or scripts
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page.lower()
    # numbers from the manifest
    assert "0.8123" in _section(page, "oof") and "0.7777" in _section(page, "oof")
    assert "2</dd>" in _section(page, "dataset")  # dropped_empty


def test_user_text_and_names_are_escaped(full_run):
    page = full_run["page"]
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; refund my 요금 please" in page
    assert "<b>account</b>" not in page and "&lt;b&gt;account&lt;/b&gt;" in page
    assert "<i>completely</i>" not in page and "&lt;i&gt;completely&lt;/i&gt;" in page
    assert "&lt;boom&gt;" in page
    assert "배송 문의" in page  # Korean passes through unchanged (UTF-8 page)


def test_label_issue_table_lists_top_issues_in_rank_order(full_run):
    sec = _section(full_run["page"], "label-issues")
    scores = full_run["scores"]
    flag = scores.column("is_label_issue").to_numpy(zero_copy_only=False)
    assert flag[0], "the <script> row was planted as a label error"
    ranked = sorted(
        (r, i) for r, i, f in zip(scores.column("issue_rank").to_pylist(), scores.column("id").to_pylist(), flag) if f
    )
    positions = [sec.index(f'<span dir="auto">{i}</span>') for _, i in ranked]
    assert positions == sorted(positions)
    rows = R.label_issue_rows(scores, full_run["store"].read_table("dataset.parquet"), NAMES, top=3)
    assert rows.num_rows == 3 and rows.column("issue_rank").to_pylist() == [r for r, _ in ranked[:3]]
    # suggested label of the <script> row: its planted true class (1)
    script_row = [r for r in R.label_issue_rows(scores, None, NAMES, top=100).to_pylist() if r["id"] == "c0-0"][0]
    assert script_row["suggested_name"] == NAMES[1] and script_row["text"] is None
    # detection vs the injected truth and the dataset-level estimate
    assert "precision" in sec and "Detection against the injected truth" in sec
    assert "estimated wrong labels" in sec and "estimated noise rate" in sec


def test_augmentation_funnel_counts():
    f = R.augmentation_funnel(_augmented())
    assert (f["generated"], f["kept"], f["rejected"], f["errors"], f["unexplained"]) == (8, 3, 5, 1, 0)
    steps = {s["step"]: (s["rejected"], s["remaining"]) for s in f["steps"]}
    assert steps["error"] == (1, 7)
    assert steps["length"] == (1, 6)
    assert steps["similarity"] == (2, 4)
    assert steps["near_duplicate"] == (1, 3)
    assert f["steps"][-1]["remaining"] == f["kept"]
    by = {m["method"]: m for m in f["by_method"]}
    assert (by["eda"]["generated"], by["eda"]["kept"]) == (4, 2)
    assert by["offline-bt"]["errors"] == 1 and by["offline-bt"]["reasons"] == {"error": 1, "low_similarity": 2}
    assert by["eda"]["mean_similarity_kept"] == pytest.approx((0.91 + 0.88) / 2, abs=1e-6)
    # with the configured filters known, filters that did not run and rejected nothing are left out
    only = R.augmentation_funnel(_augmented(), filters=["length", "similarity", "near_duplicate"])
    assert [s["step"] for s in only["steps"]] == ["error", "length", "similarity", "near_duplicate"]
    with pytest.raises(ValueError, match="reject_reason"):
        R.augmentation_funnel(_augmented().drop_columns(["reject_reason"]))


def test_augmentation_section_in_page(full_run):
    sec = _section(full_run["page"], "augmentation")
    funnel = re.search(r"funnel: .*?</table>", sec, re.S).group(0)
    cells = re.findall(r"<tr><td>([^<]*|<b>kept</b>)</td><td[^>]*>([^<]*)</td><td[^>]*>([^<]*)</td><td class=num>([\d,]+)</td></tr>", funnel)
    remaining = {c[0]: int(c[3]) for c in cells}
    assert remaining["generated"] == 8 and remaining["per-row errors"] == 7 and remaining["length"] == 6
    assert remaining["similarity"] == 4 and remaining["<b>kept</b>"] == 3
    # examples: kept pair (source text -> variant) and rejected rows with their reason; the error row
    assert "택배 배송 도착 조회 지연" in sec and "low_similarity" in sec and "near_duplicate_variant" in sec
    assert "Rows with an error (1)" in sec and "translation failed" in sec


def test_embedded_images_decode(full_run):
    from PIL import Image

    blobs = PNG.findall(full_run["page"])
    assert len(blobs) == 5  # hardness, per class, confusion, arms, sweep
    for b in blobs:
        img = Image.open(io.BytesIO(base64.b64decode(b)))
        img.load()
        assert img.format == "PNG" and img.size[0] >= 300 and img.size[1] >= 200
        assert np.asarray(img.convert("L")).std() > 5  # not a blank canvas
    for anchor in ("hardness", "per-class", "confusion", "arms", "sweep"):
        assert PNG.search(_section(full_run["page"], anchor)), anchor


def _arm_row(table_html: str, arm: str) -> str:
    m = re.search(rf"<tr><td>(?:<b>)?{re.escape(arm)}(?:</b>)?</td>(.*?)</tr>", table_html, re.S)
    assert m, f"no row for {arm}"
    return m.group(1)


def test_arm_comparison_renders_the_deltas_evaluate_computed(full_run):
    """The Δ columns come from a summary written by evaluate.compare itself (no hand-written fixture)."""
    sec = _section(full_run["page"], "arms")
    ev = full_run["evaluation"]
    given_html, true_html = sec.split("Against the true held-out labels")
    assert "Against the given held-out labels" in given_html
    assert "accuracy (given labels)" in given_html and "accuracy (true labels)" in true_html
    for html_part, rec_of in ((given_html, lambda a: ev["arms"][a]), (true_html, lambda a: ev["arms"][a]["true_labels"])):
        clean = _arm_row(html_part, "clean")
        d = rec_of("clean")["vs_baseline"]
        for m in ("accuracy", "macro_f1"):
            assert f"{d[m]['mean']:+.4f}" in clean and f"[{d[m]['lo']:+.4f}, {d[m]['hi']:+.4f}]" in clean
        assert d["accuracy"]["excludes_zero"] and "≠0" in clean and "higher" in clean
        assert f"{d['mcnemar']['p_value']:.3g}" in clean
        random = _arm_row(html_part, "random")
        r = rec_of("random")["vs_baseline"]["accuracy"]
        assert r["lo"] == r["hi"] == 0.0 and "not distinguishable" in random and "≠0" not in random
        base = _arm_row(html_part, "baseline")
        a = rec_of("baseline")["accuracy"]
        assert f"{a['mean']:.4f}" in base and f"[{a['lo']:.4f}, {a['hi']:.4f}]" in base
    assert given_html.index(">baseline<") < given_html.index(">clean<") < given_html.index(">random<")
    assert "6 of 60 given held-out labels differ" in sec
    rows = {r["arm"]: r for r in R.arm_rows(R.read_evaluation_summary(ev), "true")}
    assert rows["clean"]["diff"]["accuracy"]["excludes_zero"] is True and rows["baseline"]["diff"] == {}
    assert rows["clean"]["train_rows"] == 144
    given_only = {k: v for k, v in ev.items()}
    given_only["label_sets"] = ["given"]
    with pytest.raises(ValueError, match="true labels"):
        R.arm_rows(given_only, "true")


def test_arm_comparison_without_truth_says_given_labels_only(tmp_path):
    from hardmine.evaluate import compare

    store = _early_run(tmp_path / "given")
    y = np.arange(30) % 3
    runs = pa.Table.from_pylist([{"arm": a, "seed": 0, "pred": y.astype(np.int32), "confidence": np.full(30, 0.9, np.float32)}
                                 for a in ("baseline", "targeted")])
    store.write_json("evaluation/summary.json", compare(runs, y, resamples=100))
    sec = _section(R.build_report(store, strict=True), "arms")
    assert "given labels only" in sec and "Against the true held-out labels" not in sec and "(true labels)" not in sec
    assert "not distinguishable" in _arm_row(sec, "targeted")


def test_sweep_grid_and_section(full_run):
    """The heat map shows Δ vs the baseline with marks; the section names the validation choice and its test confirmation."""
    _, best = _sweep()
    g = R.sweep_grid(json.loads(json.dumps(best)))
    assert g["actions"] == ["drop", "review"] and g["thresholds"] == [0.1, 0.3] and g["ratios"] == [0.0, 0.2]
    assert g["marked"].sum() == 2 and g["chosen"] == (0, 0, 1)
    sec = _section(full_run["page"], "sweep")
    assert "Chosen on the validation split" in sec and "Confirmed on the test split" in sec
    assert "150 of the training rows" in sec and "lower bound" in sec
    assert "baseline</b> (no action)" in sec and "true labels" in sec and "≠0" in sec
    assert "optimistic" in sec  # the note on the chosen cell's validation numbers
    assert sec.count("data:image/png;base64,") == 1
    with pytest.raises(ValueError, match="metric"):
        R.sweep_grid(json.loads(json.dumps(best)), "bogus")


def test_sweep_section_before_confirmation_and_with_a_bad_best_json(tmp_path):
    from tests.test_sweep_choice import fake_sweep

    store = _early_run(tmp_path / "sw")
    _, _, partial = fake_sweep(with_confirmation=False)
    store.write_json("sweep/best.json", partial)
    sec = _section(R.build_report(store, strict=True), "sweep")
    assert "Not confirmed yet" in sec and "Chosen on the validation split" in sec
    store.write_json("sweep/best.json", {"metric": "accuracy", "best": None})  # an old best.json
    assert "could not be rendered" in _section(R.build_report(store), "sweep")


def test_early_run_renders_not_run_yet_notes(tmp_path):
    store = _early_run(tmp_path / "early")
    path = R.write_report(str(tmp_path / "early"), strict=True)
    page = open(path, encoding="utf-8").read()
    for anchor in ("hardness", "per-class", "confusion", "label-issues", "augmentation", "arms", "sweep"):
        assert R.NOT_RUN in _section(page, anchor), anchor
    for anchor in ("dataset", "oof"):
        assert R.NOT_RUN not in _section(page, anchor)
    assert "hardmine evaluate CONFIG" in _section(page, "arms")
    assert "No held-out split" in _section(page, "oof")
    assert not PNG.search(page)
    # a failed stage is named with its error
    store.mark("score", "failed", error="ValueError: <bad> probs")
    page = R.build_report(store)
    assert "The score stage failed: ValueError: &lt;bad&gt; probs" in _section(page, "label-issues")


def test_bad_artifact_is_reported_in_place(tmp_path):
    store = _early_run(tmp_path / "bad")
    store.write_json("evaluation/summary.json", {"arms": "oops"})
    page = R.build_report(store)
    assert "could not be rendered" in _section(page, "arms") and "Arm comparison" in page.split("<section")[0]
    assert R.NOT_RUN in _section(page, "sweep")
    with pytest.raises(ValueError, match="arms"):
        R.build_report(store, strict=True)


def test_write_report_needs_a_run_dir(tmp_path):
    with pytest.raises(ValueError, match="manifest.json"):
        R.write_report(str(tmp_path / "nope"))
    assert not (tmp_path / "nope").exists()
    _early_run(tmp_path / "ok")
    from hardmine.cli import main

    assert main(["report", str(tmp_path / "ok")]) == 0  # the one report command line: `hardmine report RUN_DIR`
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert (tmp_path / "ok" / "report.html").stat().st_size > 1000
    assert not [p for p in (tmp_path / "ok").iterdir() if p.name.startswith(".tmp")]


# --------------------------------------------------------------------------- score signals and the data map

DUP_TEXT = "where is my <parcel> & my refund"


@pytest.fixture(scope="module")
def signal_run(tmp_path_factory):
    """A run whose score and select stages are the real ones (pipeline.score, pipeline.select_stage): OOF
    probabilities over 3 epochs, frozen embeddings with planted outliers, one planted conflicting
    duplicate (two rows of different classes with the same text) and the logreg dual model."""
    from hardmine.config import from_dict
    from hardmine.embed import embeddings_table
    from hardmine.pipeline import Context
    from hardmine.pipeline.score import score
    from hardmine.pipeline.select import select_stage

    root = tmp_path_factory.mktemp("signals")
    cfg = from_dict({"name": "sig", "run_root": str(root), "data": {"path": "data.csv"}, "oof": {"folds": 3},
                     "score": {"knn_k": 5, "outlier_quantile": 0.02, "duplicates": "exact", "dual_model": "logreg"}})
    store = _early_run(cfg.run_dir)
    ds = _dataset()
    texts = ds.column("text").to_pylist()
    texts[53] = texts[104] = DUP_TEXT  # c1-3 (배송 문의) and c2-4 (<b>account</b>)
    ds = ds.set_column(ds.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
    store.write_table("dataset.parquet", ds)
    labels = ds.column("label").to_numpy().astype(np.int64)
    n = len(labels)
    probs, _, _ = _probs(labels)
    rng = np.random.default_rng(1)
    uniform = np.full_like(probs, 1 / probs.shape[1])
    weights = np.clip(np.array([0.3, 0.65, 1.0])[None, :] + rng.normal(0, 0.15, (n, 3)), 0, 1)
    weights[:, -1] = 1.0
    epochs = weights[:, :, None] * probs[:, None, :] + (1 - weights[:, :, None]) * uniform[:, None, :]
    ids = ds.column("id").to_pylist()
    store.write_table("oof.parquet", pa.table({
        "id": pa.array(ids, pa.string()), "fold": pa.array(np.arange(n) % 3, pa.int32()),
        "probs": pa.array(list(probs), pa.list_(pa.float32())),
        "epoch_probs": pa.array([list(e) for e in epochs.astype(np.float32)], pa.list_(pa.list_(pa.float32()))),
    }))
    emb = np.zeros((n, 8), np.float32)
    emb[np.arange(n), labels] = 1.0
    emb += rng.normal(0, 0.1, emb.shape).astype(np.float32)
    emb[[10, 70], 5:] = rng.normal(0, 1, (2, 3)) + 3.0  # far from every class: outliers
    emb[130, :3] = [1.0, 0.0, 0.0]  # a class-2 row among class-0 rows: low neighbour agreement
    store.write_table("embeddings.parquet", embeddings_table(ids, emb))
    store.mark("oof", "done", fingerprint="f-oof", summary={"outputs": ["oof.parquet", "embeddings.parquet"]})
    logs: list[str] = []
    score(Context(cfg, store, logs.append))
    select_stage(Context(cfg, store, logs.append))
    page = R.build_report(store, strict=True)
    return {"store": store, "page": page, "logs": logs}


def test_signal_sections_render_the_score_stage_signals(signal_run):
    store, page = signal_run["store"], signal_run["page"]
    lq = R.read_label_quality(store.read_json("label_quality.json"))
    sig = lq["signals"]
    assert sig["duplicates"]["conflicting_groups"] == 1 and sig["outliers"]["flagged"] >= 2
    for anchor, title in (("data-map", "Data map"), ("outliers", "Outliers and duplicates"), ("dual-model", "Dual model")):
        sec = _section(page, anchor)
        assert f"<h2>{title}</h2>" in sec and R.NOT_RUN not in sec and R.NOT_COMPUTED not in sec, anchor
    assert "could not be rendered" not in page
    nav = page.split("</nav>")[0]
    assert nav.index("#label-issues") < nav.index("#data-map") < nav.index("#outliers") < nav.index("#dual-model") < nav.index("#augmentation")

    out = _section(page, "outliers")
    assert f"{sig['outliers']['flagged']:,} (top 0.02 by mean cosine distance to the 5 nearest rows)" in out
    assert "1 (2 rows)" in out  # conflicting groups (rows)
    # the conflicting group: both texts (escaped), under their two labels
    dup = out.split("Duplicate groups with conflicting labels")[1]
    assert dup.count("where is my &lt;parcel&gt; &amp; my refund") == 2
    assert "c1-3" in dup and "c2-4" in dup and "배송 문의" in dup and "&lt;b&gt;account&lt;/b&gt;" in dup
    # the planted outliers head the outlier table; the misplaced row heads the low-agreement table
    isolated = out.split("Most isolated rows")[1].split("</table>")[0]
    first_two = re.findall(r'<span dir="auto">(c\d-\d+)</span>', isolated)[:2]
    assert set(first_two) == {"c0-10", "c1-20"}
    low = out.split("lowest kNN label agreement")[1].split("</table>")[0]
    assert re.findall(r'<span dir="auto">(c\d-\d+)</span>', low)[0] == "c2-30"
    sel = store.manifest()["stages"]["select"]["summary"]
    assert f"{sel['n_outliers']:,} outliers, {sel['n_conflicting_duplicates']:,} conflicting duplicates" in out

    dual = _section(page, "dual-model")
    m = sig["dual_model"]
    by_value = sorted(m["importances"], key=lambda f: (-m["importances"][f], f))
    top_feature = by_value[0]
    assert m["importances"][top_feature] > 0 and m["model"] in dual and f"<td>{top_feature}</td>" in dual
    # the table is ordered by importance (label_quality.json itself is stored with sorted keys)
    assert [dual.index(f"<td>{f}</td>") for f in by_value] == sorted(dual.index(f"<td>{f}</td>") for f in by_value)
    assert f"{m['base_rate'] * 100:.1f}%" in dual and f"<dd>{'undefined' if m['auc'] is None else R.html.fmt(m['auc'])}</dd>" in dual
    scores = store.read_table("scores.parquet")
    risk = scores.column("error_risk").to_numpy()
    top_id = scores.column("id").to_pylist()[int(np.argmax(risk))]
    rows = dual.split("highest error_risk")[1]
    assert re.findall(r'<span dir="auto">(c\d-\d+)</span>', rows)[0] == top_id

    dm = _section(page, "data-map")
    assert PNG.search(dm) and store.exists("plots/data_map.png")  # drawn by the select stage
    per_class = sel["data_map"]["per_class"]
    for c, r in per_class.items():
        name = R.html.escape(NAMES[int(c)])
        assert re.search(rf'<td><span dir="auto">{re.escape(name)}</span></td><td class=num>{sum(r.values())}</td>'
                         rf'<td class=num>{r["easy"]}</td><td class=num>{r["ambiguous"]}</td><td class=num>{r["hard"]}</td>', dm), c
    assert "Dataset Cartography" in dm and "dyn_variability" in dm
    regions = sel["data_map"]["regions"]
    assert sum(regions.values()) == 150 and f"{regions['ambiguous']:,} (" in dm


def test_data_map_is_drawn_from_the_tables_without_the_stored_png(signal_run):
    store = signal_run["store"]
    png = store.read_bytes("plots/data_map.png")
    store.delete("plots/data_map.png")
    try:
        dm = _section(R.build_report(store, strict=True), "data-map")
    finally:
        store.write_bytes("plots/data_map.png", png)
    from PIL import Image

    blob = PNG.search(dm).group(1)
    img = Image.open(io.BytesIO(base64.b64decode(blob)))
    assert img.format == "PNG" and np.asarray(img.convert("L")).std() > 5


def test_signal_sections_without_signals_say_not_computed(full_run):
    page = full_run["page"]
    assert "No training dynamics" in _section(page, "data-map") and not PNG.search(_section(page, "data-map"))
    for anchor in ("outliers", "dual-model"):
        sec = _section(page, anchor)
        assert R.NOT_COMPUTED in sec and R.NOT_RUN not in sec, anchor


def test_signal_sections_not_run_yet(tmp_path):
    store = _early_run(tmp_path / "early-signals")
    page = R.build_report(store, strict=True)
    for anchor in ("data-map", "outliers", "dual-model"):
        assert R.NOT_RUN in _section(page, anchor), anchor
    assert "hardmine select CONFIG" in _section(page, "data-map")


def test_every_json_the_report_reads_is_a_declared_stage_output():
    """The report reads JSON only from files a stage declares it writes (hardmine.pipeline.STAGES), and each
    one the fixture above holds came from that stage's own writer (score_table, analyze + write_analysis,
    evaluate.compare, the sweep's sweep_best); the whole real demo run is rendered strictly in
    tests/test_console_budget.py::test_demo_job_fits_the_console_budget (slow)."""
    from pathlib import Path

    from hardmine.pipeline import STAGES

    src = "\n".join(p.read_text() for p in Path(R.__file__).parent.rglob("*.py"))
    reads = set(re.findall(r'\.json\("([^"]+\.json)"\)', src))
    declared = {o.path for stage in STAGES for o in stage.writes}
    assert reads and reads <= declared, reads - declared
    assert reads == {"label_quality.json", "analysis/analysis.json", "evaluation/summary.json", "sweep/best.json"}
