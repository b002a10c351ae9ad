"""Label cells -> class names and the label vocabulary, with its checks.

Empty cells and missing-value markers (:data:`MISSING_LABELS`: ``nan``, ``NULL``, ``None``,
``N/A``, ...) are missing labels, unless ``data.labels`` lists the marker as a class. Numbers are
one class however they are written (``1``, ``1.0``, ``+1``, `` 1 `` -> ``"1"``). Refused:
labels that differ only in case, spacing or Unicode form, a column mixing numbers and names
(unless ``data.labels`` lists them), labels outside ``data.labels``.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from decimal import Decimal

from hardmine.data.errors import MAX_LISTED, DataError, listed, plural

#: label cells that mean "no label" (after stripping), unless data.labels lists them as a class
MISSING_LABELS = frozenset({"nan", "NaN", "NAN", "null", "NULL", "Null", "None", "NA", "N/A", "n/a", "<NA>"})

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_CANON_NUMBER = re.compile(r"-?\d+(?:\.\d+)?", re.ASCII)
INTEGER = re.compile(r"-?\d+", re.ASCII)


def canon_number(v: str) -> str | None:
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
    n = canon_number(v)
    return v if n is None else n


def _fold(v: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", v).split()).casefold()


def case_hint(values: list[str], labels: list[str]) -> str:
    folded = {_fold(label_key(str(n).strip())): n for n in labels}
    pairs = [f"{v!r} vs {folded[_fold(label_key(v))]!r}" for v in values if _fold(label_key(v)) in folded]
    return f" (differ only in case, spacing or Unicode form: {', '.join(pairs[:MAX_LISTED])})" if pairs else ""


def label_names(
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
        numeric_names = any(canon_number(str(n).strip()) is not None for n in labels)
        if given and not numeric_names and all(INTEGER.fullmatch(c) for c in canon):
            # integer cells index into the given vocabulary
            bad = [i for i, c in enumerate(canon) if not 0 <= int(c) < len(labels)]
            if bad:
                raise DataError(
                    f"{source}: label ids out of range [0, {len(labels)}) at rows {listed(bad, [ids[i] for i in bad])}. "
                    "Fix: correct them or extend data.labels"
                )
            return [labels[int(c)] for c in canon], list(labels)
        vals = sorted({raw[i] for i in unknown})
        where = listed(unknown, [ids[i] for i in unknown])
        hint = case_hint(vals, labels)
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
            f"{source}: the label column {column!r} mixes numbers and names: {plural(len(num_rows), 'row')} with numbers (e.g. "
            f"{eg_num}) and {plural(len(name_rows), 'row')} with names (e.g. {eg_name}); the {kind} are at rows {listed(few, [ids[i] for i in few])}. "
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
