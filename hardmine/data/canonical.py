"""The canonical dataset table (id, text, label, label_name): built from a raw frame with every
row checked (ids, texts, labels), read from one configured file, and split for the stages.

List/dict labels (multi-label data) are refused, as are duplicate or missing ids and empty texts
(unless ``data.drop_empty``); labels are checked by :mod:`hardmine.data.labels`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from hardmine.checks import duplicate_ids
from hardmine.data.cells import non_scalar_error, scalar_cells
from hardmine.data.errors import MAX_LISTED, DataError, listed
from hardmine.data.labels import MISSING_LABELS, label_names
from hardmine.data.readers import read_raw
from hardmine.schema import DATASET

@dataclass
class Loaded:
    table: pa.Table  # canonical, schema hardmine.schema.DATASET
    labels: list[str]
    dropped_ids: list[str] = field(default_factory=list)


def to_canonical(
    df: pd.DataFrame,
    *,
    source: str,
    text_column: str = "text",
    label_column: str = "label",
    id_column: str | None = "id",
    labels: list[str] | None = None,
    drop_empty: bool = False,
    id_prefix: str = "",
    labels_given: bool = True,
) -> Loaded:
    """Validate a raw frame and build the canonical table. Errors name rows and fixes.

    ``labels_given``: ``labels`` is the user's ``data.labels`` (integer cells may then index into
    it); False when it is the vocabulary of the training data (a held-out split must use its names).
    """
    missing_cols = [c for c in (text_column, label_column, id_column) if c is not None and c not in df.columns]
    if missing_cols:
        hint = ""
        if len(df.columns) == 1:
            only = str(df.columns[0])
            for sep, name in ((";", "semicolons"), ("\t", "tabs"), (",", "commas"), ("|", "bars")):
                if sep in only:
                    hint = (f" The header looks separated by {name}: set data.format (csv: commas, tsv: tabs) "
                            "or re-save the file with that delimiter.")
                    break
        raise DataError(
            f"{source}: column(s) {missing_cols} not found; the file has {list(df.columns)}. "
            "Fix: set data.text_column / data.label_column / data.id_column (null for row numbers)" + hint
        )
    n = len(df)
    if n == 0:
        raise DataError(f"{source}: no rows")
    if id_column:
        raw_ids, rows = scalar_cells(df[id_column].tolist())
        if rows:
            raise DataError(non_scalar_error(source, "id", id_column, rows, raw_ids, None))
        ids = [v.strip() for v in raw_ids]
    else:
        ids = [f"{id_prefix}{i}" for i in range(n)]
    texts, bad_text = scalar_cells(df[text_column].tolist())
    cells, bad_label = scalar_cells(df[label_column].tolist())
    bad_scalar = [non_scalar_error(source, kind, column, rows, values, ids)
                  for kind, column, values, rows in (("text", text_column, texts, bad_text), ("label", label_column, cells, bad_label)) if rows]
    if bad_scalar:
        raise DataError("\n".join(bad_scalar))
    raw_labels = [v.strip() for v in cells]
    errors: list[str] = []

    if id_column:
        empty_ids = [i for i, v in enumerate(ids) if v == ""]
        if empty_ids:
            errors.append(f"missing id at rows {listed(empty_ids)}: give every row an id, or set data.id_column: null")
        dups = duplicate_ids(ids)
        if dups:
            errors.append(
                f"duplicate ids: {listed(dups)}. Fix: make ids unique, or set data.id_column: null to use row numbers"
            )

    empty_text = [i for i, t in enumerate(texts) if not t.strip()]
    dropped: list[str] = []
    if empty_text and not drop_empty:
        errors.append(
            f"empty or missing text ({text_column!r}) at rows {listed(empty_text, [ids[i] for i in empty_text])}. "
            "Fix: fill or remove them, or set data.drop_empty: true to drop them (recorded in the manifest)"
        )
    missing_tokens = MISSING_LABELS - set(labels or [])
    missing_label = [i for i, v in enumerate(raw_labels) if v == "" or v in missing_tokens]
    if missing_label:
        markers = sorted({raw_labels[i] for i in missing_label} - {""})
        empty = ", empty" if any(raw_labels[i] == "" for i in missing_label) else ""
        read_as = f" (cells read as missing: {', '.join(map(repr, markers))}{empty})" if markers else ""
        errors.append(
            f"missing label ({label_column!r}) at rows {listed(missing_label, [ids[i] for i in missing_label])}{read_as}. "
            "Fix: label them or remove them (unlabelled rows belong in `hardmine review export --unlabelled`)"
            + ("; a marker such as 'NA' that is a real class must be listed in data.labels" if markers else "")
        )
    if errors:
        raise DataError(f"{source}:\n  " + "\n  ".join(errors))

    keep = np.ones(n, dtype=bool)
    if empty_text and drop_empty:
        keep[empty_text] = False
        dropped = [ids[i] for i in empty_text]
        if not keep.any():
            raise DataError(
                f"{source}: every row has empty text ({text_column!r}): nothing is left after data.drop_empty. "
                "Fix: check data.text_column"
            )

    names, vocab = label_names(raw_labels, labels, source, ids, label_column, labels_given)
    index = {name: i for i, name in enumerate(vocab)}
    table = pa.table(
        {
            "id": pa.array([ids[i] for i in range(n) if keep[i]], pa.string()),
            "text": pa.array([texts[i] for i in range(n) if keep[i]], pa.string()),
            "label": pa.array([index[names[i]] for i in range(n) if keep[i]], pa.int32()),
            "label_name": pa.array([names[i] for i in range(n) if keep[i]], pa.string()),
        },
        schema=DATASET,
    )
    return Loaded(table=table, labels=vocab, dropped_ids=dropped)


def check_folds(table: pa.Table, labels: list[str], folds: int, source: str = "training data") -> None:
    """Every class needs at least ``folds`` rows for stratified K-fold."""
    counts = np.bincount(table.column("label").to_numpy(), minlength=len(labels))
    small = [(labels[i], int(c)) for i, c in enumerate(counts) if c < folds]
    if small:
        shown = ", ".join(f"{name!r}: {c}" for name, c in small[:MAX_LISTED])
        raise DataError(
            f"{source}: classes with fewer rows than oof.folds={folds}: {shown}"
            f"{' and more' if len(small) > MAX_LISTED else ''}. Fix: lower oof.folds to at most "
            f"{int(counts[counts > 0].min()) if (counts > 0).any() else 2}, add rows, or merge/remove those classes"
        )


def stratified_holdout(table: pa.Table, size: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """Carve a stratified hold-out (train, test) before any mining."""
    from sklearn.model_selection import train_test_split

    y = table.column("label").to_numpy()
    counts = np.bincount(y)
    if (counts[counts > 0] < 2).any():
        raise DataError("data.test_size needs at least 2 rows per class to stratify; give a test_path instead")
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=size, random_state=seed, stratify=y)
    return table.take(np.sort(tr)), table.take(np.sort(te))


def load_split(path: str, cfg, labels: list[str] | None = None, drop_empty: bool | None = None) -> Loaded:
    """Read and validate one file with the column settings of a DataConfig."""
    df = read_raw(path, cfg.format, cfg.encoding, getattr(cfg, "quoting", "auto"))
    return to_canonical(
        df,
        source=path,
        text_column=cfg.text_column,
        label_column=cfg.label_column,
        id_column=cfg.id_column,
        labels=labels if labels is not None else cfg.labels,
        drop_empty=cfg.drop_empty if drop_empty is None else drop_empty,
        labels_given=cfg.labels is not None,
    )
