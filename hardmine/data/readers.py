"""Readers by format: a file or folder -> a DataFrame of strings (cells as written).

Formats: CSV, TSV (:mod:`hardmine.data.delimited`), JSONL, Parquet and Hugging Face ``datasets``
directories saved with ``save_to_disk`` (read directly from their Arrow files, no ``datasets``
import needed). Nothing is silently accepted: every bad input raises one :class:`DataError` that
says what is wrong, where (file, line or row numbers, column) and the fix.
"""
from __future__ import annotations

import codecs
import json
import os
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hardmine.data.cells import stringify
from hardmine.data.delimited import read_delimited
from hardmine.data.errors import DataError

#: data.quoting values (CSV and TSV): auto, none (quotes are text), csv (standard CSV quoting)
QUOTING = ("auto", "none", "csv")


def format_suffix(path: str) -> str:
    """The part of a file's name that :func:`detect_format` reads (``.csv``; ``.csv.gz``; ``''`` for none)."""
    p = Path(str(path).rstrip("/"))
    return "".join(p.suffixes[-2:]).lower() if p.suffix == ".gz" else p.suffix.lower()


def detect_format(path: str) -> str:
    p = Path(path)
    if p.is_dir():
        return "hf"
    suffix = format_suffix(path)
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
    :func:`hardmine.data.canonical.to_canonical` to refuse in the columns it uses.
    ``quoting`` (CSV and TSV): ``auto`` reads CSV with standard quoting and TSV one row per line
    (see :mod:`hardmine.data.delimited`), ``none`` keeps every quote as text, ``csv`` reads TSV
    with CSV quoting too.
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
        return read_delimited(path, _decode(path, encoding, fmt), fmt, quoting)
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
        return _nonempty(path, stringify(_read_hf_dir(path)))
    raise DataError(f"unknown data.format {fmt!r}: use csv, tsv, jsonl, parquet or hf")


def _nonempty(path: str, df: pd.DataFrame) -> pd.DataFrame:
    if len(df) == 0:
        raise DataError(f"{path}: no rows (columns {list(df.columns)}). Fix: point the setting at the file that holds the data")
    return df


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
    return stringify(pd.DataFrame.from_records(records))


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
    return _nonempty(path, stringify(table.to_pandas()))


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
