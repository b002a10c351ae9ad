"""Issue 15, "no silent garbage": every bad input is one DataError saying what, where and the fix.

Pure data functions (and the prepare stage, which starts no Ray): fast.
"""
from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardmine.config import DataConfig, from_dict
from hardmine.data import DataError, load_split, read_raw, read_truth, to_canonical


def cfg(**kw):
    return DataConfig(path="x", **kw)


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(p)


def csv_rows(labels, texts=None) -> str:
    texts = texts or [f"text {i}" for i in range(len(labels))]
    return "id,text,label\n" + "".join(f"{chr(97 + i)},{t},{lab}\n" for i, (t, lab) in enumerate(zip(texts, labels)))


def error(fn, *args, **kw) -> str:
    with pytest.raises(DataError) as e:
        fn(*args, **kw)
    return str(e.value)


def has(msg: str, *needles: str) -> None:
    for n in needles:
        assert n in msg, f"{n!r} not in:\n{msg}"


# ----------------------------------------------------------------------------- 1. missing-label markers


@pytest.mark.parametrize("marker", ["nan", "NaN", "null", "NULL", "None", "NA", "N/A", "", "   "])
def test_missing_label_markers_are_missing_labels_not_a_class(tmp_path, marker):
    path = write(tmp_path, "d.csv", csv_rows(["pos", marker, "neg"]))
    msg = error(load_split, path, cfg())
    has(msg, "missing label ('label') at rows 1 (id=b)", "Fix")
    if marker.strip():
        has(msg, f"cells read as missing: {marker!r}", "data.labels")


def test_a_marker_listed_in_data_labels_is_a_class(tmp_path):
    path = write(tmp_path, "d.csv", csv_rows(["pos", "NA", "neg"]))
    loaded = load_split(path, cfg(labels=["neg", "pos", "NA"]))
    assert loaded.table.column("label_name").to_pylist() == ["pos", "NA", "neg"]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_null_and_nan_labels_in_typed_formats_are_missing(tmp_path, fmt):
    df = pd.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"], "label": [1.0, float("nan"), 0.0]})
    if fmt == "parquet":
        path = tmp_path / "d.parquet"
        pq.write_table(pa.Table.from_pandas(df), path)
    else:
        path = tmp_path / "d.jsonl"
        path.write_text('{"id": "a", "text": "x", "label": 1}\n{"id": "b", "text": "y", "label": null}\n{"id": "c", "text": "z", "label": 0}\n')
    msg = error(load_split, str(path), cfg())
    has(msg, "missing label ('label') at rows 1 (id=b)", "Fix")
    assert "'nan'" not in msg


# ----------------------------------------------------------------------------- 2. numeric labels


@pytest.mark.parametrize("labels", [None, ["0", "1"]])
def test_numbers_are_one_class_however_written(tmp_path, labels):
    path = write(tmp_path, "d.csv", csv_rows(["1", "1.0", "+1", " 1 ", "0", "0.0", "00", "1.00"]))
    loaded = load_split(path, cfg(labels=labels))
    assert loaded.labels == ["0", "1"]
    assert loaded.table.column("label_name").to_pylist() == ["1", "1", "1", "1", "0", "0", "0", "1"]
    assert loaded.table.column("label").to_pylist() == [1, 1, 1, 1, 0, 0, 0, 1]


def test_numeric_labels_from_parquet_floats_and_jsonl_mix(tmp_path):
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["x", "y", "z"], "label": [1.0, 0.0, 1.0]}), tmp_path / "d.parquet")
    assert load_split(str(tmp_path / "d.parquet"), cfg()).labels == ["0", "1"]
    p = write(tmp_path, "d.jsonl", "".join(json.dumps({"id": i, "text": "t", "label": v}) + "\n" for i, v in enumerate([1, 1.0, "1", 0, "0.0"])))
    loaded = load_split(p, cfg())
    assert loaded.labels == ["0", "1"] and loaded.table.column("label").to_pylist() == [1, 1, 1, 0, 0]


def test_non_integer_numbers_keep_one_spelling_and_numeric_order(tmp_path):
    path = write(tmp_path, "d.csv", csv_rows(["1.5", "1.50", "2", "2.0", "10", "0.5"]))
    loaded = load_split(path, cfg())
    assert loaded.labels == ["0.5", "1.5", "2", "10"]
    assert loaded.table.column("label_name").to_pylist() == ["1.5", "1.5", "2", "2", "10", "0.5"]


def test_data_labels_spelling_is_kept_and_numbers_match_it(tmp_path):
    path = write(tmp_path, "d.csv", csv_rows(["1", "2.0", "2"]))
    loaded = load_split(path, cfg(labels=["1.0", "2.0"]))
    assert loaded.table.column("label_name").to_pylist() == ["1.0", "2.0", "2.0"]
    has(error(load_split, path, cfg(labels=["1", "1.0", "2"])), "data.labels lists one class twice: '1' and '1.0'", "Fix")


def test_numeric_data_labels_are_names_never_indices(tmp_path):
    # cells 0..2 against names "1".."3": reading 0 as index 0 would silently shift every label
    path = write(tmp_path, "d.csv", csv_rows(["1", "2", "0"]))
    has(error(load_split, path, cfg(labels=["1", "2", "3"])), "unknown labels ['0'] at rows 2 (id=c)", "Fix")


def test_numbers_mixed_with_names_are_refused(tmp_path):
    path = write(tmp_path, "d.csv", csv_rows(["pos", "neg", "1", "pos", "neg"]))
    msg = error(load_split, path, cfg())
    has(msg, "mixes numbers and names", "the numbers are at rows 2 (id=c)", "data.labels", "Fix")
    assert load_split(path, cfg(labels=["neg", "pos", "1"])).labels == ["neg", "pos", "1"]


# ----------------------------------------------------------------------------- 3. non-scalar labels and text


@pytest.mark.parametrize(
    "value, kind, needles",
    [
        (["a", "b"], "label", ["label column 'label'", "multi-label data is not supported", "one scalar value per row"]),
        ({"x": 1}, "label", ["label column 'label'", "multi-label data is not supported"]),
        (["some", "tokens"], "text", ["text column 'text'", "one string per row", "join the pieces"]),
    ],
)
def test_list_and_dict_cells_in_jsonl_are_refused(tmp_path, value, kind, needles):
    rows = [{"id": "a", "text": "fine", "label": "x"}, {"id": "b", "text": "ok", "label": "y"}]
    rows[1][kind] = value
    p = write(tmp_path, "d.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    has(error(load_split, p, cfg()), "at rows 1 (id=b)", "Fix", *needles)


def test_list_labels_in_parquet_are_refused(tmp_path):
    t = pa.table({"id": ["a", "b"], "text": ["x", "y"], "label": pa.array([["p"], ["p", "n"]], pa.list_(pa.string()))})
    pq.write_table(t, tmp_path / "d.parquet")
    has(error(load_split, str(tmp_path / "d.parquet"), cfg()), "rows 0 (id=a), 1 (id=b)", "multi-label", "Fix")


# ----------------------------------------------------------------------------- 4. case variants


def test_labels_differing_only_in_case_are_refused(tmp_path):
    path = write(tmp_path, "d.csv", csv_rows(["positive", "Positive", "negative", "positive"]))
    msg = error(load_split, path, cfg())
    has(msg, "differ only in case", "'positive' (2 rows) vs 'Positive' (1 row)", "Fix", "data.labels")
    assert load_split(path, cfg(labels=["negative", "positive", "Positive"])).labels == ["negative", "positive", "Positive"]


def test_unicode_form_and_spacing_variants_are_refused(tmp_path):
    nfc, nfd = unicodedata.normalize("NFC", "긍정"), unicodedata.normalize("NFD", "긍정")
    path = write(tmp_path, "d.csv", csv_rows([nfc, nfd, "very  good", "very good"]))
    has(error(load_split, path, cfg()), "differ only in case, spacing or Unicode form", "Fix")


def test_case_variant_of_a_data_labels_entry_is_named(tmp_path):
    path = write(tmp_path, "d.csv", csv_rows(["positive", "Positive", "negative"]))
    has(error(load_split, path, cfg(labels=["negative", "positive"])), "unknown labels ['Positive'] at rows 1 (id=b)", "'Positive' vs 'positive'")


# ----------------------------------------------------------------------------- 5. TSV and CSV quoting


STRAY_TSV = (
    "id\ttext\tlabel\n"
    '1\t"so good\tpos\n'
    "2\tplain\tneg\n"
    '3\the said "hi\tpos\n'
    "4\tfine\tneg\n"
    '5\t"quoted ""cell"" here"\tpos\n'
    '6\tends with"\tneg\n'
    '7\t"\tpos\n'
    "8\tnormal text\tneg\n"
    '9\t""start\tpos\n'
    "10\tok\tneg\n"
    '11\t"unclosed again\tpos\n'
    "12\tlast\tneg\n"
)


def test_tsv_with_stray_quotes_reads_one_row_per_line(tmp_path):
    path = write(tmp_path, "d.tsv", STRAY_TSV)
    df = read_raw(path)
    assert len(df) == 12
    texts = df["text"].tolist()
    assert texts[0] == '"so good' and texts[2] == 'he said "hi' and texts[5] == 'ends with"' and texts[6] == '"'
    assert texts[4] == 'quoted "cell" here'  # a cell written quoted is unquoted
    assert texts[10] == '"unclosed again'
    assert load_split(path, cfg()).table.num_rows == 12
    assert read_raw(path, quoting="none")["text"].tolist()[4] == '"quoted ""cell"" here"'


def test_tsv_with_csv_quoting_refuses_quotes_spanning_lines(tmp_path):
    path = write(tmp_path, "d.tsv", STRAY_TSV)
    has(error(read_raw, path, quoting="csv"), "opens a cell on line 2", "stray quote", "Fix", "data.quoting")
    ok = write(tmp_path, "ok.tsv", 'id\ttext\tlabel\n1\t"two\nlines"\tpos\n2\tx\tneg\n')
    assert read_raw(ok, quoting="csv")["text"].tolist() == ["two\nlines", "x"]


@pytest.mark.parametrize(
    "content, needles",
    [
        ("id\ttext\tlabel\n1\tok\tpos\n2\ta\ttab inside\tneg\n", ["line 3 (4 fields)", "more fields than the header's 3", "tab inside a text cell"]),
        ("id\ttext\tlabel\n1\tok\tpos\n2\tbroken\nline\tneg\n", ["lines 3 (2 fields), 4 (2 fields)", "fewer fields", "line break inside a text cell"]),
    ],
)
def test_tsv_rows_that_do_not_match_the_header(tmp_path, content, needles):
    has(error(read_raw, write(tmp_path, "d.tsv", content)), "d.tsv", "Fix", *needles)


@pytest.mark.parametrize(
    "content, needles",
    [
        # a stray quote at the start of a cell swallows the next lines (pandas read 3 of 5 rows)
        ('id,text,label\n1,"oops,pos\n2,fine,neg\n3,"ok",pos\n4,x,neg\n', ["opens a cell on line 2", "line 4", "stray quote", "Fix"]),
        ('id,text,label\n1,fine,pos\n2,"never closed,neg\n3,x,pos\n', ["opens a cell on line 3", "never closed", "Fix"]),
        # the first data row with one field too many made pandas use the ids as the index
        ("id,text,label\n1,hello, world,pos\n2,x,neg\n", ["line 2 (4 fields)", "more fields", "quote the cell", "Fix"]),
        ("id,text,label\n1,hello,pos\n2,x\n", ["line 3 (2 fields)", "fewer fields", "Fix"]),
    ],
)
def test_csv_garbage_is_refused(tmp_path, content, needles):
    has(error(read_raw, write(tmp_path, "d.csv", content)), "d.csv", *needles)


def test_csv_quoted_multiline_cells_still_read(tmp_path):
    content = 'id,text,label\n1,"first line\nsecond, with comma",pos\n2,"say ""hi""",neg\n\n3,plain,pos\n'
    df = read_raw(write(tmp_path, "d.csv", content))
    assert df["text"].tolist() == ["first line\nsecond, with comma", 'say "hi"', "plain"]
    assert df["id"].tolist() == ["1", "2", "3"]


def test_csv_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = write(tmp_path, "d.csv", "\ufeff" + csv_rows(["pos", "neg"]))
    assert list(read_raw(path).columns) == ["id", "text", "label"]


def test_semicolon_separated_csv_names_the_delimiter(tmp_path):
    path = write(tmp_path, "d.csv", "id;text;label\n1;a;pos\n2;b;neg\n")
    has(error(load_split, path, cfg()), "column(s) ['text', 'label', 'id'] not found", "separated by semicolons", "Fix")


# ----------------------------------------------------------------------------- 6. duplicate header names


@pytest.mark.parametrize("name, content", [("d.csv", "text,label,text\na,pos,b\n"), ("d.tsv", "id\ttext\tlabel\ttext\n1\ta\tpos\tb\n")])
def test_duplicate_header_names_are_refused(tmp_path, name, content):
    has(error(read_raw, write(tmp_path, name, content)), "duplicate column names in the header", "'text' is columns", "Fix")


def test_duplicate_keys_in_a_jsonl_object(tmp_path):
    p = write(tmp_path, "d.jsonl", '{"id": 1, "text": "a", "label": "x"}\n{"id": 2, "text": "a", "text": "b", "label": "y"}\n')
    has(error(read_raw, p), "line 2: key 'text' appears more than once", "Fix")


# ----------------------------------------------------------------------------- 7. empty files


@pytest.mark.parametrize(
    "name, content, needle",
    [
        ("d.csv", "", "the file is empty"),
        ("d.tsv", "\n\n", "the file is empty"),
        ("d.csv", "id,text,label\n", "only its header line"),
        ("d.tsv", "id\ttext\tlabel\n\n", "only its header line"),
        ("d.jsonl", "", "the file is empty"),
    ],
)
def test_empty_files_say_no_rows(tmp_path, name, content, needle):
    has(error(read_raw, write(tmp_path, name, content)), name, "no rows", needle, "Fix")


def test_empty_parquet_says_no_rows(tmp_path):
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), tmp_path / "d.parquet")
    has(error(read_raw, str(tmp_path / "d.parquet")), "d.parquet: no rows", "Fix")


# ----------------------------------------------------------------------------- 8. encoding


@pytest.mark.parametrize("encoding", ["utf-99", "base64"])
def test_unknown_encoding_names_the_key(tmp_path, encoding):
    path = write(tmp_path, "d.csv", csv_rows(["pos", "neg"]))
    has(error(load_split, path, cfg(encoding=encoding)), f"unknown encoding {encoding!r} in data.encoding", "utf-8", "cp949", "euc-kr", "Fix")


def test_utf16_file_is_recognised(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(csv_rows(["pos", "neg"]).encode("utf-16"))
    has(error(read_raw, str(path)), "undecodable bytes", "data.encoding: utf-16")
    assert len(read_raw(str(path), encoding="utf-16")) == 2


# ----------------------------------------------------------------------------- 9. wrong format for the name


def test_parquet_that_is_really_csv(tmp_path):
    path = write(tmp_path, "d.parquet", csv_rows(["pos", "neg"]))
    has(error(read_raw, path), "d.parquet is not a Parquet file", "'id,text,label'", "data.format", "Fix")


def test_parquet_of_garbage_bytes(tmp_path):
    path = write(tmp_path, "d.parquet", bytes(range(256)) * 4)
    has(error(read_raw, path), "is not a Parquet file", "Fix")


def test_csv_that_is_really_parquet(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "text": ["x"], "label": ["p"]}), tmp_path / "d.csv")
    has(error(read_raw, str(tmp_path / "d.csv")), "is a Parquet file, not CSV text", "data.format: parquet", "Fix")


@pytest.mark.parametrize(
    "content, needles",
    [
        (csv_rows(["pos", "neg"]), ["line 1 is not valid JSON", "looks like CSV/TSV", "data.format"]),
        ('[\n  {"id": 1, "text": "a", "label": "x"}\n]\n', ["line 1 is not valid JSON", "one JSON document, not JSON Lines"]),
    ],
)
def test_jsonl_that_is_not_jsonl(tmp_path, content, needles):
    has(error(read_raw, write(tmp_path, "d.jsonl", content)), "Fix", *needles)


def test_hf_dir_with_a_corrupt_arrow_file(tmp_path):
    d = tmp_path / "hfds"
    d.mkdir()
    (d / "data-00000-of-00001.arrow").write_bytes(b"\x00garbage" * 50)
    has(error(read_raw, str(d)), "data-00000-of-00001.arrow: not a readable Arrow file", "save_to_disk", "Fix")


def test_dir_of_csv_files_names_them(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text(csv_rows(["a", "b"]))
    has(error(read_raw, str(tmp_path / "data")), "has no Arrow files", "train.csv")


# ----------------------------------------------------------------------------- 10. paths


def test_directory_given_as_a_csv(tmp_path):
    (tmp_path / "d.csv").mkdir()
    has(error(read_raw, str(tmp_path / "d.csv")), "is a directory, not a file", "Fix")
    has(error(read_raw, str(tmp_path / "d.csv"), "csv"), "is a directory, not a file")


def test_permission_denied(tmp_path, monkeypatch):
    path = write(tmp_path, "d.csv", csv_rows(["a", "b"]))

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    has(error(read_raw, path), "d.csv: permission denied", "chmod", "Fix")


# ----------------------------------------------------------------------------- canonical-table checks


def test_held_out_split_uses_the_training_names_not_indices():
    df = pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "label": ["0", "1"]})
    msg = error(to_canonical, df, source="test.csv", labels=["neg", "pos"], labels_given=False)
    has(msg, "unknown labels ['0', '1']", "not among the training data's labels ['neg', 'pos']", "Fix")
    # with the user's data.labels, integer cells index into it (as before)
    assert to_canonical(df, source="t", labels=["neg", "pos"]).table.column("label_name").to_pylist() == ["neg", "pos"]


def test_drop_empty_leaving_nothing():
    df = pd.DataFrame({"id": ["a", "b"], "text": ["", " "], "label": ["x", "y"]})
    has(error(to_canonical, df, source="f.csv", drop_empty=True), "every row has empty text", "Fix")


# ----------------------------------------------------------------------------- 10-12. the prepare stage


def _prepare(tmp_path, **data):
    from hardmine.pipeline import Context
    from hardmine.pipeline.prepare import prepare
    from hardmine.store import RunStore

    c = from_dict({"name": "g", "run_root": str(tmp_path / "runs"), "data": data})
    logs: list[str] = []
    summary = prepare(Context(c, RunStore(c.run_dir), logs.append))
    return summary, RunStore(c.run_dir), logs


def _dataset(tmp_path, labels=("a", "b"), n=12) -> str:
    rows = "".join(f"r{i},text number {i},{labels[i % len(labels)]}\n" for i in range(n))
    return write(tmp_path, "train.csv", "id,text,label\n" + rows)


@pytest.mark.parametrize("key", ["path", "test_path", "truth_path"])
def test_prepare_names_the_missing_path_key(tmp_path, key):
    data = {"path": _dataset(tmp_path), key: str(tmp_path / "nope.csv")}
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, **data)
    has(str(e.value), f"data.{key}", "nope.csv' does not exist", "Fix")


def test_prepare_refuses_a_single_class(tmp_path):
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, path=_dataset(tmp_path, labels=("only",)))
    has(str(e.value), "train.csv", "label 'only'", "at least 2 classes", "Fix")


def _truth(tmp_path, text: str) -> str:
    return write(tmp_path, "truth.csv", text)


@pytest.mark.parametrize(
    "truth, needles",
    [
        ("id,label\nr0,a\n", ["needs columns id,true_label", "['true_label'] not found", "Fix"]),
        ("id,true_label\nr0,a\nzz9,b\nzz8,a\n", ["2 of 3 ids are not in the dataset", "'zz9'", "Fix"]),
        ("id,true_label\nr0,a\nr0,b\n", ["duplicate ids: 'r0' (rows 0 and 1)", "Fix"]),
        ("id,true_label\nr0,a\nr1,c\n", ["true_label values ['c'] at rows 1 (id=r1)", "Fix"]),
        ("id,true_label\nr0,A\n", ["'A' vs 'a'", "Fix"]),
        ("id,true_label\nr0,a\nr1,nan\n", ["missing true_label at rows 1 (id=r1)"]),
        ("id,true_label,is_noisy\nr0,a,maybe\n", ["'is_noisy' has values ['maybe']", "true/false", "Fix"]),
        ("id,true_label,is_noisy\nr0,b,false\n", ["is_noisy disagrees", "id 'r0': label 'a', true_label 'b'", "Fix"]),
    ],
)
def test_prepare_checks_the_truth_file(tmp_path, truth, needles):
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, path=_dataset(tmp_path), truth_path=_truth(tmp_path, truth))
    has(str(e.value), "truth.csv", *needles)


def test_prepare_matches_numeric_truth_labels_and_derives_is_noisy(tmp_path):
    path = _dataset(tmp_path, labels=("0", "1"))
    truth = _truth(tmp_path, "id,true_label\n" + "".join(f"r{i},{'1.0' if i in (0, 3) else float(i % 2)}\n" for i in range(12)))
    summary, store, logs = _prepare(tmp_path, path=path, truth_path=truth)
    t = store.read_table("truth.parquet")
    assert t.num_rows == 12 and summary["classes"] == 2
    noisy = dict(zip(t.column("id").to_pylist(), t.column("is_noisy").to_pylist()))
    assert [k for k, v in noisy.items() if v] == ["r0"]  # r0 is given 0, its truth is 1; r3 agrees
    assert not any("covers" in line for line in logs)


def test_prepare_warns_when_the_truth_covers_part_of_the_rows(tmp_path):
    _, store, logs = _prepare(tmp_path, path=_dataset(tmp_path), truth_path=_truth(tmp_path, "id,true_label\nr0,a\nr1,b\n"))
    assert store.read_table("truth.parquet").num_rows == 2
    assert any("covers 2 of 12 training rows" in line for line in logs)


def test_read_truth_standalone_keeps_the_documented_format(tmp_path):
    t = read_truth(_truth(tmp_path, "id,true_label,is_noisy,is_ambiguous\nx,b,True,0\ny,a,false,1\n"), ["a", "b"])
    assert t.to_pydict() == {"id": ["x", "y"], "true_label": [1, 0], "is_noisy": [True, False], "is_ambiguous": [False, True]}


def test_prepare_reads_the_demo_and_its_truth(tmp_path):
    """The demo's CSV (every cell quoted by pyarrow) and truth (true/false flags) pass every check."""
    from hardmine.pipeline import Context
    from hardmine.pipeline.prepare import prepare
    from hardmine.store import RunStore

    c = from_dict({"name": "demo", "run_root": str(tmp_path), "data": {"demo": {"n_rows": 400}, "test_size": 0.25}, "oof": {"folds": 3}})
    store = RunStore(c.run_dir)
    summary = prepare(Context(c, store, lambda _: None))
    truth, test_truth = store.read_table("truth.parquet"), store.read_table("test_truth.parquet")
    assert summary["truth_rows"] + summary["test_truth_rows"] == 400
    assert truth.num_rows == summary["rows"] and sum(truth.column("is_noisy").to_pylist()) > 0
    assert test_truth.num_rows == summary["test_rows"]
