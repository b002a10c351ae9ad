"""The analysis for people: plain-text tables for the console and the log (:func:`format_tables`)."""
from __future__ import annotations

import math
import unicodedata

import numpy as np
import pyarrow as pa


def text_width(s: str) -> int:
    """Columns ``s`` takes in a terminal: wide and full-width (CJK) characters count 2."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if math.isfinite(v) else str(v)
    return str(v)


def render_table(table: pa.Table, *, max_rows: int | None = 30) -> str:
    """A pyarrow table as an aligned plain-text table (wide CJK characters counted as 2 columns)."""
    header = table.column_names
    rows = table.to_pylist()
    more = 0
    if max_rows is not None and len(rows) > max_rows:
        more, rows = len(rows) - max_rows, rows[:max_rows]
    cells = [header] + [[_cell(r[h]) for h in header] for r in rows]
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) for t in table.schema.types]
    widths = [max(text_width(row[j]) for row in cells) for j in range(len(header))]

    def line(row):
        out = []
        for j, c in enumerate(row):
            pad = " " * (widths[j] - text_width(c))
            out.append(pad + c if numeric[j] else c + pad)
        return "  ".join(out).rstrip()

    lines = [line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]]
    if not rows:
        lines.append("(none)")
    if more:
        lines.append(f"... {more} more rows")
    return "\n".join(lines)


def _of(k, n) -> str | None:
    return None if k is None else (f"{k} of {n}" if n is not None else str(k))


def phrases_view(tok: pa.Table) -> pa.Table:
    """The distinctive phrases for people: class, name, phrase, ``hard rows`` ("12 of 85": hard rows of
    the class containing the phrase), ``other rows`` (the same in the contrast group), score, versus."""
    cols = set(tok.column_names)
    rows = tok.to_pylist()
    get = lambda r, k: r.get(k) if k in cols else None  # noqa: E731  (tables written before n_hard existed)
    return pa.table(
        {
            "class": pa.array([r["class"] for r in rows], pa.int32()),
            "name": pa.array([r["name"] for r in rows], pa.string()),
            "phrase": pa.array([(get(r, "phrase") or r["token"]).strip() for r in rows], pa.string()),
            "hard rows": pa.array([_of(get(r, "hard_df"), get(r, "n_hard")) for r in rows], pa.string()),
            "other rows": pa.array([_of(get(r, "other_df"), get(r, "n_other")) for r in rows], pa.string()),
            "score": pa.array([r["score"] for r in rows], pa.float64()),
            "versus": pa.array([r["versus"] for r in rows], pa.string()),
        }
    )


def phrases_title(result: dict) -> str:
    unit = result.get("phrase_unit", "char")
    what = "words and word n-grams" if unit == "word" else "character n-grams within words: text without spaces"
    return (f"distinctive phrases of hard samples ({what}; {result.get('token_rows', result['n'])} texts analysed; "
            "hard rows / other rows: rows containing the phrase)")


def format_tables(result: dict, *, max_rows: int = 30) -> str:
    """Render an :func:`analyze` result as plain-text tables for the console."""
    parts = [
        f"hard samples: {result['n_hard']} of {result['n']} ({result['hard_rule']}); "
        f"label issues: {result.get('n_issue', 0)}"
    ]
    per_class = result["per_class"]
    if per_class.num_rows:
        order = np.lexsort((per_class.column("class").to_numpy(), -per_class.column("n_hard").to_numpy()))
        per_class = per_class.take(order)
    parts += ["", "hard samples per class (most first)", render_table(per_class, max_rows=max_rows)]
    parts += ["", "confusion pairs among hard samples (given -> predicted)",
              render_table(result["confusion_pairs"], max_rows=max_rows)]
    length = result["length"]
    stats = ["n", "mean", "min", "p10", "p25", "p50", "p75", "p90", "max"]
    lt = pa.table(
        {
            "group": list(length),
            "n": pa.array([length[g]["n"] for g in length], pa.int64()),
            **{s: pa.array([length[g][s] for g in length], pa.float64()) for s in stats[1:]},
        }
    )
    parts += ["", "text length in characters", render_table(lt, max_rows=None)]
    parts += ["", phrases_title(result), render_table(phrases_view(result["distinctive_tokens"]), max_rows=max_rows * 3)]
    return "\n".join(parts) + "\n"
