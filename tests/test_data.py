import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardmine.config import DataConfig
from hardmine.data import DataError, check_folds, load_split, read_raw, stratified_holdout, to_canonical

ROWS = [
    {"id": "a", "text": "hello there", "label": "pos"},
    {"id": "b", "text": "awful film", "label": "neg"},
    {"id": "c", "text": "great", "label": "pos"},
    {"id": "d", "text": "bad", "label": "neg"},
]


def cfg(**kw):
    return DataConfig(path="x", **kw)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet", "hf"])
def test_every_format_reads_to_the_canonical_table(tmp_path, fmt):
    df = pd.DataFrame(ROWS)
    if fmt == "csv":
        path = tmp_path / "d.csv"
        df.to_csv(path, index=False)
    elif fmt == "tsv":
        path = tmp_path / "d.tsv"
        df.to_csv(path, index=False, sep="\t")
    elif fmt == "jsonl":
        path = tmp_path / "d.jsonl"
        df.to_json(path, orient="records", lines=True)
    elif fmt == "parquet":
        path = tmp_path / "d.parquet"
        pq.write_table(pa.Table.from_pandas(df), path)
    else:
        import datasets

        path = tmp_path / "hfds"
        datasets.Dataset.from_pandas(df).save_to_disk(str(path))
    loaded = load_split(str(path), cfg())
    t = loaded.table
    assert t.schema.names == ["id", "text", "label", "label_name"]
    assert t.column("id").to_pylist() == ["a", "b", "c", "d"]
    assert loaded.labels == ["neg", "pos"]
    assert t.column("label").to_pylist() == [1, 0, 1, 0]
    assert t.schema.field("label").type == pa.int32()


def test_nsmc_style_columns_and_integer_labels(tmp_path):
    p = tmp_path / "ratings.txt"
    p.write_text('id\tdocument\tlabel\n1\t재밌어요 "최고"\t1\n2\t"""별로""" 였다\t0\n3\t그냥 그래\t0\n', encoding="utf-8")
    loaded = load_split(str(p), cfg(text_column="document"))
    assert loaded.labels == ["0", "1"]
    assert loaded.table.column("text").to_pylist()[1] == '"별로" 였다'
    assert loaded.table.column("label").to_pylist() == [1, 0, 0]


def frame(rows):
    return pd.DataFrame(rows).astype(str)


@pytest.mark.parametrize(
    "rows, kwargs, needle",
    [
        ([{"id": "a", "text": "", "label": "x"}, {"id": "b", "text": "t", "label": "y"}], {}, "empty or missing text ('text') at rows 0 (id=a)"),
        ([{"id": "a", "text": "  ", "label": "x"}, {"id": "b", "text": "t", "label": "y"}], {}, "data.drop_empty: true"),
        ([{"id": "a", "text": "t", "label": ""}, {"id": "b", "text": "t", "label": "y"}], {}, "missing label ('label') at rows 0 (id=a)"),
        ([{"id": "a", "text": "t", "label": "x"}, {"id": "a", "text": "u", "label": "y"}], {}, "duplicate ids: 'a' (rows 0 and 1)"),
        ([{"id": "a", "text": "t", "label": "x"}, {"id": "b", "text": "u", "label": "zz"}], {"labels": ["x", "y"]}, "unknown labels ['zz'] at rows 1 (id=b)"),
        ([{"id": "a", "text": "t", "label": "0"}, {"id": "b", "text": "u", "label": "5"}], {"labels": ["x", "y"]}, "label ids out of range"),
        ([{"id": "a", "txt": "t", "label": "x"}], {}, "column(s) ['text'] not found"),
    ],
)
def test_bad_rows_are_named(rows, kwargs, needle):
    with pytest.raises(DataError) as e:
        to_canonical(frame(rows), source="f.csv", **kwargs)
    assert needle in str(e.value)


def test_drop_empty_records_ids():
    rows = [{"id": "a", "text": "", "label": "x"}, {"id": "b", "text": "t", "label": "y"}]
    loaded = to_canonical(frame(rows), source="f", drop_empty=True)
    assert loaded.dropped_ids == ["a"] and loaded.table.num_rows == 1


def test_undecodable_bytes_name_the_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_bytes(b"id,text,label\n1,fine,x\n2,caf\xe9 latin1,y\n")
    with pytest.raises(DataError, match=r"undecodable bytes .* at line 3"):
        read_raw(str(p))


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_raw(str(tmp_path / "nope.csv"))
    (tmp_path / "x.weird").write_text("a")
    with pytest.raises(DataError, match="set data.format"):
        read_raw(str(tmp_path / "x.weird"))


def test_bad_jsonl_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"id": 1, "text": "a", "label": "x"}\n{not json}\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        read_raw(str(p))


def test_class_smaller_than_folds():
    rows = [{"id": str(i), "text": "t", "label": "big"} for i in range(10)] + [{"id": "s", "text": "t", "label": "small"}]
    loaded = to_canonical(frame(rows), source="f")
    with pytest.raises(DataError, match=r"fewer rows than oof.folds=5: 'small': 1.*lower oof.folds"):
        check_folds(loaded.table, loaded.labels, 5)


def test_stratified_holdout_is_disjoint_and_stratified():
    rows = [{"id": f"{l}{i}", "text": "t", "label": l} for l in "ab" for i in range(50)]
    t = to_canonical(frame(rows), source="f").table
    tr, te = stratified_holdout(t, 0.2, seed=0)
    assert tr.num_rows == 80 and te.num_rows == 20
    assert not set(tr.column("id").to_pylist()) & set(te.column("id").to_pylist())
    assert sorted(te.column("label").to_pylist()) == [0] * 10 + [1] * 10


def test_hf_datasetdict_dir_asks_for_a_split(tmp_path):
    import datasets

    d = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS)})
    d.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match="point data.path at one split"):
        read_raw(str(tmp_path / "dd"))
