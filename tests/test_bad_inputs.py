"""The bad-input corpus: every case is one command a user could type, with one thing wrong.

Each case asserts exit code 2, no traceback, and the key words of its one message (what, where,
the fix). Data and config cases run the prepare stage (no Ray); review and run-directory cases
use a scored run directory built without Ray; concurrency uses a second real process holding
the run's lock. Checks that must happen before Ray starts are asserted by ``ray`` not being
initialised afterwards.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hardmine import cli

CLASSES = {
    "billing": ["invoice", "charge", "payment", "card", "refund", "bill", "fee", "price"],
    "shipping": ["parcel", "courier", "tracking", "delivery", "package", "address", "box", "arrive"],
    "account": ["password", "login", "email", "username", "profile", "reset", "locked", "signin"],
}


def rows(n_per_class: int = 12) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for label, words in CLASSES.items():
        for i in range(n_per_class):
            out.append({"id": f"{label}-{i}", "text": "my " + " ".join(rng.choice(words, 4)) + " please", "label": label})
    return out


def write_csv(path: Path, data: list[dict] | None = None) -> Path:
    pd.DataFrame(data or rows()).to_csv(path, index=False)
    return path


def write_config(tmp: Path, data_path, extra: str = "") -> Path:
    """A config for ``data_path``; ``extra`` is YAML merged over it (so it may add keys to data:)."""
    import yaml

    from hardmine.config import deep_merge

    base = {"name": "t", "run_root": str(tmp / "runs"), "data": {"path": str(data_path)}, "oof": {"folds": 2}}
    cfg = tmp / "config.yaml"
    cfg.write_text(yaml.safe_dump(deep_merge(base, yaml.safe_load(textwrap.dedent(extra)) or {})))
    return cfg


def _dir(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir()
    for name, text in (files or {}).items():
        (path / name).write_text(text)
    return path


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clear(code: int, out: str, err: str, words: list[str]) -> None:
    text = out + err
    assert code == 2, f"exit code {code}, output:\n{text}"
    assert "Traceback" not in text, text
    assert "hardmine: error:" in err, text
    low = err.lower()
    missing = [w for w in words if w.lower() not in low]
    assert not missing, f"missing {missing} in:\n{err}"


# ============================================================================ data files (prepare stage)

def _csv_text(tmp: Path, name: str, text: str, encoding="utf-8") -> Path:
    p = tmp / name
    p.write_bytes(text.encode(encoding))
    return p


def _jsonl(tmp: Path, name: str, records: list) -> Path:
    p = tmp / name
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    return p


def _base_csv_lines(n_per_class=12) -> list[str]:
    return [f"{r['id']},{r['text']},{r['label']}" for r in rows(n_per_class)]


def _with(label_fn=None, text_fn=None) -> list[dict]:
    out = []
    for i, r in enumerate(rows()):
        r = dict(r)
        if label_fn:
            r["label"] = label_fn(i, r["label"])
        if text_fn:
            r["text"] = text_fn(i, r["text"])
        out.append(r)
    return out


DATA_CASES = {
    "empty_file": (lambda t: _csv_text(t, "d.csv", ""), "", ["d.csv", "empty"]),
    "header_only": (lambda t: _csv_text(t, "d.csv", "id,text,label\n"), "", ["d.csv", "no rows"]),
    "missing_file": (lambda t: t / "nope.csv", "", ["nope.csv", "does not exist", "data.path"]),
    "directory_not_dataset": (lambda t: _dir(t / "adir"), "", ["adir"]),
    "unknown_suffix": (lambda t: _csv_text(t, "d.xyz", "id,text,label\n"), "", ["data.format"]),
    "parquet_really_csv": (lambda t: _csv_text(t, "d.parquet", "id,text,label\n1,a,b\n"), "", ["d.parquet", "parquet", "data.format"]),
    "jsonl_really_csv": (lambda t: _csv_text(t, "d.jsonl", "id,text,label\n1,a,b\n"), "", ["d.jsonl", "line 1", "json"]),
    "jsonl_not_object": (lambda t: _csv_text(t, "d.jsonl", '["a", "b"]\n'), "", ["line 1", "object"]),
    "undecodable_bytes": (lambda t: _csv_text(t, "d.csv", "id,text,label\n1,caf\xe9 bill,billing\n", "latin-1"), "",
                          ["d.csv", "encoding", "line 2"]),
    "unknown_encoding": (lambda t: write_csv(t / "d.csv"), "data:\n  encoding: utf-99\n", ["utf-99", "data.encoding"]),
    "missing_text_column": (lambda t: _csv_text(t, "d.csv", "id,body,label\n" + "\n".join(_base_csv_lines())), "",
                            ["'text'", "data.text_column"]),
    "missing_label_column": (lambda t: _csv_text(t, "d.csv", "id,text,category\n" + "\n".join(_base_csv_lines())), "",
                             ["'label'", "data.label_column"]),
    "duplicate_header": (lambda t: _csv_text(t, "d.csv", "id,text,label,text\n" + "\n".join(l + ",x" for l in _base_csv_lines())), "",
                         ["duplicate", "text"]),
    "duplicate_ids": (lambda t: write_csv(t / "d.csv", [dict(r, id="same") if i < 2 else r for i, r in enumerate(rows())]), "",
                      ["duplicate ids", "same", "data.id_column"]),
    "empty_ids": (lambda t: write_csv(t / "d.csv", [dict(r, id="") if i == 3 else r for i, r in enumerate(rows())]), "",
                  ["missing id", "row"]),
    "empty_text": (lambda t: write_csv(t / "d.csv", _with(text_fn=lambda i, x: "   " if i == 5 else x)), "",
                   ["empty or missing text", "data.drop_empty"]),
    "missing_label": (lambda t: write_csv(t / "d.csv", _with(label_fn=lambda i, x: "" if i == 4 else x)), "",
                      ["missing label", "row"]),
    "label_nan_token": (lambda t: write_csv(t / "d.csv", _with(label_fn=lambda i, x: "nan" if i == 4 else x)), "",
                        ["missing label"]),
    "label_null_token": (lambda t: write_csv(t / "d.csv", _with(label_fn=lambda i, x: "null" if i in (1, 7) else x)), "",
                         ["missing label"]),
    "label_case_variants": (lambda t: write_csv(t / "d.csv", _with(label_fn=lambda i, x: x.capitalize() if i % 2 and x == "billing" else x)), "",
                            ["billing", "Billing"]),
    "single_class": (lambda t: write_csv(t / "d.csv", [dict(r, label="billing") for r in rows()]), "", ["class"]),
    "too_few_per_class": (lambda t: write_csv(t / "d.csv", [r for r in rows() if r["label"] != "account"] + rows()[24:25]), "",
                          ["oof.folds"]),
    "list_labels_jsonl": (lambda t: _jsonl(t, "d.jsonl", [dict(r, label=[r["label"], "x"]) if i == 2 else r for i, r in enumerate(rows())]), "",
                          ["label", "row"]),
    "dict_labels_jsonl": (lambda t: _jsonl(t, "d.jsonl", [dict(r, label={"name": r["label"]}) if i == 2 else r for i, r in enumerate(rows())]), "",
                          ["label", "row"]),
    "list_text_jsonl": (lambda t: _jsonl(t, "d.jsonl", [dict(r, text=["a", "b"]) if i == 2 else r for i, r in enumerate(rows())]), "",
                        ["text", "row"]),
    "invalid_jsonl_line": (lambda t: _csv_text(t, "d.jsonl", "\n".join(json.dumps(r) for r in rows()[:5]) + "\n{broken\n"), "",
                           ["line 6", "json"]),
    "label_ids_out_of_range": (lambda t: write_csv(t / "d.csv", _with(label_fn=lambda i, x: str(i % 3 + (5 if i == 0 else 0)))),
                               "data:\n  labels: [billing, shipping, account]\n", ["out of range", "data.labels"]),
    "unknown_labels_vs_vocab": (lambda t: write_csv(t / "d.csv"), "data:\n  labels: [billing, shipping]\n", ["unknown labels", "account"]),
    "knn_k_too_large": (lambda t: write_csv(t / "d.csv"), "score:\n  knn_k: 500\n", ["score.knn_k"]),
    "hf_datasetdict": (lambda t: _dir(t / "hf", {"dataset_dict.json": '{"splits": ["train", "test"]}'}), "",
                       ["datasetdict", "train"]),
    "hf_dir_no_arrow": (lambda t: _dir(t / "hf2"), "data:\n  format: hf\n", ["arrow"]),
    "tsv_ragged": (lambda t: _csv_text(t, "d.tsv", "id\ttext\tlabel\n" + "\n".join(l.replace(",", "\t") for l in _base_csv_lines()) + "\nx1\tonly two\n"), "",
                   ["d.tsv"]),
}


def _truth_case(content: str | None, extra_words: list[str]):
    def setup(t: Path) -> tuple[Path, str]:
        data = write_csv(t / "d.csv")
        if content is None:
            return data, f"data:\n  truth_path: {t / 'missing_truth.csv'}\n"
        (t / "truth.csv").write_text(content)
        return data, f"data:\n  truth_path: {t / 'truth.csv'}\n"
    return setup, extra_words


TRUTH_CASES = {
    "truth_missing_file": _truth_case(None, ["missing_truth.csv", "does not exist", "data.truth_path"]),
    "truth_missing_columns": _truth_case("id,label\nbilling-0,billing\n", ["true_label"]),
    "truth_unknown_label": _truth_case("id,true_label\nbilling-0,refunds\n", ["refunds", "true_label"]),
    "truth_unknown_ids": _truth_case("id,true_label\nnot-a-row,billing\n", ["not-a-row"]),
    "truth_duplicate_ids": _truth_case("id,true_label\nbilling-0,billing\nbilling-0,shipping\n", ["billing-0", "duplicate"]),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_file(case, tmp_path, capsys):
    make, extra, words = DATA_CASES[case]
    path = make(tmp_path)
    cfg = write_config(tmp_path, path, extra)
    assert_clear(*run_cli(["prepare", cfg], capsys), words)


@pytest.mark.parametrize("case", sorted(TRUTH_CASES))
def test_bad_truth_file_fails_in_prepare(case, tmp_path, capsys):
    setup, words = TRUTH_CASES[case]
    data, extra = setup(tmp_path)
    cfg = write_config(tmp_path, data, extra)
    assert_clear(*run_cli(["prepare", cfg], capsys), words)


def test_test_path_overlapping_ids(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv")
    test = write_csv(tmp_path / "t.csv", rows()[:9])
    cfg = write_config(tmp_path, data, f"data:\n  test_path: {test}\n")
    assert_clear(*run_cli(["prepare", cfg], capsys), ["both", "data.test_path"])


def test_test_path_unknown_label(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv")
    test = write_csv(tmp_path / "t.csv", [dict(r, id=f"t{i}", label="refunds" if i == 0 else r["label"]) for i, r in enumerate(rows(3))])
    cfg = write_config(tmp_path, data, f"data:\n  test_path: {test}\n")
    assert_clear(*run_cli(["prepare", cfg], capsys), ["refunds", "t.csv"])


# ============================================================================ config (load time or preflight)

CONFIG_CASES = {
    "config_missing": (None, [], ["does not exist"]),
    "config_not_yaml": ("name: [unclosed\n", [], ["not valid yaml"]),
    "config_top_level_list": ("- a\n- b\n", [], ["mapping"]),
    "unknown_key": ("oof:\n  fold: 3\n", [], ["oof.fold"]),
    "unknown_section": ("ooof:\n  folds: 3\n", [], ["ooof"]),
    "folds_too_small": ("oof:\n  folds: 1\n", [], ["oof.folds"]),
    "folds_not_int": ("oof:\n  folds: five\n", [], ["oof.folds"]),
    "set_without_equals": ("", ["--set", "oof.folds"], ["key.path=value"]),
    "set_invalid_yaml": ("", ["--set", "oof.folds=[1,"], ["--set", "not valid yaml"]),
    "set_unknown_key": ("", ["--set", "oof.nope=1"], ["oof.nope"]),
    "set_empty_key_part": ("", ["--set", "oof..folds=3"], ["empty"]),
    "rank_by_without_dual": ("score:\n  dual_model: 'off'\n  review_rank_by: error_risk\n", [], ["dual_model"]),
    "hardness_quantile_out_of_range": ("select:\n  hardness_quantile: 1.5\n", [], ["select.hardness_quantile"]),
    "unknown_generator_type": ("augment:\n  generators:\n    - {type: paraphrasor}\n", [], ["paraphrasor"]),
    "generator_option_typo": ("augment:\n  generators:\n    - {type: eda, alpah: 0.1}\n", [], ["alpah"]),
    "unknown_filter": ("augment:\n  filters: {simliarity: true}\n", [], ["simliarity"]),
    "filter_option_typo": ("augment:\n  filters: {similarity: {min_sim: 0.5, maxx: 1}}\n", [], ["maxx"]),
    "unknown_arm": ("evaluate:\n  arms: [baseline, magic]\n", [], ["magic"]),
    "unknown_packaged_model": ("oof:\n  model: packaged:gpt\n", [], ["packaged:gpt", "oof.model"]),
    "local_model_missing": ("oof:\n  model: ./no/such/model\n", [], ["./no/such/model", "does not exist"]),
    "gpu_on_cpu_machine": ("oof:\n  gpus_per_fold: 1\n  backbones: [frozen]\n", [], ["gpus_per_fold", "gpu"]),
    "gpu_with_zero_local_gpus": ("oof:\n  gpus_per_fold: 0.5\n  backbones: [frozen]\nray:\n  num_gpus: 0\n", [], ["ray.num_gpus"]),
    "negative_cpus": ("ray:\n  num_cpus: -2\n", [], ["ray.num_cpus"]),
    "run_root_is_file": ("__RUN_ROOT_FILE__", [], ["run_root", "not a directory"]),
    "unknown_backbone": ("oof:\n  backbones: [bert]\n", [], ["bert"]),
    "sampling_key_typo": ("augment:\n  generators:\n    - {type: vllm, model: org/llm, task: paraphrase, sampling: {temprature: 0.7}}\n",
                          [], ["temprature"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config(case, tmp_path, capsys):
    import ray

    text, extra_argv, words = CONFIG_CASES[case]
    data = write_csv(tmp_path / "d.csv")
    if text is None:
        cfg = tmp_path / "absent.yaml"
    elif text == "__RUN_ROOT_FILE__":
        (tmp_path / "afile").write_text("x")
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"name: t\nrun_root: {tmp_path / 'afile' / 'runs'}\ndata:\n  path: {data}\n")
    elif case in ("config_not_yaml", "config_top_level_list"):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(text)
    else:
        cfg = write_config(tmp_path, data, text)
    was = ray.is_initialized()
    assert_clear(*run_cli(["run", cfg, *extra_argv], capsys), words)
    assert ray.is_initialized() == was, "the check must fail before Ray starts"


# ============================================================================ review files and damaged run directories


@pytest.fixture
def scored_run(tmp_path):
    """A run directory as the score stage leaves it (built without Ray)."""
    from hardmine.scoring import score_table
    from hardmine.store import RunStore

    n, k = 60, 3
    names = ["a", "b", "c"]
    y = np.arange(n) % k
    probs = np.full((n, k), 0.05)
    probs[np.arange(n), y] = 0.9
    given = y.copy()
    given[::10] = (y[::10] + 1) % k
    probs = probs / probs.sum(1, keepdims=True)
    ids = [f"r{i}" for i in range(n)]
    store = RunStore(str(tmp_path / "runs" / "t"))
    store.write_table("dataset.parquet", pa.table({
        "id": ids, "text": [f"text number {i}" for i in range(n)],
        "label": pa.array(given, pa.int32()), "label_name": [names[v] for v in given],
    }))
    scores, _ = score_table(ids, given, probs, label_names=names)
    store.write_table("scores.parquet", scores)
    store.update_manifest(labels=names)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: t\nrun_root: {tmp_path / 'runs'}\ndata: {{path: unused.csv}}\n")
    return store, cfg


def _corrections(tmp: Path, name: str, content: str) -> Path:
    p = tmp / name
    p.write_text(content)
    return p


REVIEW_IMPORT_CASES = {
    "import_missing_file": (None, ["does not exist"]),
    "import_wrong_columns": ("identifier,new_label\nr0,a\n", ["corrected_label"]),
    "import_unknown_ids": ("id,corrected_label\nnope,a\n", ["nope"]),
    "import_unknown_label": ("id,corrected_label\nr0,zzz\n", ["zzz"]),
    "import_empty_file": ("", ["empty"]),
    "import_label_studio_not_json": ("[{broken", ["json"]),
    "import_label_studio_wrong_shape": ('{"tasks": 1}', ["label studio"]),
    "import_label_studio_no_choices": ('[{"data": {"id": "r0", "text": "x"}, "annotations": [{"result": []}]}]', []),
}


@pytest.mark.parametrize("case", sorted(REVIEW_IMPORT_CASES))
def test_bad_review_import(case, scored_run, tmp_path, capsys):
    store, cfg = scored_run
    content, words = REVIEW_IMPORT_CASES[case]
    suffix = ".json" if "label_studio" in case else ".csv"
    path = tmp_path / f"missing{suffix}" if content is None else _corrections(tmp_path, f"corr{suffix}", content)
    code, out, err = run_cli(["review", "import", cfg, path], capsys)
    if case == "import_label_studio_no_choices":  # nothing labelled: a clear message, nothing imported
        assert code in (0, 2) and "Traceback" not in out + err
        assert store.manifest().get("dataset_version") in (None, 0)
        return
    assert_clear(code, out, err, words)
    assert store.manifest().get("dataset_version") in (None, 0), "a refused import must not write a version"


def test_review_export_before_score_stage(tmp_path, capsys):
    from hardmine.store import RunStore

    store = RunStore(str(tmp_path / "runs" / "t"))
    store.update_manifest(name="t")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: t\nrun_root: {tmp_path / 'runs'}\ndata: {{path: unused.csv}}\n")
    assert_clear(*run_cli(["review", "export", cfg], capsys), ["hardmine run"])


def test_review_export_unlabelled_missing(scored_run, tmp_path, capsys):
    _, cfg = scored_run
    assert_clear(*run_cli(["review", "export", cfg, "--queue", "active", "--unlabelled", tmp_path / "nope.csv"], capsys),
                 ["nope.csv", "does not exist"])


def test_review_export_rank_by_error_risk_without_column(scored_run, capsys):
    _, cfg = scored_run
    assert_clear(*run_cli(["review", "export", cfg, "--rank-by", "error_risk"], capsys), ["error_risk"])


def test_review_export_truncated_scores(scored_run, capsys):
    store, cfg = scored_run
    p = Path(store.path("scores.parquet"))
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    assert_clear(*run_cli(["review", "export", cfg], capsys), ["scores.parquet", "score"])


def test_review_export_garbage_dataset(scored_run, capsys):
    store, cfg = scored_run
    Path(store.path("dataset.parquet")).write_text("id,text\n1,2\n")
    assert_clear(*run_cli(["review", "export", cfg], capsys), ["dataset.parquet"])


def test_report_of_missing_run_dir(tmp_path, capsys):
    assert_clear(*run_cli(["report", tmp_path / "no_run"], capsys), ["no_run"])


def test_report_of_dir_without_manifest(tmp_path, capsys):
    (tmp_path / "emptyrun").mkdir()
    assert_clear(*run_cli(["report", tmp_path / "emptyrun"], capsys), ["manifest"])


def test_demo_data_into_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert_clear(*run_cli(["demo-data", tmp_path / "f"], capsys), ["f"])


def test_manifest_truncated_is_repaired_not_fatal(scored_run, capsys):
    store, cfg = scored_run
    p = Path(store.path("manifest.json"))
    p.write_text(p.read_text()[:20])
    code, out, err = run_cli(["review", "export", cfg], capsys)
    assert "Traceback" not in out + err and "JSONDecodeError" not in out + err
    assert code in (0, 2)


def test_manifest_is_a_list(scored_run, capsys):
    store, cfg = scored_run
    Path(store.path("manifest.json")).write_text("[1, 2]")
    for bak in Path(store.path("")).glob("manifest.json.*"):
        bak.write_text("[1, 2]")
    code, out, err = run_cli(["review", "export", cfg], capsys)
    assert "Traceback" not in out + err
    assert code in (0, 2)


# ============================================================================ concurrency


def test_second_process_on_a_locked_run_is_refused(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv")
    cfg = write_config(tmp_path, data)
    run_dir = tmp_path / "runs" / "t"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from hardmine.store import RunStore
            with RunStore({str(run_dir)!r}).lock(command="holder"):
                print("locked", flush=True)
                time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True, env={**os.environ},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, out, err = run_cli(["prepare", cfg], capsys)
        assert_clear(code, out, err, [str(holder.pid), ".lock"])
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its stale lock is taken over and the run goes on
    code, out, err = run_cli(["prepare", cfg], capsys)
    assert code == 0, out + err


# ============================================================================ texts and tables that would be scored silently


def test_texts_the_encoder_cannot_read_are_refused_before_training(tmp_path, capsys):
    emoji = ["🙂🙂🙂", "🎉🎉", "😡😡😡😡", "👍", "🔥🔥"]
    data = write_csv(tmp_path / "d.csv", [dict(r, text=emoji[i % 5] * (1 + i % 3)) for i, r in enumerate(rows())])
    cfg = write_config(tmp_path, data)
    assert_clear(*run_cli(["prepare", cfg], capsys), ["[UNK]", "oof.model", "Fix"])


def test_a_few_unreadable_texts_get_a_named_warning(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", [dict(r, text="🙂🙂") if i == 3 else r for i, r in enumerate(rows())])
    cfg = write_config(tmp_path, data)
    code, out, err = run_cli(["prepare", cfg], capsys)
    assert code == 0, out + err
    assert "warning: 1 of" in out and "[UNK]" in out


def test_oof_table_missing_rows_is_refused_by_score(tmp_path):
    from hardmine.config import load_config
    from hardmine.data import DataError
    from hardmine.pipeline import Context
    from hardmine.pipeline.score import score
    from hardmine.store import RunStore

    n, names = 30, ["a", "b", "c"]
    y = np.arange(n) % 3
    store = RunStore(str(tmp_path / "runs" / "t"))
    store.write_table("dataset.parquet", pa.table({"id": [f"r{i}" for i in range(n)], "text": [f"t {i}" for i in range(n)],
                                                   "label": pa.array(y, pa.int32()), "label_name": [names[v] for v in y]}))
    keep = np.ones(n, dtype=bool)
    keep[::3] = False  # a third of the rows have no out-of-fold prediction
    probs = np.full((n, 3), 1 / 3, dtype=np.float32)
    store.write_table("oof.parquet", pa.table({
        "id": [f"r{i}" for i in range(n) if keep[i]], "fold": pa.array([i % 2 for i in range(n) if keep[i]], pa.int32()),
        "probs": pa.array([list(p) for p, k in zip(probs, keep) if k], pa.list_(pa.float32())),
        "epoch_probs": pa.array([[list(p)] for p, k in zip(probs, keep) if k], pa.list_(pa.list_(pa.float32()))),
    }))
    store.update_manifest(labels=names, stages={"oof": {"status": "done", "fingerprint": "f"}})
    cfg = load_config(None, [f"run_root={tmp_path / 'runs'}", "name=t", "data.path=unused.csv"])
    with pytest.raises(DataError, match=r"covers 20 distinct ids of the 30 training rows"):
        score(Context(cfg, store, print))
