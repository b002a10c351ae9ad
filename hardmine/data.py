"""Readers by format -> the canonical table (id, text, label, label_name); validation.

Formats: CSV, TSV, JSONL, Parquet and Hugging Face ``datasets`` directories saved with
``save_to_disk`` (read directly from their Arrow files, no ``datasets`` import needed).
Nothing is silently accepted: every bad input raises one :class:`DataError` that says what is
wrong, where (file, line or row numbers and ids, column) and the fix.

* **CSV** is read with standard quoting (a quoted cell may span lines). Refused: a quote that
  opens a cell and closes lines later with more text after it, or never closes (a stray quote
  that would swallow the rows in between); rows with more or fewer fields than the header;
  duplicate header names; an empty or header-only file.
* **TSV** is read the way TSV is written: one line is one row, always. A cell wrapped in quotes
  (``"say ""hi"" now"``, as Python's csv module and pandas write it) is unquoted; any other quote is
  text. ``quoting="none"`` keeps every quote as text; ``quoting="csv"`` reads TSV with CSV
  quoting (cells may span lines), with the CSV checks.
* **Labels**: empty cells and missing-value markers (:data:`MISSING_LABELS`: ``nan``, ``NULL``,
  ``None``, ``N/A``, ...) are missing labels, unless ``data.labels`` lists the marker as a class.
  Numbers are one class however they are written (``1``, ``1.0``, ``+1``, `` 1 `` -> ``"1"``).
  Refused: list/dict labels (multi-label is not supported), labels that differ only in case,
  spacing or Unicode form, a column mixing numbers and names (unless ``data.labels`` lists them).
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hardmine.schema import DATASET

MAX_LISTED = 10

#: label cells that mean "no label" (after stripping), unless data.labels lists them as a class
MISSING_LABELS = frozenset({"nan", "NaN", "NAN", "null", "NULL", "Null", "None", "NA", "N/A", "n/a", "<NA>"})

#: data.quoting values (CSV and TSV): auto, none (quotes are text), csv (standard CSV quoting)
QUOTING = ("auto", "none", "csv")

#: cell values that are not one scalar (JSONL/Parquet lists and dicts)
NON_SCALAR = (list, tuple, dict, set, np.ndarray)


class DataError(ValueError):
    """The input data is not usable as given; the message names the rows and the fix."""


def _duplicate_ids(ids: list[str]) -> list[str]:
    """``"'id' (rows i and j)"`` for each non-empty id seen before (j: the repeat, i: its first row)."""
    seen: dict[str, int] = {}
    dups = []
    for i, v in enumerate(ids):
        if v and v in seen:
            dups.append(f"{v!r} (rows {seen[v]} and {i})")
        seen.setdefault(v, i)
    return dups


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


def check_path(path: str, key: str) -> None:
    """Refuse a configured input that is missing or unreadable before anything hashes or reads it.

    ``key`` is the setting that names it (``data.path``, ``data.test_path``, ``data.truth_path``).
    Remote URIs (``s3://``, ``gs://``) are left to the reader.
    """
    if "://" in path and not path.startswith("file://"):
        return
    p = Path(path[len("file://"):] if path.startswith("file://") else path)
    if not p.exists():
        where = "" if p.is_absolute() else f"; relative paths are resolved from the directory hardmine runs in ({Path.cwd()})"
        raise DataError(f"{key}: {path!r} does not exist. Fix: correct {key}{where}")
    if not os.access(p, os.R_OK) or (p.is_dir() and not os.access(p, os.X_OK)):
        raise DataError(f"{key}: {path!r} is not readable (permission denied). Fix: make it readable by this user (chmod a+r) or copy it")
    if p.is_dir() and key == "data.truth_path":
        raise DataError(f"{key}: {path!r} is a directory. Fix: point {key} at the truth file (CSV with columns id,true_label)")


def _check_encoding(encoding: str) -> None:
    try:
        if not getattr(codecs.lookup(encoding), "_is_text_encoding", True):  # base64, rot13, ...
            raise LookupError(encoding)
    except (LookupError, TypeError):
        raise DataError(
            f"unknown encoding {encoding!r} in data.encoding. Fix: set data.encoding to a Python text codec name: "
            "utf-8 (the default), utf-8-sig, cp949 or euc-kr (Korean), latin-1, utf-16"
        ) from None


#: leading bytes of files that are not text, and what to do about them
_MAGIC = [
    (b"PAR1", "is a Parquet file", "give it the .parquet extension or set data.format: parquet"),
    (b"ARROW1", "is an Arrow file", "point the path at the datasets save_to_disk folder holding it (data.format: hf)"),
    (b"\x1f\x8b", "is gzip-compressed", "decompress it first (gunzip)"),
    (b"PK\x03\x04", "is a zip archive (an Excel .xlsx workbook?)", "export it as CSV (UTF-8) or unzip it"),
]


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except IsADirectoryError:
        raise DataError(
            f"{path} is a directory, not a file. Fix: point the setting at the data file itself, "
            "or set data.format: hf for a folder written by datasets' save_to_disk"
        ) from None
    except PermissionError:
        raise DataError(f"{path}: permission denied. Fix: make the file readable by this user (chmod a+r) or copy it") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror or e}). Fix: check the path and the disk") from None


def _decode(path: str, encoding: str, fmt: str = "csv") -> str:
    raw = _read_bytes(path)
    for magic, what, fix in _MAGIC:
        if raw.startswith(magic):
            raise DataError(f"{path} {what}, not {fmt.upper()} text. Fix: {fix}")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        hint = ""
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or raw[:200].count(b"\x00") > 20:
            hint = " (the file looks like UTF-16: set data.encoding: utf-16)"
        raise DataError(
            f"{path}: undecodable bytes for encoding {encoding!r} at line {line} (byte offset {e.start}: "
            f"{raw[e.start:e.start + 8]!r}){hint}. Fix: re-save the file as UTF-8, or set data.encoding to the file's encoding"
        ) from None
    except LookupError:
        _check_encoding(encoding)
        raise
    return text[1:] if text.startswith("\ufeff") else text  # a byte-order mark is not part of the first column name


def read_raw(path: str, fmt: str = "auto", encoding: str = "utf-8", quoting: str = "auto") -> pd.DataFrame:
    """Read a file into a DataFrame of strings (cells as written; empty cells are '').

    List/dict cells (JSONL, Parquet, ``hf``) are kept as Python lists/dicts, for
    :func:`to_canonical` to refuse in the columns it uses. ``quoting`` (CSV and TSV): ``auto``
    reads CSV with standard quoting and TSV one row per line (see the module docstring),
    ``none`` keeps every quote as text, ``csv`` reads TSV with CSV quoting too.
    """
    if not Path(path).exists():
        raise DataError(f"data file {path!r} does not exist: check data.path / data.test_path")
    _check_encoding(encoding)
    if quoting not in QUOTING:
        raise DataError(f"unknown data.quoting {quoting!r}: use one of {', '.join(QUOTING)}")
    if fmt == "auto" and Path(path).is_dir() and Path(path).suffix.lower() in (".parquet", ".pq"):
        fmt = "parquet"  # a folder of Parquet parts (as Spark writes them)
    elif fmt == "auto" and Path(path).is_dir() and Path(path).suffix.lower() in (".csv", ".tsv", ".txt", ".jsonl", ".json", ".ndjson"):
        fmt = "csv"  # a folder named like a data file: refused below as a directory
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt in ("csv", "tsv", "jsonl") and Path(path).is_dir():
        _read_bytes(path)  # raises: a directory is not a file
    if fmt in ("csv", "tsv"):
        return _read_delimited(path, _decode(path, encoding, fmt), fmt, quoting)
    if fmt == "jsonl":
        return _read_jsonl(path, _decode(path, encoding, fmt))
    if fmt == "parquet":
        return _read_parquet(path)
    if fmt == "hf":
        if not Path(path).is_dir():
            raise DataError(
                f"{path} is a file, but data.format is hf (a folder written by datasets' save_to_disk). "
                "Fix: point data.path at that folder, or set data.format to the file's format"
            )
        return _nonempty(path, _stringify(_read_hf_dir(path)))
    raise DataError(f"unknown data.format {fmt!r}: use csv, tsv, jsonl, parquet or hf")


def _nonempty(path: str, df: pd.DataFrame) -> pd.DataFrame:
    if len(df) == 0:
        raise DataError(f"{path}: no rows (columns {list(df.columns)}). Fix: point the setting at the file that holds the data")
    return df


# ---- CSV / TSV


def _read_delimited(path: str, text: str, fmt: str, quoting: str) -> pd.DataFrame:
    sep = "," if fmt == "csv" else "\t"
    if quoting == "none" or (fmt == "tsv" and quoting == "auto"):
        records = _line_records(text, sep, unquote=quoting == "auto")
    else:
        records = _csv_records(path, text, sep, fmt, quoting)
    if not records:
        raise DataError(f"{path}: no rows: the file is empty (not even a header line). Fix: point the setting at the file that holds the data")
    _, header = records[0]
    header = [h if h != "" else f"Unnamed: {i}" for i, h in enumerate(header)]
    counts = Counter(header)
    dups = [h for h in counts if counts[h] > 1]
    if dups:
        shown = "; ".join(
            f"{h!r} is columns {', '.join(str(i + 1) for i, x in enumerate(header) if x == h)}" for h in dups[:MAX_LISTED]
        )
        raise DataError(
            f"{path}: duplicate column names in the header: {shown}. Fix: rename or remove the duplicate "
            "column(s) so every header name is unique (otherwise one copy would be read as e.g. 'text.1')"
        )
    rows = records[1:]
    if not rows:
        raise DataError(
            f"{path}: no rows: the file has only its header line ({sep.join(header)!r}). "
            "Fix: point the setting at the file that holds the data"
        )
    _check_field_counts(path, rows, len(header), fmt, quoting)
    columns = list(zip(*(cells for _, cells in rows)))
    return pd.DataFrame({h: pd.Series(col, dtype=object) for h, col in zip(header, columns)})


def _line_records(text: str, sep: str, unquote: bool) -> list[tuple[int, list[str]]]:
    """One record per line (TSV as written): quotes never join lines."""
    lines = text.split("\n") if "\n" in text or "\r" not in text else text.split("\r")
    out = []
    for n, line in enumerate(lines, start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line.strip() and sep not in line:
            continue  # a blank line
        cells = line.split(sep)
        if unquote:
            cells = [_unquote(c) if c.startswith('"') else c for c in cells]
        out.append((n, cells))
    return out


def _unquote(cell: str) -> str:
    """A cell written quoted (``"say ""hi"" now"`` -> ``say "hi" now``), read as pandas reads it: text after the
    closing quote is kept. A quote that does not close within the cell is text (a stray quote)."""
    out, i, n = [], 1, len(cell)
    while i < n:
        c = cell[i]
        if c == '"':
            if i + 1 < n and cell[i + 1] == '"':
                out.append('"')
                i += 2
                continue
            return "".join(out) + cell[i + 1:]
        out.append(c)
        i += 1
    return cell


def _csv_records(path: str, text: str, sep: str, fmt: str, quoting: str) -> list[tuple[int, list[str]]]:
    """Records with standard CSV quoting (a quoted cell may span lines), with their first line number.

    A quote that opens a cell and closes lines later with more text after it (not a delimiter
    or the line end) is a stray quote that swallowed the lines in between: refused.
    """
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # long documents: no 128 KiB cap on a cell
    try:
        out = []
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
        while True:
            start = reader.line_num + 1
            try:
                rec = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise DataError(f"{path}: line {reader.line_num}: cannot parse as {fmt.upper()} ({e}). Fix that line, or set data.format") from None
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue  # a blank line
            out.append((start, rec))
        spans = []
        strict = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
        while True:
            start = strict.line_num + 1
            try:
                next(strict)
            except StopIteration:
                break
            except csv.Error as e:
                if strict.line_num > start or "end of data" in str(e):
                    spans.append((start, strict.line_num, "end of data" in str(e)))
    finally:
        csv.field_size_limit(limit)
    if spans:
        a, b, eof = spans[0]
        more = f" ({len(spans)} such places; the others start on lines {_rows([s[0] for s in spans[1:]])})" if len(spans) > 1 else ""
        end = "is never closed before the end of the file" if eof else f"only closes on line {b}, with more text after it"
        other = (
            "if the file never quotes cells, set data.quoting: none" if fmt == "csv"
            else "or drop data.quoting: csv so that each line is read as one row"
        )
        raise DataError(
            f"{path}: a quote (\") opens a cell on line {a} and {end}, so lines {a}-{b} would be read as one row{more}. "
            "Likely cause: a stray quote character at the start of a cell (a cell that starts with a quote runs across "
            "lines until the next quote). Fix: remove the stray quote, or quote the whole cell and double the quotes "
            f"inside it (\"say \"\"hi\"\"\"); {other}"
        )
    return out


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def _lines(found: list[tuple[int, int]]) -> str:
    listed = _rows([f"{n} ({k} field{'s' if k != 1 else ''})" for n, k in found])
    return f"line {listed} has" if len(found) == 1 else f"lines {listed} have"


def _check_field_counts(path: str, rows: list[tuple[int, list[str]]], width: int, fmt: str, quoting: str) -> None:
    more = [(n, len(c)) for n, c in rows if len(c) > width]
    fewer = [(n, len(c)) for n, c in rows if len(c) < width]
    if not more and not fewer:
        return
    what = "comma" if fmt == "csv" else "tab"
    lines = []
    if more:
        lines.append(
            f"{_lines(more)} more fields than the header's {width}: "
            f"likely a {what} inside a text cell"
            + (" (quote the cell: \"like, this\")" if fmt == "csv" and quoting != "none" else " (remove it, or write the file as CSV/JSONL)")
        )
    if fewer:
        lines.append(
            f"{_lines(fewer)} fewer fields than the header's {width}: "
            "likely a line break inside a text cell (the row continues on the next line) or a missing column"
            + (" (or quotes spanning lines: try data.quoting: csv)" if fmt == "tsv" and quoting == "auto" else "")
        )
    raise DataError(f"{path}: rows do not match the header ({width} columns):\n  " + "\n  ".join(lines)
                    + "\n  Fix: give every row exactly one value per header column (check the delimiter: data.format)")


# ---- JSONL, Parquet, datasets folders


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs: list) -> dict:
    out = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _read_jsonl(path: str, text: str) -> pd.DataFrame:
    records = []
    first = True
    for n, line in enumerate(text.split("\n"), start=1):  # not splitlines(): JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            rec = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKey as e:
            raise DataError(f"{path}: line {n}: key {e.args[0]!r} appears more than once in the object. Fix: keep one of them") from None
        except json.JSONDecodeError as e:
            hint = ""
            if first:
                s = line.strip()
                if s in ("[", "{") or s.startswith("[{"):
                    hint = (" (the file looks like one JSON document, not JSON Lines: write one object per line, e.g. "
                            "pandas.read_json(path).to_json(out, orient='records', lines=True))")
                elif "," in s or "\t" in s:
                    hint = f" (it looks like CSV/TSV: {s[:60]!r}; give it the .csv/.tsv extension or set data.format)"
            raise DataError(f"{path}: line {n} is not valid JSON ({e.msg}){hint}. Fix that line; one object per line") from None
        first = False
        if not isinstance(rec, dict):
            raise DataError(f"{path}: line {n} is not a JSON object; JSONL needs one object per line")
        records.append(rec)
    if not records:
        raise DataError(f"{path}: no rows: the file is empty. Fix: point the setting at the file that holds the data")
    return _stringify(pd.DataFrame.from_records(records))


def _read_parquet(path: str) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        why = "no Parquet magic bytes" if "magic bytes" in str(e) else str(e).splitlines()[0]
        looks = ""
        try:
            head = _read_bytes(path)[:200] if Path(path).is_file() else b""
            first = head.decode("utf-8").split("\n")[0].strip()
            if first:
                looks = f"; it starts like text: {first[:60]!r}"
        except (UnicodeDecodeError, DataError):
            pass
        raise DataError(
            f"{path} is not a Parquet file ({why}){looks}. Fix: if it is CSV, TSV or JSONL, give it that "
            "extension or set data.format: csv/tsv/jsonl; if it should be Parquet, re-export it (e.g. df.to_parquet(path))"
        ) from None
    _unique_columns(path, table.column_names)
    return _nonempty(path, _stringify(table.to_pandas()))


def _unique_columns(path: str, names: list[str]) -> None:
    counts = Counter(names)
    dups = [n for n in counts if counts[n] > 1]
    if dups:
        raise DataError(f"{path}: duplicate column names {dups}. Fix: rename or remove the duplicates so every column name is unique")


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
        others = sorted(f.name for f in p.iterdir() if f.suffix.lower() in (".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet"))[:5]
        hint = f" It holds {others}: point the setting at one of those files." if others else ""
        raise DataError(f"{path} has no Arrow files: save the dataset with datasets' save_to_disk, or set data.format.{hint}")
    tables = []
    for f in files:
        try:
            with pa.memory_map(str(f)) as src:
                try:
                    tables.append(pa.ipc.open_stream(src).read_all())
                except pa.ArrowInvalid:
                    src.seek(0)
                    tables.append(pa.ipc.open_file(src).read_all())
        except (pa.ArrowException, OSError) as e:
            raise DataError(
                f"{f}: not a readable Arrow file ({str(e).splitlines()[0]}). Fix: re-save the dataset with datasets' "
                "save_to_disk (the file may be truncated or corrupt)"
            ) from None
    try:
        table = pa.concat_tables(tables)
    except pa.ArrowException as e:
        raise DataError(f"{path}: its Arrow files do not share one schema ({e}). Fix: re-save the dataset with save_to_disk") from None
    _unique_columns(path, table.column_names)
    return table.to_pandas()


def _cell(v):
    """One cell as a string: missing -> '', integral floats as ints (``1.0`` -> ``'1'``), lists and
    dicts (and undecodable bytes) kept as they are, for :func:`to_canonical` to refuse."""
    if v is None or isinstance(v, str):
        return "" if v is None else v
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if f != f:
            return ""
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, NON_SCALAR):
        return v
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return v
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    return str(v)


def _stringify(df: pd.DataFrame) -> pd.DataFrame:
    """Cells to strings, missing values to '' (so validation treats all formats alike)."""
    return pd.DataFrame({str(c): pd.Series([_cell(v) for v in df[c].tolist()], dtype=object) for c in df.columns})


# --------------------------------------------------------------------------- canonical table


@dataclass
class Loaded:
    table: pa.Table  # canonical, schema hardmine.schema.DATASET
    labels: list[str]
    dropped_ids: list[str] = field(default_factory=list)


_NOT_ONE_VALUE = NON_SCALAR + (bytes,)


def _non_scalar(values: list) -> list[int]:
    return [i for i, v in enumerate(values) if not isinstance(v, str) and isinstance(v, _NOT_ONE_VALUE)]


def _scalar_cells(values: list) -> tuple[list, list[int]]:
    """Cells as strings (:func:`_cell`), and the rows holding lists, dicts or bytes (kept as they are)."""
    out, bad = [], []
    for i, v in enumerate(values):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, _NOT_ONE_VALUE):
            out.append(v)
            bad.append(i)
        else:
            out.append(_cell(v))
    return out, bad


def _non_scalar_error(source: str, kind: str, column: str, rows: list[int], values: list, ids: list | None) -> str:
    example = values[rows[0]]
    example = repr(example if len(repr(example)) <= 60 else repr(example)[:57] + "...")
    what = {
        "label": "a label must be one scalar value per row (a class name or number); multi-label data is not supported. "
                 "Fix: give each row a single label (e.g. its main label, or one row per label)",
        "text": "the text must be one string per row. Fix: join the pieces into one string (e.g. ' '.join(tokens)), "
                "or point data.text_column at the column that holds the text",
        "id": "an id must be one string or number per row. Fix: point data.id_column at a scalar column, or set data.id_column: null",
    }[kind]
    return (f"{source}: the {kind} column {column!r} holds lists, objects or binary values, not one value, at rows "
            f"{_rows(rows, [ids[i] for i in rows] if ids else None)} (e.g. {example}): {what}")


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
        raw_ids, rows = _scalar_cells(df[id_column].tolist())
        if rows:
            raise DataError(_non_scalar_error(source, "id", id_column, rows, raw_ids, None))
        ids = [v.strip() for v in raw_ids]
    else:
        ids = [f"{id_prefix}{i}" for i in range(n)]
    texts, bad_text = _scalar_cells(df[text_column].tolist())
    cells, bad_label = _scalar_cells(df[label_column].tolist())
    bad_scalar = [_non_scalar_error(source, kind, column, rows, values, ids)
                  for kind, column, values, rows in (("text", text_column, texts, bad_text), ("label", label_column, cells, bad_label)) if rows]
    if bad_scalar:
        raise DataError("\n".join(bad_scalar))
    raw_labels = [v.strip() for v in cells]
    errors: list[str] = []

    if id_column:
        empty_ids = [i for i, v in enumerate(ids) if v == ""]
        if empty_ids:
            errors.append(f"missing id at rows {_rows(empty_ids)}: give every row an id, or set data.id_column: null")
        dups = _duplicate_ids(ids)
        if dups:
            errors.append(
                f"duplicate ids: {_rows(dups)}. Fix: make ids unique, or set data.id_column: null to use row numbers"
            )

    empty_text = [i for i, t in enumerate(texts) if not t.strip()]
    dropped: list[str] = []
    if empty_text and not drop_empty:
        errors.append(
            f"empty or missing text ({text_column!r}) at rows {_rows(empty_text, [ids[i] for i in empty_text])}. "
            "Fix: fill or remove them, or set data.drop_empty: true to drop them (recorded in the manifest)"
        )
    missing_tokens = MISSING_LABELS - set(labels or [])
    missing_label = [i for i, v in enumerate(raw_labels) if v == "" or v in missing_tokens]
    if missing_label:
        markers = sorted({raw_labels[i] for i in missing_label} - {""})
        empty = ", empty" if any(raw_labels[i] == "" for i in missing_label) else ""
        read_as = f" (cells read as missing: {', '.join(map(repr, markers))}{empty})" if markers else ""
        errors.append(
            f"missing label ({label_column!r}) at rows {_rows(missing_label, [ids[i] for i in missing_label])}{read_as}. "
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

    names, vocab = _label_names(raw_labels, labels, source, ids, label_column, labels_given)
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


# ---- labels

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_CANON_NUMBER = re.compile(r"-?\d+(?:\.\d+)?", re.ASCII)
_INT = re.compile(r"-?\d+", re.ASCII)


def _canon_number(v: str) -> str | None:
    """The one spelling of a number (``1``, ``1.0``, ``+1``, ``01`` -> ``'1'``; ``1.50`` -> ``'1.5'``), or None."""
    if not _NUMBER.fullmatch(v):
        return None
    d = Decimal(v)
    if d != 0 and abs(d.adjusted()) > 30:
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def label_key(v: str) -> str:
    """A label cell (already stripped) in canonical form: numbers in one spelling, names as written."""
    n = _canon_number(v)
    return v if n is None else n


def _fold(v: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", v).split()).casefold()


def _case_hint(values: list[str], labels: list[str]) -> str:
    folded = {_fold(label_key(str(n).strip())): n for n in labels}
    pairs = [f"{v!r} vs {folded[_fold(label_key(v))]!r}" for v in values if _fold(label_key(v)) in folded]
    return f" (differ only in case, spacing or Unicode form: {', '.join(pairs[:MAX_LISTED])})" if pairs else ""


def _label_names(
    raw: list[str], labels: list[str] | None, source: str, ids: list[str], column: str = "label", given: bool = True
) -> tuple[list[str], list[str]]:
    """Map raw label cells to names and fix the vocabulary order."""
    keys = {v: label_key(v) for v in set(raw)}
    canon = [keys[v] for v in raw]
    if labels is not None:
        if len(set(labels)) != len(labels):
            raise DataError(f"data.labels has duplicates: {labels}")
        keyed: dict[str, str] = {}
        for name in labels:
            k = label_key(str(name).strip())
            if k in keyed:
                raise DataError(f"data.labels lists one class twice: {keyed[k]!r} and {name!r} are the same label. Fix: keep one of them")
            keyed[k] = name
        unknown = [i for i, c in enumerate(canon) if c not in keyed]
        if not unknown:
            return [keyed[c] for c in canon], list(labels)
        numeric_names = any(_canon_number(str(n).strip()) is not None for n in labels)
        if given and not numeric_names and all(_INT.fullmatch(c) for c in canon):
            # integer cells index into the given vocabulary
            bad = [i for i, c in enumerate(canon) if not 0 <= int(c) < len(labels)]
            if bad:
                raise DataError(
                    f"{source}: label ids out of range [0, {len(labels)}) at rows {_rows(bad, [ids[i] for i in bad])}. "
                    "Fix: correct them or extend data.labels"
                )
            return [labels[int(c)] for c in canon], list(labels)
        vals = sorted({raw[i] for i in unknown})
        where = _rows(unknown, [ids[i] for i in unknown])
        hint = _case_hint(vals, labels)
        if given:
            raise DataError(
                f"{source}: unknown labels {vals[:MAX_LISTED]} at rows {where}{hint}. "
                f"Fix: add them to data.labels (now {labels}) or correct the rows"
            )
        raise DataError(
            f"{source}: unknown labels {vals[:MAX_LISTED]} at rows {where}: not among the training data's labels {labels}{hint}. "
            "Fix: correct the rows (a held-out split uses the training data's label names), or list every class in data.labels"
        )
    numeric = {c: _CANON_NUMBER.fullmatch(c) is not None for c in set(keys.values())}
    is_num = [numeric[c] for c in canon]
    n_num = sum(is_num)
    if 0 < n_num < len(canon):
        num_rows = [i for i, f in enumerate(is_num) if f]
        name_rows = [i for i, f in enumerate(is_num) if not f]
        few, kind = (num_rows, "numbers") if len(num_rows) <= len(name_rows) else (name_rows, "names")
        eg_num = sorted({canon[i] for i in num_rows})[:3]
        eg_name = sorted({canon[i] for i in name_rows})[:3]
        raise DataError(
            f"{source}: the label column {column!r} mixes numbers and names: {_count(len(num_rows), 'row')} with numbers (e.g. "
            f"{eg_num}) and {_count(len(name_rows), 'row')} with names (e.g. {eg_name}); the {kind} are at rows {_rows(few, [ids[i] for i in few])}. "
            "Fix: correct the rows with the wrong kind of label, or, if both kinds really are classes, list every class in data.labels"
        )
    groups: dict[str, Counter] = {}
    for c, k in Counter(canon).items():
        groups.setdefault(_fold(c), Counter())[c] = k
    clashes = [g for g in groups.values() if len(g) > 1]
    if clashes:
        shown = "; ".join(" vs ".join(f"{v!r} ({k} row{'s' if k != 1 else ''})" for v, k in g.most_common()) for g in clashes[:MAX_LISTED])
        raise DataError(
            f"{source}: labels in column {column!r} that differ only in case, spacing or Unicode form: {shown}. "
            "Fix: write each class one way in the data (e.g. all lower case), or, if they really are different classes, "
            "list every spelling in data.labels"
        )
    vocab = sorted(set(canon), key=Decimal) if n_num else sorted(set(canon))
    return canon, vocab


def read_truth(
    path: str,
    labels: list[str],
    given: dict[str, int] | None = None,
    dropped: set[str] | frozenset = frozenset(),
    encoding: str = "utf-8",
) -> pa.Table:
    """Injected truth ``id,true_label[,is_noisy,is_ambiguous]`` -> (id, true_label index, is_noisy[, is_ambiguous]).

    ``true_label`` is a label name of ``labels`` (numbers match however they are written: ``1.0``
    is ``1``). With ``given`` (the dataset's id -> given label index, training and held-out rows),
    every id must be one of them (or of ``dropped``, rows dropped as empty; their truth is left
    out), and ``is_noisy`` is derived as ``true_label != given`` when the file has no such column,
    and must agree with it when it has.
    """
    df = read_raw(path, "auto", encoding)
    need = [c for c in ("id", "true_label") if c not in df.columns]
    if need:
        raise DataError(
            f"{path}: the truth file needs columns id,true_label; {need} not found (it has {list(df.columns)}). "
            "Fix: name the columns id,true_label (true_label: the correct label name of each row; optional is_noisy, "
            "is_ambiguous: true/false)"
        )
    raw_ids, raw_true = df["id"].tolist(), df["true_label"].tolist()
    problems = [_non_scalar_error(path, kind, c, rows, vals, None)
                for kind, c, vals in (("id", "id", raw_ids), ("label", "true_label", raw_true)) if (rows := _non_scalar(vals))]
    if problems:
        raise DataError("\n".join(problems))
    ids = [_cell(v).strip() for v in raw_ids]
    true = [label_key(_cell(v).strip()) for v in raw_true]
    errors: list[str] = []
    empty = [i for i, v in enumerate(ids) if not v]
    if empty:
        errors.append(f"missing id at rows {_rows(empty)}. Fix: give every row the id of its data row")
    dups = _duplicate_ids(ids)
    if dups:
        errors.append(f"duplicate ids: {_rows(dups)}. Fix: one truth row per id")
    keyed = {label_key(str(n).strip()): i for i, n in enumerate(labels)}
    missing_tokens = MISSING_LABELS - set(labels)
    missing = [i for i, v in enumerate(true) if v == "" or v in missing_tokens]
    if missing:
        errors.append(f"missing true_label at rows {_rows(missing, [ids[i] for i in missing])}. Fix: fill them or remove those rows")
    missing_set = set(missing)
    bad = [i for i, v in enumerate(true) if v not in keyed and i not in missing_set]
    if bad:
        vals = sorted({true[i] for i in bad})
        hint = _case_hint(vals, labels)
        if not hint and all(_INT.fullmatch(v) for v in vals) and not any(_canon_number(str(n)) for n in labels):
            hint = " (true_label holds label names, not class indices)"
        errors.append(
            f"true_label values {vals[:MAX_LISTED]} at rows {_rows(bad, [ids[i] for i in bad])} are not in the dataset's "
            f"labels {labels}{hint}. Fix: write each row's true label as one of those names"
        )
    if given is not None:
        unknown = [i for i, v in enumerate(ids) if v and v not in given and v not in dropped]
        if unknown:
            eg = [ids[i] for i in unknown[:5]]
            errors.append(
                f"{len(unknown)} of {len(ids)} ids are not in the dataset (data.path / data.test_path), e.g. {eg} at rows "
                f"{_rows(unknown)}. Fix: use the data's ids (data.id_column; row numbers 0, 1, ... when it is null), "
                "or remove those rows"
            )
    flags: dict[str, list[bool]] = {}
    for c in ("is_noisy", "is_ambiguous"):
        if c in df.columns:
            vals = [label_key(_cell(v).strip()).lower() if not isinstance(v, NON_SCALAR) else "?" for v in df[c].tolist()]
            odd = [i for i, v in enumerate(vals) if v not in _TRUE and v not in _FALSE]
            if odd:
                shown = sorted({vals[i] for i in odd})[:5]
                errors.append(f"column {c!r} has values {shown} at rows {_rows(odd, [ids[i] for i in odd])} that are not true/false. "
                              "Fix: write true or false (1 or 0) on every row")
            flags[c] = [v in _TRUE for v in vals]
    if errors:
        raise DataError(f"{path}:\n  " + "\n  ".join(errors))
    index = [keyed[v] for v in true]
    if given is not None:
        derived = [given.get(i) is not None and given[i] != t for i, t in zip(ids, index)]
        if "is_noisy" in flags:
            off = [r for r, (i, f, d) in enumerate(zip(ids, flags["is_noisy"], derived)) if i in given and f != d]
            if off:
                r = off[0]
                raise DataError(
                    f"{path}: is_noisy disagrees with true_label vs the data's label at rows {_rows(off, [ids[i] for i in off])} "
                    f"(e.g. id {ids[r]!r}: label {labels[given[ids[r]]]!r}, true_label {labels[index[r]]!r}, is_noisy "
                    f"{str(flags['is_noisy'][r]).lower()}). Fix: is_noisy must be true exactly where true_label differs from "
                    "the given label; or drop the is_noisy column and it is derived"
                )
        else:
            flags["is_noisy"] = derived
    keep = [i for i, v in enumerate(ids) if v not in dropped]
    cols = {"id": pa.array([ids[i] for i in keep], pa.string()), "true_label": pa.array([index[i] for i in keep], pa.int32())}
    for c in ("is_noisy", "is_ambiguous"):
        if c in flags:
            cols[c] = pa.array([flags[c][i] for i in keep], pa.bool_())
    return pa.table(cols)


_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


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
