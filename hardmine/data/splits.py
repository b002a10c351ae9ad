"""The prepare stage's checks and splits on tables (no run store): the training rows, the held-out split,
and the injected truth divided between them."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from hardmine.data.canonical import Loaded, load_split, stratified_holdout
from hardmine.data.errors import DataError
from hardmine.data.truth import read_truth


def read_training(path: str, d) -> Loaded:
    """``path`` read with the column settings of the DataConfig ``d``; it must hold at least two classes."""
    loaded = load_split(path, d)
    table = loaded.table
    present = sorted(set(table.column("label_name").to_pylist()))
    if len(present) < 2:
        raise DataError(
            f"{path}: all {table.num_rows} rows have the label {present[0]!r} (column {d.label_column!r}): mining needs "
            "at least 2 classes. Fix: check data.label_column, or add rows of the other classes"
        )
    return loaded


def held_out(d, table: pa.Table, labels: list[str], seed: int) -> tuple[pa.Table, pa.Table | None]:
    """(training rows, held-out rows): data.test_path read with the training labels, else carved by data.test_size, else none."""
    if d.test_path:
        return table, load_split(d.test_path, d, labels=labels).table
    if d.test_size:
        return stratified_holdout(table, d.test_size, seed)
    return table, None


def check_disjoint(table: pa.Table, test: pa.Table) -> None:
    """A held-out file shares no id with the training rows."""
    overlap = set(table.column("id").to_pylist()) & set(test.column("id").to_pylist())
    if overlap:
        raise DataError(
            f"{len(overlap)} ids appear in both data.path and data.test_path (e.g. {sorted(overlap)[:5]}): "
            "the held-out split must be disjoint from the training data"
        )


def read_run_truth(path: str, loaded: Loaded, test: pa.Table | None, d, labels: list[str]) -> pa.Table:
    """The injected truth of the rows of data.path and of a held-out file (:func:`hardmine.data.read_truth`:
    every id one of theirs or of the rows dropped as empty, ``is_noisy`` against their given labels)."""
    given = dict(zip(loaded.table.column("id").to_pylist(), loaded.table.column("label").to_pylist()))
    if test is not None and d.test_path:
        given.update(zip(test.column("id").to_pylist(), test.column("label").to_pylist()))
    return read_truth(path, labels, given=given, dropped=set(loaded.dropped_ids), encoding=d.encoding)


def truth_coverage(truth: pa.Table, table: pa.Table) -> int:
    """Rows of ``table`` that have a truth row."""
    return pc.sum(pc.is_in(table.column("id"), value_set=truth.column("id"))).as_py() or 0


def split_truth(truth: pa.Table, test: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(the training rows' truth, the held-out rows' truth)."""
    is_test = pc.is_in(truth.column("id"), value_set=test.column("id").cast(pa.string()))
    return truth.filter(pc.invert(is_test)), truth.filter(is_test)


def flipped_labels(rows: pa.Table, truth: pa.Table) -> int:
    """Rows of ``truth`` whose true label differs from the label ``rows`` give them."""
    given = dict(zip(rows.column("id").to_pylist(), rows.column("label").to_pylist()))
    return sum(given[i] != t for i, t in zip(truth.column("id").to_pylist(), truth.column("true_label").to_pylist()))


def class_counts(col: pa.ChunkedArray) -> dict:
    """Label name -> rows."""
    vc = col.value_counts()
    return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))
