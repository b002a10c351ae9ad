"""hardmine.probs.load_external_probs: bring-your-own probabilities from Parquet, CSV or .npy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardmine.data import DataError
from hardmine.probs import load_external_probs

LABELS = ["neg", "neu", "pos"]
IDS = [f"r{i}" for i in range(8)]


def truth(n=8, k=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(k), size=n)


def frame(p=None, ids=IDS, labels=LABELS, shuffle=True, seed=1) -> pd.DataFrame:
    p = truth() if p is None else p
    df = pd.DataFrame(p, columns=labels)
    df.insert(0, "id", ids)
    if shuffle:
        rng = np.random.default_rng(seed)
        df = df.iloc[rng.permutation(len(df))]
        cols = ["id"] + list(rng.permutation(labels))
        df = df[cols]
    return df


def write(tmp_path, df: pd.DataFrame, ext: str) -> str:
    path = tmp_path / f"probs.{ext}"
    if ext in ("parquet", "pq"):
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    elif ext == "tsv":
        df.to_csv(path, index=False, sep="\t")
    else:
        df.to_csv(path, index=False, float_format="%.9f")
    return str(path)


# --------------------------------------------------------------------------- happy paths
@pytest.mark.parametrize("ext", ["parquet", "csv", "tsv", "pq"])
def test_table_formats_reordered_to_ids_and_label_order(tmp_path, ext):
    p = truth()
    df = frame(p)
    assert list(df["id"]) != IDS and list(df.columns[1:]) != LABELS  # really shuffled
    out = load_external_probs(write(tmp_path, df, ext), IDS, LABELS)
    assert out.dtype == np.float32 and out.shape == (8, 3)
    np.testing.assert_allclose(out, p, atol=1e-6)


def test_npy_aligned_with_data(tmp_path):
    p = truth()
    path = tmp_path / "p.npy"
    np.save(path, p)
    out = load_external_probs(str(path), IDS, LABELS)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, p, atol=1e-7)


def test_ids_as_arrow_and_numeric_ids_in_file(tmp_path):
    p = truth()
    df = pd.DataFrame(p, columns=LABELS)
    df.insert(0, "id", list(range(8)))  # int ids in the file, string ids in the data
    out = load_external_probs(write(tmp_path, df, "parquet"), pa.array([str(i) for i in range(8)]), LABELS)
    np.testing.assert_allclose(out, p, atol=1e-6)


def test_csv_ids_keep_leading_zeros_and_bom(tmp_path):
    ids = ["007", "08", "1"]
    p = np.array([[0.5, 0.5], [0.1, 0.9], [1.0, 0.0]])
    path = tmp_path / "p.csv"
    path.write_text("\ufeffid,b,a\n1,0,1\n007,0.5,0.5\n08,0.9,0.1\n", encoding="utf-8")
    out = load_external_probs(str(path), ids, ["a", "b"])
    np.testing.assert_allclose(out, p)


def test_one_hot_integer_columns_are_accepted(tmp_path):
    df = pd.DataFrame({"id": ["x", "y"], "a": [1, 0], "b": [0, 1]})
    out = load_external_probs(write(tmp_path, df, "parquet"), ["y", "x"], ["a", "b"])
    np.testing.assert_array_equal(out, [[0, 1], [1, 0]])


def test_rows_off_by_less_than_atol_are_renormalised_with_a_warning(tmp_path):
    p = truth()
    p[2] *= 1.0005
    with pytest.warns(UserWarning, match="renormalised 1 of 8"):
        out = load_external_probs(write(tmp_path, frame(p), "parquet"), IDS, LABELS)
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-6)


def test_explicit_fmt_overrides_extension(tmp_path):
    path = tmp_path / "probs.data"
    frame().to_csv(path, index=False)
    out = load_external_probs(str(path), IDS, LABELS, fmt="csv")
    np.testing.assert_allclose(out, truth(), atol=1e-6)


# --------------------------------------------------------------------------- errors
def err(tmp_path, df, match, ext="parquet", ids=IDS, labels=LABELS):
    path = write(tmp_path, df, ext)
    with pytest.raises(DataError, match=match) as e:
        load_external_probs(path, ids, labels)
    assert "probs." in str(e.value)  # names the file
    return str(e.value)


def test_missing_class_column(tmp_path):
    msg = err(tmp_path, frame().drop(columns=["neu"]), r"missing class column\(s\) \['neu'\]")
    assert "rename or drop" in msg


def test_extra_class_column(tmp_path):
    df = frame()
    df["other"] = 0.0
    err(tmp_path, df, r"unexpected column\(s\) \['other'\]")


def test_class_names_compared_exactly(tmp_path):
    df = frame().rename(columns={"pos": "Pos"})
    err(tmp_path, df, r"missing class column\(s\) \['pos'\] and unexpected column\(s\) \['Pos'\]")


def test_no_id_column(tmp_path):
    err(tmp_path, frame().drop(columns=["id"]), "no 'id' column")


def test_missing_ids_are_listed(tmp_path):
    msg = err(tmp_path, frame().iloc[:5], r"no probabilities for ids \[", ext="csv")
    assert "3 in total" not in msg  # only 3 missing: all shown
    missing = set(IDS) - set(frame()["id"].iloc[:5])
    assert all(repr(m) in msg for m in missing)


def test_extra_ids_not_in_data(tmp_path):
    df = pd.concat([frame(shuffle=False), pd.DataFrame({"id": ["zz"], "neg": [1.0], "neu": [0.0], "pos": [0.0]})])
    err(tmp_path, df, r"ids \['zz'\] are not in the data")


def test_duplicate_ids(tmp_path):
    df = frame(shuffle=False)
    df = pd.concat([df, df.iloc[[3]]])
    err(tmp_path, df, r"ids \['r3'\] appear on more than one row", ext="csv")


def test_empty_id(tmp_path):
    path = tmp_path / "probs.csv"
    path.write_text("id,a,b\nx,0.5,0.5\n,0.5,0.5\n")
    with pytest.raises(DataError, match=r"column 'id' is empty on data row\(s\) \[2\]"):
        load_external_probs(str(path), ["x"], ["a", "b"])


def test_inf_names_ids_and_column(tmp_path):
    p = truth()
    p[4, 1] = np.inf
    msg = err(tmp_path, frame(p), r"ids \['r4'\] hold NaN or inf in class column\(s\) \['neu'\]")
    assert "recompute" in msg


def test_nan_written_as_text(tmp_path):
    path = tmp_path / "probs.csv"
    path.write_text("id,a,b\nx,0.5,0.5\ny,NaN,0.5\n")
    with pytest.raises(DataError, match=r"class column 'a' has no value \(empty, null or NaN\) for ids \['y'\]"):
        load_external_probs(str(path), ["x", "y"], ["a", "b"])


def test_empty_csv_cell(tmp_path):
    path = tmp_path / "probs.csv"
    path.write_text("id,a,b\nx,0.5,0.5\ny,,1\n")
    with pytest.raises(DataError, match=r"class column 'a' has no value .* for ids \['y'\]"):
        load_external_probs(str(path), ["x", "y"], ["a", "b"])


def test_non_numeric_csv_cell(tmp_path):
    path = tmp_path / "probs.csv"
    path.write_text("id,a,b\nx,0.5,0.5\ny,high,0.1\n")
    with pytest.raises(DataError, match=r"class column 'a' holds .* not numbers for ids \['y'\]"):
        load_external_probs(str(path), ["x", "y"], ["a", "b"])


def test_negative_values(tmp_path):
    p = truth()
    p[0] = [-0.5, 1.0, 0.5]
    err(tmp_path, frame(p), r"ids \['r0'\] hold negative values in class column\(s\) \['neg'\].*softmax")


def test_rows_not_summing_to_one_are_not_renormalised(tmp_path):
    p = truth()
    p[[1, 6]] *= 2
    msg = err(tmp_path, frame(p), r"ids \['r1', 'r6'\] \(2 in total\) do not sum to 1")
    assert "softmax" in msg


def test_npy_wrong_shape(tmp_path):
    path = tmp_path / "probs.npy"
    np.save(path, truth(n=7))
    with pytest.raises(DataError, match=r"shape \(7, 3\) but the data has 8 rows and 3 classes"):
        load_external_probs(str(path), IDS, LABELS)


def test_npy_bad_rows_named_by_id(tmp_path):
    p = truth()
    p[5, 2] = np.inf
    path = tmp_path / "probs.npy"
    np.save(path, p)
    with pytest.raises(DataError, match=r"ids \['r5'\] hold NaN or inf in class column\(s\) \['pos'\]"):
        load_external_probs(str(path), IDS, LABELS)


def test_npy_object_array_refused(tmp_path):
    path = tmp_path / "probs.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a readable .npy"):
        load_external_probs(str(path), ["x"], ["a", "b"])


def test_unknown_extension(tmp_path):
    path = tmp_path / "probs.xlsx"
    path.write_text("")
    with pytest.raises(DataError, match=r"extension '.xlsx'.*fmt="):
        load_external_probs(str(path), IDS, LABELS)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_external_probs(str(tmp_path / "nope.csv"), IDS, LABELS)


def test_duplicate_label_names_and_data_ids():
    with pytest.raises(DataError, match="label_names repeats"):
        load_external_probs("x.csv", IDS, ["a", "a"])
    with pytest.raises(DataError, match="data ids .* repeat"):
        load_external_probs("x.csv", ["a", "a"], LABELS)


def test_errors_are_value_errors_too(tmp_path):
    with pytest.raises(ValueError):
        load_external_probs(str(tmp_path / "nope.csv"), IDS, LABELS)
