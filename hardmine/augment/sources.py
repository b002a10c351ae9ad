"""The augmentation's inputs: the augment ids of ``selected`` and the dataset, read and checked
by streaming (ids and texts only, never the whole table), plus the EDA vocabulary.

``selected`` and ``dataset`` are Parquet paths (streamed) or pyarrow Tables.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hardmine.augment.eda import build_vocab
from hardmine.vocab import ACTIONS


def _table_or_path(obj, what: str):
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        p = Path(obj)
        if not p.exists():
            raise ValueError(f"{what} not found: {str(p)!r}")
        return str(p)
    raise ValueError(f"{what} must be a pyarrow Table or a Parquet path; got {type(obj).__name__}")


def _require(names, need: list[str], what: str) -> None:
    missing = [c for c in need if c not in names]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing} (has {list(names)}); it needs {need}")


def augment_ids(selected) -> pa.Array:
    """Ids of the rows with ``action == "augment"`` (streamed; only those ids are kept)."""
    import pyarrow.dataset as pads

    src = _table_or_path(selected, "selected")
    if isinstance(src, pa.Table):
        _require(src.column_names, ["id", "action"], "selected")
        batches = src.select(["id", "action"]).to_batches()
    else:
        d = pads.dataset(src, format="parquet")
        _require(d.schema.names, ["id", "action"], f"selected ({src})")
        batches = d.to_batches(columns=["id", "action"])
    parts = []
    for b in batches:
        act = b.column(1)
        bad = pc.invert(pc.is_in(act, value_set=pa.array(ACTIONS))).fill_null(True)
        if pc.any(bad).as_py():
            rows = pc.filter(b.column(0), bad).to_pylist()[:5]
            vals = sorted({str(v) for v in pc.filter(act, bad).to_pylist()})[:5]
            raise ValueError(f"selected has unknown action(s) {vals} (ids {rows}): allowed actions are {list(ACTIONS)}")
        parts.append(pc.filter(b.column(0), pc.equal(act, "augment")).cast(pa.string()))
    ids = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
    if ids.null_count:
        raise ValueError("selected has augment rows with a null id: every row needs its dataset id")
    if len(pc.unique(ids)) != len(ids):
        counts = pc.value_counts(ids)
        dup = [d["values"] for d in counts.to_pylist() if d["counts"] > 1][:5]
        raise ValueError(f"selected lists ids more than once (e.g. {dup}): one row per sample")
    return ids


def dataset_batches(dataset, columns: list[str], batch_rows: int = 65_536):
    """Record batches of ``columns`` of a pyarrow Table or a Parquet path (streamed)."""
    import pyarrow.dataset as pads

    if isinstance(dataset, pa.Table):
        yield from dataset.select(columns).to_batches(max_chunksize=batch_rows)
    else:
        yield from pads.dataset(dataset, format="parquet").to_batches(columns=columns, batch_size=batch_rows)


def dataset_info(dataset) -> dict:
    """Validate the dataset columns and count its rows without reading its texts."""
    import pyarrow.dataset as pads

    src = _table_or_path(dataset, "dataset")
    if isinstance(src, pa.Table):
        _require(src.column_names, ["id", "text", "label"], "dataset")
        return {"source": src, "n_train": src.num_rows}
    d = pads.dataset(src, format="parquet")
    _require(d.schema.names, ["id", "text", "label"], f"dataset ({src})")
    return {"source": src, "n_train": d.count_rows()}


def sample_texts(dataset, ids: pa.Array, sample: int = 256, dataset_sample: int = 512, n_rows: int | None = None) -> tuple[list[str], list[str]]:
    """Check every augment id is in the dataset exactly once (streaming over the id and
    text columns); returns up to ``sample`` source texts and up to ``dataset_sample``
    training texts spread evenly over the dataset (for language detection), in one pass."""
    found = 0
    texts: list[str] = []
    train: list[str] = []
    step = max(1, (n_rows or 0) // max(1, dataset_sample))
    pos = 0
    for b in dataset_batches(dataset, ["id", "text"]):
        m = pc.is_in(b.column(0).cast(pa.string()), value_set=ids)
        k = pc.sum(m).as_py() or 0
        found += k
        if k and len(texts) < sample:
            texts.extend(t for t in pc.filter(b.column(1), m).to_pylist()[: sample - len(texts)] if t)
        if len(train) < dataset_sample and b.num_rows:
            first = (-pos) % step
            take = b.column(1).take(pa.array(np.arange(first, b.num_rows, step)))
            train.extend(t for t in take.to_pylist()[: dataset_sample - len(train)] if t)
        pos += b.num_rows
    if found != len(ids):
        seen: set = set()
        for b in dataset_batches(dataset, ["id"]):
            col = b.column(0).cast(pa.string())
            seen.update(pc.filter(col, pc.is_in(col, value_set=ids)).to_pylist())
        missing = [i for i in ids.to_pylist() if i not in seen]
        if missing:
            raise ValueError(
                f"{len(missing)} augment id(s) of selected are not in the dataset (e.g. {missing[:5]}): "
                "run the selection on this same dataset"
            )
        raise ValueError("the dataset has duplicate ids among the augment sources: ids must be unique")
    return texts, train


def vocab_from_path(path: str, max_size: int, min_count: int) -> list[str]:
    """The EDA vocabulary of the texts of a Parquet dataset (streamed)."""
    def texts():
        for b in dataset_batches(path, ["text"]):
            yield from b.column(0).to_pylist()

    return build_vocab(texts(), max_size=max_size, min_count=min_count)
