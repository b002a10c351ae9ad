import pyarrow as pa
import pytest

from hardmine.store import RunStore, fingerprint_path


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    store.write_table("a.parquet", pa.table({"x": [1]}))
    with pytest.raises(RuntimeError):
        with store.atomic_path("a.parquet") as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("crash mid-write")
    assert store.read_table("a.parquet").column("x").to_pylist() == [1]
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["a.parquet"]


def test_manifest_and_is_done(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    store.write_table("o.parquet", pa.table({"x": [1]}))
    store.mark("s", "done", fingerprint="f1")
    assert store.is_done("s", "f1", ["o.parquet"])
    assert not store.is_done("s", "f2", ["o.parquet"])
    store.delete("o.parquet")
    assert not store.is_done("s", "f1", ["o.parquet"])
    m = store.manifest()
    assert m["stages"]["s"]["status"] == "done" and "ray" in m["versions"]


def test_file_uri_and_fingerprint(tmp_path):
    store = RunStore(f"file://{tmp_path}/run")
    store.write_json("j.json", {"a": 1})
    assert store.read_json("j.json") == {"a": 1}
    (tmp_path / "f.csv").write_text("a")
    fp1 = fingerprint_path(str(tmp_path / "f.csv"))
    (tmp_path / "f.csv").write_text("b")
    assert fingerprint_path(str(tmp_path / "f.csv")) != fp1
