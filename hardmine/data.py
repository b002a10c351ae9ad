"""Readers by format -> the canonical table (id, text, label, label_name); validation.

Formats: CSV, TSV, JSONL, Parquet and Hugging Face ``datasets`` directories saved with
``save_to_disk`` (read directly from their Arrow files, no ``datasets`` import needed).
Every validation error names the rows and the fix.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hardmine.schema import DATASET

MAX_LISTED = 10


class DataError(ValueError):
    """The input data is not usable as given; the message names the rows and the fix."""


def _rows(labels: list, ids: list | None = None) -> str:
    shown = labels[:MAX_LISTED]
    if ids is not None:
        shown = [f"{r} (id={i})" for r, i in zip(shown, ids[:MAX_LISTED])]
    more = f" and {len(labels) - MAX_LISTED} more" if len(labels) > MAX_LISTED else ""
    return ", ".join(map(str, shown)) + more


# --------------------------------------------------------------------------- readers


def detect_format(path: str) -> str:
    p = Path(path)
    if p.is_dir():
        return "hf"
    suffix = "".join(p.suffixes[-2:]).lower() if p.suffix == ".gz" else p.suffix.lower()
    return {
        ".csv": "csv",
        ".tsv": "tsv",
        ".txt": "tsv",
        ".jsonl": "jsonl",
        ".json": "jsonl",
        ".ndjson": "jsonl",
        ".parquet": "parquet",
        ".pq": "parquet",
    }.get(suffix) or _fail_format(path)


def _fail_format(path: str):
    raise DataError(
        f"cannot tell the format of {path!r} from its name: set data.format to one of csv, tsv, jsonl, parquet, hf"
    )


def _decode(path: str, encoding: str) -> str:
    raw = Path(path).read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}: undecodable bytes for encoding {encoding!r} at line {line} (byte offset {e.start}: "
            f"{raw[e.start:e.start + 8]!r}). Fix: re-save the file as UTF-8, or set data.encoding to the file's encoding"
        ) from None


def read_raw(path: str, fmt: str = "auto", encoding: str = "utf-8") -> pd.DataFrame:
    """Read a file into a DataFrame of strings (cells as written; empty cells are '')."""
    if not Path(path).exists():
        raise DataError(f"data file {path!r} does not exist: check data.path / data.test_path")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt in ("csv", "tsv"):
        text = _decode(path, encoding)
        try:
            return pd.read_csv(
                io.StringIO(text),
                sep="," if fmt == "csv" else "\t",
                dtype=str,
                keep_default_na=False,
                na_values=[],
            )
        except pd.errors.ParserError as e:
            raise DataError(f"{path}: cannot parse as {fmt.upper()}: {e}. Fix the quoting or set data.format") from None
    if fmt == "jsonl":
        text = _decode(path, encoding)
        records = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {n} is not valid JSON ({e.msg}). Fix that line; one object per line") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}: line {n} is not a JSON object; JSONL needs one object per line")
            records.append(rec)
        return _stringify(pd.DataFrame.from_records(records))
    if fmt == "parquet":
        return _stringify(pq.read_table(path).to_pandas())
    if fmt == "hf":
        return _stringify(_read_hf_dir(path))
    raise DataError(f"unknown data.format {fmt!r}: use csv, tsv, jsonl, parquet or hf")


def _read_hf_dir(path: str) -> pd.DataFrame:
    p = Path(path)
    if (p / "dataset_dict.json").exists():
        splits = json.loads((p / "dataset_dict.json").read_text()).get("splits", [])
        raise DataError(
            f"{path} is a DatasetDict with splits {splits}: point data.path at one split's folder "
            f"(e.g. {path}/{splits[0] if splits else 'train'}) and data.test_path at another"
        )
    files = sorted(p.glob("data-*.arrow")) or sorted(p.glob("*.arrow"))
    if not files:
        raise DataError(f"{path} has no Arrow files: save the dataset with datasets' save_to_disk, or set data.format")
    tables = []
    for f in files:
        with pa.memory_map(str(f)) as src:
            try:
                tables.append(pa.ipc.open_stream(src).read_all())
            except pa.ArrowInvalid:
                tables.append(pa.ipc.open_file(src).read_all())
    return pa.concat_tables(tables).to_pandas()


def _stringify(df: pd.DataFrame) -> pd.DataFrame:
    """Cells to strings, missing values to '' (so validation treats all formats alike)."""
    out = {}
    for c in df.columns:
        col = df[c]
        mask = col.isna()
        s = col.astype(object).where(~mask, "")
        if pd.api.types.is_float_dtype(col.dtype) and np.all(np.mod(col[~mask], 1) == 0):
            s = col.astype(object).where(mask, col.fillna(0).astype(np.int64)).where(~mask, "")
        out[str(c)] = s.map(lambda v: v if isinstance(v, str) else str(v))
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- canonical table


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
) -> Loaded:
    """Validate a raw frame and build the canonical table. Errors name rows and fixes."""
    missing_cols = [c for c in (text_column, label_column, id_column) if c is not None and c not in df.columns]
    if missing_cols:
        raise DataError(
            f"{source}: column(s) {missing_cols} not found; the file has {list(df.columns)}. "
            "Fix: set data.text_column / data.label_column / data.id_column (null for row numbers)"
        )
    n = len(df)
    if n == 0:
        raise DataError(f"{source}: no rows")
    ids = (df[id_column].astype(str).str.strip() if id_column else pd.Series([f"{id_prefix}{i}" for i in range(n)])).tolist()
    texts = df[text_column].tolist()
    raw_labels = df[label_column].astype(str).str.strip().tolist()
    errors: list[str] = []

    if id_column:
        empty_ids = [i for i, v in enumerate(ids) if v == ""]
        if empty_ids:
            errors.append(f"missing id at rows {_rows(empty_ids)}: give every row an id, or set data.id_column: null")
        seen: dict[str, int] = {}
        dups = []
        for i, v in enumerate(ids):
            if v and v in seen:
                dups.append(f"{v!r} (rows {seen[v]} and {i})")
            else:
                seen.setdefault(v, i)
        if dups:
            errors.append(
                f"duplicate ids: {_rows(dups)}. Fix: make ids unique, or set data.id_column: null to use row numbers"
            )

    empty_text = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    dropped: list[str] = []
    if empty_text and not drop_empty:
        errors.append(
            f"empty or missing text ({text_column!r}) at rows {_rows(empty_text, [ids[i] for i in empty_text])}. "
            "Fix: fill or remove them, or set data.drop_empty: true to drop them (recorded in the manifest)"
        )
    missing_label = [i for i, v in enumerate(raw_labels) if v == ""]
    if missing_label:
        errors.append(
            f"missing label ({label_column!r}) at rows {_rows(missing_label, [ids[i] for i in missing_label])}. "
            "Fix: label them or remove them (unlabelled rows belong in `hardmine review export --unlabelled`)"
        )
    if errors:
        raise DataError(f"{source}:\n  " + "\n  ".join(errors))

    keep = np.ones(n, dtype=bool)
    if empty_text and drop_empty:
        keep[empty_text] = False
        dropped = [ids[i] for i in empty_text]

    names, vocab = _label_names(raw_labels, labels, source, ids)
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


def _label_names(raw: list[str], labels: list[str] | None, source: str, ids: list[str]) -> tuple[list[str], list[str]]:
    """Map raw label cells to names and fix the vocabulary order."""
    is_int = all(_is_int(v) for v in raw)
    if labels is not None:
        if len(set(labels)) != len(labels):
            raise DataError(f"data.labels has duplicates: {labels}")
        if is_int and not set(raw) <= set(labels):
            # integer cells index into the given vocabulary
            bad = [i for i, v in enumerate(raw) if not 0 <= int(v) < len(labels)]
            if bad:
                raise DataError(
                    f"{source}: label ids out of range [0, {len(labels)}) at rows {_rows(bad, [ids[i] for i in bad])}. "
                    "Fix: correct them or extend data.labels"
                )
            return [labels[int(v)] for v in raw], list(labels)
        unknown = [i for i, v in enumerate(raw) if v not in labels]
        if unknown:
            vals = sorted({raw[i] for i in unknown})
            raise DataError(
                f"{source}: unknown labels {vals[:MAX_LISTED]} at rows {_rows(unknown, [ids[i] for i in unknown])}. "
                f"Fix: add them to data.labels (now {labels}) or correct the rows"
            )
        return raw, list(labels)
    uniq = set(raw)
    vocab = sorted(uniq, key=int) if is_int else sorted(uniq)
    if is_int:
        raw = [str(int(v)) for v in raw]
        vocab = [str(int(v)) for v in vocab]
    return raw, vocab


def _is_int(v: str) -> bool:
    try:
        return str(int(v)) == v.lstrip("+") or float(v) == int(v)
    except (ValueError, OverflowError):
        return False


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
    df = read_raw(path, cfg.format, cfg.encoding)
    return to_canonical(
        df,
        source=path,
        text_column=cfg.text_column,
        label_column=cfg.label_column,
        id_column=cfg.id_column,
        labels=labels if labels is not None else cfg.labels,
        drop_empty=cfg.drop_empty if drop_empty is None else drop_empty,
    )
