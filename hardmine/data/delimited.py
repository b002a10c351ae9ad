"""CSV and TSV text -> a DataFrame of strings, with the checks that name the offending lines.

* **CSV** is read with standard quoting (a quoted cell may span lines). Refused: a quote that
  opens a cell and closes lines later with more text after it, or never closes (a stray quote
  that would swallow the rows in between); rows with more or fewer fields than the header;
  duplicate header names; an empty or header-only file.
* **TSV** is read the way TSV is written: one line is one row, always. A cell wrapped in quotes
  (``"say ""hi"" now"``, as Python's csv module and pandas write it) is unquoted; any other quote is
  text. ``quoting="none"`` keeps every quote as text; ``quoting="csv"`` reads TSV with CSV
  quoting (cells may span lines), with the CSV checks.
"""
from __future__ import annotations

import csv
import io
from collections import Counter

import pandas as pd

from hardmine.data.errors import MAX_LISTED, DataError, listed

def read_delimited(path: str, text: str, fmt: str, quoting: str) -> pd.DataFrame:
    """The decoded ``text`` of the CSV or TSV file ``path`` -> a DataFrame of strings, one column per header name."""
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
        more = f" ({len(spans)} such places; the others start on lines {listed([s[0] for s in spans[1:]])})" if len(spans) > 1 else ""
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


def _lines(found: list[tuple[int, int]]) -> str:
    shown = listed([f"{n} ({k} field{'s' if k != 1 else ''})" for n, k in found])
    return f"line {shown} has" if len(found) == 1 else f"lines {shown} have"


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
